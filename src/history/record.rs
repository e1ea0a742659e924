//! One run as the history keeps it: the few numbers a trend or a baseline needs, taken from
//! its `report.json` (a few hundred bytes instead of the report's tens of kilobytes).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::load::StatsSummary;
use crate::report::model::{CheckVerdict, Report, Verdict};
use crate::scenario::RegressionMetric;

/// One run of a scenario: who, where, when, how it ended, and its per-phase numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunRecord {
    pub run_id: String,
    /// The scenario's `name`: what identifies a scenario across runs.
    pub scenario: String,
    /// `sha256:…` of the scenario file as run; a change marks an edited scenario. Absent in
    /// reports written before drillbook recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_hash: Option<String>,
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub started_at: jiff::Timestamp,
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub ended_at: jiff::Timestamp,
    pub verdict: Verdict,
    /// Whether a baseline may use the run: it passed, or its only undecided checks are
    /// `regression` checks (a scenario's first runs have no baseline to compare with).
    pub passed: bool,
    /// `kubernetes` or `local`.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The run's report folder, relative to the history's folder.
    pub dir: String,
    #[serde(flatten)]
    pub measured: Measured,
    /// Requests per second the scenario asked for (a constant `rate`); absent for `max` and
    /// stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_rps: Option<f64>,
    /// Requests per second achieved over the whole run; absent without load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved_rps: Option<f64>,
}

/// The numbers a regression limit compares: per phase, and the time to recover.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Measured {
    /// From the start of the `fault` phase to the start of the `recovery` phase, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_recover_s: Option<f64>,
    #[serde(default)]
    pub phases: Vec<PhaseMetrics>,
}

/// One phase's load numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseMetrics {
    pub name: String,
    /// Verdict of the checks judged in the phase (absent while the run is being judged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<CheckVerdict>,
    pub requests: u64,
    pub status_401: u64,
    pub status_5xx: u64,
    /// Requests without an answer.
    pub errors: u64,
    pub rps: f64,
    /// Latency quantiles in milliseconds; absent when nothing was answered.
    #[serde(flatten)]
    pub latency: Option<Latency>,
}

/// Corrected (from the intended send time) and service latency, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Latency {
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub service_p95_ms: f64,
    pub service_p99_ms: f64,
}

impl PhaseMetrics {
    pub fn from_summary(name: &str, verdict: Option<CheckVerdict>, load: &StatsSummary) -> Self {
        let answered: u64 = load.statuses.values().sum();
        Self {
            name: name.to_string(),
            verdict,
            requests: load.requests,
            status_401: load.status_count(401),
            status_5xx: load.status_class_count(5),
            errors: load.error_count(),
            rps: load.rps,
            latency: (answered > 0).then_some(Latency {
                p95_ms: load.latency_ms.p95,
                p99_ms: load.latency_ms.p99,
                service_p95_ms: load.service_latency_ms.p95,
                service_p99_ms: load.service_latency_ms.p99,
            }),
        }
    }

    /// Share of requests with this count; `None` without requests.
    pub fn rate(&self, count: u64) -> Option<f64> {
        (self.requests > 0).then(|| count as f64 / self.requests as f64)
    }
}

impl Measured {
    /// `metric` in seconds (times) or as a fraction (rates); `None` when the run has no such
    /// phase or no data for it.
    pub fn metric(&self, metric: RegressionMetric, phase: &str) -> Option<f64> {
        if metric == RegressionMetric::TimeToRecover {
            return self.time_to_recover_s;
        }
        let p = self.phases.iter().find(|p| p.name == phase)?;
        let latency = |pick: fn(&Latency) -> f64| p.latency.as_ref().map(|l| pick(l) / 1000.0);
        match metric {
            RegressionMetric::P95 => latency(|l| l.p95_ms),
            RegressionMetric::P99 => latency(|l| l.p99_ms),
            RegressionMetric::ServiceP95 => latency(|l| l.service_p95_ms),
            RegressionMetric::ServiceP99 => latency(|l| l.service_p99_ms),
            RegressionMetric::Rate401 => p.rate(p.status_401),
            RegressionMetric::Rate5xx => p.rate(p.status_5xx),
            RegressionMetric::TimeToRecover => self.time_to_recover_s,
        }
    }
}

