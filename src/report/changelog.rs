//! A short note for a CHANGELOG or a post-rollout message: what was tested, the verdict, the
//! few numbers that matter, the surprises (checks near their threshold, inconclusive checks,
//! warnings) and a link to the full report.

use super::model::{CheckResult, CheckVerdict, EventKind, Report, StatsSummary, Verdict};
use super::sections;

/// Renders the report as a short Markdown note a person would paste into a CHANGELOG: what
/// was tested, the verdict, the few numbers that matter, any surprise, and the report link.
pub fn render(report: &Report) -> String {
    let mut out = format!(
        "### Drill `{}`: {} ({})\n\n{}\n\n",
        report.scenario.name,
        verdict_words(report.verdict),
        report.started_at.strftime("%Y-%m-%d"),
        what_was_tested(report)
    );
    let mut numbers = Vec::new();
    if let Some(load) = &report.load {
        numbers.push(failure_numbers(load));
    }
    numbers.extend(latency_against_baseline(report));
    numbers.extend(recovery_time(report));
    numbers.extend(callers(report));
    numbers.push(check_tally(report));
    for number in numbers {
        out.push_str(&format!("- {number}\n"));
    }
    if let Some(surprises) = surprises(report) {
        out.push_str(&format!("\n{surprises}\n"));
    }
    let dir = super::write::run_dir_name(report);
    out.push_str(&format!(
        "\n[Full report](reports/{dir}/report.md) · run {} · seed {}\n",
        report.run_id, report.seed
    ));
    out
}

fn verdict_words(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "passed",
        Verdict::Fail => "failed",
        Verdict::Inconclusive => "inconclusive",
        Verdict::Interrupted => "interrupted",
        Verdict::Aborted => "aborted",
    }
}

/// `Killed 1 pod (requests-proxy-…) on kubernetes staging/tracebloc under 50 rps for 2m 02s.`
fn what_was_tested(report: &Report) -> String {
    let faults: Vec<String> = report
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Fault)
        .map(|e| {
            if e.targets.is_empty() {
                e.description.clone()
            } else {
                format!("{} ({})", e.description, e.targets.join(", "))
            }
        })
        .collect();
    let what = if faults.is_empty() {
        "No fault was injected".to_string()
    } else {
        let mut what = faults.join("; ");
        if let Some(first) = what.get(..1) {
            what = first.to_uppercase() + &what[1..];
        }
        what
    };
    let load = report
        .load
        .as_ref()
        .map(|l| format!(" under {:.0} rps", l.rps))
        .unwrap_or_default();
    let mut text = format!(
        "{what} on {}{load} for {}.",
        sections::target(report),
        sections::duration(report.duration_s())
    );
    if report.verdict != Verdict::Pass {
        let reason = report.verdict_reason.trim().trim_end_matches('.');
        text.push_str(&format!(" {reason}."));
    }
    text
}

/// `0 × 401, 3 × 5xx and 3 without a response, of 5997 requests.`
fn failure_numbers(load: &StatsSummary) -> String {
    format!(
        "{} × 401, {} × 5xx and {} without a response, of {} requests",
        load.status_count(401),
        load.status_class_count(5),
        load.error_count(),
        load.requests
    )
}

/// p95 during the fault against the baseline's, when both were measured.
fn latency_against_baseline(report: &Report) -> Option<String> {
    let p95 = |name: &str| {
        report
            .phases
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.load.as_ref())
            .map(|l| l.latency_ms.p95)
    };
    let (fault, baseline) = (p95("fault")?, p95("baseline")?);
    Some(format!(
        "p95 {} during the fault against {} in the baseline",
        sections::millis(fault),
        sections::millis(baseline)
    ))
}

/// From the first fault to the recovery phase: how long the system took to come back.
fn recovery_time(report: &Report) -> Option<String> {
    let fault = report.phases.iter().find(|p| p.name == "fault")?;
    let recovery = report.phases.iter().find(|p| p.name == "recovery")?;
    let replaced: Vec<&str> = report
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Observation && e.at_s <= recovery.start_s + 0.5)
        .flat_map(|e| e.targets.iter().map(String::as_str))
        .collect();
    let what = if replaced.is_empty() {
        String::new()
    } else {
        format!(" ({} replaced)", replaced.join(", "))
    };
    Some(format!(
        "recovered in {}{what}",
        sections::duration(recovery.start_s - fault.start_s)
    ))
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
        "{} of {} callers saw failed requests{window}",
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
        format!("{passed} of {total} checks passed")
    } else {
        format!(
            "{passed} of {total} checks passed; failed: {}",
            failed.join("; ")
        )
    }
}

/// Checks near their threshold, inconclusive checks and warnings; `None` when there are none.
fn surprises(report: &Report) -> Option<String> {
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
    (!items.is_empty()).then(|| format!("**Surprises:** {}.", items.join("; ")))
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
