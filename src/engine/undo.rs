//! The undo stack: every mutating step registers how to revert it *before* it is applied; on
//! every exit path the undos run in reverse order, each with a timeout, and a failing undo
//! does not stop the others.

use std::sync::{Arc, Mutex};
use std::time::Duration;

// The record the stack holds is the journal's (`recover` reads it back); re-exported so the
// stack's users need not know where it is stored.
pub use super::journal::Registered;
use super::journal::{Journal, JournalError};
use crate::targets::{TargetError, UndoAction};

/// Why an undo could not be registered (the step must then not run).
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("undo stack poisoned")]
    StackPoisoned,
    #[error("undo journal poisoned")]
    JournalPoisoned,
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Why one undo did not put things back.
#[derive(Debug, thiserror::Error)]
pub enum UndoFailure {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("timed out after {}", crate::units::HumanDuration(*.0))]
    TimedOut(Duration),
}

/// What happened when an undo ran.
#[derive(Debug)]
pub struct UndoOutcome {
    pub step: String,
    pub description: String,
    pub result: Result<(), UndoFailure>,
    pub elapsed: Duration,
}

/// Registered undos, most recent last. Shared so the signal handler can say what is pending.
#[derive(Debug)]
pub struct UndoStack<U> {
    inner: Arc<Mutex<Vec<Registered<U>>>>,
    current: Arc<Mutex<Option<String>>>,
    /// Undos that failed: kept in the journal so `drillbook recover` can retry them.
    failed: Arc<Mutex<Vec<Registered<U>>>>,
    /// When set, every change to the stack is persisted before it takes effect.
    journal: Option<Arc<Mutex<Journal<U>>>>,
}

// By hand: a derive would ask `U: Default`/`U: Clone` though only `Arc`s are cloned.
impl<U> Default for UndoStack<U> {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            current: Arc::default(),
            failed: Arc::default(),
            journal: None,
        }
    }
}

impl<U> Clone for UndoStack<U> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            current: self.current.clone(),
            failed: self.failed.clone(),
            journal: self.journal.clone(),
        }
    }
}

impl<U: UndoAction> UndoStack<U> {
    /// A stack that persists itself to `journal`, starting with the undos it already holds
    /// (empty for a new run; a crashed run's leftovers for `recover`).
    pub fn journaled(journal: Journal<U>) -> Self {
        let pending = journal.doc.pending.clone();
        Self {
            inner: Arc::new(Mutex::new(pending)),
            journal: Some(Arc::new(Mutex::new(journal))),
            ..Self::default()
        }
    }

