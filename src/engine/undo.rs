//! The undo stack: every mutating step registers how to revert it *before* it is applied; on
//! every exit path the undos run in reverse order, each with a timeout, and a failing undo
//! does not stop the others.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to revert one applied fault.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone)]
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
}

impl UndoStack {
    pub fn register(&self, step: &str, undo: Undo) {
        if let Ok(mut stack) = self.inner.lock() {
            stack.push(Registered {
                step: step.to_string(),
                undo,
            });
        }
    }

    /// Drops the most recent registration (its step failed before changing anything).
    pub fn forget_last(&self) {
        if let Ok(mut stack) = self.inner.lock() {
            stack.pop();
        }
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
            let next = self.inner.lock().ok().and_then(|mut s| s.pop());
            let Some(registered) = next else { break };
            let description = registered.undo.describe();
            if let Ok(mut current) = self.current.lock() {
                *current = Some(description.clone());
            }
            let started = tokio::time::Instant::now();
            let result = match tokio::time::timeout(timeout, apply(registered.undo)).await {
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {timeout:?}")),
            };
            if let Err(e) = &result {
                tracing::error!(step = %registered.step, "undo failed: {description}: {e}");
            } else {
                tracing::info!(step = %registered.step, "undone: {description}");
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
            stack.register(
                &format!("s{i}"),
                Undo::Command {
                    argv: vec![format!("u{i}")],
                },
            );
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
        stack.register("s", Undo::LocalStopGroup { group: "g".into() });
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
}
