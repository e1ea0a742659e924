//! The local target as a drill drives it: steps translated into supervisor calls, their undos,
//! and the process log turned into observations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use tokio::sync::mpsc::unbounded_channel;
use tokio::time::Instant;

use super::interpose::{FrontPlan, Fronts};
use super::{InstanceStatus, LocalError, LocalTarget, ProcessConfig, ProcessEvent};
use crate::report::model::PreflightResult;
use crate::scenario::describe::describe_action;
use crate::scenario::http_fault::HttpFault;
use crate::scenario::{Action, ProcessKind, Scenario, TargetKind};
use crate::support::alertmanager::SilenceUndo;
use crate::support::command;
use crate::targets::fault_spec;
use crate::targets::observe::{JobRecord, JobState, Labels, Obs, ObsKind, Observations, PodHealth};
use crate::targets::{Applied, Target, TargetError, UndoAction, assignments};
use crate::units::LabelSelector;

/// How long a rollout (restart or env change) of a group may take.
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an undo command may take.
const UNDO_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Every process event, in arrival order; shared with the task that receives them.
#[derive(Debug, Clone, Default)]
struct ProcessLog {
    events: Arc<Mutex<Vec<ProcessEvent>>>,
}

impl ProcessLog {
    /// Receives events until the sender side closes.
    fn collect(
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

    fn events(&self) -> Vec<ProcessEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

/// How to revert a step on the local target.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LocalUndo {
    /// Restore env vars of a process group (None = unset) and roll it.
    #[serde(rename = "local_restore_env")]
    RestoreEnv {
        group: String,
        previous: BTreeMap<String, Option<String>>,
    },
    /// Stop a process group that a step started.
    #[serde(rename = "local_stop_group")]
    StopGroup { group: String },
    /// Run a command (argv, no shell).
    Command { argv: Vec<String> },
    /// Expire the drill's Alertmanager silence (`silence:`).
    #[serde(rename = "expire_silence")]
    ExpireSilence(SilenceUndo),
    /// Forward a faulted port untouched again (`http_fault`).
    #[serde(rename = "local_clear_fault")]
    ClearFault { port: String },
}

impl From<SilenceUndo> for LocalUndo {
    fn from(silence: SilenceUndo) -> Self {
        Self::ExpireSilence(silence)
    }
}

impl UndoAction for LocalUndo {
    fn describe(&self) -> String {
        match self {
            LocalUndo::RestoreEnv { group, previous } => {
                format!(
                    "restore env {} on `{group}` and roll it",
                    assignments(previous)
                )
            }
            LocalUndo::StopGroup { group } => format!("stop `{group}`"),
            LocalUndo::Command { argv } => format!("run `{}`", argv.join(" ")),
            LocalUndo::ExpireSilence(silence) => silence.describe(),
            LocalUndo::ClearFault { port } => format!("clear the fault on port `{port}`"),
        }
    }
}

/// A started local target: the supervisor, the log of its process events, and the fault
/// proxies in front of faulted ports.
#[derive(Debug)]
pub struct LocalRun {
    target: LocalTarget,
    log: ProcessLog,
    collector: tokio::task::JoinHandle<()>,
    fronts: Fronts,
    /// When the drill should be over: faults fail open a margin after it.
    planned_end: jiff::Timestamp,
}

impl LocalRun {
    /// Listens on the faulted ports, starts the process groups and begins recording their
    /// events.
    pub async fn start(
        configs: Vec<ProcessConfig>,
        fronts: Vec<FrontPlan>,
        planned_end: jiff::Timestamp,
    ) -> Result<Self, LocalError> {
        let fronts = Fronts::start(fronts)
            .await
            .map_err(LocalError::FaultProxy)?;
        let (events_tx, events_rx) = unbounded_channel();
        let log = ProcessLog::default();
        let collector = log.collect(events_rx);
        let target = match LocalTarget::start(configs, events_tx).await {
            Ok(target) => target,
            Err(e) => {
                fronts.stop().await;
                return Err(e);
            }
        };
        Ok(Self {
            target,
            log,
            collector,
            fronts,
            planned_end,
        })
    }