    /// Undos that failed while unwinding (still journaled).
    pub fn failed(&self) -> Vec<Registered<U>> {
        self.failed.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Registers an undo. With a journal, it is on disk (fsync'd) when this returns `Ok`; on
    /// `Err` nothing was registered and the step must not run.
    pub fn register(&self, step: &str, undo: U) -> Result<(), RegisterError> {
        let mut stack = self
            .inner
            .lock()
            .map_err(|_| RegisterError::StackPoisoned)?;
        stack.push(Registered {
            step: step.to_string(),
            undo,
        });
        if let Err(e) = self.persist(&stack) {
            stack.pop();
            return Err(e);
        }
        Ok(())
    }

    fn persist(&self, stack: &[Registered<U>]) -> Result<(), RegisterError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let mut all = self.failed();
        all.extend_from_slice(stack);
        Ok(journal
            .lock()
            .map_err(|_| RegisterError::JournalPoisoned)?
            .sync(&all)?)
    }

    /// Drops the undos registered by `step` without running them (the change is kept), and
    /// journals that, so `recover` will not revert it either. Returns how many were dropped.
    pub fn keep(&self, step: &str) -> Result<usize, RegisterError> {
        let mut stack = self
            .inner
            .lock()
            .map_err(|_| RegisterError::StackPoisoned)?;
        let before = stack.len();
        stack.retain(|registered| registered.step != step);
        self.persist(&stack)?;
        Ok(before - stack.len())
    }

    pub fn pending(&self) -> Vec<Registered<U>> {
        self.inner.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The undo being run right now, for a second Ctrl-C to report.
    pub fn in_progress(&self) -> Option<String> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    /// Runs every registered undo in reverse order with `apply`, each bounded by `timeout`.
    pub async fn unwind<F, Fut>(&self, timeout: Duration, mut apply: F) -> Vec<UndoOutcome>
    where
        F: FnMut(U) -> Fut,
        Fut: Future<Output = Result<(), TargetError>>,
    {
        let mut outcomes = Vec::new();
        loop {
            // Peek, apply, then pop: if drillbook dies mid-undo the journal still holds it.
            let next = self.inner.lock().ok().and_then(|s| s.last().cloned());
            let Some(registered) = next else { break };
            let description = registered.undo.describe();
            if let Ok(mut current) = self.current.lock() {
                *current = Some(description.clone());
            }
            let started = tokio::time::Instant::now();
            let result = match tokio::time::timeout(timeout, apply(registered.undo.clone())).await {
                Ok(r) => r.map_err(UndoFailure::from),
                Err(_) => Err(UndoFailure::TimedOut(timeout)),
            };
            if let Err(e) = &result {
                tracing::error!(step = %registered.step, "undo failed: {description}: {e}");
            } else {
                tracing::info!(step = %registered.step, "undone: {description}");
            }
            if result.is_err()
                && let Ok(mut failed) = self.failed.lock()
            {
                failed.push(registered.clone());
            }
            if let Ok(mut stack) = self.inner.lock() {
                stack.pop();
                if let Err(e) = self.persist(&stack) {
                    tracing::error!("{e}");
                }
            }
            outcomes.push(UndoOutcome {
                step: registered.step,
                description,
                result,
                elapsed: started.elapsed(),
            });
        }
        if let Ok(mut current) = self.current.lock() {
            *current = None;
        }
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::kube::KubeUndo;
    use crate::targets::local::LocalUndo;

    #[tokio::test]
    async fn undos_run_in_reverse_and_a_failure_does_not_stop_the_rest() {
        let stack = UndoStack::default();
        for i in 0..3 {
            stack
                .register(
                    &format!("s{i}"),
                    LocalUndo::Command {
                        argv: vec![format!("u{i}")],
                    },
                )
                .expect("register");
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let outcomes = stack
            .unwind(Duration::from_secs(1), move |undo| {
                let log = log.clone();
                async move {
                    let LocalUndo::Command { argv } = undo else {
                        return Ok(());
                    };
                    if let Ok(mut log) = log.lock() {
                        log.push(argv[0].clone());
                    }
                    if argv[0] == "u1" {
                        Err(TargetError::Incomplete("boom"))
                    } else {
                        Ok(())
                    }
                }
            })
            .await;
        assert_eq!(*seen.lock().expect("lock"), ["u2", "u1", "u0"]);
        assert_eq!(outcomes.iter().filter(|o| o.result.is_err()).count(), 1);
        assert!(stack.pending().is_empty());
    }

    #[tokio::test]
    async fn a_hanging_undo_times_out() {
        let stack = UndoStack::default();
        stack
            .register("s", LocalUndo::StopGroup { group: "g".into() })
            .expect("register");
        let outcomes = stack
            .unwind(Duration::from_millis(50), |_| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            })
            .await;
        assert!(
            outcomes[0]
                .result
                .as_ref()
                .is_err_and(|e| matches!(e, UndoFailure::TimedOut(_)))
        );
    }

    fn journaled_stack(dir: &std::path::Path) -> (UndoStack<KubeUndo>, std::path::PathBuf) {
        use super::super::journal::{self, Journal, JournalDoc, JournalTarget};
        let target = JournalTarget {
            context: "c".into(),
            namespace: "n".into(),
            kubeconfig: None,
        };
        let path = journal::path_for(dir, &target, "r1");
        let doc = JournalDoc {
            version: journal::JOURNAL_VERSION,
            run_id: "r1".into(),
            scenario: "s".into(),
            started_at: jiff::Timestamp::UNIX_EPOCH,
            pid: std::process::id(),
            target,
            pending: Vec::new(),
        };
        let stack = UndoStack::journaled(Journal {
            path: path.clone(),
            doc,
        });
        (stack, path)
    }

    #[tokio::test]
    async fn a_kept_change_leaves_the_stack_and_the_journal_and_is_never_undone() {
        use super::super::journal;
        let dir = tempfile::tempdir().expect("tempdir");
        let (stack, path) = journaled_stack(dir.path());
        for (step, deployment) in [("scale", "a"), ("promote", "b")] {
            let undo = KubeUndo::Scale {
                deployment: deployment.into(),
                replicas: 1,
            };
            stack.register(step, undo).expect("register");
        }
        assert_eq!(stack.keep("promote").expect("kept"), 1);
        assert_eq!(stack.keep("never-registered").expect("nothing to keep"), 0);
        let journaled = journal::read(&path).expect("journal");
        let steps: Vec<&str> = journaled.pending.iter().map(|r| r.step.as_str()).collect();
        assert_eq!(steps, ["scale"], "recover must not revert the kept change");
        let mut undone = Vec::new();
        let outcomes = stack
            .unwind(Duration::from_secs(1), |undo| {
                undone.push(undo);
                async { Ok(()) }
            })
            .await;
        assert_eq!(outcomes.len(), 1);
        assert!(matches!(&undone[..], [KubeUndo::Scale { deployment, .. }] if deployment == "a"));
    }

    #[tokio::test]
    async fn a_failed_undo_stays_in_the_journal_for_recover() {
        use super::super::journal;
        let dir = tempfile::tempdir().expect("tempdir");
        let (stack, path) = journaled_stack(dir.path());
        stack
            .register(
                "ok",
                KubeUndo::Scale {
                    deployment: "a".into(),
                    replicas: 1,
                },
            )
            .expect("register");
        stack
            .register(
                "bad",
                KubeUndo::Scale {
                    deployment: "b".into(),
                    replicas: 2,
                },
            )
            .expect("register");
        assert_eq!(
            journal::read(&path)
                .expect("journaled before apply")
                .pending
                .len(),
            2
        );
        stack
            .unwind(Duration::from_secs(1), |undo| async move {
                match undo {
                    KubeUndo::Scale { deployment, .. } if deployment == "b" => {
                        Err(TargetError::Incomplete("api down"))
                    }
                    _ => Ok(()),
                }
            })
            .await;
        let left = journal::read(&path).expect("the failed undo is still journaled");
        assert_eq!(left.pending.len(), 1);
        assert_eq!(left.pending[0].step, "bad");
    }
}
