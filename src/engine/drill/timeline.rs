//! The drill on a started target: the steps at their times, the gate before the first
//! fault, and how it ends (abort, interrupt or completion).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::{DrillError, Ending};
use super::observed::{Observed, START_DELAY, StepRecord, is_fault, marks_for, offset};
use super::running::Background;
use crate::engine::progress::{Progress, ProgressSink};
use crate::engine::undo::UndoStack;
use crate::engine::windows::unsteady;
use crate::report::model::{EventKind, PreflightResult, TimelineEvent};
use crate::scenario::{LoadFrom, LoadSpec, LoadedScenario, Scenario, Sp, Step};
use crate::targets::Target;

/// Whether a step's undo is registered before it runs. The rollback procedure's are not: it
/// is itself the way back, and undoing a `rollout_undo` would roll the bad release out again.
#[derive(Debug, Clone, Copy)]
pub(super) enum RegisterUndo {
    Yes,
    No,
}

pub(super) fn step_name(step: &Step, index: usize, prefix: &str) -> String {
    step.name
        .as_ref()
        .map_or_else(|| format!("{prefix}{}", index + 1), |n| n.value.clone())
}

/// When the step after `index` is due (seconds from time zero), if it has an `at:`.
fn next_step_at(steps: &[Sp<Step>], index: usize) -> Option<f64> {
    steps
        .get(index)
        .and_then(|s| s.value.at.as_ref())
        .map(|at| at.value.0.as_secs_f64())
}

/// A drill on a started target that passed pre-flight: the timeline, then the unwind.
pub(super) struct Drill<'a, T: Target> {
    pub(super) loaded: &'a LoadedScenario,
    pub(super) target: &'a T,
    pub(super) undo: UndoStack<T::Undo>,
    pub(super) seed: u64,
    pub(super) interrupt: CancellationToken,
    /// Ends the drill early (abort guard, failed step, a load that cannot measure).
    pub(super) abort: Aborter,
    /// Cancelled on interrupt or abort: stops the load and the timeline.
    pub(super) stop: CancellationToken,
    /// Workloads whose identities `rolled` checks compare before and after each step.
    pub(super) watched: Vec<String>,
    /// What the report should mention about how the drill ran (e.g. an unverified baseline).
    pub(super) warnings: Mutex<Vec<String>>,
    pub(super) started: jiff::Timestamp,
    pub(super) t0: Instant,
    /// Time zero on the wall clock (cluster load workers start their seconds there).
    pub(super) zero_wall: jiff::Timestamp,
    /// Where progress events go.
    pub(super) progress: ProgressSink,
}

/// Time from the drill's start to time zero: cluster load gives its workers time to start.
fn start_delay(scenario: &Scenario) -> Duration {
    match &scenario.load {
        Some(LoadSpec {
            from: LoadFrom::Cluster,
            cluster: Some(cluster),
            ..
        }) => START_DELAY.max(cluster.value.start_within.0),
        _ => START_DELAY,
    }
}

impl<'a, T: Target> Drill<'a, T> {
    pub(super) fn new(
        loaded: &'a LoadedScenario,
        target: &'a T,
        undo: UndoStack<T::Undo>,
        seed: u64,
        interrupt: CancellationToken,
        progress: ProgressSink,
    ) -> Self {
        let abort = Aborter::default();
        let stop = CancellationToken::new();
        if interrupt.is_cancelled() {
            // Interrupted while the target was starting: unwind at once.
            stop.cancel();
        }
        {
            let (stop, interrupt, abort) = (stop.clone(), interrupt.clone(), abort.token.clone());
            tokio::spawn(async move {
                tokio::select! { _ = interrupt.cancelled() => {}, _ = abort.cancelled() => {} }
                stop.cancel();
            });
        }
        let watched = loaded
            .scenario
            .checks
            .iter()
            .filter_map(|c| match &c.value.kind {
                crate::scenario::CheckKind::Rolled(r) => Some(r.deployment.value.clone()),
                _ => None,
            })
            .collect();
        let delay = start_delay(&loaded.scenario);
        let (now, started) = (Instant::now(), jiff::Timestamp::now());
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        Self {
            loaded,
            target,
            undo,
            seed,
            interrupt,
            abort,
            stop,
            watched,
            warnings: Mutex::default(),
            started,
            t0: now + delay,
            zero_wall: jiff::Timestamp::from_millisecond(
                started.as_millisecond().saturating_add(delay_ms),
            )
            .unwrap_or(started),
            progress,
        }
    }

