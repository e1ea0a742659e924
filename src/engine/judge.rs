//! Judging a finished drill: every check against what was observed, per phase and overall.
//! Judging is pure: it reads the drill's observations and what `engine::gather` read at the
//! end of the run, and does no I/O, so it is tested from fixtures without a server.

use std::collections::BTreeSet;

use super::drill::{Ending, Observed, offset};
use super::gather::{EndObservations, Gathered};
use super::phase_data::{JudgedPhases, phase_of};
use crate::checks::{Judgement, alerts, http, kube_state};
use crate::report::model::{CheckResult, CheckVerdict, SourceLocation, Verdict};
use crate::scenario::{Action, Check, CheckKind, Scenario};
use crate::targets::observe::{JobRecord, JobState};

/// A drill judged: its phases, every check, and the verdict with its reason.
#[derive(Debug)]
pub struct Judged {
    pub phases: JudgedPhases,
    pub checks: Vec<CheckResult>,
    pub verdict: Verdict,
    pub verdict_reason: String,
}

/// Judges every check, then decides the drill's verdict: how it ended first (interrupted,
/// aborted), then the checks (any failure fails; missing data is inconclusive, never pass).
pub fn judge(scenario: &Scenario, observed: &Observed, end: &EndObservations) -> Judged {
    let phases = JudgedPhases::resolve(scenario, observed);
    let mut checks = judge_all(scenario, observed, &phases, end);
    checks.extend(super::fault_effect::checks(scenario, observed));
    let (verdict, mut verdict_reason) = decide(&observed.ending, &checks);
    if !observed.rolled_back.is_empty() {
        verdict_reason.push_str(&rollback_summary(&observed.rolled_back));
    }
    Judged {
        phases,
        checks,
        verdict,
        verdict_reason,
    }
}

/// "; rolled back by on_abort: `rollback` ok, `rolled-back` failed (…)", for the reason line.
fn rollback_summary(steps: &[super::drill::StepRecord]) -> String {
    let each: Vec<String> = steps
        .iter()
        .map(|step| match &step.error {
            None => format!("`{}` ok", step.name),
            Some(error) => format!("`{}` failed ({error})", step.name),
        })
        .collect();
    format!("; rolled back by on_abort: {}", each.join(", "))
}

/// The drill's verdict and its reason from how it ended and its checks' verdicts.
pub fn decide(ending: &Ending, checks: &[CheckResult]) -> (Verdict, String) {
    // Dry-run checks are reported but decide nothing (Argo's `dryRun`).
    let deciding: Vec<&CheckResult> = checks.iter().filter(|c| !c.dry_run).collect();
    let checks_verdict = crate::checks::combine(deciding.iter().map(|c| c.verdict));
    let failed: Vec<&str> = deciding
        .iter()
        .filter(|c| c.verdict == CheckVerdict::Fail)
        .map(|c| c.name.as_str())
        .collect();
    let unsure: Vec<&str> = deciding
        .iter()
        .filter(|c| c.verdict == CheckVerdict::Inconclusive)
        .map(|c| c.name.as_str())
        .collect();
    match ending {
        Ending::Interrupted => (
            Verdict::Interrupted,
            "interrupted by a signal; registered undos ran".to_string(),
        ),
        Ending::Aborted(why) => (
            Verdict::Aborted,
            format!("aborted: {why}; registered undos ran"),
        ),
        Ending::Completed => match checks_verdict {
            CheckVerdict::Fail => (
                Verdict::Fail,
                format!(
                    "{} of {} checks failed: {}",
                    failed.len(),
                    deciding.len(),
                    failed.join(", ")
                ),
            ),
            CheckVerdict::Inconclusive => (
                Verdict::Inconclusive,
                format!(
                    "no check failed, but {} had no data: {}",
                    unsure.len(),
                    unsure.join(", ")
                ),
            ),
            CheckVerdict::Pass if deciding.is_empty() => (
                Verdict::Inconclusive,
                "the scenario has no checks".to_string(),
            ),
            CheckVerdict::Pass => (
                Verdict::Pass,
                format!("all {} checks passed", deciding.len()),
            ),
        },
    }
}

