//! The undo stack: every mutating step registers how to revert it *before* it is applied; on
//! every exit path the undos run in reverse order, each with a timeout, and a failing undo
//! does not stop the others.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::journal::Journal;

/// How to revert one applied fault. Serialisable: it is written to the undo journal.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Undo {
    /// Restore env vars of a local process group (None = unset) and roll it.
    LocalRestoreEnv {
        group: String,
        previous: BTreeMap<String, Option<String>>,
    },
    /// Stop a local process group that a step started.
    LocalStopGroup { group: String },
    /// Run a command (argv, no shell; already pinned to the scenario's context).
    Command { argv: Vec<String> },
    /// Scale a Deployment back to its previous replica count.
    KubeScale { deployment: String, replicas: i32 },
    /// Restore container env vars of a Deployment (None = remove).
    KubeRestoreEnv {
        deployment: String,
        container: Option<String>,
        previous: BTreeMap<String, Option<String>>,
    },
    /// Restore ConfigMap keys (None = remove).
    KubeRestoreConfigMap {
        name: String,
        previous: BTreeMap<String, Option<String>>,
    },
    /// `helm rollback <release> <revision>`.
    HelmRollback { release: String, revision: u32 },
}

fn assignments(values: &BTreeMap<String, Option<String>>) -> String {
    values
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => format!("unset {k}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Undo {
    pub fn describe(&self) -> String {
        match self {
            Undo::LocalRestoreEnv { group, previous } => {
                format!(
                    "restore env {} on `{group}` and roll it",
                    assignments(previous)
                )
            }
            Undo::KubeScale {
                deployment,
                replicas,
            } => format!("scale `{deployment}` back to {replicas} replicas"),
            Undo::KubeRestoreEnv {
                deployment,
                previous,
                ..
            } => {
                format!(
                    "restore env {} on deployment `{deployment}`",
                    assignments(previous)
                )
            }
            Undo::KubeRestoreConfigMap { name, previous } => {
                let keys: Vec<&str> = previous.keys().map(String::as_str).collect();
                format!("restore keys {} of configmap `{name}`", keys.join(", "))
            }
            Undo::HelmRollback { release, revision } => {
                format!("helm rollback `{release}` to revision {revision}")
            }
            Undo::LocalStopGroup { group } => format!("stop `{group}`"),
            Undo::Command { argv } => format!("run `{}`", argv.join(" ")),
        }
    }
}

/// An undo and the step that registered it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Registered {
    pub step: String,
    pub undo: Undo,
}

/// What happened when an undo ran.
#[derive(Debug, Clone)]
pub struct UndoOutcome {
    pub step: String,
    pub description: String,
    pub result: Result<(), String>,
    pub elapsed: Duration,
}

/// Registered undos, most recent last. Shared so the signal handler can say what is pending.
#[derive(Debug, Clone, Default)]
pub struct UndoStack {
    inner: Arc<Mutex<Vec<Registered>>>,
    current: Arc<Mutex<Option<String>>>,
    /// Undos that failed: kept in the journal so `drillbook recover` can retry them.
    failed: Arc<Mutex<Vec<Registered>>>,
    /// When set, every change to the stack is persisted before it takes effect.
    journal: Option<Arc<Mutex<Journal>>>,
}

impl UndoStack {
    /// A stack that persists itself to `journal`, starting with the undos it already holds
    /// (empty for a new run; a crashed run's leftovers for `recover`).
    pub fn journaled(journal: Journal) -> Self {
        let pending = journal.doc.pending.clone();
        Self {
            inner: Arc::new(Mutex::new(pending)),
            journal: Some(Arc::new(Mutex::new(journal))),
            ..Self::default()
        }
    }

    /// Undos that failed while unwinding (still journaled).
    pub fn failed(&self) -> Vec<Registered> {
        self.failed.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Registers an undo. With a journal, it is on disk (fsync'd) when this returns `Ok`; on
    /// `Err` nothing was registered and the step must not run.
    pub fn register(&self, step: &str, undo: Undo) -> Result<(), String> {
        let mut stack = self
            .inner
            .lock()
            .map_err(|_| "undo stack poisoned".to_string())?;
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

    fn persist(&self, stack: &[Registered]) -> Result<(), String> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let mut all = self.failed();
        all.extend_from_slice(stack);
        journal
            .lock()
            .map_err(|_| "undo journal poisoned".to_string())?
            .sync(&all)
            .map_err(|e| e.to_string())
    }

    pub fn pending(&self) -> Vec<Registered> {
        self.inner.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The undo being run right now, for a second Ctrl-C to report.
    pub fn in_progress(&self) -> Option<String> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    /// Runs every registered undo in reverse order with `apply`, each bounded by `timeout`.
    pub async fn unwind<F, Fut>(&self, timeout: Duration, mut apply: F) -> Vec<UndoOutcome>
    where
        F: FnMut(Undo) -> Fut,
        Fut: Future<Output = Result<(), String>>,
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
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {timeout:?}")),
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

    #[tokio::test]
    async fn undos_run_in_reverse_and_a_failure_does_not_stop_the_rest() {
        let stack = UndoStack::default();
        for i in 0..3 {
            stack
                .register(
                    &format!("s{i}"),
                    Undo::Command {
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
                    let Undo::Command { argv } = undo else {
                        return Ok(());
                    };
                    log.lock().map_err(|e| e.to_string())?.push(argv[0].clone());
                    if argv[0] == "u1" {
                        Err("boom".to_string())
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
            .register("s", Undo::LocalStopGroup { group: "g".into() })
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
                .is_err_and(|e| e.contains("timed out"))
        );
    }

    #[tokio::test]
    async fn a_failed_undo_stays_in_the_journal_for_recover() {
        use super::super::journal::{self, Journal, JournalDoc, JournalTarget};
        let dir = tempfile::tempdir().expect("tempdir");
        let target = JournalTarget {
            context: "c".into(),
            namespace: "n".into(),
            kubeconfig: None,
        };
        let path = journal::path_for(dir.path(), &target, "r1");
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
        stack
            .register(
                "ok",
                Undo::KubeScale {
                    deployment: "a".into(),
                    replicas: 1,
                },
            )
            .expect("register");
        stack
            .register(
                "bad",
                Undo::KubeScale {
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
                    Undo::KubeScale { deployment, .. } if deployment == "b" => {
                        Err("api down".to_string())
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
