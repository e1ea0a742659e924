//! `drillbook load --worker-output`: one load worker of an in-cluster fleet (issue #13). It
//! writes one wire line per closed window to stdout and a final line; the controller follows
//! the pod's log and merges the fleet's windows (`load::wire`). Nothing else is printed on
//! stdout, so every line of the log is a wire line.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::load_args::LoadArgs;
use crate::exit::Outcome;
use crate::load::CallerStats;
use crate::load::wire::{WireFinal, WorkerLine};

/// Runs one worker: the load of `args`, aligned on the fleet's time zero.
pub async fn run(args: LoadArgs) -> anyhow::Result<Outcome> {
    let mut config = args.to_config()?;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let zero_ms = args.start_at_unix_ms.unwrap_or(now_ms);
    // A worker scheduled late starts behind its schedule: the open model counts what it
    // could not send as dropped instead of shifting the fleet's seconds.
    config.start_at = Some(if zero_ms >= now_ms {
        Instant::now() + Duration::from_millis(u64::try_from(zero_ms - now_ms).unwrap_or(0))
    } else {
        let behind = Duration::from_millis(u64::try_from(now_ms - zero_ms).unwrap_or(0));
        Instant::now()
            .checked_sub(behind)
            .unwrap_or_else(Instant::now)
    });
    let zero_unix_s = zero_ms.div_euclid(1000);
    let worker = args.worker_index;

    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    // The kubelet stops a deleted worker's pod with SIGTERM: end the load, still send the
    // windows so far and the final line within the pod's grace period.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        on_signal.cancel();
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = tokio::spawn(async move {
        let mut out = std::io::stdout();
        while let Some(window) = rx.recv().await {
            let line = WorkerLine::window(worker, zero_unix_s, &window)?.to_json()?;
            // One write per line, so the log never holds half a window.
            out.write_all(format!("{line}\n").as_bytes())
                .and_then(|()| out.flush())?;
        }
        anyhow::Ok(())
    });
    let summary = crate::load::run(config, cancel, Some(tx)).await?;
    writer.await.context("window writer failed")??;

    let offset = args.caller_slot_offset;
    let callers = summary
        .callers
        .into_iter()
        .map(|mut caller| {
            // Slots are the fleet's, so caller tables of different workers do not collide.
            caller.slot += offset;
            caller.label = CallerStats::label_for(caller.slot, caller.generation);
            caller
        })
        .collect();
    let last = WorkerLine::Final(WireFinal {
        worker,
        windows: summary.windows,
        requests: summary.total.requests,
        cancelled: summary.cancelled,
        callers,
        token_fetch_failures: summary.token_fetch_failures,
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", last.to_json()?)
        .and_then(|()| out.flush())
        .context("cannot write the final line")?;
    Ok(if summary.cancelled {
        Outcome::Interrupted
    } else {
        Outcome::Pass
    })
}