/// Judges every check of the scenario.
pub fn judge_all(
    scenario: &Scenario,
    observed: &Observed,
    phases: &JudgedPhases,
    end: &EndObservations,
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for check in &scenario.checks {
        let location = check.pos.is_known().then_some(SourceLocation {
            line: check.pos.line,
            column: check.pos.column,
        });
        let check = &check.value;
        let judgement = judge_one(check, observed, phases, end);
        results.push(CheckResult {
            name: check.name.value.clone(),
            kind: check.kind.kind().to_string(),
            phase: check.phase.as_ref().map(|p| p.value.clone()),
            expression: expression_of(check),
            measured: judgement.measured,
            threshold: judgement.threshold,
            measured_text: judgement.measured_text,
            threshold_text: judgement.threshold_text,
            verdict: judgement.verdict,
            detail: judgement.detail,
            near_threshold: judgement.near_threshold,
            dry_run: is_dry_run(check),
            alerts: judgement.alerts,
            location,
        });
    }
    results
}

fn is_dry_run(check: &Check) -> bool {
    matches!(&check.kind, CheckKind::Prometheus(p) if p.dry_run)
}

fn expression_of(check: &Check) -> String {
    match &check.kind {
        CheckKind::Http(e) => e.text().to_string(),
        other => crate::scenario::describe::check_what(other),
    }
}

/// A check whose expression does not parse. Validation rejects it before a run, so this is a
/// bug; the check says so with the parser's reason instead of guessing a meaning.
fn unparsed(what: &str, text: &str, why: impl std::fmt::Display) -> Judgement {
    Judgement::inconclusive(format!("{what} `{text}` does not parse: {why}"))
}

/// A check whose end-of-run reading is missing: inconclusive.
fn not_gathered() -> Judgement {
    Judgement::inconclusive("nothing was read for this check at the end of the run")
}

/// An `alerts` check: its `pattern` (none fired) and its `fire` expectation, both judged.
fn judge_alerts(
    check: &Check,
    a: &crate::scenario::AlertsCheck,
    observed: &Observed,
    phases: &JudgedPhases,
    gathered: Option<&Gathered>,
) -> Judgement {
    let phase_name = phase_of(check);
    if phases.get(phase_name).is_none() {
        return Judgement::inconclusive(phases.why_missing(phase_name));
    }
    let Some(Gathered::Alerts { fired, firing }) = gathered else {
        return not_gathered();
    };
    let mut parts = Vec::new();
    if let Some(pattern) = &a.pattern {
        parts.push(match fired {
            Some(t) => alerts::judge(&pattern.value, phase_name, t.result.as_ref()),
            None => not_gathered(),
        });
    }
    if let Some(firing) = firing {
        let read_until_s = firing.at.as_millisecond() as f64 / 1000.0 - observed.unix_s(0.0);
        if let Some(expect) = phases.fire_expectation(check, a, observed, read_until_s) {
            let watch = observed.alertmanager.get(&check.name.value);
            parts.push(alerts::judge_fire(&expect, firing.result.as_ref(), watch));
        }
    }
    let mut parts = parts.into_iter();
    let first = parts.next().unwrap_or_else(not_gathered);
    parts.fold(first, |mut all, next| {
        all.verdict = crate::checks::combine([all.verdict, next.verdict]);
        all.detail = format!("{}; {}", all.detail, next.detail);
        all.alerts.extend(next.alerts);
        (all.measured, all.measured_text) = (next.measured, next.measured_text);
        (all.threshold, all.threshold_text) = (next.threshold, next.threshold_text);
        all
    })
}

