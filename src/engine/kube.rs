//! Steps, undos and observations on a Kubernetes target. Every kubectl/helm argv is pinned to
//! the scenario's context and namespace by [`KubeTarget`]; nothing here reads a kubeconfig.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use rand::rngs::StdRng;
use tokio::time::Instant;

use super::local::Applied;
use super::observe::{JobRecord, JobState, Obs, ObsKind, Observations};
use super::undo::Undo;
use crate::scenario::{Action, CheckKind, HelmUndo, Scenario};
use crate::targets::kube::{KilledPod, KubeEventKind, KubeTarget, Observer};
use crate::units::LabelSelector;

/// Slack on top of a helm `--timeout` before drillbook gives up on the process.
const HELM_GRACE: Duration = Duration::from_secs(30);

/// A connected Kubernetes target and the watchers that observe it.
#[derive(Debug)]
pub struct KubeRun {
    pub target: KubeTarget,
    pub observer: Observer,
    /// The same moment on both clocks, to place wall-clock Job start times on the run's timeline.
    reference: (Instant, Timestamp),
}

/// The selectors worth watching: what the steps touch and what the checks look at.
fn watched_selectors(scenario: &Scenario) -> (Vec<LabelSelector>, Vec<LabelSelector>) {
    let mut pods = Vec::new();
    let mut jobs = Vec::new();
    for step in scenario.steps.iter().chain(&scenario.finally) {
        match &step.value.action {
            Action::KillPods(k) => pods.push(k.selector.value.clone()),
            Action::Evict(e) => pods.push(e.selector.value.clone()),
            Action::WaitReady(w) => pods.extend(w.selector.as_ref().map(|s| s.value.clone())),
            _ => {}
        }
    }
    for check in &scenario.checks {
        match &check.value.kind {
            CheckKind::Restarts(r) => pods.push(r.selector.value.clone()),
            CheckKind::ReadyWithin(r) => pods.push(r.selector.value.clone()),
            CheckKind::Jobs(j) => jobs.push(j.selector.value.clone()),
            _ => {}
        }
    }
    pods.dedup();
    jobs.dedup();
    (pods, jobs)
}

impl KubeRun {
    pub fn start(target: KubeTarget, scenario: &Scenario) -> Self {
        let (pods, jobs) = watched_selectors(scenario);
        let observer = target.observe(pods, jobs);
        Self {
            target,
            observer,
            reference: (Instant::now(), Timestamp::now()),
        }
    }

    fn instant_of(&self, wall: Timestamp) -> Instant {
        let (instant, reference) = self.reference;
        let delta = wall.duration_since(reference).as_secs_f64();
        if delta >= 0.0 {
            instant + Duration::from_secs_f64(delta)
        } else {
            instant
                .checked_sub(Duration::from_secs_f64(-delta))
                .unwrap_or(instant)
        }
    }