/// From the start of `fault` to the start of `recovery`, given each phase's start (seconds).
pub fn time_to_recover<'a>(starts: impl IntoIterator<Item = (&'a str, f64)>) -> Option<f64> {
    let (mut fault, mut recovery) = (None, None);
    for (name, start) in starts {
        match name {
            "fault" => fault = Some(start),
            "recovery" => recovery = Some(start),
            _ => {}
        }
    }
    let ttr = recovery? - fault?;
    (ttr >= 0.0).then_some(ttr)
}

/// Passed, or completed with every check passed but `regression` checks that had no baseline.
fn passed_for_baseline(report: &Report) -> bool {
    let deciding = || report.checks.iter().filter(|c| !c.dry_run);
    match report.verdict {
        Verdict::Pass => true,
        Verdict::Inconclusive => {
            deciding().any(|c| c.kind != "regression")
                && deciding().all(|c| {
                    c.verdict == CheckVerdict::Pass
                        || (c.kind == "regression" && c.verdict == CheckVerdict::Inconclusive)
                })
        }
        _ => false,
    }
}

impl RunRecord {
    /// The record of `report`, whose folder is `dir` (relative to the history's folder).
    pub fn from_report(report: &Report, dir: &str) -> Self {
        Self {
            run_id: report.run_id.clone(),
            scenario: report.scenario.name.clone(),
            scenario_hash: report.scenario.content_hash.clone(),
            started_at: report.started_at,
            ended_at: report.ended_at,
            verdict: report.verdict,
            passed: passed_for_baseline(report),
            target: report.target.kind.clone(),
            context: report.target.context.clone(),
            namespace: report.target.namespace.clone(),
            dir: dir.to_string(),
            measured: Measured {
                time_to_recover_s: time_to_recover(
                    report.phases.iter().map(|p| (p.name.as_str(), p.start_s)),
                ),
                phases: report
                    .phases
                    .iter()
                    .filter_map(|p| {
                        let load = p.load.as_ref()?;
                        Some(PhaseMetrics::from_summary(&p.name, Some(p.verdict), load))
                    })
                    .collect(),
            },
            asked_rps: report.scenario.asked_rps,
            achieved_rps: report.load.as_ref().map(|l| l.rps),
        }
    }

    /// Same scenario, context and namespace: runs a baseline may compare.
    pub fn same_target(&self, context: Option<&str>, namespace: Option<&str>) -> bool {
        self.context.as_deref() == context && self.namespace.as_deref() == namespace
    }
}

/// A run of the scenario `drill` on box/`ns`, `minute` minutes into the fixtures' hour, with
/// one `fault` phase whose p95 is `p95_ms` (time to recover: `p95_ms / 100` s).
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{Latency, Measured, PhaseMetrics, RunRecord};
    use crate::report::model::Verdict;

    pub(crate) fn run(id: &str, minute: i64, verdict: Verdict, ns: &str, p95_ms: f64) -> RunRecord {
        RunRecord {
            run_id: id.into(),
            scenario: "drill".into(),
            scenario_hash: Some("sha256:a".into()),
            started_at: jiff::Timestamp::from_second(1_800_000_000 + minute * 60)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            ended_at: jiff::Timestamp::from_second(1_800_000_030 + minute * 60)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            passed: verdict == Verdict::Pass,
            verdict,
            target: "kubernetes".into(),
            context: Some("box".into()),
            namespace: Some(ns.into()),
            dir: format!("dir-{id}"),
            measured: Measured {
                time_to_recover_s: Some(p95_ms / 100.0),
                phases: vec![PhaseMetrics {
                    name: "fault".into(),
                    verdict: None,
                    requests: 100,
                    status_401: 0,
                    status_5xx: 1,
                    errors: 0,
                    rps: 10.0,
                    latency: Some(Latency {
                        p95_ms,
                        p99_ms: p95_ms * 2.0,
                        service_p95_ms: p95_ms,
                        service_p99_ms: p95_ms * 2.0,
                    }),
                }],
            },
            asked_rps: Some(10.0),
            achieved_rps: Some(10.0),
        }
    }
}