/// Judges one check. Each expression is parsed here, once per check and run.
fn judge_one(
    check: &Check,
    observed: &Observed,
    phases: &JudgedPhases,
    end: &EndObservations,
) -> Judgement {
    let phase_name = phase_of(check);
    let gathered = end.get(&check.name.value);
    match &check.kind {
        CheckKind::Http(text) => {
            let parsed = match text.get() {
                Ok(parsed) => parsed,
                Err(e) => return unparsed("the expression", text.text(), e),
            };
            if phases.get(phase_name).is_none() {
                return Judgement::inconclusive(phases.why_missing(phase_name));
            }
            let span = phases.span(phase_name, observed);
            let baseline = phases.span("baseline", observed);
            let judged = http::judge(
                parsed,
                span.as_ref().map(|s| s as &dyn http::HttpStats),
                baseline.as_ref().map(|s| s as &dyn http::HttpStats),
            );
            // A pass on partial data is not a pass; a failure seen in what did arrive stands.
            let missing = [phase_name, "baseline"]
                .iter()
                .filter(|p| **p == phase_name || parsed.uses_baseline())
                .find_map(|p| phases.missing_worker_data(p, observed));
            match missing {
                Some(why) if judged.verdict == CheckVerdict::Pass => Judgement {
                    verdict: CheckVerdict::Inconclusive,
                    detail: format!("{}; but {why}", judged.detail),
                    near_threshold: false,
                    ..judged
                },
                _ => judged,
            }
        }
        CheckKind::Prometheus(p) => {
            let conditions = match crate::checks::prometheus::conditions(p) {
                Ok(conditions) => conditions,
                Err(e) => return Judgement::inconclusive(e.to_string()),
            };
            let samples = match (observed.prometheus.get(&check.name.value), gathered) {
                (Some(sampled), _) => sampled.as_slice(),
                (None, Some(Gathered::Sample(taken))) => std::slice::from_ref(&taken.result),
                (None, _) => return not_gathered(),
            };
            crate::checks::prometheus::judge_with(p, &conditions, samples)
        }
        CheckKind::Jobs(j) => judge_jobs(j, observed),
        CheckKind::Restarts(r) => {
            let Some(window) = phases.get(phase_name) else {
                return Judgement::inconclusive(phases.why_missing(phase_name));
            };
            if !observed.observations.knows(&r.selector.value) {
                return Judgement::inconclusive(format!(
                    "nothing matching `{}` was observed",
                    r.selector.value
                ));
            }
            let from = observed.t0 + std::time::Duration::from_secs_f64(window.start_s.max(0.0));
            let to = observed.t0 + std::time::Duration::from_secs_f64(window.end_s.max(0.0));
            let (restarts, names) = observed.observations.restarts(&r.selector.value, from, to);
            let who = if names.is_empty() {
                String::new()
            } else {
                format!(" ({})", names.into_iter().collect::<Vec<_>>().join(", "))
            };
            Judgement::compared(
                f64::from(restarts),
                f64::from(r.max),
                restarts <= r.max,
                (restarts.to_string(), format!("≤ {}", r.max)),
                format!(
                    "{restarts} restart(s) of `{}` during phase {phase_name}{who}",
                    r.selector.value
                ),
            )
        }
        CheckKind::ReadyWithin(r) => judge_ready_within(r, observed),
        CheckKind::Rolled(r) => judge_rolled(r, observed),
        CheckKind::Command(c) => judge_command(c, gathered),
        CheckKind::ExpectedFailure(e) => judge_expected_failure(e, observed),
        CheckKind::Compare(text) => {
            let parsed = match text.get() {
                Ok(parsed) => parsed,
                Err(e) => return unparsed("the comparison", text.text(), e),
            };
            let Some(window) = phases.get(phase_name) else {
                return Judgement::inconclusive(phases.why_missing(phase_name));
            };
            let span = |stream: &str| {
                observed
                    .streams
                    .get(stream)
                    .and_then(|store| store.span(|second| window.holds_window(second)))
            };
            let (left, right) = (span(&parsed.left.stream), span(&parsed.right.stream));
            crate::checks::compare::judge(
                parsed,
                left.as_ref().map(|s| s as &dyn http::HttpStats),
                right.as_ref().map(|s| s as &dyn http::HttpStats),
            )
        }
        CheckKind::Alerts(a) => judge_alerts(check, a, observed, phases, gathered),
        CheckKind::Logs(l) => {
            let Some(window) = phases.get(phase_name) else {
                return Judgement::inconclusive(phases.why_missing(phase_name));
            };
            let Some(read) = observed.observations.logs.get(&check.name.value) else {
                return Judgement::inconclusive("the target read no logs for this check");
            };
            let (from, to) = window_instants(observed, window.start_s, window.end_s);
            let matched = read
                .matches
                .iter()
                .filter(|at| **at >= from && **at < to)
                .count();
            kube_state::judge_logs(
                l,
                u32::try_from(matched).unwrap_or(u32::MAX),
                read.read.len(),
                &read.errors,
                phase_name,
            )
        }
        CheckKind::Configmap(m) => {
            let Some(window) = phases.get(phase_name) else {
                return Judgement::inconclusive(phases.why_missing(phase_name));
            };
            let (from, to) = window_instants(observed, window.start_s, window.end_s);
            let samples: Vec<(Option<u64>, u32)> = observed
                .observations
                .configmaps
                .get(&m.name.value)
                .into_iter()
                .flatten()
                .filter(|s| s.at >= from && s.at < to)
                .map(|s| (s.bytes, s.keys))
                .collect();
            kube_state::judge_configmap(m, &samples, phase_name)
        }
        CheckKind::Regression(r) => judge_regression(r, check, observed, phases, gathered),
        CheckKind::Version(v) => match observed.observations.versions.get(&check.name.value) {
            Some(Ok(pods)) => {
                let facts: Vec<kube_state::PodFacts<'_>> = pods
                    .iter()
                    .map(|p| (p.name.as_str(), &p.images, &p.labels))
                    .collect();
                kube_state::judge_version(v, &facts)
            }
            Some(Err(why)) => {
                Judgement::inconclusive(format!("the pods could not be listed: {why}"))
            }
            None => Judgement::inconclusive("the target listed no pods for this check"),
        },
    }
}

