//! What `drillbook history` shows, as data: per scenario and target, its runs, verdicts and
//! streak, and the latest runs with their per-phase numbers, a link to their report and how
//! they compare with their own baseline. Serialisable, so any page can render it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::baseline::BaselineQuery;
use super::index::{History, Skipped};
use super::record::RunRecord;
use super::regression::{self, Limit};
use crate::checks::CheckVerdict;
use crate::report::model::Verdict;

/// A scenario on a target: its name, context and namespace.
type Group = (String, Option<String>, Option<String>);

/// Which runs to show.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Scenario names; empty: every scenario.
    pub scenarios: Vec<String>,
    pub since: Option<jiff::Timestamp>,
    /// Rows per scenario (the latest runs).
    pub last: usize,
    pub context: Option<String>,
    pub namespace: Option<String>,
    /// Earlier passing runs each row's baseline is the median of, and the fewest that decide.
    pub baseline_runs: u32,
    pub min_runs: u32,
}

/// The history of the runs a filter selected.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HistoryView {
    /// The reports folder the history was read from.
    pub report_dir: String,
    pub scenarios: Vec<ScenarioHistory>,
    /// Report folders that could not be read, named.
    pub skipped: Vec<Skipped>,
}

/// One scenario on one target (context and namespace).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ScenarioHistory {
    pub scenario: String,
    /// `kubernetes` or `local`.
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Runs matching the filter (not only the rows shown).
    pub runs: usize,
    /// Those runs by verdict.
    pub verdicts: BTreeMap<String, usize>,
    /// The latest verdict and how many runs in a row ended with it.
    pub streak: Streak,
    /// Distinct scenario files (content hashes) among the runs: above 1, it was edited.
    pub versions: usize,
    /// The latest runs, oldest first.
    pub rows: Vec<RunRow>,
    /// The trend chart written for it, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Streak {
    pub verdict: Verdict,
    pub runs: usize,
}

/// One run as a row.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunRow {
    #[serde(flatten)]
    pub run: RunRecord,
    /// Path of the run's Markdown report.
    pub report: String,
    /// The scenario file differs from the previous run's.
    pub edited: bool,
    /// This run against the median of its own earlier passing runs (default limits).
    pub regression: RowRegression,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RowRegression {
    pub verdict: CheckVerdict,
    pub detail: String,
    /// Run ids of the baseline, newest first.
    pub baseline: Vec<String>,
}

impl HistoryView {
    pub fn build(history: &History, filter: &Filter) -> Self {
        let mut groups: BTreeMap<Group, Vec<&RunRecord>> = BTreeMap::new();
        for record in &history.records {
            let wanted = (filter.scenarios.is_empty()
                || filter.scenarios.contains(&record.scenario))
                && filter.since.is_none_or(|since| record.started_at >= since)
                && (filter.context.is_none() || record.context == filter.context)
                && (filter.namespace.is_none() || record.namespace == filter.namespace);
            if wanted {
                groups
                    .entry((
                        record.scenario.clone(),
                        record.context.clone(),
                        record.namespace.clone(),
                    ))
                    .or_default()
                    .push(record);
            }
        }
        let scenarios = groups
            .into_values()
            .map(|runs| scenario_history(history, &runs, filter))
            .collect();
        HistoryView {
            report_dir: history.dir.display().to_string(),
            scenarios,
            skipped: history.skipped.clone(),
        }
    }

    /// The scenarios whose latest run regressed, with that run.
    pub fn regressions(&self) -> Vec<(&ScenarioHistory, &RunRow)> {
        self.scenarios
            .iter()
            .filter_map(|s| s.rows.last().map(|row| (s, row)))
            .filter(|(_, row)| row.regression.verdict == CheckVerdict::Fail)
            .collect()
    }
}

fn scenario_history(history: &History, runs: &[&RunRecord], filter: &Filter) -> ScenarioHistory {
    let first = runs[0];
    let mut verdicts = BTreeMap::new();
    for run in runs {
        *verdicts
            .entry(run.verdict.as_str().to_string())
            .or_insert(0) += 1;
    }
    let latest = runs[runs.len() - 1].verdict;
    let streak = Streak {
        verdict: latest,
        runs: runs
            .iter()
            .rev()
            .take_while(|r| r.verdict == latest)
            .count(),
    };
    let versions = runs
        .iter()
        .filter_map(|r| r.scenario_hash.as_deref())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let shown = runs.len().saturating_sub(filter.last.max(1));
    let rows = runs[shown..]
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let previous = (shown + i).checked_sub(1).map(|p| runs[p]);
            row(history, run, previous, filter)
        })
        .collect();
    ScenarioHistory {
        scenario: first.scenario.clone(),
        target: first.target.clone(),
        context: first.context.clone(),
        namespace: first.namespace.clone(),
        runs: runs.len(),
        verdicts,
        streak,
        versions,
        rows,
        chart: None,
    }
}

fn row(
    history: &History,
    run: &RunRecord,
    previous: Option<&RunRecord>,
    filter: &Filter,
) -> RunRow {
    let baseline = BaselineQuery {
        scenario: &run.scenario,
        context: run.context.as_deref(),
        namespace: run.namespace.as_deref(),
        before: run.started_at,
        exclude_run: Some(&run.run_id),
        hash: run.scenario_hash.as_deref(),
        runs: filter.baseline_runs,
        min_runs: filter.min_runs,
    }
    .select(&history.records);
    // The default limits cover what this run measured (a drill without a fault phase has no
    // time to recover): a metric it never had is not a missing reading.
    let limits: Vec<Limit> = Limit::defaults(run.measured.phases.iter().map(|p| p.name.as_str()))
        .into_iter()
        .filter(|l| run.measured.metric(l.metric, &l.phase).is_some())
        .collect();
    let judged = regression::judge(&limits, &run.measured, &baseline);
    RunRow {
        report: history
            .dir
            .join(&run.dir)
            .join("report.md")
            .display()
            .to_string(),
        edited: previous.is_some_and(|p| {
            p.scenario_hash.is_some()
                && run.scenario_hash.is_some()
                && p.scenario_hash != run.scenario_hash
        }),
        regression: RowRegression {
            verdict: judged.verdict,
            detail: judged.detail,
            baseline: baseline.runs.iter().map(|r| r.run_id.clone()).collect(),
        },
        run: run.clone(),
    }
}
