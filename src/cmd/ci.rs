//! CI surfaces of `run`: under GitHub Actions (`GITHUB_STEP_SUMMARY` set) the job summary is
//! appended to and the checks that did not pass are annotated in the scenario file.

use std::io::Write as _;
use std::path::Path;

use crate::report::Report;
use crate::report::ci::{ReportLink, github_annotations, github_summary};

/// Appends the summary and prints the annotations when running under GitHub Actions; a
/// summary that cannot be written is a warning, never a changed verdict.
pub fn github(report: &Report, html: Option<&Path>) {
    let Some(summary_path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty())
    else {
        return;
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let artefacts_url = match (
        env("GITHUB_SERVER_URL"),
        env("GITHUB_REPOSITORY"),
        env("GITHUB_RUN_ID"),
    ) {
        (Some(server), Some(repo), Some(run)) => {
            Some(format!("{server}/{repo}/actions/runs/{run}"))
        }
        _ => None,
    };
    let link = ReportLink {
        path: html.map(|p| p.display().to_string()),
        artefacts_url,
    };
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&summary_path)
        .and_then(|mut f| f.write_all(github_summary(report, &link).as_bytes()));
    if let Err(e) = appended {
        eprintln!(
            "warning: could not append to GITHUB_STEP_SUMMARY {}: {e}",
            Path::new(&summary_path).display()
        );
    }
    // Workflow commands are read from stdout.
    for line in github_annotations(report) {
        println!("{line}");
    }
}