/// This run's numbers (per phase, time to recover) against the baseline `gather` read.
fn judge_regression(
    r: &crate::scenario::RegressionCheck,
    check: &Check,
    observed: &Observed,
    phases: &JudgedPhases,
    gathered: Option<&Gathered>,
) -> Judgement {
    use crate::history::{Measured, PhaseMetrics, regression};
    let baseline = match gathered {
        Some(Gathered::Baseline(taken)) => match &taken.result {
            Ok(baseline) => baseline,
            Err(e) => {
                return Judgement::inconclusive(format!("the history could not be read: {e}"));
            }
        },
        _ => return not_gathered(),
    };
    let limits =
        match regression::Limit::of_check(r, check.phase.as_ref().map(|p| p.value.as_str())) {
            Ok(limits) => limits,
            Err(e) => return Judgement::inconclusive(e.to_string()),
        };
    let current = Measured {
        time_to_recover_s: crate::history::record::time_to_recover(
            phases.windows.iter().map(|w| (w.name.as_str(), w.start_s)),
        ),
        phases: phases
            .windows
            .iter()
            .filter_map(|w| {
                let span = phases.span(&w.name, observed)?;
                Some(PhaseMetrics::from_summary(
                    &w.name,
                    None,
                    &span.stats.summary(span.seconds),
                ))
            })
            .collect(),
    };
    regression::judge(&limits, &current, baseline)
}

/// A phase's bounds (seconds from time zero) as instants.
fn window_instants(
    observed: &Observed,
    start_s: f64,
    end_s: f64,
) -> (tokio::time::Instant, tokio::time::Instant) {
    let at = |s: f64| observed.t0 + std::time::Duration::from_secs_f64(s.max(0.0));
    (at(start_s), at(end_s))
}

fn step_time(observed: &Observed, name: &str, at_end: bool) -> Option<tokio::time::Instant> {
    let record = observed.steps.iter().find(|s| s.name == name)?;
    if at_end {
        record.end
    } else {
        Some(record.start)
    }
}

