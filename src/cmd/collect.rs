//! `drillbook collect`: stored in-cluster results into report files and drill-log rows.

use std::path::PathBuf;

use clap::Args;

use crate::exit::Outcome;
use crate::schedule::results::{client_for, collect as collect_results};

/// Arguments of `drillbook collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// kubeconfig context to read results from (never the current-context implicitly).
    #[arg(long)]
    pub context: String,
    /// Namespace holding the results (default: the context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Only this scenario's results.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Runbook whose Drill log table gets one row per new run.
    #[arg(long)]
    pub drill_log: PathBuf,
    /// Parent directory of the runs' report directories.
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,
    /// kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// `drillbook collect`.
pub async fn collect(args: &CollectArgs) -> anyhow::Result<Outcome> {
    let (client, namespace) = client_for(
        &args.context,
        args.namespace.as_deref(),
        args.kubeconfig.as_deref(),
    )
    .await?;
    let collected = collect_results(
        &client,
        &namespace,
        args.scenario.as_deref(),
        &args.drill_log,
        &args.report_dir,
    )
    .await?;
    let new = collected.iter().filter(|c| c.appended).count();
    for run in &collected {
        let state = if run.appended {
            "appended"
        } else {
            "already in the log"
        };
        println!("run {}: {} ({state})", run.run_id, run.report_dir.display());
    }
    println!(
        "collected {} stored result(s) from `{}`/{namespace}: {new} new row(s) in {}",
        collected.len(),
        args.context,
        args.drill_log.display()
    );
    Ok(Outcome::Pass)
}
