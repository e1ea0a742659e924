//! The way back: keep what a completed drill keeps, roll back an aborted one, undo the rest
//! and run `finally`.

use std::time::Duration;

use rand::rngs::StdRng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::observed::{StepRecord, offset};
use super::timeline::{Drill, RegisterUndo, StepPosition, step_name};
use crate::engine::undo::UndoOutcome;
use crate::report::model::{EventKind, TimelineEvent};
use crate::scenario::describe::describe_action;
use crate::targets::Target;

/// How long each undo may take before it is reported as failed and the next one runs.
pub const UNDO_TIMEOUT: Duration = Duration::from_secs(120);
/// How long to wait after the load for jobs that a `jobs` check looks at.
const JOB_GRACE: Duration = Duration::from_secs(15);

impl<T: Target> Drill<'_, T> {
    /// A drill that ran to its end keeps the changes of steps marked `keep` (a promotion that
    /// baked cleanly): their undos are dropped from the stack and the journal.
    pub(super) fn keep_completed_changes(
        &self,
        steps: &[StepRecord],
        events: &mut Vec<TimelineEvent>,
        warnings: &mut Vec<String>,
    ) {
        for record in steps.iter().filter(|r| r.applied.is_some()) {
            if !record.action.kept_when_completed() {
                continue;
            }
            match self.undo.keep(&record.name) {
                Ok(0) => {}
                Ok(_) => events.push(TimelineEvent {
                    at_s: offset(self.t0, Instant::now()),
                    kind: EventKind::Step,
                    step: Some(record.name.clone()),
                    description: format!(
                        "kept: {} (`keep: true`, the drill ran to its end)",
                        describe_action(&record.action)
                    ),
                    targets: Vec::new(),
                    undo: None,
                    outcome: Some("kept".into()),
                }),
                Err(e) => {
                    // The undo stays registered: the change is reverted, which is safe.
                    let note = format!("`{}` could not be kept and is undone: {e}", record.name);
                    tracing::warn!("{note}");
                    warnings.push(note);
                }
            }
        }
    }

    /// The rollback procedure (`on_abort`), in order, after an abort and before the undos. It
    /// stops at the first failing step: the rest assumes it worked (a `wait_rollout` after a
    /// failed `rollout_undo` would only wait for nothing); the undos run either way.
    pub(super) async fn roll_back(
        &self,
        rng: &mut StdRng,
        events: &mut Vec<TimelineEvent>,
        warnings: &mut Vec<String>,
    ) -> Vec<StepRecord> {
        let procedure = &self.loaded.scenario.on_abort;
        if procedure.is_empty() {
            return Vec::new();
        }
        self.progress.note(format!(
            "rolling back: {} `on_abort` step(s)…",
            procedure.len()
        ));
        let mut records = Vec::new();
        let never = CancellationToken::new();
        for (index, step) in procedure.iter().enumerate() {
            let name = step_name(&step.value, index, "on_abort #");
            let position = StepPosition {
                number: index + 1,
                total: procedure.len(),
                next_at_s: None,
            };
            let record = self
                .step(&name, &step.value, rng, &never, &position, RegisterUndo::No)
                .await;
            events.push(self.step_event(&record));
            let failed = record.error.as_ref().map(ToString::to_string);
            records.push(record);
            if let Some(error) = failed {
                let note = format!(
                    "the rollback step `{name}` failed: {error}; the rest of `on_abort` was skipped"
                );
                tracing::error!("{note}");
                warnings.push(note);
                break;
            }
        }
        records
    }

    /// Registered undos in reverse, then `finally`, then the undos `finally` registered.
    pub(super) async fn unwind(
        &self,
        rng: &mut StdRng,
        events: &mut Vec<TimelineEvent>,
    ) -> (Vec<UndoOutcome>, Vec<StepRecord>) {
        let pending = self.undo.pending().len();
        if pending > 0 {
            self.progress
                .note(format!("undoing {pending} registered fault(s)…"));
        }
        let mut outcomes = self
            .undo
            .unwind(UNDO_TIMEOUT, |u| self.target.undo(u))
            .await;
        for outcome in &outcomes {
            events.push(TimelineEvent {
                at_s: offset(self.t0, Instant::now()),
                kind: EventKind::Undo,
                step: Some(outcome.step.clone()),
                description: outcome.description.clone(),
                targets: Vec::new(),
                undo: None,
                outcome: Some(match &outcome.result {
                    Ok(()) => "ok".into(),
                    Err(e) => format!("error: {e}"),
                }),
            });
        }
        let mut finally = Vec::new();
        let never = CancellationToken::new();
        for (index, step) in self.loaded.scenario.finally.iter().enumerate() {
            let name = step_name(&step.value, index, "finally #");
            let position = StepPosition {
                number: index + 1,
                total: self.loaded.scenario.finally.len(),
                next_at_s: None,
            };
            let record = self
                .step(
                    &name,
                    &step.value,
                    rng,
                    &never,
                    &position,
                    RegisterUndo::Yes,
                )
                .await;
            events.push(self.step_event(&record));
            finally.push(record);
        }
        // `finally` steps may register undos too (e.g. a start_process); they are unwound now.
        outcomes.extend(
            self.undo
                .unwind(UNDO_TIMEOUT, |u| self.target.undo(u))
                .await,
        );
        (outcomes, finally)
    }

    pub(super) async fn wait_for_jobs(&self) {
        let deadline = Instant::now() + JOB_GRACE;
        loop {
            let running = self.target.jobs_running().await;
            if !running || Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }
}
