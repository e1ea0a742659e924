//! What the fault proxies counted (issue #23), turned into a verdict and into the report's
//! per-second tracks. Counted, not guessed: a drill whose fault never touched a request
//! proved nothing about it, so every `http_fault` step adds a check that is inconclusive
//! then, never a pass.

use super::drill::{Observed, StepRecord};
use crate::fault::proxy::Counts;
use crate::report::model::{CheckResult, CheckVerdict, SourceLocation, Track};
use crate::scenario::http_fault::HttpFault;
use crate::scenario::{Action, Scenario};
use crate::targets::observe::FaultCounts;

/// The check kind in reports.
pub const KIND: &str = "fault";

/// Every `http_fault` step of the timeline with its counts (`None`: nothing was counted).
fn faults(
    observed: &Observed,
) -> impl Iterator<Item = (&StepRecord, &HttpFault, Option<&FaultCounts>)> {
    observed.steps.iter().filter_map(|step| match &step.action {
        Action::HttpFault(fault) => {
            let counts = fault
                .place()
                .and_then(|place| observed.observations.faults.get(place));
            Some((step, fault.as_ref(), counts))
        }
        _ => None,
    })
}

/// One check per `http_fault` step: did the fault change any request?
pub fn checks(scenario: &Scenario, observed: &Observed) -> Vec<CheckResult> {
    faults(observed)
        .map(|(step, fault, counts)| {
            // One fault per place (validation), so the place finds the step's line.
            let location = scenario
                .steps
                .iter()
                .find(|s| matches!(&s.value.action, Action::HttpFault(f) if f.place() == fault.place()))
                .map(|s| s.value.action_at)
                .filter(|pos| pos.is_known())
                .map(|pos| SourceLocation {
                    line: pos.line,
                    column: pos.column,
                });
            let (verdict, measured, detail) = judge(step, counts);
            CheckResult {
                name: format!("{}-took-effect", step.name),
                kind: KIND.into(),
                phase: None,
                expression: format!(
                    "{}: {} changed a request",
                    fault.at_in_words(),
                    fault.faults_in_words()
                ),
                measured: measured.map(|c| c as f64),
                threshold: Some(0.0),
                measured_text: measured.map(|c| format!("{c} faulted")),
                threshold_text: Some("> 0 faulted".into()),
                verdict,
                detail,
                near_threshold: false,
                dry_run: false,
                location,
                alerts: Vec::new(),
            }
        })
        .collect()
}

fn judge(step: &StepRecord, counts: Option<&FaultCounts>) -> (CheckVerdict, Option<u64>, String) {
    if let Some(error) = &step.error {
        return (
            CheckVerdict::Inconclusive,
            None,
            format!("the fault was not applied: {error}"),
        );
    }
    let Some(counts) = counts else {
        return (
            CheckVerdict::Inconclusive,
            None,
            "the fault proxies' counts were not read".into(),
        );
    };
    let total = counts.total();
    let unread = if counts.errors.is_empty() {
        String::new()
    } else {
        format!("; not read: {}", counts.errors.join("; "))
    };
    let detail = format!("{}{unread}", in_words(&total));
    if total.faulted() == 0 {
        let why = if total.seen == 0 {
            "no request reached the fault proxy"
        } else {
            "requests passed, but none while the fault applied or matched it"
        };
        return (
            CheckVerdict::Inconclusive,
            Some(0),
            format!("the fault never touched a request ({why}): {detail}"),
        );
    }
    (CheckVerdict::Pass, Some(total.faulted()), detail)
}

/// `1200 seen: 300 delayed, 60 aborted, …`
pub fn in_words(c: &Counts) -> String {
    let parts: Vec<String> = [
        ("delayed", c.delayed),
        ("aborted", c.aborted),
        ("reset", c.reset),
        ("blackholed", c.blackholed),
        ("throttled", c.throttled),
        ("upstream errors", c.upstream_errors),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        format!("{} seen, none faulted", c.seen)
    } else {
        format!("{} seen: {}", c.seen, parts.join(", "))
    }
}

/// Per fault, the requests its proxies saw and the ones they faulted, per second of the drill.
pub fn tracks(observed: &Observed) -> Vec<Track> {
    let mut tracks = Vec::new();
    for (step, _, counts) in faults(observed) {
        let Some(counts) = counts else { continue };
        // Every second of the drill has a point: a quiet second is a zero, not a gap.
        let last = observed.marks.end_s.max(0.0).ceil() as u64;
        let zeros: Vec<[f64; 2]> = (0..last).map(|t| [t as f64, 0.0]).collect();
        let (mut seen, mut faulted) = (zeros.clone(), zeros);
        for (at, c) in &counts.per_second {
            // A reading covers the second before it.
            let second = (observed.offset(*at) - 1.0).round();
            if second < 0.0 {
                continue;
            }
            add(&mut seen, second, c.seen);
            add(&mut faulted, second, c.faulted());
        }
        // Readings past the load's end were appended; the points go in time order.
        for points in [&mut seen, &mut faulted] {
            points.sort_by(|a, b| a[0].total_cmp(&b[0]));
        }
        tracks.push(Track {
            name: format!("{}: requests through the fault proxy", step.name),
            points: seen,
        });
        tracks.push(Track {
            name: format!("{}: faulted", step.name),
            points: faulted,
        });
    }
    tracks
}

/// Adds `n` to the point of `second` (readings from several proxies land in one second).
fn add(points: &mut Vec<[f64; 2]>, second: f64, n: u64) {
    match points.iter_mut().find(|p| p[0] == second) {
        Some(point) => point[1] += n as f64,
        None => points.push([second, n as f64]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_in_words_name_only_what_happened() {
        let c = Counts {
            seen: 120,
            aborted: 6,
            ..Counts::default()
        };
        assert_eq!(in_words(&c), "120 seen: 6 aborted");
        assert_eq!(
            in_words(&Counts {
                seen: 4,
                ..Counts::default()
            }),
            "4 seen, none faulted"
        );
    }

    #[test]
    fn readings_of_several_proxies_in_one_second_are_summed() {
        let mut points = Vec::new();
        add(&mut points, 1.0, 5);
        add(&mut points, 3.0, 2);
        add(&mut points, 3.0, 4);
        assert_eq!(points, vec![[1.0, 5.0], [3.0, 6.0]]);
    }
}
