//! The baseline of a run: the latest earlier runs of the same scenario on the same context
//! and namespace that passed. Runs elsewhere never count; runs of an edited scenario
//! (another content hash) count, and are named, since a scenario is its name.

use schemars::JsonSchema;
use serde::Serialize;

use std::path::Path;

use super::HistoryError;
use super::record::RunRecord;
use crate::scenario::{LoadedScenario, RegressionCheck, RegressionMetric};

/// Which earlier runs a baseline may use.
#[derive(Debug, Clone, Copy)]
pub struct BaselineQuery<'a> {
    pub scenario: &'a str,
    pub context: Option<&'a str>,
    pub namespace: Option<&'a str>,
    /// Only runs that started before this.
    pub before: jiff::Timestamp,
    /// The run being judged, when it is already in the history.
    pub exclude_run: Option<&'a str>,
    /// The scenario's content hash now, to name the runs of another version.
    pub hash: Option<&'a str>,
    pub runs: u32,
    pub min_runs: u32,
}

/// The runs a baseline is made of, newest first, and what was passed over.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Baseline {
    pub runs: Vec<RunRecord>,
    pub wanted: u32,
    pub min_runs: u32,
    /// Earlier runs of this scenario on this target that did not pass (not used).
    pub not_passing: usize,
    /// Earlier runs of this scenario on another context or namespace (never used).
    pub other_target: usize,
    /// Runs used whose scenario file differs from this one's (edited since).
    pub edited: usize,
}

impl BaselineQuery<'_> {
    pub fn select(&self, records: &[RunRecord]) -> Baseline {
        let mut baseline = Baseline {
            runs: Vec::new(),
            wanted: self.runs,
            min_runs: self.min_runs,
            not_passing: 0,
            other_target: 0,
            edited: 0,
        };
        let earlier = records.iter().rev().filter(|r| {
            r.scenario == self.scenario
                && r.started_at < self.before
                && Some(r.run_id.as_str()) != self.exclude_run
        });
        for record in earlier {
            // Passed over means: skipped while looking for the newest passing runs.
            if baseline.runs.len() >= self.runs as usize {
                break;
            }
            if !record.same_target(self.context, self.namespace) {
                baseline.other_target += 1;
            } else if !record.passed {
                baseline.not_passing += 1;
            } else {
                if self.hash.is_some() && record.scenario_hash.as_deref() != self.hash {
                    baseline.edited += 1;
                }
                baseline.runs.push(record.clone());
            }
        }
        baseline
    }
}

/// The baseline of a scenario's `regression` check: from the history under `report_dir` (or
/// the check's own `history:` folder), the runs before `before` on the scenario's context and
/// namespace. `run_id` is the run being judged (left out); `plan` passes none and now.
pub fn for_check(
    loaded: &LoadedScenario,
    check: &RegressionCheck,
    report_dir: &Path,
    run_id: Option<&str>,
    before: jiff::Timestamp,
) -> Result<Baseline, HistoryError> {
    let scenario = &loaded.scenario;
    let dir = check
        .history
        .as_ref()
        .map_or_else(|| report_dir.to_owned(), |h| loaded.resolve(h));
    let history = super::index::load(&dir)?;
    let (context, namespace) = scenario.target.place();
    let hash = super::content_hash(&loaded.source);
    Ok(BaselineQuery {
        scenario: &scenario.name.value,
        context,
        namespace,
        before,
        exclude_run: run_id,
        hash: Some(&hash),
        runs: check.runs,
        min_runs: check.min_runs,
    }
    .select(&history.records))
}

impl Baseline {
    pub fn enough(&self) -> bool {
        self.runs.len() >= self.min_runs.max(1) as usize
    }

    /// The median of `metric` in `phase` over the runs that measured it, and how many did.
    pub fn median(&self, metric: RegressionMetric, phase: &str) -> Option<(f64, usize)> {
        let mut values: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| r.measured.metric(metric, phase))
            .filter(|v| v.is_finite())
            .collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        let median = if values.len().is_multiple_of(2) {
            (values[mid - 1] + values[mid]) / 2.0
        } else {
            values[mid]
        };
        Some((median, values.len()))
    }

    /// The runs used, for humans: "a1b2c3d4 (2026-12-01 10:00), …".
    pub fn runs_in_words(&self) -> String {
        if self.runs.is_empty() {
            return "no runs".into();
        }
        self.runs
            .iter()
            .map(|r| format!("{} ({})", r.run_id, r.started_at.strftime("%Y-%m-%d %H:%M")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What was passed over, for humans (empty when nothing was).
    pub fn passed_over(&self) -> String {
        let mut parts = Vec::new();
        if self.not_passing > 0 {
            parts.push(format!("{} not passing", self.not_passing));
        }
        if self.other_target > 0 {
            parts.push(format!(
                "{} on another context/namespace",
                self.other_target
            ));
        }
        if self.edited > 0 {
            parts.push(format!("{} used ran an edited scenario", self.edited));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::history::record::fixtures::run;
    use crate::report::model::Verdict;

    /// The query of the fixtures' runs (`drill` on box/drill) before they all started.
    pub(crate) fn query(runs: u32) -> BaselineQuery<'static> {
        BaselineQuery {
            scenario: "drill",
            context: Some("box"),
            namespace: Some("drill"),
            before: jiff::Timestamp::from_second(1_900_000_000)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            exclude_run: Some("now"),
            hash: Some("sha256:a"),
            runs,
            min_runs: 2,
        }
    }

    #[test]
    fn only_earlier_passing_runs_on_the_same_target_count_newest_first() {
        let records = vec![
            run("a", 1, Verdict::Pass, "drill", 100.0),
            run("b", 2, Verdict::Fail, "drill", 900.0),
            run("c", 3, Verdict::Pass, "other", 50.0),
            run("d", 4, Verdict::Pass, "drill", 120.0),
            run("e", 5, Verdict::Pass, "drill", 110.0),
            run("now", 6, Verdict::Pass, "drill", 500.0),
        ];
        let baseline = query(2).select(&records);
        let ids: Vec<&str> = baseline.runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["e", "d"]);
        assert_eq!((baseline.not_passing, baseline.other_target), (0, 0));
        let close = |got: Option<(f64, usize)>, want: f64, n: usize| {
            got.is_some_and(|(v, k)| (v - want).abs() < 1e-9 && k == n)
        };
        assert!(close(
            baseline.median(RegressionMetric::P95, "fault"),
            0.115,
            2
        ));
        let all = query(5).select(&records);
        assert_eq!(all.runs.len(), 3);
        assert_eq!((all.not_passing, all.other_target), (1, 1));
        assert!(close(all.median(RegressionMetric::P95, "fault"), 0.11, 3));
        assert!(all.passed_over().contains("another context/namespace"));
    }

    #[test]
    fn a_baseline_from_elsewhere_only_is_not_enough() {
        let records = vec![
            run("a", 1, Verdict::Pass, "other", 100.0),
            run("b", 2, Verdict::Pass, "other", 100.0),
            run("c", 3, Verdict::Pass, "drill", 100.0),
        ];
        let baseline = query(5).select(&records);
        assert!(!baseline.enough(), "{baseline:?}");
        assert_eq!(baseline.other_target, 2);
    }
}