    pub(super) async fn run(
        self,
        preflight: Vec<PreflightResult>,
        run_id: &str,
    ) -> Result<Observed, DrillError> {
        let pod_guards = crate::engine::pod_guards::prepare(&self.loaded.scenario.abort_when)?;
        let silence = self.silence(run_id).await?;
        let mut background = match self.start_background(run_id).await {
            Ok(background) => background,
            Err(e) => {
                // Nothing ran yet but the silence may exist: take it away again.
                self.undo
                    .unwind(super::UNDO_TIMEOUT, |u| self.target.undo(u))
                    .await;
                return Err(e);
            }
        };
        let watch_done = CancellationToken::new();
        let alertmanager =
            crate::engine::alert_watch::spawn(&self.loaded.scenario, self.t0, watch_done.clone());
        let mut rng = StdRng::seed_from_u64(self.seed);
        let guards_done = CancellationToken::new();
        let timeline = async {
            let timeline = self.run_timeline(&mut rng, &background).await;
            // Pod guards watch as long as the load runs, past the last step.
            if background.load.is_some() {
                tokio::select! {
                    _ = background.load_over.cancelled() => {}
                    _ = self.stop.cancelled() => {}
                }
            }
            guards_done.cancel();
            timeline
        };
        let ((steps, mut events), pods) =
            tokio::join!(timeline, self.watch_pods(pod_guards, &guards_done));

        let load = background.finish(&self.progress).await;
        let mut warnings: Vec<String> = self
            .warnings
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        warnings.extend(load.error.iter().map(|e| format!("load: {e}")));

        // Give jobs that checks look at a moment to finish, unless the drill was stopped.
        if !self.stop.is_cancelled() {
            self.wait_for_jobs().await;
        }
        let observations = self.target.observations().await;
        for (at, description) in self.target.notable() {
            events.push(TimelineEvent {
                at_s: offset(self.t0, at),
                kind: EventKind::Observation,
                step: None,
                description,
                targets: Vec::new(),
                undo: None,
                outcome: None,
            });
        }
        if let Ok(mut tripped) = self.abort.guard_events.lock() {
            events.append(&mut tripped);
        }
        let ending = self.ending();
        let rolled_back = match &ending {
            Ending::Aborted(_) => self.roll_back(&mut rng, &mut events, &mut warnings).await,
            Ending::Completed => {
                self.keep_completed_changes(&steps, &mut events, &mut warnings);
                Vec::new()
            }
            Ending::Interrupted => Vec::new(),
        };
        let (undo, finally) = self.unwind(&mut rng, &mut events).await;
        let prometheus = background.prometheus.await.unwrap_or_default();
        watch_done.cancel();
        let alertmanager = alertmanager.await.unwrap_or_default();
        let mut marks = marks_for(self.t0, load.end, &steps, &observations);
        // The rollback procedure's and `finally`'s steps are boundaries too (`rolled-back.end`).
        for s in rolled_back.iter().chain(&finally) {
            let end = s.end.map(|e| offset(self.t0, e));
            marks
                .steps
                .insert(s.name.clone(), (offset(self.t0, s.start), end));
        }
        Ok(Observed {
            t0: self.t0,
            started: self.started,
            zero_wall: self.zero_wall,
            ended: jiff::Timestamp::now(),
            seed: self.seed,
            ending,
            steps,
            windows: load.windows,
            load: load.summary,
            load_error: load.error,
            load_workers: load.workers,
            observations,
            undo,
            rolled_back,
            finally,
            prometheus,
            events,
            marks,
            warnings,
            preflight,
            run_id: run_id.to_string(),
            undo_failed: self.undo.failed().len(),
            streams: load.streams,
            silence,
            alertmanager,
            pods,
        })
    }
}