    /// An `http_fault`: the fault set on the port's proxy.
    fn http_fault(&self, fault: &HttpFault, action: &Action) -> Result<Applied, TargetError> {
        let port = fault.port.as_ref().map(|p| p.value.as_str());
        let Some(plan) = port.and_then(|p| self.fronts.plan(p)) else {
            return Err(TargetError::Incomplete(
                "`http_fault` on a local target needs `port:` naming a port a process listens on",
            ));
        };
        let (spec, fail_open) = fault_spec::applied_now(fault, self.planned_end);
        self.fronts.set(&plan.port, Some(spec));
        Ok(Applied {
            description: format!("{} (fails open at {fail_open})", describe_action(action)),
            targets: vec![plan.words()],
            disrupted: Vec::new(),
        })
    }
}

impl Target for LocalRun {
    type Undo = LocalUndo;

    fn kind(&self) -> TargetKind {
        TargetKind::Local
    }

    async fn undo_for(&self, action: &Action) -> Result<Option<LocalUndo>, TargetError> {
        Ok(undo_for(&self.target, action))
    }

    async fn apply(&self, action: &Action, rng: &mut StdRng) -> Result<Applied, TargetError> {
        match action {
            Action::HttpFault(fault) => self.http_fault(fault, action),
            _ => apply(&self.target, action, rng).await,
        }
    }

    async fn undo(&self, undo: LocalUndo) -> Result<(), TargetError> {
        match undo {
            LocalUndo::ClearFault { port } => {
                self.fronts.set(&port, None);
                Ok(())
            }
            other => apply_undo(&self.target, other).await,
        }
    }

