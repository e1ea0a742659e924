//! Steps and observations against the local target (supervised processes).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;

use super::observe::{JobRecord, JobState, Labels, Obs, ObsKind, Observations};
use super::undo::Undo;
use crate::scenario::{Action, ProcessKind};
use crate::targets::local::{InstanceStatus, LocalTarget, ProcessEvent};

/// Every process event, in arrival order; shared with the task that receives them.
#[derive(Debug, Clone, Default)]
pub struct ProcessLog {
    events: Arc<Mutex<Vec<ProcessEvent>>>,
}

impl ProcessLog {
    /// Receives events until the sender side closes.
    pub fn collect(
        &self,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<ProcessEvent>,
    ) -> tokio::task::JoinHandle<()> {
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if let Ok(mut e) = events.lock() {
                    e.push(event);
                }
            }
        })
    }

    pub fn events(&self) -> Vec<ProcessEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

/// What one applied step did, for the timeline.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub description: String,
    pub targets: Vec<String>,
    /// Labels of what the step disrupted, to find when that workload was ready again.
    pub disrupted: Vec<Labels>,
}

/// The undo a step needs, computed *before* the step runs.
pub fn undo_for(target: &LocalTarget, action: &Action) -> Option<Undo> {
    match action {
        Action::PatchEnv(p) => {
            let current = target.env_of(&p.deployment.value).unwrap_or_default();
            let previous: BTreeMap<String, Option<String>> = p
                .env
                .keys()
                .map(|k| (k.clone(), current.get(k).cloned()))
                .collect();
            Some(Undo::LocalRestoreEnv {
                group: p.deployment.value.clone(),
                previous,
            })
        }
        Action::StartProcess(p) => Some(Undo::LocalStopGroup {
            group: p.name.value.clone(),
        }),
        Action::Command(c) => c.undo.clone().map(|argv| Undo::Command { argv }),
        _ => None,
    }
}

/// Applies one step to the local target.
pub async fn apply(
    target: &LocalTarget,
    action: &Action,
    rng: &mut StdRng,
) -> Result<Applied, String> {
    match action {
        Action::KillProcess(k) => {
            let killed = target
                .kill(&k.name.value, k.count, k.signal, k.mode, rng)
                .await
                .map_err(|e| e.to_string())?;
            if killed.is_empty() {
                return Err(format!("no running process of `{}` to kill", k.name.value));
            }
            Ok(Applied {
                description: crate::plan::describe_action(action),
                targets: killed
                    .iter()
                    .map(|i| format!("{}#{} (pid {})", i.name, i.instance, i.pid))
                    .collect(),
                disrupted: group_labels(target, &k.name.value),
            })
        }
        Action::StartProcess(p) => {
            target
                .start_group(&p.name.value)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Applied {
                description: crate::plan::describe_action(action),
                targets: pids_of(target, &p.name.value),
                disrupted: Vec::new(),
            })
        }
        Action::RolloutRestart(w) => {
            target
                .rollout_restart(&w.deployment.value, Duration::from_secs(120))
                .await
                .map_err(|e| e.to_string())?;
            Ok(Applied {
                description: crate::plan::describe_action(action),
                targets: pids_of(target, &w.deployment.value),
                disrupted: group_labels(target, &w.deployment.value),
            })
        }
        Action::PatchEnv(p) => {
            target
                .patch_env(&p.deployment.value, &p.env, Duration::from_secs(120))
                .await
                .map_err(|e| e.to_string())?;
            Ok(Applied {
                description: crate::plan::describe_action(action),
                targets: pids_of(target, &p.deployment.value),
                disrupted: group_labels(target, &p.deployment.value),
            })
        }
        Action::WaitReady(w) => {
            let name = w
                .name
                .as_ref()
                .map(|n| n.value.clone())
                .ok_or("wait_ready on a local target needs `name`")?;
            let waited = target
                .wait_ready(&name, w.timeout.0)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Applied {
                description: format!("`{name}` ready after {:.1}s", waited.as_secs_f64()),
                ..Applied::default()
            })
        }
        Action::Wait(d) => {
            tokio::time::sleep(d.0).await;
            Ok(Applied {
                description: crate::plan::describe_action(action),
                ..Applied::default()
            })
        }
        Action::Command(c) => {
            let output = super::command::run(&c.argv, &c.env, c.timeout.0).await?;
            if output.status != Some(0) {
                return Err(format!(
                    "`{}` exited with {:?}: {}",
                    c.argv.join(" "),
                    output.status,
                    output.stderr_tail()
                ));
            }
            Ok(Applied {
                description: crate::plan::describe_action(action),
                ..Applied::default()
            })
        }
        other => Err(format!(
            "`{}` is not available on a local target",
            other.kind()
        )),
    }
}

