//! `drillbook fault-proxy` (hidden): the fault proxy a drill runs in pods in front of a Service
//! (`targets::kube` interposition, issue #23). Its spec comes as one JSON argument written by
//! drillbook; it prints what it did as one JSON line per second on stdout
//! (`kubectl logs` shows them); on SIGTERM it stops faulting at once and drains for a moment,
//! so callers still routed to it while the Service switches back get answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::exit::Outcome;
use crate::fault::proxy::{self, Counters, Faults, Route};
use crate::fault::{FaultSpec, now_ms};

/// How long a terminating proxy keeps forwarding (untouched) while Endpoints update.
const DRAIN: Duration = Duration::from_secs(3);

#[derive(Debug, clap::Args)]
pub struct FaultProxyArgs {
    /// The fault, as JSON (drillbook writes it).
    #[arg(long)]
    spec: String,
    /// `LISTEN=UPSTREAM`, both `ip:port` (repeatable).
    #[arg(long = "route", value_parser = parse_route, required = true)]
    routes: Vec<Route>,
    /// Seed of the random choices (which request is aborted).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn parse_route(text: &str) -> Result<Route, String> {
    let (listen, upstream) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not LISTEN=UPSTREAM"))?;
    let addr = |s: &str| {
        s.parse::<SocketAddr>()
            .map_err(|e| format!("`{s}` is not ip:port: {e}"))
    };
    Ok(Route {
        listen: addr(listen)?,
        upstream: addr(upstream)?,
    })
}

pub async fn run(args: FaultProxyArgs) -> anyhow::Result<Outcome> {
    let spec: FaultSpec = serde_json::from_str(&args.spec).context("--spec is not a fault spec")?;
    let bound = proxy::bind(&args.routes).await?;
    tracing::info!(routes = ?args.routes, spec = %args.spec, "fault proxy listening");
    let faults = Faults::new(spec.protocol, Some(spec));
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    {
        let (faults, stop) = (faults.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            faults.set(None);
            tracing::info!("terminating: forwarding untouched while draining");
            tokio::time::sleep(DRAIN).await;
            stop.cancel();
        });
    }
    {
        let (counters, stop) = (counters.clone(), stop.clone());
        tokio::spawn(async move {
            let mut last = counters.snapshot();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while tokio::select! { _ = tick.tick() => true, () = stop.cancelled() => false } {
                let now = counters.snapshot();
                if now != last {
                    let line = serde_json::json!({"t_ms": now_ms(), "counts": now});
                    println!("{line}");
                    last = now;
                }
            }
        });
    }
    proxy::serve(bound, faults, counters.clone(), stop, args.seed).await;
    println!(
        "{}",
        serde_json::json!({"t_ms": now_ms(), "final": counters.snapshot()})
    );
    Ok(Outcome::Pass)
}
