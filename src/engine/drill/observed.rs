//! What a drill observed: the judge's and the report builder's only input.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::error::{Ending, StepError};
use crate::checks::prometheus::Sample;
use crate::engine::phases::Marks;
use crate::engine::undo::UndoOutcome;
use crate::engine::windows::WindowStore;
use crate::load::LoadSummary;
use crate::report::model::{LoadWorkers, PodSample, PreflightResult, TimelineEvent};
use crate::scenario::Action;
use crate::targets::Applied;
use crate::targets::observe::{Observations, same_workload};

/// Delay between target readiness and time zero, so the first windows are not start-up noise.
pub(super) const START_DELAY: Duration = Duration::from_millis(300);

/// One step as it ran.
#[derive(Debug)]
pub struct StepRecord {
    pub name: String,
    pub action: Action,
    pub start: Instant,
    pub end: Option<Instant>,
    /// Identities of the workloads `rolled` checks look at, before and after the step.
    pub before: BTreeMap<String, BTreeSet<String>>,
    pub after: BTreeMap<String, BTreeSet<String>>,
    pub applied: Option<Applied>,
    pub error: Option<StepError>,
    pub is_fault: bool,
}

/// Everything observed during a run, handed to the judge and the report builder.
#[derive(Debug)]
pub struct Observed {
    pub t0: Instant,
    pub started: jiff::Timestamp,
    /// Time zero on the wall clock (`started` plus the start delay, which cluster load makes
    /// as long as its workers' `start_within`).
    pub zero_wall: jiff::Timestamp,
    pub ended: jiff::Timestamp,
    pub seed: u64,
    pub ending: Ending,
    pub steps: Vec<StepRecord>,
    pub windows: WindowStore,
    pub load: Option<LoadSummary>,
    pub load_error: Option<String>,
    /// Cluster load: the workers and the coverage of their windows.
    pub load_workers: Option<LoadWorkers>,
    pub observations: Observations,
    pub undo: Vec<UndoOutcome>,
    /// The `on_abort` steps that ran (the rollback procedure), in order.
    pub rolled_back: Vec<StepRecord>,
    pub finally: Vec<StepRecord>,
    pub prometheus: BTreeMap<String, Vec<Sample>>,
    pub events: Vec<TimelineEvent>,
    pub marks: Marks,
    pub warnings: Vec<String>,
    pub preflight: Vec<PreflightResult>,
    pub run_id: String,
    /// Undos that failed and stay in the journal for `drillbook recover`.
    pub undo_failed: usize,
    /// The windows of each named load stream (`load.streams`), for `compare` checks.
    pub streams: BTreeMap<String, WindowStore>,
    /// The drill's Alertmanager silence, when one was created.
    pub silence: Option<crate::report::model::SilenceReport>,
    /// What Alertmanager held during the drill, per `alerts` check with `alertmanager`.
    pub alertmanager: BTreeMap<String, crate::checks::alerts::AlertWatch>,
    /// The target's pods (processes) counted every second.
    pub pods: Vec<PodSample>,
}

impl Observed {
    pub fn offset(&self, at: Instant) -> f64 {
        offset(self.t0, at)
    }

    /// Wall-clock time (Unix seconds) of `offset_s` seconds after time zero, for queries to
    /// systems that keep their own history (Prometheus).
    pub fn unix_s(&self, offset_s: f64) -> f64 {
        self.zero_wall.as_millisecond() as f64 / 1000.0 + offset_s
    }
}

pub fn offset(t0: Instant, at: Instant) -> f64 {
    match at.checked_duration_since(t0) {
        Some(d) => d.as_secs_f64(),
        None => -(t0.duration_since(at).as_secs_f64()),
    }
}

/// Steps that change the system (as opposed to waiting or starting planned work).
pub fn is_fault(action: &Action) -> bool {
    !matches!(
        action,
        Action::Wait(_) | Action::WaitReady(_) | Action::WaitRollout(_) | Action::StartProcess(_)
    )
}

/// Phase boundaries from what happened: first fault, ready again, step times.
pub(super) fn marks_for(
    t0: Instant,
    end: Instant,
    steps: &[StepRecord],
    observations: &Observations,
) -> Marks {
    let mut marks = Marks {
        end_s: offset(t0, end).max(0.0),
        ..Marks::default()
    };
    for s in steps {
        marks.steps.insert(
            s.name.clone(),
            (offset(t0, s.start), s.end.map(|e| offset(t0, e))),
        );
    }
    let Some(first) = steps.iter().find(|s| s.is_fault && s.error.is_none()) else {
        return marks;
    };
    marks.first_fault_s = Some(offset(t0, first.start));
    let disrupted = first
        .applied
        .as_ref()
        .map(|a| a.disrupted.clone())
        .unwrap_or_default();
    let recovered = match &first.action {
        // A kill is over when a replacement of the same workload is ready.
        Action::KillProcess(_) | Action::KillPods(_) | Action::Evict(_) => observations
            .ready_after(first.start, |labels| {
                disrupted.iter().any(|d| same_workload(d, labels))
            }),
        // A fault at a Service or port is over when its `for` is (it applies from the step's
        // end, once the proxies are in place); without `for` it lasts the whole drill.
        Action::HttpFault(f) => f
            .duration
            .as_ref()
            .and_then(|d| first.end.map(|e| e + d.value.0)),
        // Rolling changes return once the workload is rolled and ready.
        _ => first.end,
    };
    marks.recovered_s = recovered.map(|r| offset(t0, r));
    marks
}
