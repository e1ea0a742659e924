//! The drill engine: runs one scenario end to end and turns what happened into a verdict,
//! reports and a drill-log row. See ARCHITECTURE.md for the data flow.

pub mod command;
pub mod drill;
pub mod journal;
pub mod judge;
pub mod kube;
pub mod load_config;
pub mod local;
pub mod observe;
pub mod phases;
pub mod preflight;
pub mod prometheus;
pub mod recover;
pub mod report_build;
pub mod signals;
pub mod target;
pub mod undo;
pub mod windows;

use std::path::PathBuf;

use crate::cli::RunArgs;
use crate::drill_log::{self, AppendOutcome, DrillLogEntry};
use crate::exit::Outcome;

/// `drillbook run`.
pub async fn run_cli(args: RunArgs) -> anyhow::Result<Outcome> {
    let loaded = match crate::scenario::load(&args.scenario) {
        Ok(l) => l,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            return Ok(Outcome::Invalid);
        }
    };
    if !loaded.warnings.is_empty() {
        eprint!(
            "{}",
            crate::scenario::FileDiagnostics::new(
                &loaded.path,
                Some(loaded.source.clone()),
                loaded.warnings.clone()
            )
        );
    }
    let seed = args
        .seed
        .or(loaded.scenario.seed)
        .unwrap_or_else(rand::random);
    eprintln!(
        "drill `{}`: seed {seed} (replay with --seed {seed})",
        loaded.scenario.name.value
    );

    let options = drill::RunOptions {
        context: args.context.clone(),
        allow_production: args.allow_production,
        force: args.force,
        run_id: report_build::new_run_id(),
        in_cluster: if args.in_cluster {
            match &args.cluster_name {
                Some(name) => Some(name.clone()),
                None => {
                    eprintln!(
                        "refused: --in-cluster needs the cluster's name (--cluster-name or \
                         DRILLBOOK_CLUSTER_NAME) to check the scenario's context against"
                    );
                    return Ok(Outcome::Refused);
                }
            }
        } else {
            None
        },
    };
    let vars_and_observed = match drill::run(&loaded, seed, &options).await {
        Ok(observed) => observed,
        Err(drill::DrillError::Refused(why)) => {
            eprintln!("refused: {why}");
            return Ok(Outcome::Refused);
        }
        Err(e) => return Err(e.into()),
    };
    let report = report_build::build(&loaded, &vars_and_observed, args.operator.as_deref()).await;

    let dir = drill::report_dir(&args.report_dir, &report);
    // A report that cannot be written in full must not also cost the drill-log row.
    let files = match crate::report::write_all(&report, &dir) {
        Ok(files) => files,
        Err(e) => {
            eprintln!(
                "error: could not write every report file under {}: {e}",
                dir.display()
            );
            Vec::new()
        }
    };
    if args.store_results {
        // The verdict stays the run's outcome; a storage failure is loud but does not hide it.
        match crate::schedule::results::store_after_run(
            &loaded,
            &options,
            &report,
            args.keep_results,
        )
        .await
        {
            Ok(stored) => println!("{stored}"),
            Err(e) => eprintln!("warning: could not store the result in the cluster: {e}"),
        }
    }
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none();
    println!("{}", crate::report::table::render(&report, color));
    println!(
        "reports: {}",
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    if !args.no_drill_log {
        let runbook: Option<PathBuf> = args.drill_log.clone().or_else(|| {
            loaded
                .scenario
                .runbook
                .as_ref()
                .map(|r| loaded.resolve(&r.value))
        });
        if let Some(runbook) = runbook {
            let entry = drill_log_entry(&report, &runbook, &dir);
            match drill_log::append(&runbook, &entry) {
                Ok(AppendOutcome::AlreadyPresent) => println!(
                    "drill log: run {} already in {}",
                    report.run_id,
                    runbook.display()
                ),
                Ok(_) => println!("drill log: appended a row to {}", runbook.display()),
                Err(e) => eprintln!(
                    "warning: could not append to the drill log {}: {e}",
                    runbook.display()
                ),
            }
        }
    }
    Ok(Outcome::from(report.verdict))
}

/// The drill-log row of a run whose report files are in `report_dir`.
pub fn drill_log_entry(
    report: &crate::report::model::Report,
    runbook: &std::path::Path,
    report_dir: &std::path::Path,
) -> DrillLogEntry {
    DrillLogEntry {
        run_id: report.run_id.clone(),
        date: report.started_at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        scenario: report.scenario.name.clone(),
        verdict: report.verdict.as_str().to_string(),
        operator: report
            .operator
            .clone()
            .unwrap_or_else(|| drill_log::resolve_operator(None)),
        notes: report.verdict_reason.clone(),
        report_link: Some(relative_link(runbook, &report_dir.join("report.md"))),
    }
}

/// `target` as a link that works from the runbook's directory (relative when they share a
/// root, absolute otherwise).
fn relative_link(runbook: &std::path::Path, target: &std::path::Path) -> String {
    use std::path::{Component, Path};
    let (Ok(from), Ok(to)) = (std::path::absolute(runbook), std::path::absolute(target)) else {
        return target.display().to_string();
    };
    let from: Vec<Component> = from
        .parent()
        .unwrap_or(Path::new("/"))
        .components()
        .collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut link = PathBuf::new();
    for _ in common..from.len() {
        link.push("..");
    }
    for part in &to[common..] {
        link.push(part);
    }
    link.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::relative_link;
    use std::path::Path;

    #[test]
    fn report_links_are_relative_to_the_runbook() {
        assert_eq!(
            relative_link(
                Path::new("/a/reports/RUNBOOK.md"),
                Path::new("/a/reports/x/report.md")
            ),
            "x/report.md"
        );
        assert_eq!(
            relative_link(
                Path::new("/a/docs/RUNBOOK.md"),
                Path::new("/a/reports/x/report.md")
            ),
            "../reports/x/report.md"
        );
    }
}