/// Applies an undo to the local target.
pub async fn undo(target: &LocalTarget, undo: Undo) -> Result<(), String> {
    match undo {
        Undo::LocalRestoreEnv { group, previous } => target
            .set_env(&group, &previous, Duration::from_secs(120))
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        Undo::LocalStopGroup { group } => {
            target.stop_group(&group).await.map_err(|e| e.to_string())
        }
        Undo::Command { argv } => {
            let output =
                super::command::run(&argv, &BTreeMap::new(), Duration::from_secs(60)).await?;
            if output.status == Some(0) {
                Ok(())
            } else {
                Err(format!("exited with {:?}", output.status))
            }
        }
        other => Err(format!(
            "`{}` cannot run on a local target",
            other.describe()
        )),
    }
}

fn pids_of(target: &LocalTarget, group: &str) -> Vec<String> {
    target
        .snapshot()
        .into_iter()
        .filter(|i| i.name == group && i.is_live())
        .map(|i| format!("{} (pid {})", i.instance_name(), i.pid.unwrap_or_default()))
        .collect()
}

/// Live pids of a group (to tell whether a step really rolled it).
pub fn live_pids(snapshot: &[InstanceStatus], group: &str) -> Vec<u32> {
    snapshot
        .iter()
        .filter(|i| i.name == group && i.is_live())
        .filter_map(|i| i.pid)
        .collect()
}

/// Job instances, for the jobs check.
pub fn jobs(snapshot: &[InstanceStatus]) -> impl Iterator<Item = &InstanceStatus> {
    snapshot.iter().filter(|i| i.kind == ProcessKind::Job)
}

fn group_labels(target: &LocalTarget, group: &str) -> Vec<Labels> {
    target
        .config_of(group)
        .map(|c| vec![c.labels])
        .unwrap_or_default()
}

/// The process log and the final state, in target-neutral terms.
pub fn observations(target: &LocalTarget, log: &ProcessLog) -> Observations {
    let labels_of = |group: &str| {
        target
            .config_of(group)
            .map(|c| c.labels)
            .unwrap_or_default()
    };
    let events = log
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ProcessEvent::Ready {
                name, instance, at, ..
            } => Some(Obs {
                at,
                kind: ObsKind::Ready,
                labels: labels_of(&name),
                name: format!("{name}-{instance}"),
            }),
            ProcessEvent::Restarting {
                name, instance, at, ..
            } => Some(Obs {
                at,
                kind: ObsKind::Restart,
                labels: labels_of(&name),
                name: format!("{name}-{instance}"),
            }),
            _ => None,
        })
        .collect();
    let jobs = jobs(&target.snapshot())
        .map(|i| JobRecord {
            name: i.instance_name(),
            labels: i.labels.clone(),
            started: i.started_at.or(Some(i.created_at)),
            state: match &i.exited {
                None => JobState::Running,
                Some(e) if e.succeeded() => JobState::Succeeded,
                Some(e) => JobState::Failed(match (e.code, e.signal) {
                    (Some(code), _) => format!("exit {code}"),
                    (None, Some(signal)) => format!("signal {signal}"),
                    (None, None) => "unknown exit".into(),
                }),
            },
        })
        .collect();
    Observations { events, jobs }
}