impl<T: Target> Drill<'_, T> {
    /// The steps, each at its time; a failed step aborts the rest, and so does a first fault
    /// that nothing would measure.
    async fn run_timeline(
        &self,
        rng: &mut StdRng,
        background: &Background,
    ) -> (Vec<StepRecord>, Vec<TimelineEvent>) {
        let mut steps = Vec::new();
        let mut events = Vec::new();
        let mut before_first_fault = true;
        tokio::time::sleep_until(self.t0).await;
        let all_steps = &self.loaded.scenario.steps;
        let next_at = next_step_at(all_steps, 0);
        self.progress.emit(&Progress::Started {
            seed: self.seed,
            next_at_s: next_at,
        });
        for (index, step) in all_steps.iter().enumerate() {
            let step = &step.value;
            let position = StepPosition {
                number: index + 1,
                total: all_steps.len(),
                next_at_s: next_step_at(all_steps, index + 1),
            };
            let name = step_name(step, index, "#");
            if let Some(at) = &step.at {
                tokio::select! {
                    _ = tokio::time::sleep_until(self.t0 + at.value.0) => {}
                    _ = self.stop.cancelled() => break,
                }
            }
            if before_first_fault && is_fault(&step.action) {
                before_first_fault = false;
                if let Err(why) = self.gate_first_fault(background, &name).await {
                    self.abort
                        .abort(format!("before the first fault (`{name}`): {why}"));
                    // `stop` follows the abort only once another task sees it.
                    break;
                }
            }
            if self.stop.is_cancelled() {
                break;
            }
            let record = self
                .step(&name, step, rng, &self.stop, &position, RegisterUndo::Yes)
                .await;
            events.push(self.step_event(&record));
            let failed = record.error.as_ref().map(ToString::to_string);
            steps.push(record);
            if let Some(error) = failed {
                self.abort.abort(format!("step `{name}` failed: {error}"));
                break;
            }
        }
        (steps, events)
    }

    /// Whether the first fault may go in: the load must be measuring, and its baseline must be
    /// a steady state (see [`unsteady`]). Returns at once when the drill is already stopping
    /// (the timeline then ends).
    async fn gate_first_fault(&self, background: &Background, step: &str) -> Result<(), String> {
        if background.load.is_none() {
            return Ok(());
        }
        tokio::select! {
            _ = background.load_started.cancelled() => {}
            _ = self.stop.cancelled() => return Ok(()),
        }
        if background.load_over.is_cancelled() && !self.stop.is_cancelled() {
            return Err("the load already ended; nothing would measure the fault".into());
        }
        if !self
            .loaded
            .scenario
            .load
            .as_ref()
            .is_some_and(|l| l.steady_state)
        {
            return Ok(());
        }
        let fault_at = offset(self.t0, Instant::now());
        // Only windows wholly before the fault: the baseline as measured so far.
        let baseline = background
            .store
            .lock()
            .ok()
            .and_then(|s| s.span(|second| (second + 1) as f64 <= fault_at));
        match baseline {
            Some(span) => match unsteady(&span.stats) {
                Some(why) => Err(format!("the steady state does not hold: {why}")),
                None => Ok(()),
            },
            None => {
                let note = format!(
                    "no load window closed before the first fault `{step}` (t+{fault_at:.1}s): \
                     the steady state was not verified"
                );
                tracing::warn!("{note}");
                if let Ok(mut warnings) = self.warnings.lock() {
                    warnings.push(note);
                }
                Ok(())
            }
        }
    }

    /// How the drill ended, before the unwind.
    fn ending(&self) -> Ending {
        if self.interrupt.is_cancelled() {
            Ending::Interrupted
        } else if self.abort.token.is_cancelled() {
            Ending::Aborted(self.abort.reason())
        } else {
            Ending::Completed
        }
    }

    /// Identities of the workloads that `rolled` checks look at.
    pub(super) async fn identities(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut all = BTreeMap::new();
        for w in &self.watched {
            all.insert(w.clone(), self.target.identities(w).await);
        }
        all
    }
}

/// Ends a drill early, from any of its tasks; the first reason given is the one reported.
#[derive(Debug, Clone, Default)]
pub(super) struct Aborter {
    pub(super) token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
    /// Guards that tripped, as timeline events (when, which, its values).
    pub(super) guard_events: Arc<Mutex<Vec<TimelineEvent>>>,
}

impl Aborter {
    /// An abort guard tripped at `at`: the abort, and a timeline event saying so.
    pub(super) fn guard_tripped(&self, reason: String, t0: Instant, at: Instant) {
        if let Ok(mut events) = self.guard_events.lock() {
            events.push(TimelineEvent {
                at_s: offset(t0, at),
                kind: EventKind::Guard,
                step: None,
                description: reason.clone(),
                targets: Vec::new(),
                undo: None,
                outcome: Some("aborted the drill".into()),
            });
        }
        self.abort(reason);
    }

    pub(super) fn abort(&self, reason: String) {
        tracing::error!("{reason}: aborting the drill");
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert(reason);
        }
        self.token.cancel();
    }

    fn reason(&self) -> String {
        self.reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "aborted".into())
    }
}

/// Where a step stands in its list, for progress events.
pub(super) struct StepPosition {
    pub(super) number: usize,
    pub(super) total: usize,
    /// When the next step is due, if it has an `at:`.
    pub(super) next_at_s: Option<f64>,
}