    async fn identities(&self, workload: &str) -> BTreeSet<String> {
        live_pids(&self.target.snapshot(), workload)
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    async fn observations(&self) -> Observations {
        Observations {
            faults: self.fronts.counts().collect(),
            ..observations(&self.target, &self.log)
        }
    }

    /// Service processes stand for pods: the ones not being stopped, their readiness and
    /// restarts (jobs are not counted, as Job pods are not in a Deployment's ready count).
    fn pod_health(&self, selector: &LabelSelector) -> Option<PodHealth> {
        let mut health = PodHealth::default();
        for instance in self.target.matching(selector) {
            if instance.kind != ProcessKind::Service || instance.stopping {
                continue;
            }
            health.pods += 1;
            health.not_ready += u32::from(!instance.ready);
            health.restarts += instance.restarts;
        }
        Some(health)
    }

    fn notable(&self) -> Vec<(Instant, String)> {
        Vec::new()
    }

    async fn jobs_running(&self) -> bool {
        jobs(&self.target.snapshot()).any(InstanceStatus::is_live)
    }

    async fn preflight(&self, scenario: &Scenario) -> Vec<PreflightResult> {
        super::preflight::run(scenario).await
    }

    async fn shutdown(self) {
        let report = self.target.shutdown().await;
        if !report.is_clean() {
            let pids: Vec<String> = report.survivors.iter().map(u32::to_string).collect();
            tracing::warn!(
                "processes still running after SIGKILL at shutdown: pid {}",
                pids.join(", ")
            );
        }
        self.fronts.stop().await;
        // The sender side is gone with the target; the collector ends by itself.
        drop(self.collector);
    }
}

/// The undo a step needs, computed *before* the step runs.
fn undo_for(target: &LocalTarget, action: &Action) -> Option<LocalUndo> {
    match action {
        Action::PatchEnv(p) => {
            let current = target.env_of(&p.deployment.value).unwrap_or_default();
            let previous: BTreeMap<String, Option<String>> = p
                .env
                .keys()
                .map(|k| (k.clone(), current.get(k).cloned()))
                .collect();
            Some(LocalUndo::RestoreEnv {
                group: p.deployment.value.clone(),
                previous,
            })
        }
        Action::StartProcess(p) => Some(LocalUndo::StopGroup {
            group: p.name.value.clone(),
        }),
        Action::Command(c) => c.undo.clone().map(|argv| LocalUndo::Command { argv }),
        Action::HttpFault(f) => f.port.as_ref().map(|p| LocalUndo::ClearFault {
            port: p.value.clone(),
        }),
        _ => None,
    }
}

/// Applies one step to the local target.
async fn apply(
    target: &LocalTarget,
    action: &Action,
    rng: &mut StdRng,
) -> Result<Applied, TargetError> {
    match action {
        Action::KillProcess(k) => {
            let killed = target
                .kill(&k.name.value, k.count, k.signal, k.mode, rng)
                .await?;
            if killed.is_empty() {
                return Err(TargetError::NothingToKill(k.name.value.clone()));
            }
            Ok(Applied {
                description: describe_action(action),
                targets: killed
                    .iter()
                    .map(|i| format!("{}#{} (pid {})", i.name, i.instance, i.pid))
                    .collect(),
                disrupted: group_labels(target, &k.name.value),
            })
        }
        Action::StartProcess(p) => {
            target.start_group(&p.name.value).await?;
            Ok(Applied {
                description: describe_action(action),
                targets: pids_of(target, &p.name.value),
                disrupted: Vec::new(),
            })
        }
        Action::RolloutRestart(w) => {
            target
                .rollout_restart(&w.deployment.value, ROLLOUT_TIMEOUT)
                .await?;
            Ok(Applied {
                description: describe_action(action),
                targets: pids_of(target, &w.deployment.value),
                disrupted: group_labels(target, &w.deployment.value),
            })
        }
        Action::PatchEnv(p) => {
            target
                .patch_env(&p.deployment.value, &p.env, ROLLOUT_TIMEOUT)
                .await?;
            Ok(Applied {
                description: describe_action(action),
                targets: pids_of(target, &p.deployment.value),
                disrupted: group_labels(target, &p.deployment.value),
            })
        }
        Action::WaitReady(w) => {
            let name = w
                .name
                .as_ref()
                .map(|n| n.value.clone())
                .ok_or(TargetError::Incomplete(
                    "wait_ready on a local target needs `name`",
                ))?;
            let waited = target.wait_ready(&name, w.timeout.0).await?;
            Ok(Applied::described(format!(
                "`{name}` ready after {:.1}s",
                waited.as_secs_f64()
            )))
        }
        Action::Wait(d) => {
            tokio::time::sleep(d.0).await;
            Ok(Applied::described(describe_action(action)))
        }
        Action::Command(c) => {
            let output = command::run(&c.argv, &c.env, c.timeout.0).await?;
            if output.status != Some(0) {
                return Err(TargetError::Exited {
                    argv: c.argv.join(" "),
                    status: output.status,
                    stderr_tail: output.stderr_tail(),
                });
            }
            Ok(Applied::described(describe_action(action)))
        }
        other => Err(TargetError::not_runnable(other, TargetKind::Local)),
    }
}

/// Applies an undo to the local target.
async fn apply_undo(target: &LocalTarget, undo: LocalUndo) -> Result<(), TargetError> {
    match undo {
        LocalUndo::RestoreEnv { group, previous } => {
            target.set_env(&group, &previous, ROLLOUT_TIMEOUT).await?;
            Ok(())
        }
        LocalUndo::StopGroup { group } => Ok(target.stop_group(&group).await?),
        LocalUndo::Command { argv } => {
            let output = command::run(&argv, &BTreeMap::new(), UNDO_COMMAND_TIMEOUT).await?;
            if output.status == Some(0) {
                Ok(())
            } else {
                Err(TargetError::UndoExited {
                    status: output.status,
                })
            }
        }
        LocalUndo::ExpireSilence(silence) => silence.apply().await.map(drop).map_err(Into::into),
        // The run's fronts clear it (`LocalRun::undo`); a bare target has none to clear.
        LocalUndo::ClearFault { .. } => Ok(()),
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
fn live_pids(snapshot: &[InstanceStatus], group: &str) -> Vec<u32> {
    snapshot
        .iter()
        .filter(|i| i.name == group && i.is_live())
        .filter_map(|i| i.pid)
        .collect()
}

/// Job instances, for the jobs check.
fn jobs(snapshot: &[InstanceStatus]) -> impl Iterator<Item = &InstanceStatus> {
    snapshot.iter().filter(|i| i.kind == ProcessKind::Job)
}

fn group_labels(target: &LocalTarget, group: &str) -> Vec<Labels> {
    target
        .config_of(group)
        .map(|c| vec![c.labels])
        .unwrap_or_default()
}

/// The process log and the final state, in target-neutral terms.
fn observations(target: &LocalTarget, log: &ProcessLog) -> Observations {
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
    Observations {
        events,
        jobs,
        ..Observations::default()
    }
}
