//! The content shared by the terminal and Markdown renderers: which rows and columns each
//! section has and how numbers read. The renderers only decide the styling.

use super::model::{
    CallerStats, CheckResult, EventKind, PhaseReport, PreflightStatus, Report, StatsSummary,
    TimelineEvent,
};

/// A titled table: a header row and body rows, all plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub title: &'static str,
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

/// Placeholder for a value that was not measured.
pub(crate) const MISSING: &str = "-";

/// Key/value lines describing the run (shown above the tables).
pub(crate) fn overview(report: &Report) -> Vec<(&'static str, String)> {
    let mut lines = vec![
        ("Scenario", report.scenario.name.clone()),
        ("File", scenario_file(report)),
        ("Target", target(report)),
        ("Started", report.started_at.to_string()),
        ("Duration", duration(report.duration_s())),
        ("Seed", report.seed.to_string()),
        ("Run", report.run_id.clone()),
    ];
    if let Some(operator) = &report.operator {
        lines.push(("Operator", operator.clone()));
    }
    if let Some(workers) = &report.load_workers {
        lines.push((
            "Load",
            format!(
                "{} worker pod(s) in the cluster; {} of {} seconds with every worker's window",
                workers.workers, workers.complete_seconds, workers.seconds
            ),
        ));
    }
    if let Some(silence) = &report.silence {
        let audible = if silence.kept_audible.is_empty() {
            String::new()
        } else {
            format!("; kept audible: {}", silence.kept_audible.join(", "))
        };
        lines.push((
            "Silence",
            format!(
                "{} at {} until {}{audible}",
                silence.silenced.join(", "),
                silence.alertmanager,
                silence.expires_at
            ),
        ));
    }
    lines.push(("drillbook", report.drillbook_version.clone()));
    lines
}

fn scenario_file(report: &Report) -> String {
    match &report.scenario.git_revision {
        Some(rev) => format!("{} @ {}", report.scenario.file, short_revision(rev)),
        None => report.scenario.file.clone(),
    }
}

fn short_revision(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

/// `kubernetes staging/tracebloc`, `local`.
pub(crate) fn target(report: &Report) -> String {
    let t = &report.target;
    match (&t.context, &t.namespace) {
        (Some(context), Some(namespace)) => format!("{} {context}/{namespace}", t.kind),
        (Some(context), None) => format!("{} {context}", t.kind),
        (None, Some(namespace)) => format!("{} namespace {namespace}", t.kind),
        (None, None) => t.kind.clone(),
    }
}

/// Every section in display order; empty sections are left out.
pub(crate) fn all(report: &Report) -> Vec<Section> {
    [
        phases(&report.phases),
        checks(&report.checks),
        caller_failures(&report.callers),
        timeline(report),
        preflight(report),
    ]
    .into_iter()
    .filter(|s| !s.rows.is_empty())
    .collect()
}

pub(crate) fn phases(phases: &[PhaseReport]) -> Section {
    let rows = phases
        .iter()
        .map(|p| {
            let mut row = vec![
                p.name.clone(),
                format!("{}-{}", offset(p.start_s), offset(p.end_s)),
                p.verdict.to_string(),
            ];
            row.extend(load_cells(p.load.as_ref()));
            row
        })
        .collect();
    Section {
        title: "Phases",
        header: vec![
            "phase", "window", "verdict", "requests", "rps", "401", "5xx", "errors", "p50", "p99",
        ],
        rows,
    }
}

fn load_cells(load: Option<&StatsSummary>) -> Vec<String> {
    match load {
        Some(s) => vec![
            s.requests.to_string(),
            format!("{:.1}", s.rps),
            s.status_count(401).to_string(),
            s.status_class_count(5).to_string(),
            s.error_count().to_string(),
            millis(s.latency_ms.p50),
            millis(s.latency_ms.p99),
        ],
        None => vec![MISSING.to_owned(); 7],
    }
}

fn checks(checks: &[CheckResult]) -> Section {
    let rows = checks
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.phase.clone().unwrap_or_else(|| "whole run".to_owned()),
                measured(c),
                threshold(c),
                check_verdict(c),
                c.detail.clone(),
            ]
        })
        .collect();
    Section {
        title: "Checks",
        header: vec![
            "check",
            "phase",
            "measured",
            "threshold",
            "verdict",
            "detail",
        ],
        rows,
    }
}

/// The measured value as the check wrote it, else the number.
pub(crate) fn measured(check: &CheckResult) -> String {
    text_or_number(check.measured_text.as_deref(), check.measured)
}

/// The threshold as the check wrote it, else the number.
pub(crate) fn threshold(check: &CheckResult) -> String {
    text_or_number(check.threshold_text.as_deref(), check.threshold)
}