    /// The undo of `action`, read from the cluster before the action runs.
    pub async fn undo_for(&self, action: &Action) -> Result<Option<Undo>, String> {
        let t = &self.target;
        let undo = match action {
            Action::Scale(s) => Some(Undo::KubeScale {
                deployment: s.deployment.value.clone(),
                replicas: t
                    .replicas(&s.deployment.value)
                    .await
                    .map_err(|e| e.to_string())?,
            }),
            Action::PatchEnv(p) => {
                let current = t
                    .env_of(&p.deployment.value, p.container.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                let previous = p
                    .env
                    .keys()
                    .map(|k| (k.clone(), current.get(k).cloned().flatten()))
                    .collect();
                Some(Undo::KubeRestoreEnv {
                    deployment: p.deployment.value.clone(),
                    container: p.container.clone(),
                    previous,
                })
            }
            Action::PatchConfigmap(c) => {
                let keys: Vec<String> = c.data.keys().cloned().collect();
                let previous = t
                    .configmap_data(&c.name.value, &keys)
                    .await
                    .map_err(|e| e.to_string())?;
                Some(Undo::KubeRestoreConfigMap {
                    name: c.name.value.clone(),
                    previous,
                })
            }
            Action::HelmUpgrade(h) if h.undo == HelmUndo::Rollback => Some(Undo::HelmRollback {
                release: h.release.value.clone(),
                revision: t
                    .helm_revision(&h.release.value)
                    .await
                    .map_err(|e| e.to_string())?,
            }),
            Action::Command(c) => match &c.undo {
                Some(argv) => Some(Undo::Command {
                    argv: t.pin_command(argv).map_err(|e| e.to_string())?,
                }),
                None => None,
            },
            _ => None,
        };
        Ok(undo)
    }

    pub async fn apply(&self, action: &Action, rng: &mut StdRng) -> Result<Applied, String> {
        let t = &self.target;
        let described = crate::plan::describe_action(action);
        let plain = |description: String| Applied {
            description,
            ..Applied::default()
        };
        match action {
            Action::KillPods(k) => Ok(killed(
                described,
                &t.kill_pods(k, rng).await.map_err(|e| e.to_string())?,
            )),
            Action::Evict(e) => Ok(killed(
                described,
                &t.evict(e, rng).await.map_err(|e| e.to_string())?,
            )),
            Action::RolloutRestart(w) => {
                t.rollout_restart(&w.deployment.value)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(plain(described))
            }
            Action::Scale(s) => {
                let replicas =
                    i32::try_from(s.replicas).map_err(|_| "replicas out of range".to_string())?;
                t.scale(&s.deployment.value, replicas)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(plain(described))
            }
            Action::PatchEnv(p) => {
                let env = set_all(&p.env);
                t.patch_env(&p.deployment.value, p.container.as_deref(), &env)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(plain(described))
            }
            Action::PatchConfigmap(c) => {
                let data = set_all(&c.data);
                t.patch_configmap(&c.name.value, &data)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(plain(described))
            }
            Action::HelmUpgrade(h) => {
                let argv = t.helm_upgrade_argv(h).map_err(|e| e.to_string())?;
                let shown = KubeTarget::redacted(&argv, h).join(" ");
                let out = t
                    .run_tool(&argv, &BTreeMap::new(), h.timeout.0 + HELM_GRACE)
                    .await
                    .map_err(|e| e.to_string())?;
                if out.status != Some(0) {
                    return Err(format!(
                        "`{shown}` exited with {:?}: {}",
                        out.status,
                        out.stderr_tail()
                    ));
                }
                Ok(plain(format!("ran `{shown}`")))
            }
            Action::Command(c) => {
                let argv = t.pin_command(&c.argv).map_err(|e| e.to_string())?;
                let out = t
                    .run_tool(&argv, &c.env, c.timeout.0)
                    .await
                    .map_err(|e| e.to_string())?;
                if out.status != Some(0) {
                    return Err(format!(
                        "`{}` exited with {:?}: {}",
                        argv.join(" "),
                        out.status,
                        out.stderr_tail()
                    ));
                }
                Ok(plain(format!("ran `{}`", argv.join(" "))))
            }
            Action::WaitRollout(w) => {
                let took = t
                    .wait_rollout(&w.deployment.value, w.timeout.0)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(plain(format!(
                    "rollout of `{}` complete after {:.1}s",
                    w.deployment.value,
                    took.as_secs_f64()
                )))
            }
            Action::WaitReady(w) => {
                let selector = w
                    .selector
                    .as_ref()
                    .ok_or("wait_ready on a Kubernetes target needs `selector`")?;
                let took = t
                    .wait_pods_ready(&selector.value, w.timeout.0)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(plain(format!(
                    "`{}` ready after {:.1}s",
                    selector.value,
                    took.as_secs_f64()
                )))
            }
            Action::Wait(d) => {
                tokio::time::sleep(d.0).await;
                Ok(plain(described))
            }
            Action::KillProcess(_) | Action::StartProcess(_) => {
                Err(format!("`{}` needs a local target", action.kind()))
            }
        }
    }

    pub async fn undo(&self, undo: Undo) -> Result<(), String> {
        apply_undo(&self.target, undo).await
    }

    /// Pod-template hashes of a Deployment's current pods.
    pub async fn identities(&self, deployment: &str) -> BTreeSet<String> {
        self.target
            .template_hashes(deployment)
            .await
            .unwrap_or_default()
    }

    pub fn observations(&self) -> Observations {
        let mut events = Vec::new();
        let mut jobs: BTreeMap<String, JobRecord> = BTreeMap::new();
        for event in self.observer.events() {
            match event.kind {
                KubeEventKind::PodReady { name, labels } => events.push(Obs {
                    at: event.at,
                    kind: ObsKind::Ready,
                    name,
                    labels,
                }),
                KubeEventKind::ContainerRestarted { pod, labels, .. } => {
                    events.push(Obs {
                        at: event.at,
                        kind: ObsKind::Restart,
                        name: pod,
                        labels,
                    });
                }
                KubeEventKind::JobActive {
                    name,
                    labels,
                    started,
                } => {
                    jobs.entry(name.clone())
                        .or_insert_with(|| self.job(name, labels, started, JobState::Running));
                }
                KubeEventKind::JobSucceeded {
                    name,
                    labels,
                    started,
                } => {
                    jobs.insert(
                        name.clone(),
                        self.job(name, labels, started, JobState::Succeeded),
                    );
                }
                KubeEventKind::JobFailed {
                    name,
                    labels,
                    started,
                    reason,
                } => {
                    jobs.insert(
                        name.clone(),
                        self.job(name, labels, started, JobState::Failed(reason)),
                    );
                }
                _ => {}
            }
        }
        Observations {
            events,
            jobs: jobs.into_values().collect(),
        }
    }

    fn job(
        &self,
        name: String,
        labels: BTreeMap<String, String>,
        started: Option<Timestamp>,
        state: JobState,
    ) -> JobRecord {
        JobRecord {
            name,
            labels,
            started: started.map(|s| self.instant_of(s)),
            state,
        }
    }

    /// Warning events and Job failures, for the report's timeline.
    pub fn notable(&self) -> Vec<(Instant, String)> {
        self.observer
            .events()
            .into_iter()
            .filter_map(|e| match e.kind {
                KubeEventKind::WarningEvent {
                    reason,
                    message,
                    object,
                } => Some((e.at, format!("Warning {reason} on {object}: {message}"))),
                KubeEventKind::JobFailed { name, reason, .. } => {
                    Some((e.at, format!("Job {name} failed: {reason}")))
                }
                _ => None,
            })
            .collect()
    }

    pub fn jobs_running(&self) -> bool {
        self.observations()
            .jobs
            .iter()
            .any(|j| j.state == JobState::Running)
    }
}

fn killed(description: String, pods: &[KilledPod]) -> Applied {
    Applied {
        description,
        targets: pods
            .iter()
            .map(|k| {
                if k.already_gone {
                    format!("{} (already gone)", k.pod.name)
                } else {
                    k.pod.name.clone()
                }
            })
            .collect(),
        disrupted: pods.iter().map(|k| k.pod.labels.clone()).collect(),
    }
}

async fn run_ok(t: &KubeTarget, argv: &[String]) -> Result<(), String> {
    let out = t
        .run_tool(argv, &BTreeMap::new(), Duration::from_secs(300))
        .await
        .map_err(|e| e.to_string())?;
    if out.status == Some(0) {
        Ok(())
    } else {
        Err(format!(
            "`{}` exited with {:?}: {}",
            argv.join(" "),
            out.status,
            out.stderr_tail()
        ))
    }
}

/// Applies one undo to a Kubernetes target (during a run's unwind, or from `drillbook recover`).
pub async fn apply_undo(t: &KubeTarget, undo: Undo) -> Result<(), String> {
    match undo {
        Undo::KubeScale {
            deployment,
            replicas,
        } => t
            .scale(&deployment, replicas)
            .await
            .map_err(|e| e.to_string()),
        Undo::KubeRestoreEnv {
            deployment,
            container,
            previous,
        } => t
            .patch_env(&deployment, container.as_deref(), &previous)
            .await
            .map_err(|e| e.to_string()),
        Undo::KubeRestoreConfigMap { name, previous } => t
            .patch_configmap(&name, &previous)
            .await
            .map_err(|e| e.to_string()),
        Undo::HelmRollback { release, revision } => {
            run_ok(t, &t.helm_rollback_argv(&release, revision)).await
        }
        Undo::Command { argv } => run_ok(t, &argv).await,
        Undo::LocalRestoreEnv { .. } | Undo::LocalStopGroup { .. } => {
            Err("a local undo cannot run on a Kubernetes target".into())
        }
    }
}

/// `key=value` assignments in the form the patch functions take (`None` would remove a key).
fn set_all(values: &BTreeMap<String, String>) -> BTreeMap<String, Option<String>> {
    values
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect()
}
