//! What CI systems show of a drill: GitHub Actions' job summary (Markdown) and its
//! `::error file=…,line=…::` workflow commands, which annotate the scenario file at the
//! failing check's line. (GitLab reads the `file` and `line` attributes of `junit.xml`.)

use std::fmt::Write as _;

use super::markdown::cell_text;
use super::model::{CheckResult, CheckVerdict, Report};
use super::sections::{self, millis};

/// Where the HTML report of the run can be found, for the summary's link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportLink {
    /// The HTML report's path as written by this run.
    pub path: Option<String>,
    /// The page listing the workflow run's artefacts (`$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/
    /// actions/runs/$GITHUB_RUN_ID`), when known.
    pub artefacts_url: Option<String>,
}

/// The Markdown appended to `$GITHUB_STEP_SUMMARY`: verdict, failing checks, key numbers and
/// where the HTML report is.
pub fn github_summary(report: &Report, link: &ReportLink) -> String {
    let mut out = format!(
        "### drillbook `{}`: **{}**\n\n{}\n\n",
        report.scenario.name.replace(['`', '\r', '\n'], ""),
        report.verdict.as_str().to_uppercase(),
        cell_text(&report.verdict_reason)
    );
    let not_passed: Vec<&CheckResult> = report
        .checks
        .iter()
        .filter(|c| c.verdict != CheckVerdict::Pass)
        .collect();
    if !not_passed.is_empty() {
        out.push_str("| check | phase | measured | threshold | verdict | detail |\n|---|---|---|---|---|---|\n");
        for c in not_passed {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell_text(&c.name),
                cell_text(c.phase.as_deref().unwrap_or("whole run")),
                cell_text(&sections::measured(c)),
                cell_text(&sections::threshold(c)),
                cell_text(&sections::check_verdict(c)),
                cell_text(&c.detail)
            );
        }
        out.push('\n');
    }
    let _ = write!(
        out,
        "- checks: {} passed, {} failed, {} inconclusive\n- duration: {}\n- seed: `{}`\n",
        report.count_checks(CheckVerdict::Pass),
        report.count_checks(CheckVerdict::Fail),
        report.count_checks(CheckVerdict::Inconclusive),
        sections::duration(report.duration_s()),
        report.seed
    );
    if let Some(load) = &report.load {
        let _ = writeln!(
            out,
            "- load: {} requests at {:.1}/s, p50 {}, p99 {}; 401: {}, 5xx: {}, no response: {}",
            load.requests,
            load.rps,
            millis(load.latency_ms.p50),
            millis(load.latency_ms.p99),
            load.status_count(401),
            load.status_class_count(5),
            load.error_count()
        );
    }
    match (&link.path, &link.artefacts_url) {
        (Some(path), Some(url)) => {
            let _ = writeln!(
                out,
                "- HTML report: `{}` (in [this run's artefacts]({url}) when the workflow uploads it)",
                cell_text(path)
            );
        }
        (Some(path), None) => {
            let _ = writeln!(out, "- HTML report: `{}`", cell_text(path));
        }
        _ => {}
    }
    out.push('\n');
    out
}

/// One workflow command per check that did not pass: `::error` for a failure, `::warning` for
/// an inconclusive check, at the check's line of the scenario file when it is known.
pub fn github_annotations(report: &Report) -> Vec<String> {
    report
        .checks
        .iter()
        .filter(|c| !c.dry_run)
        .filter_map(|c| {
            let level = match c.verdict {
                CheckVerdict::Pass => return None,
                CheckVerdict::Fail => "error",
                CheckVerdict::Inconclusive => "warning",
            };
            let mut properties = format!("file={}", property(&report.scenario.file));
            if let Some(at) = c.location {
                let _ = write!(properties, ",line={},col={}", at.line, at.column);
            }
            let _ = write!(
                properties,
                ",title={}",
                property(&format!("drillbook check {} {}", c.name, c.verdict))
            );
            let message = format!(
                "{}: measured {}, threshold {} - {}",
                c.expression,
                sections::measured(c),
                sections::threshold(c),
                c.detail
            );
            Some(format!("::{level} {properties}::{}", data(&message)))
        })
        .collect()
}

/// A workflow command's message: `%`, CR and LF encoded, so no text can end the command and
/// start another.
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: as [`data`], and `:` and `,` too.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_text_can_start_another_workflow_command() {
        assert_eq!(
            data("50%\n::set-env name=X::1\r"),
            "50%25%0A::set-env name=X::1%0D"
        );
        assert_eq!(property("a,b:c\n"), "a%2Cb%3Ac%0A");
    }
}