fn text_or_number(text: Option<&str>, number: Option<f64>) -> String {
    match (text, number) {
        (Some(text), _) => text.to_owned(),
        (None, Some(n)) => number_text(n),
        (None, None) => MISSING.to_owned(),
    }
}

/// `pass`, or `pass (near threshold)`.
pub(crate) fn check_verdict(check: &CheckResult) -> String {
    if check.near_threshold {
        format!("{} (near threshold)", check.verdict)
    } else {
        check.verdict.to_string()
    }
}

pub(crate) fn caller_failures(callers: &[CallerStats]) -> Section {
    let rows = callers
        .iter()
        .filter(|c| c.saw_failures())
        .map(|c| {
            vec![
                c.label.clone(),
                offset(c.started_at_s),
                c.ended_at_s.map_or_else(|| "running".to_owned(), offset),
                c.requests.to_string(),
                status(c, 401).to_string(),
                (c.failed_responses().saturating_sub(status(c, 401)) + c.errors).to_string(),
                c.first_failure_s.map_or_else(|| MISSING.to_owned(), offset),
                c.last_failure_s.map_or_else(|| MISSING.to_owned(), offset),
            ]
        })
        .collect();
    Section {
        title: "Callers that saw failures",
        header: vec![
            "caller",
            "started",
            "ended",
            "requests",
            "401",
            "other failures",
            "first failure",
            "last failure",
        ],
        rows,
    }
}

fn status(caller: &CallerStats, code: u16) -> u64 {
    caller.statuses.get(&code.to_string()).copied().unwrap_or(0)
}

/// Identical observations (e.g. 14 `FailedScheduling` warnings) are one row with a count and
/// their first and last time, as `kubectl get events` shows them.
pub(crate) fn timeline(report: &Report) -> Section {
    let mut groups: Vec<(&TimelineEvent, usize, f64)> = Vec::new();
    for event in &report.events {
        let repeat = (event.kind == EventKind::Observation)
            .then(|| {
                groups.iter_mut().find(|(first, _, _)| {
                    first.kind == event.kind
                        && first.description == event.description
                        && first.targets == event.targets
                        && first.outcome == event.outcome
                })
            })
            .flatten();
        match repeat {
            Some((_, count, last)) => {
                *count += 1;
                *last = last.max(event.at_s);
            }
            None => groups.push((event, 1, event.at_s)),
        }
    }
    let rows = groups
        .into_iter()
        .map(|(e, count, last)| {
            let (at, what) = if count > 1 {
                (
                    format!("{}-{}", offset(e.at_s), offset(last)),
                    format!("{} (×{count})", e.description),
                )
            } else {
                (offset(e.at_s), e.description.clone())
            };
            vec![
                at,
                e.kind.as_str().to_owned(),
                e.step.clone().unwrap_or_else(|| MISSING.to_owned()),
                what,
                join_or_missing(&e.targets),
                e.undo.clone().unwrap_or_else(|| MISSING.to_owned()),
                e.outcome.clone().unwrap_or_else(|| MISSING.to_owned()),
            ]
        })
        .collect();
    Section {
        title: "Timeline",
        header: vec!["at", "kind", "step", "what", "hit", "undo", "outcome"],
        rows,
    }
}

fn join_or_missing(items: &[String]) -> String {
    if items.is_empty() {
        MISSING.to_owned()
    } else {
        items.join(", ")
    }
}

/// Pre-flight results are shown only when one of them was not `ok`.
fn preflight(report: &Report) -> Section {
    let noteworthy = report
        .preflight
        .iter()
        .any(|p| p.status != PreflightStatus::Ok);
    let rows = if noteworthy {
        report
            .preflight
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.status.as_str().to_owned(),
                    p.detail.clone(),
                ]
            })
            .collect()
    } else {
        Vec::new()
    };
    Section {
        title: "Pre-flight",
        header: vec!["check", "status", "detail"],
        rows,
    }
}

/// Seconds since start as `t+12.3s`.
pub(crate) fn offset(seconds: f64) -> String {
    format!("t+{seconds:.1}s")
}

/// A duration for humans: `45.2s`, `3m 05s`, `1h 02m 03s`.
pub(crate) fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    // Whole seconds are plenty once the drill lasts minutes.
    let total = seconds.round() as u64;
    let (hours, minutes, secs) = (total / 3600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours}h {minutes:02}m {secs:02}s")
    } else {
        format!("{minutes}m {secs:02}s")
    }
}

/// Milliseconds with precision that fits their size.
pub fn millis(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// A bare number without needless decimals.
pub(crate) fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        let text = format!("{n:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}
