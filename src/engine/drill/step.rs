//! One step of a drill: its undo registered first, then applied, then recorded.

use rand::rngs::StdRng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::StepError;
use super::observed::{StepRecord, is_fault, offset};
use super::timeline::{Drill, RegisterUndo, StepPosition};
use crate::engine::progress::Progress;
use crate::report::model::{EventKind, TimelineEvent};
use crate::scenario::Step;
use crate::scenario::describe::describe_action;
use crate::targets::{Target, UndoAction};

impl<T: Target> Drill<'_, T> {
    /// One step: its undo registered (and journaled) first, then applied unless `stop`.
    pub(super) async fn step(
        &self,
        name: &str,
        step: &Step,
        rng: &mut StdRng,
        stop: &CancellationToken,
        position: &StepPosition,
        undo: RegisterUndo,
    ) -> StepRecord {
        let before = self.identities().await;
        let start = Instant::now();
        let record = |error: Option<StepError>, applied, after| StepRecord {
            name: name.to_string(),
            action: step.action.clone(),
            start,
            end: Some(Instant::now()),
            before: before.clone(),
            after,
            applied,
            error,
            is_fault: is_fault(&step.action),
        };
        let not_applied = |why: StepError| {
            tracing::error!("step `{name}` {why}");
            record(Some(why), None, before.clone())
        };
        let registered = match undo {
            RegisterUndo::No => None,
            RegisterUndo::Yes => match self.target.undo_for(&step.action).await {
                Ok(u) => u,
                Err(e) => return not_applied(StepError::UndoNotPrepared(e)),
            },
        };
        if let Some(u) = registered {
            // Registered (and journaled) before the change is applied: an interruption
            // mid-step, or drillbook's own death, still undoes it.
            if let Err(e) = self.undo.register(name, u) {
                return not_applied(StepError::UndoNotRecorded(e));
            }
        }
        self.progress.emit(&Progress::Step {
            number: position.number,
            total: position.total,
            name: name.to_string(),
            what: describe_action(&step.action),
            at_s: offset(self.t0, start),
            fault: is_fault(&step.action),
        });
        let result = tokio::select! {
            r = self.target.apply(&step.action, rng) => r.map_err(StepError::Failed),
            _ = stop.cancelled() => Err(StepError::Interrupted),
        };
        let end = Instant::now();
        let (applied, error) = match result {
            Ok(applied) => {
                self.progress.emit(&Progress::Applied {
                    number: position.number,
                    total: position.total,
                    next_at_s: position.next_at_s,
                    hit: applied.targets.clone(),
                });
                (Some(applied), None)
            }
            Err(e) => {
                tracing::error!("step `{name}` failed: {e}");
                (None, Some(e))
            }
        };
        let after = self.identities().await;
        StepRecord {
            end: Some(end),
            ..record(error, applied, after)
        }
    }

    pub(super) fn step_event(&self, record: &StepRecord) -> TimelineEvent {
        let registered = self
            .undo
            .pending()
            .into_iter()
            .rev()
            .find(|r| r.step == record.name)
            .map(|r| r.undo.describe());
        TimelineEvent {
            at_s: offset(self.t0, record.start),
            kind: if record.is_fault {
                EventKind::Fault
            } else {
                EventKind::Step
            },
            step: Some(record.name.clone()),
            description: record.applied.as_ref().map_or_else(
                || describe_action(&record.action),
                |a| a.description.clone(),
            ),
            targets: record
                .applied
                .as_ref()
                .map(|a| a.targets.clone())
                .unwrap_or_default(),
            undo: registered,
            outcome: Some(match &record.error {
                None => format!(
                    "ok in {:.1}s",
                    record
                        .end
                        .map(|e| e.duration_since(record.start).as_secs_f64())
                        .unwrap_or_default()
                ),
                Some(e) => format!("error: {e}"),
            }),
        }
    }
}
