//! `drillbook collect`: stored in-cluster results into report files and drill-log rows.

use std::path::PathBuf;

use clap::Args;

use crate::exit::Outcome;
use crate::report::model::Report;
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
    /// Push each newly collected run's results to this Prometheus Pushgateway, oldest first.
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
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
    // The collected folders join the history index (`history` would also find them).
    match crate::history::load(&args.report_dir) {
        Ok(history) => {
            if let Some(e) = history.index_not_written {
                eprintln!("warning: the history index was not updated: {e}");
            }
        }
        Err(e) => eprintln!("warning: the history index was not updated: {e}"),
    }
    let mut unpushed = false;
    if let Some(url) = &args.pushgateway {
        for run in collected.iter().filter(|c| c.appended) {
            let path = run.report_dir.join("report.json");
            let report = std::fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| Ok(serde_json::from_slice::<Report>(&bytes)?));
            match report {
                Ok(report) => unpushed |= !push_results(url, &report, &run.report_dir).await,
                Err(e) => {
                    eprintln!("error: could not read {} to push it: {e:#}", path.display());
                    unpushed = true;
                }
            }
        }
    }
    Ok(if unpushed {
        Outcome::Unreported
    } else {
        Outcome::Pass
    })
}

/// Pushes `report`'s results to the Pushgateway at `url`; says so, or why not (the report
/// in `dir` stands either way). Returns whether the push landed.
pub(super) async fn push_results(url: &str, report: &Report, dir: &std::path::Path) -> bool {
    match crate::history::pushgateway::push(url, report).await {
        Ok(group) => {
            println!("pushgateway: pushed run {} to {group}", report.run_id);
            true
        }
        Err(e) => {
            eprintln!(
                "error: run {}'s results were not pushed: {:#}; nothing is lost, the report \
                 stays in {}: push it again with `drillbook report {} --pushgateway {url}`",
                report.run_id,
                anyhow::Error::new(e),
                dir.display(),
                dir.join("report.json").display()
            );
            false
        }
    }
}
