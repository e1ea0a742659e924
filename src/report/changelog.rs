//! A short paragraph for a CHANGELOG or a post-rollout note: what was measured, the numbers,
//! and the surprises (checks near their threshold, inconclusive checks, warnings).

use super::model::{CheckResult, CheckVerdict, Report, StatsSummary, Verdict};
use super::sections;

/// Renders the report as one Markdown paragraph (ending in a newline).
pub fn render(report: &Report) -> String {
    let mut sentences = vec![opening(report)];
    if let Some(load) = &report.load {
        sentences.push(format!(
            "Load: {} requests at {:.1} rps, {}.",
            load.requests,
            load.rps,
            failure_numbers(load)
        ));
    }
    let phases: Vec<String> = report
        .phases
        .iter()
        .filter_map(|p| {
            let load = p.load.as_ref()?;
            Some(format!("{} {}", p.name, failure_numbers(load)))
        })
        .collect();
    if !phases.is_empty() {
        sentences.push(format!("Per phase: {}.", phases.join("; ")));
    }
    sentences.extend(callers(report));
    sentences.push(check_tally(report));
    sentences.push(surprises(report));
    let mut paragraph = sentences.join(" ");
    paragraph.push('\n');
    paragraph
}

fn opening(report: &Report) -> String {
    let outcome = match report.verdict {
        Verdict::Pass => "passed",
        Verdict::Fail => "failed",
        Verdict::Inconclusive => "was inconclusive",
        Verdict::Interrupted => "was interrupted",
        Verdict::Aborted => "was aborted",
    };
    let reason = report.verdict_reason.trim().trim_end_matches('.');
    format!(
        "Drill `{}` (run {}, seed {}, target {}) ran on {} for {} and {outcome}. {reason}.",
        report.scenario.name,
        report.run_id,
        report.seed,
        sections::target(report),
        report.started_at.strftime("%Y-%m-%d"),
        sections::duration(report.duration_s()),
    )
}

fn failure_numbers(load: &StatsSummary) -> String {
    format!(
        "{} x 401, {} x 5xx, {} without response, p99 {}",
        load.status_count(401),
        load.status_class_count(5),
        load.error_count(),
        sections::millis(load.latency_ms.p99)
    )
}

fn callers(report: &Report) -> Option<String> {
    let failing: Vec<_> = report.callers.iter().filter(|c| c.saw_failures()).collect();
    if failing.is_empty() {
        return None;
    }
    let first = failing
        .iter()
        .filter_map(|c| c.first_failure_s)
        .min_by(f64::total_cmp);
    let last = failing
        .iter()
        .filter_map(|c| c.last_failure_s)
        .max_by(f64::total_cmp);
    let window = match (first, last) {
        (Some(first), Some(last)) => format!(
            ", between {} and {}",
            sections::offset(first),
            sections::offset(last)
        ),
        _ => String::new(),
    };
    Some(format!(
        "{} of {} callers saw failed requests{window}.",
        failing.len(),
        report.callers.len()
    ))
}

fn check_tally(report: &Report) -> String {
    let total = report.checks.len();
    let failed: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.verdict == CheckVerdict::Fail)
        .map(describe)
        .collect();
    let passed = report.count_checks(CheckVerdict::Pass);
    if failed.is_empty() {
        format!("Checks: {passed} of {total} passed.")
    } else {
        format!(
            "Checks: {passed} of {total} passed; failed: {}.",
            failed.join("; ")
        )
    }
}

fn surprises(report: &Report) -> String {
    let mut items: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.near_threshold)
        .map(|c| format!("{} was near its threshold", describe(c)))
        .collect();
    items.extend(
        report
            .checks
            .iter()
            .filter(|c| c.verdict == CheckVerdict::Inconclusive)
            .map(|c| format!("`{}` was inconclusive ({})", c.name, c.detail)),
    );
    items.extend(report.warnings.iter().map(|w| format!("warning: {w}")));
    if items.is_empty() {
        "No surprises: no check came near its threshold and none was inconclusive.".to_owned()
    } else {
        format!("Surprises: {}.", items.join("; "))
    }
}

/// `` `p99 under 800ms` (fault) measured 741 ms against 800 ms ``.
fn describe(check: &CheckResult) -> String {
    let phase = check
        .phase
        .as_deref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    format!(
        "`{}`{phase} measured {} against {}",
        check.name,
        sections::measured(check),
        sections::threshold(check)
    )
}