fn judge_jobs(j: &crate::scenario::JobsCheck, observed: &Observed) -> Judgement {
    let after = j
        .started_after
        .as_ref()
        .map(|s| step_time(observed, &s.value, false));
    let before = j
        .started_before
        .as_ref()
        .map(|s| step_time(observed, &s.value, false));
    if matches!(after, Some(None)) || matches!(before, Some(None)) {
        return Judgement::inconclusive("the referenced step did not run");
    }
    let jobs: Vec<&JobRecord> = observed
        .observations
        .jobs
        .iter()
        .filter(|job| j.selector.value.matches(&job.labels))
        .filter(|job| {
            let started = job.started;
            after
                .flatten()
                .is_none_or(|a| started.is_some_and(|s| s >= a))
                && before
                    .flatten()
                    .is_none_or(|b| started.is_some_and(|s| s < b))
        })
        .collect();
    if jobs.is_empty() {
        return Judgement::inconclusive(format!("no job matching `{}` ran", j.selector.value));
    }
    let succeeded = jobs
        .iter()
        .filter(|job| job.state == JobState::Succeeded)
        .count() as u32;
    let failed_jobs: Vec<String> = jobs
        .iter()
        .filter_map(|job| match &job.state {
            JobState::Failed(why) => Some(format!("{} ({why})", job.name)),
            _ => None,
        })
        .collect();
    let failed = failed_jobs.len() as u32;
    let running = jobs
        .iter()
        .filter(|job| job.state == JobState::Running)
        .count() as u32;
    let too_many_failed = j.max_failed.is_some_and(|m| failed > m);
    let too_few =
        j.min_succeeded.is_some_and(|m| succeeded < m) || j.min_failed.is_some_and(|m| failed < m);
    let detail = format!(
        "{} job(s): {succeeded} succeeded, {failed} failed{}{}",
        jobs.len(),
        if running > 0 {
            format!(", {running} still running")
        } else {
            String::new()
        },
        if failed_jobs.is_empty() {
            String::new()
        } else {
            format!(": {}", failed_jobs.join(", "))
        }
    );
    let mut judgement = if too_many_failed || (too_few && running == 0) {
        Judgement::decided(false, detail)
    } else if too_few {
        Judgement::inconclusive(detail)
    } else {
        Judgement::decided(true, detail)
    };
    judgement.measured = Some(f64::from(failed));
    judgement.measured_text = Some(format!("{failed} failed, {succeeded} succeeded"));
    judgement.threshold_text = Some(
        [
            j.max_failed.map(|m| format!("failed ≤ {m}")),
            j.min_succeeded.map(|m| format!("succeeded ≥ {m}")),
            j.min_failed.map(|m| format!("failed ≥ {m}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", "),
    );
    judgement
}

fn judge_ready_within(r: &crate::scenario::ReadyWithinCheck, observed: &Observed) -> Judgement {
    let selector = &r.selector.value;
    let disruptions: Vec<tokio::time::Instant> = observed
        .steps
        .iter()
        .filter(|s| s.error.is_none())
        .filter(|s| {
            s.applied
                .as_ref()
                .is_some_and(|a| a.disrupted.iter().any(|labels| selector.matches(labels)))
        })
        .map(|s| s.start)
        .collect();
    if disruptions.is_empty() {
        return Judgement::inconclusive(format!("nothing matching `{selector}` was disrupted"));
    }
    let mut worst = 0.0f64;
    for at in &disruptions {
        match observed
            .observations
            .ready_after(*at, |labels| selector.matches(labels))
        {
            Some(ready) => worst = worst.max(ready.duration_since(*at).as_secs_f64()),
            None => {
                return Judgement::decided(
                    false,
                    format!(
                        "`{selector}` was never ready again after the disruption at t+{:.1}s",
                        observed.offset(*at)
                    ),
                );
            }
        }
    }
    let limit = r.within.0.as_secs_f64();
    Judgement::compared(
        worst,
        limit,
        worst <= limit,
        (format!("{worst:.2}s"), format!("≤ {}", r.within)),
        format!(
            "slowest return to ready: {worst:.2}s over {} disruption(s)",
            disruptions.len()
        ),
    )
}

/// A step's effect on a workload is judged once it has settled: after the step and the wait
/// steps right after it (a Kubernetes env patch returns before its rollout does).
fn judge_rolled(r: &crate::scenario::RolledCheck, observed: &Observed) -> Judgement {
    let Some(index) = observed.steps.iter().position(|s| s.name == r.after.value) else {
        return Judgement::inconclusive(format!("step `{}` did not run", r.after.value));
    };
    let waits = observed.steps[index + 1..]
        .iter()
        .take_while(|s| {
            matches!(
                s.action,
                Action::Wait(_) | Action::WaitReady(_) | Action::WaitRollout(_)
            )
        })
        .count();
    let (step, settled) = (&observed.steps[index], &observed.steps[index + waits]);
    let group = &r.deployment.value;
    let empty = BTreeSet::new();
    let before = step.before.get(group).unwrap_or(&empty);
    let after = settled.after.get(group).unwrap_or(&empty);
    if before.is_empty() || after.is_empty() {
        return Judgement::inconclusive(format!(
            "`{group}` had no running process before or after `{}`",
            r.after.value
        ));
    }
    let replaced = before.iter().filter(|p| !after.contains(*p)).count();
    let rolled = replaced == before.len();
    let nothing = replaced == 0;
    let detail = format!(
        "{replaced} of {} member(s) of `{group}` replaced by `{}` ({} → {})",
        before.len(),
        r.after.value,
        words_list(before),
        words_list(after),
    );
    let pass = if r.expect { rolled } else { nothing };
    let mut j = Judgement::decided(pass, detail);
    j.measured_text = Some(if rolled {
        "rolled".into()
    } else if nothing {
        "nothing rolled".into()
    } else {
        "partly rolled".into()
    });
    j.threshold_text = Some(if r.expect { "rolled" } else { "nothing rolled" }.into());
    j
}

/// Names as a person lists them: `a, b`, or `none`.
fn words_list<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A command check from how its command ended (run by `engine::gather`).
fn judge_command(c: &crate::scenario::CommandCheck, ran: Option<&Gathered>) -> Judgement {
    // A pattern that does not compile decides nothing: it is not "stdout did not match".
    let stdout = match &c.stdout {
        None => None,
        Some(re) => match re.get() {
            Ok(compiled) => Some(compiled),
            Err(e) => return unparsed("the pattern", re.text(), e),
        },
    };
    let result = match ran {
        Some(Gathered::Command(taken)) => &taken.result,
        _ => return not_gathered(),
    };
    match result {
        Err(e) => Judgement::inconclusive(e.to_string()),
        Ok(out) => {
            let code_ok = out.status == Some(c.exit_code);
            let regex_ok = stdout.as_ref().is_none_or(|re| re.is_match(&out.stdout));
            let mut j = Judgement::decided(
                code_ok && regex_ok,
                format!(
                    "{}{}",
                    out.status_text(),
                    if regex_ok {
                        ""
                    } else {
                        ", stdout did not match"
                    }
                ),
            );
            j.measured_text = Some(out.status_text());
            j.threshold_text = Some(format!("exit {}", c.exit_code));
            j
        }
    }
}

/// A bounded, declared failure: the status may only hit callers that started before the step,
/// and must have stopped `within` after it.
fn judge_expected_failure(e: &crate::scenario::ExpectedFailure, observed: &Observed) -> Judgement {
    let selector = match e.status.get() {
        Ok(selector) => *selector,
        Err(unknown) => return Judgement::inconclusive(unknown.to_string()),
    };
    let Some(step_end) = step_time(observed, &e.callers_started_before.value, true) else {
        return Judgement::inconclusive(format!(
            "step `{}` did not complete",
            e.callers_started_before.value
        ));
    };
    let Some(load) = &observed.load else {
        return Judgement::inconclusive("no load results: callers are unknown");
    };
    let boundary = observed.offset(step_end);
    let hits = |c: &crate::load::CallerStats| -> u64 {
        c.statuses
            .iter()
            .filter(|(code, _)| {
                code.parse::<u16>()
                    .is_ok_and(|s| selector.matches_status(s))
            })
            .map(|(_, n)| *n)
            .sum::<u64>()
            + if selector.includes_transport_errors() {
                c.errors
            } else {
                0
            }
    };
    let affected: Vec<&crate::load::CallerStats> =
        load.callers.iter().filter(|c| hits(c) > 0).collect();
    let intruders: Vec<String> = affected
        .iter()
        .filter(|c| c.started_at_s >= boundary)
        .map(|c| format!("{} (started t+{:.1}s)", c.label, c.started_at_s))
        .collect();
    let latest = affected
        .iter()
        .filter_map(|c| c.last_failure_s)
        .fold(None::<f64>, |m, v| Some(m.map_or(v, |m| m.max(v))));
    let limit = e.within.map(|w| boundary + w.0.as_secs_f64());
    let total: u64 = affected.iter().map(|c| hits(c)).sum();
    let mut problems = Vec::new();
    if !intruders.is_empty() {
        problems.push(format!(
            "callers started after `{}` also got {}: {}",
            e.callers_started_before.value,
            e.status.value,
            intruders.join(", ")
        ));
    }
    if let (Some(latest), Some(limit)) = (latest, limit)
        && latest > limit
    {
        problems.push(format!(
            "{} still seen at t+{latest:.1}s, after the bound t+{limit:.1}s",
            e.status.value
        ));
    }
    let detail = if problems.is_empty() {
        if affected.is_empty() {
            format!(
                "no {} at all: the predicted failure did not occur",
                e.status.value
            )
        } else {
            format!(
                "{total} × {} confined to {} caller(s) started before t+{boundary:.1}s; last at t+{:.1}s",
                e.status.value,
                affected.len(),
                latest.unwrap_or_default()
            )
        }
    } else {
        problems.join("; ")
    };
    let mut j = Judgement::decided(problems.is_empty(), detail);
    j.measured = latest;
    j.measured_text = Some(format!("{total} in {} caller(s)", affected.len()));
    j.threshold = limit;
    j.threshold_text = Some(format!(
        "only callers before `{}`{}",
        e.callers_started_before.value,
        limit
            .map(|l| format!(", none after t+{l:.1}s"))
            .unwrap_or_default()
    ));
    let _ = offset;
    j
}

/// Verdict of each phase: the combined verdict of the checks that look at it.
pub fn phase_verdict(phase: &str, checks: &[CheckResult]) -> CheckVerdict {
    let verdicts = checks
        .iter()
        .filter(|c| !c.dry_run)
        .filter(|c| {
            c.phase
                .as_deref()
                .unwrap_or(crate::scenario::validate::WHOLE_RUN)
                == phase
        })
        .map(|c| c.verdict);
    crate::checks::combine(verdicts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, verdict: CheckVerdict, dry_run: bool) -> CheckResult {
        CheckResult {
            name: name.into(),
            kind: "prometheus".into(),
            phase: None,
            expression: String::new(),
            measured: None,
            threshold: None,
            measured_text: None,
            threshold_text: None,
            verdict,
            detail: String::new(),
            near_threshold: false,
            dry_run,
            alerts: Vec::new(),
            location: None,
        }
    }

    #[test]
    fn dry_run_checks_never_decide_the_verdict() {
        let checks = [
            result("real", CheckVerdict::Pass, false),
            result("trial", CheckVerdict::Fail, true),
        ];
        assert_eq!(decide(&Ending::Completed, &checks).0, Verdict::Pass);
        assert_eq!(phase_verdict(WHOLE, &checks), CheckVerdict::Pass);
        let checks = [
            result("real", CheckVerdict::Pass, false),
            result("trial", CheckVerdict::Inconclusive, true),
        ];
        assert_eq!(decide(&Ending::Completed, &checks).0, Verdict::Pass);
        let checks = [result("real", CheckVerdict::Fail, false)];
        assert_eq!(decide(&Ending::Completed, &checks).0, Verdict::Fail);
        let only_dry = [result("trial", CheckVerdict::Pass, true)];
        assert_eq!(
            decide(&Ending::Completed, &only_dry).0,
            Verdict::Inconclusive,
            "nothing decided"
        );
    }

    const WHOLE: &str = crate::scenario::validate::WHOLE_RUN;

    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::checks::prometheus::SampleError;
    use crate::engine::gather::Taken;
    use crate::support::command::CommandOutput;

    /// A local scenario with these `checks:` entries.
    fn with_checks(checks: &str) -> Scenario {
        let source = format!(
            "apiVersion: drillbook/v1\nname: fixture\ntarget:\n  local:\n    processes:\n      \
             - name: svc\n        command: [\"true\"]\nsteps:\n  - wait: 1s\nchecks:\n{checks}"
        );
        match crate::scenario::parse_str(&source) {
            Ok(scenario) => scenario,
            Err(diagnostics) => panic!("the fixture does not parse: {diagnostics:?}"),
        }
    }

    /// A scenario with one check of each kind read at the end of the run.
    fn scenario() -> Scenario {
        with_checks(
            "  - name: up\n    prometheus: {url: \"http://prometheus.invalid\", query: up, success_condition: \"result == 1\"}\n  \
             - name: quiet\n    alerts: {url: \"http://prometheus.invalid\", pattern: \"Drill.*\"}\n  \
             - name: probe\n    command: {argv: [probe], stdout: \"^ok\"}\n",
        )
    }

    /// A drill that completed 10 s after time zero and recorded nothing the checks read.
    fn observed() -> Observed {
        let now = jiff::Timestamp::now();
        Observed {
            t0: tokio::time::Instant::now(),
            started: now,
            zero_wall: now,
            ended: now,
            seed: 0,
            ending: Ending::Completed,
            steps: Vec::new(),
            windows: Default::default(),
            load: None,
            load_error: None,
            load_workers: None,
            observations: Default::default(),
            undo: Vec::new(),
            rolled_back: Vec::new(),
            finally: Vec::new(),
            prometheus: BTreeMap::new(),
            events: Vec::new(),
            marks: crate::engine::phases::Marks {
                end_s: 10.0,
                ..Default::default()
            },
            warnings: Vec::new(),
            preflight: Vec::new(),
            run_id: String::new(),
            undo_failed: 0,
            streams: BTreeMap::new(),
            silence: None,
            alertmanager: BTreeMap::new(),
            pods: Vec::new(),
        }
    }

    fn taken<T>(result: T) -> Taken<T> {
        Taken {
            at: jiff::Timestamp::now(),
            took: Duration::from_millis(5),
            result,
        }
    }

    fn end(readings: Vec<(&str, Gathered)>) -> EndObservations {
        EndObservations {
            checks: readings
                .into_iter()
                .map(|(name, g)| (name.to_string(), g))
                .collect(),
        }
    }

    /// The check `name` of `judged`, asserted to have `verdict` and `needle` in its detail.
    fn expect<'a>(
        judged: &'a Judged,
        name: &str,
        verdict: CheckVerdict,
        needle: &str,
    ) -> &'a CheckResult {
        let Some(c) = judged.checks.iter().find(|c| c.name == name) else {
            panic!("no check `{name}`");
        };
        assert_eq!(c.verdict, verdict, "{name}: {}", c.detail);
        assert!(c.detail.contains(needle), "{name}: {}", c.detail);
        c
    }

    fn ran(status: Option<i32>, stdout: &str) -> Gathered {
        Gathered::Command(taken(Ok(CommandOutput {
            status,
            stdout: stdout.into(),
            stderr: String::new(),
        })))
    }

    #[test]
    fn checks_are_judged_from_what_was_gathered_without_a_server() {
        let fired = ["Watchdog", "DrillHighErrorRate"].map(String::from).into();
        let judged = judge(
            &scenario(),
            &observed(),
            &end(vec![
                ("up", Gathered::Sample(taken(Ok(1.0)))),
                (
                    "quiet",
                    Gathered::Alerts {
                        fired: Some(taken(Ok(fired))),
                        firing: None,
                    },
                ),
                ("probe", ran(Some(0), "ok\n")),
            ]),
        );
        let up = expect(&judged, "up", CheckVerdict::Pass, "1 successful");
        assert_eq!(up.measured, Some(1.0));
        expect(&judged, "quiet", CheckVerdict::Fail, "DrillHighErrorRate");
        let probe = expect(&judged, "probe", CheckVerdict::Pass, "exit 0");
        assert_eq!(probe.measured_text.as_deref(), Some("exit 0"));
        assert_eq!(judged.verdict, Verdict::Fail);
        assert!(
            judged.verdict_reason.contains("quiet"),
            "{}",
            judged.verdict_reason
        );
    }

    #[test]
    fn a_command_that_printed_the_wrong_thing_or_did_not_run_is_judged_so() {
        let wrong = end(vec![("probe", ran(Some(0), "nope"))]);
        let judged = judge(&scenario(), &observed(), &wrong);
        expect(&judged, "probe", CheckVerdict::Fail, "stdout did not match");
        let not_run =
            Gathered::Command(taken(Err(crate::support::command::CommandError::EmptyArgv)));
        let judged = judge(&scenario(), &observed(), &end(vec![("probe", not_run)]));
        expect(&judged, "probe", CheckVerdict::Inconclusive, "empty argv");
    }

    #[test]
    fn a_check_whose_reading_failed_or_is_missing_is_inconclusive_with_the_cause() {
        let unreadable = Gathered::Alerts {
            fired: Some(taken(Err(SampleError::Query("refused".into())))),
            firing: None,
        };
        let readings = end(vec![("quiet", unreadable)]);
        let judged = judge(&scenario(), &observed(), &readings);
        expect(
            &judged,
            "up",
            CheckVerdict::Inconclusive,
            "nothing was read",
        );
        expect(&judged, "quiet", CheckVerdict::Inconclusive, "refused");
        expect(
            &judged,
            "probe",
            CheckVerdict::Inconclusive,
            "nothing was read",
        );
        assert_eq!(judged.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn a_sample_taken_during_the_drill_is_judged_without_an_end_reading() {
        let mut observed = observed();
        let sampled = vec![Ok(1.0), Ok(1.0)];
        observed.prometheus.insert("up".into(), sampled);
        let judged = judge(&scenario(), &observed, &EndObservations::default());
        expect(&judged, "up", CheckVerdict::Pass, "2 sample(s)");
    }
}
