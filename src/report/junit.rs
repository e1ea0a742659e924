//! JUnit XML for CI systems: one `<testsuite>` per drill, one `<testcase>` per check, with the
//! check's `file` and `line` in the scenario when known (GitLab links a failure there).
//!
//! A drill that was aborted or interrupted gets one extra testcase with an `<error>`, so CI
//! never shows it green just because the checks it managed to judge passed.

use std::fmt::Write as _;

use super::model::{CheckResult, CheckVerdict, Report, Verdict};
use super::sections;

/// Renders the report as a JUnit XML document.
pub fn render(report: &Report) -> String {
    let suite = format!("drillbook.{}", report.scenario.name);
    let drill_error = matches!(report.verdict, Verdict::Aborted | Verdict::Interrupted);
    let tests = report.checks.len() + usize::from(drill_error);
    let failures = report.count_checks(CheckVerdict::Fail);
    let skipped = report.count_checks(CheckVerdict::Inconclusive);

    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"drillbook\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{}\" skipped=\"{skipped}\" time=\"{:.3}\">",
        usize::from(drill_error),
        report.duration_s()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{}\" skipped=\"{skipped}\" time=\"{:.3}\" timestamp=\"{}\">",
        xml(&suite),
        usize::from(drill_error),
        report.duration_s(),
        xml(&report.started_at.to_string())
    );
    out.push_str("    <properties>\n");
    for (name, value) in properties(report) {
        let _ = writeln!(
            out,
            "      <property name=\"{}\" value=\"{}\"/>",
            xml(name),
            xml(&value)
        );
    }
    out.push_str("    </properties>\n");
    for check in &report.checks {
        testcase(
            &mut out,
            &suite,
            &report.scenario.file,
            check,
            check_seconds(report, check),
        );
    }
    if drill_error {
        let _ = writeln!(
            out,
            "    <testcase name=\"drill completed\" classname=\"{}\" time=\"{:.3}\">\n      <error type=\"{}\" message=\"{}\"/>\n    </testcase>",
            xml(&suite),
            report.duration_s(),
            report.verdict,
            xml(&report.verdict_reason)
        );
    }
    let _ = writeln!(
        out,
        "    <system-out>{}</system-out>",
        xml(&format!(
            "verdict: {} - {}",
            report.verdict, report.verdict_reason
        ))
    );
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn properties(report: &Report) -> Vec<(&'static str, String)> {
    let mut props = vec![
        ("run_id", report.run_id.clone()),
        ("seed", report.seed.to_string()),
        ("verdict", report.verdict.to_string()),
        ("scenario_file", report.scenario.file.clone()),
        ("target", sections::target(report)),
        ("drillbook_version", report.drillbook_version.clone()),
    ];
    if let Some(rev) = &report.scenario.git_revision {
        props.push(("git_revision", rev.clone()));
    }
    if let Some(operator) = &report.operator {
        props.push(("operator", operator.clone()));
    }
    props
}

/// A check's time: the duration of the phase it judges, else of the whole run.
fn check_seconds(report: &Report, check: &CheckResult) -> f64 {
    check
        .phase
        .as_deref()
        .and_then(|name| report.phases.iter().find(|p| p.name == name))
        .map_or_else(|| report.duration_s(), |p| p.end_s - p.start_s)
        .max(0.0)
}

fn testcase(out: &mut String, suite: &str, file: &str, check: &CheckResult, seconds: f64) {
    let classname = match &check.phase {
        Some(phase) => format!("{suite}.{phase}"),
        None => suite.to_owned(),
    };
    let _ = write!(
        out,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{seconds:.3}\"",
        xml(&check.name),
        xml(&classname)
    );
    // GitLab shows a failing test at `file`:`line` (the check in the scenario file).
    if let Some(at) = check.location {
        let _ = write!(out, " file=\"{}\" line=\"{}\"", xml(file), at.line);
    }
    let message = format!(
        "{}: measured {}, threshold {}",
        check.expression,
        sections::measured(check),
        sections::threshold(check)
    );
    match check.verdict {
        CheckVerdict::Pass => out.push_str("/>\n"),
        CheckVerdict::Fail => {
            let _ = writeln!(
                out,
                ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                xml(&check.kind),
                xml(&message),
                xml(&check.detail)
            );
        }
        CheckVerdict::Inconclusive => {
            let _ = writeln!(
                out,
                ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                xml(&format!("inconclusive: {}", check.detail))
            );
        }
    }
}

/// Escapes text for XML attributes and character data. Characters XML 1.0 cannot carry at all
/// (most C0 controls) become U+FFFD, so a stray byte in a pod name cannot break the document.
pub(crate) fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}
