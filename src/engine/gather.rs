//! End-of-run gathering: the I/O the checks need beyond what the drill recorded, done once
//! after the drill and before judging. Each reading keeps when it was taken, how long it took
//! and its error, so judging is a pure function of the drill's observations and these.
//! - a `prometheus` check without `interval`: its one end-of-run sample;
//! - an `alerts` check: the alerts that fired during its phase (`ALERTS` over the phase), and
//!   when the alerts it expects fired (`ALERTS` every second of the drill);
//! - a `command` check: how its command ended (exit code, output) or why it did not run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::drill::Observed;
use super::phase_data::{JudgedPhases, phase_of};
use super::prometheus::QUERY_TIMEOUT;
use crate::checks::alerts;
use crate::checks::prometheus::{Sample, SampleError, sample};
use crate::scenario::{CheckKind, Scenario};
use crate::support::command::{self, CommandError, CommandOutput};

/// One reading: when it was taken (wall clock), how long it took, and what came back.
#[derive(Debug)]
pub struct Taken<T> {
    pub at: jiff::Timestamp,
    pub took: Duration,
    pub result: T,
}

impl<T> Taken<T> {
    async fn of(read: impl Future<Output = T>) -> Self {
        let (at, started) = (jiff::Timestamp::now(), Instant::now());
        let result = read.await;
        Self {
            at,
            took: started.elapsed(),
            result,
        }
    }
}

/// What was read for one check at the end of the run.
#[derive(Debug)]
pub enum Gathered {
    /// A `prometheus` check sampled once at the end.
    Sample(Taken<Sample>),
    /// An `alerts` check: the names of the alerts that fired during its phase (`pattern`),
    /// and when each alert fired, in seconds from time zero (`fire`).
    Alerts {
        fired: Option<Taken<Result<BTreeSet<String>, SampleError>>>,
        firing: Option<Taken<Result<alerts::FiringTimes, SampleError>>>,
    },
    /// A `command` check: how its command ended.
    Command(Taken<Result<CommandOutput, CommandError>>),
    /// A `regression` check: the earlier runs of its baseline, read from the history.
    Baseline(Taken<Result<crate::history::Baseline, crate::history::HistoryError>>),
}

/// Everything gathered after the drill, by check name. A check that needs nothing beyond the
/// drill's observations (or whose phase did not happen) has no entry.
#[derive(Debug, Default)]
pub struct EndObservations {
    pub checks: BTreeMap<String, Gathered>,
}

impl EndObservations {
    pub fn get(&self, check: &str) -> Option<&Gathered> {
        self.checks.get(check)
    }
}

/// Reads the baseline of every `regression` check from the history under `report_dir` (the
/// check's own `history:` folder, when it names one): the earlier runs of this scenario on
/// this context and namespace.
pub fn baselines(
    loaded: &crate::scenario::LoadedScenario,
    observed: &Observed,
    report_dir: &std::path::Path,
    end: &mut EndObservations,
) {
    for check in &loaded.scenario.checks {
        let CheckKind::Regression(r) = &check.value.kind else {
            continue;
        };
        let (at, started) = (jiff::Timestamp::now(), Instant::now());
        let result = crate::history::baseline::for_check(
            loaded,
            r,
            report_dir,
            Some(&observed.run_id),
            observed.started,
        );
        let taken = Taken {
            at,
            took: started.elapsed(),
            result,
        };
        end.checks
            .insert(check.value.name.value.clone(), Gathered::Baseline(taken));
    }
}

/// When an `alerts` check's alerts fired, read over the whole drill so far (a late alert is
/// seen late, not missed). While its `within` or `resolve_within` has not run out and what was
/// read decides nothing yet (not fired, still firing), it is read again every few seconds.
async fn firing_until_decided(
    check: &crate::scenario::Check,
    a: &crate::scenario::AlertsCheck,
    url: &str,
    observed: &Observed,
    phases: &JudgedPhases,
) -> Taken<Result<alerts::FiringTimes, SampleError>> {
    let zero = observed.unix_s(0.0);
    let since_zero = || jiff::Timestamp::now().as_millisecond() as f64 / 1000.0 - zero;
    // The latest moment the verdict may still change; the loop never waits past it.
    let deadline_s = phases.fire_expectation(check, a, observed, 0.0).map(|e| {
        let fire = e.after.as_ref().map_or(0.0, |(at, _)| at + e.within_s);
        let resolve = e.resolve.as_ref().map_or(0.0, |(from, within)| {
            from.as_ref().map_or(0.0, |(at, _)| at + within)
        });
        fire.max(resolve) + alerts::STEP_S
    });
    loop {
        let now = jiff::Timestamp::now().as_second();
        let read = alerts::firing_times(
            url,
            &a.headers,
            QUERY_TIMEOUT,
            zero,
            (zero.floor() as i64, now),
        );
        let taken = Taken::of(read).await;
        let read_until_s = taken.at.as_millisecond() as f64 / 1000.0 - zero;
        let undecided = phases
            .fire_expectation(check, a, observed, read_until_s)
            .is_some_and(|expect| {
                let j = alerts::judge_fire(&expect, taken.result.as_ref(), None);
                taken.result.is_ok() && j.verdict == crate::checks::CheckVerdict::Inconclusive
            });
        match deadline_s {
            Some(deadline) if undecided && since_zero() < deadline => {
                tracing::info!(
                    "check `{}`: waiting up to {:.0}s more for its alerts to fire or resolve",
                    check.name.value,
                    deadline - since_zero()
                );
                tokio::time::sleep(ALERT_REREAD).await;
            }
            _ => return taken,
        }
    }
}

/// How often an undecided `alerts` check reads Prometheus again at the end of the run.
const ALERT_REREAD: Duration = Duration::from_secs(3);

/// Reads what every check needs at the end of the run, one check after the other (a command
/// check may depend on an earlier one's side effects, as it did when judging ran them).
pub async fn gather(scenario: &Scenario, observed: &Observed) -> EndObservations {
    let phases = JudgedPhases::resolve(scenario, observed);
    let mut checks = BTreeMap::new();
    for check in &scenario.checks {
        let check = &check.value;
        let name = &check.name.value;
        let gathered = match &check.kind {
            // Checks with `interval` were sampled during the drill.
            CheckKind::Prometheus(p) if !observed.prometheus.contains_key(name) => {
                Gathered::Sample(
                    Taken::of(sample(&p.url, &p.query.value, &p.headers, QUERY_TIMEOUT)).await,
                )
            }
            CheckKind::Alerts(a) => {
                // A phase that did not happen has no window to ask about; the judge says why.
                let Some(window) = phases.get(phase_of(check)) else {
                    continue;
                };
                let end = observed.unix_s(window.end_s).ceil() as i64;
                let range = (window.end_s - window.start_s.max(0.0)).ceil().max(1.0) as u64;
                let fired = match &a.pattern {
                    Some(_) => Some(
                        Taken::of(alerts::fired_during(
                            &a.url,
                            &a.headers,
                            QUERY_TIMEOUT,
                            end,
                            range,
                        ))
                        .await,
                    ),
                    None => None,
                };
                let firing = match a.fire.is_empty() {
                    true => None,
                    false => Some(firing_until_decided(check, a, &a.url, observed, &phases).await),
                };
                Gathered::Alerts { fired, firing }
            }
            CheckKind::Command(c) => Gathered::Command(
                Taken::of(command::run(&c.argv, &BTreeMap::new(), c.timeout.0)).await,
            ),
            _ => continue,
        };
        checks.insert(name.clone(), gathered);
    }
    EndObservations { checks }
}
