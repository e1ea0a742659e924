//! The Kubernetes target as a drill drives it: steps translated into API calls and pinned
//! helm/kubectl runs, their undos (read before apply), and the watchers' events turned into
//! observations. Every kubectl/helm argv is pinned to the scenario's context and namespace by
//! [`KubeTarget`]; nothing here reads a kubeconfig.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use rand::rngs::StdRng;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::undo::KubeUndo;
use super::{KilledPod, KubeEventKind, KubeTarget, Observer, resource_steps};
use crate::report::model::PreflightResult;
use crate::scenario::describe::describe_action;
use crate::scenario::{Action, Check, CheckKind, HelmUndo, Scenario, TargetKind};
use crate::targets::fleet::{FleetEvent, FleetSpec};
use crate::targets::observe::{
    FaultCounts, JobRecord, JobState, LogMatches, Obs, ObsKind, Observations, PodHealth,
};
use crate::targets::{Applied, Target, TargetError, fault_spec};
use crate::units::LabelSelector;

/// Slack on top of a helm `--timeout` before drillbook gives up on the process.
const HELM_GRACE: Duration = Duration::from_secs(30);

/// A connected Kubernetes target and the watchers that observe it.
#[derive(Debug)]
pub struct KubeRun {
    target: KubeTarget,
    observer: Observer,
    /// The same moment on both clocks, to place wall-clock Job start times on the run's timeline.
    reference: (Instant, Timestamp),
    /// The checks whose data the target gathers at the end (`logs`, `version`).
    checks: Vec<Check>,
    /// When the drill should be over (its load's end), from which fault proxies fail open.
    planned_end: Timestamp,
    /// The Services `http_fault` steps interpose on: their proxies' counts are read at the end.
    faulted_services: Vec<String>,
}

/// The selectors worth watching: what the steps touch and what the checks look at.
fn watched_selectors(scenario: &Scenario) -> (Vec<LabelSelector>, Vec<LabelSelector>) {
    let mut pods = Vec::new();
    let mut jobs = Vec::new();
    for step in scenario.every_step() {
        match &step.value.action {
            Action::KillPods(k) => pods.push(k.selector.value.clone()),
            Action::Evict(e) => pods.push(e.selector.value.clone()),
            Action::WaitReady(w) => pods.extend(w.selector.as_ref().map(|s| s.value.clone())),
            _ => {}
        }
    }
    for guard in &scenario.abort_when {
        pods.extend(
            guard
                .value
                .not_ready
                .as_ref()
                .map(|n| n.selector.value.clone()),
        );
        pods.extend(
            guard
                .value
                .restarts
                .as_ref()
                .map(|r| r.selector.value.clone()),
        );
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
        let configmaps = scenario
            .checks
            .iter()
            .filter_map(|c| match &c.value.kind {
                CheckKind::Configmap(m) => Some((m.name.value.clone(), m.interval.0)),
                _ => None,
            })
            .collect();
        let observer = target.observe_with_configmaps(pods, jobs, configmaps);
        Self {
            target,
            observer,
            reference: (Instant::now(), Timestamp::now()),
            checks: scenario.checks.iter().map(|c| c.value.clone()).collect(),
            planned_end: fault_spec::planned_end(scenario),
            faulted_services: scenario
                .steps
                .iter()
                .filter_map(|s| match &s.value.action {
                    Action::HttpFault(f) => f.service.as_ref().map(|s| s.value.clone()),
                    _ => None,
                })
                .collect(),
        }
    }

    /// An `http_fault`: fault proxies interposed in front of the Service (`interpose.rs`).
    async fn http_fault(
        &self,
        fault: &crate::scenario::http_fault::HttpFault,
        described: String,
    ) -> Result<Applied, TargetError> {
        let (Some(service), Some(image)) = (&fault.service, &fault.image) else {
            return Err(TargetError::Incomplete(
                "`http_fault` needs `service:` and `image:` on a kubernetes target",
            ));
        };
        let (spec, fail_open) = fault_spec::applied_now(fault, self.planned_end);
        let proxies = self
            .target
            .interpose(&service.value, &image.value, fault.replicas, &spec)
            .await?;
        Ok(Applied {
            description: format!("{described} (fails open at {fail_open})"),
            targets: proxies,
            disrupted: Vec::new(),
        })
    }

    /// The pinned client (its context and namespace name the run's journal).
    pub fn target(&self) -> &KubeTarget {
        &self.target
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
    async fn read_undo(&self, action: &Action) -> Result<Option<KubeUndo>, TargetError> {
        let t = &self.target;
        let undo = match action {
            Action::Scale(s) => Some(KubeUndo::Scale {
                deployment: s.deployment.value.clone(),
                replicas: t.replicas(&s.deployment.value).await?,
            }),
            Action::PatchEnv(p) => {
                let current = t
                    .env_of(&p.deployment.value, p.container.as_deref())
                    .await?;
                let previous = p
                    .env
                    .keys()
                    .map(|k| (k.clone(), current.get(k).cloned().flatten()))
                    .collect();
                Some(KubeUndo::RestoreEnv {
                    deployment: p.deployment.value.clone(),
                    container: p.container.clone(),
                    previous,
                })
            }
            Action::PatchConfigmap(c) => {
                let keys: Vec<String> = c.data.keys().cloned().collect();
                let previous = t.configmap_data(&c.name.value, &keys).await?;
                Some(KubeUndo::RestoreConfigMap {
                    name: c.name.value.clone(),
                    previous,
                })
            }
            Action::HelmUpgrade(h) if h.undo == HelmUndo::Rollback => {
                Some(KubeUndo::HelmRollback {
                    release: h.release.value.clone(),
                    revision: t.helm_revision(&h.release.value).await?,
                })
            }
            Action::Command(c) => match &c.undo {
                Some(argv) => Some(KubeUndo::Command {
                    argv: t.pin_command(argv)?,
                }),
                None => None,
            },
            Action::SetImage(_) | Action::RolloutUndo(_) | Action::Patch(_) => {
                Some(resource_steps::read_undo(t, action).await?)
            }
            Action::HttpFault(f) => {
                let service = f.service.as_ref().ok_or(TargetError::Incomplete(
                    "`http_fault` needs `service:` on a kubernetes target",
                ))?;
                Some(t.interposition_undo(&service.value).await?)
            }
            _ => None,
        };
        Ok(undo)
    }

    async fn apply_step(&self, action: &Action, rng: &mut StdRng) -> Result<Applied, TargetError> {
        let t = &self.target;
        let described = describe_action(action);
        let plain = Applied::described;
        match action {
            Action::KillPods(k) => Ok(killed(described, &t.kill_pods(k, rng).await?)),
            Action::Evict(e) => Ok(killed(described, &t.evict(e, rng).await?)),
            Action::RolloutRestart(w) => {
                t.rollout_restart(&w.deployment.value).await?;
                Ok(plain(described))
            }
            Action::Scale(s) => {
                let replicas = i32::try_from(s.replicas)
                    .map_err(|_| TargetError::Incomplete("replicas out of range"))?;
                t.scale(&s.deployment.value, replicas).await?;
                Ok(plain(described))
            }
            Action::PatchEnv(p) => {
                let env = set_all(&p.env);
                t.patch_env(&p.deployment.value, p.container.as_deref(), &env)
                    .await?;
                Ok(plain(described))
            }
            Action::PatchConfigmap(c) => {
                let data = set_all(&c.data);
                t.patch_configmap(&c.name.value, &data).await?;
                Ok(plain(described))
            }
            Action::HelmUpgrade(h) => {
                // Removed when this arm ends, whatever helm did.
                let secrets =
                    super::commands::secret_values_file(h).map_err(super::KubeError::from)?;
                let argv = t.helm_upgrade_argv(h, secrets.as_ref().map(|f| f.path()))?;
                let shown = KubeTarget::redacted(&argv, h).join(" ");
                let out = t
                    .run_tool(&argv, &BTreeMap::new(), h.timeout.0 + HELM_GRACE)
                    .await?;
                if out.status != Some(0) {
                    return Err(TargetError::Exited {
                        argv: shown,
                        status: out.status,
                        stderr_tail: out.stderr_tail(),
                    });
                }
                Ok(plain(format!("ran `{shown}`")))
            }
            Action::Command(c) => {
                let argv = t.pin_command(&c.argv)?;
                let out = t.run_tool(&argv, &c.env, c.timeout.0).await?;
                if out.status != Some(0) {
                    return Err(TargetError::Exited {
                        argv: argv.join(" "),
                        status: out.status,
                        stderr_tail: out.stderr_tail(),
                    });
                }
                Ok(plain(format!("ran `{}`", argv.join(" "))))
            }
            Action::WaitRollout(w) => {
                let took = t.wait_rollout(&w.deployment.value, w.timeout.0).await?;
                Ok(plain(format!(
                    "rollout of `{}` complete after {:.1}s",
                    w.deployment.value,
                    took.as_secs_f64()
                )))
            }
            Action::WaitReady(w) => {
                let selector = w.selector.as_ref().ok_or(TargetError::Incomplete(
                    "wait_ready on a Kubernetes target needs `selector`",
                ))?;
                let took = t.wait_pods_ready(&selector.value, w.timeout.0).await?;
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
            Action::SetImage(_)
            | Action::RolloutUndo(_)
            | Action::Patch(_)
            | Action::WaitFor(_) => resource_steps::apply(t, action, described).await,
            Action::HttpFault(f) => self.http_fault(f, described).await,
            other => Err(TargetError::not_runnable(other, TargetKind::Kubernetes)),
        }
    }

    fn observed(&self) -> Observations {
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
            configmaps: self.observer.configmap_samples(),
            ..Observations::default()
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
    fn warnings_and_failures(&self) -> Vec<(Instant, String)> {
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
}

impl Target for KubeRun {
    type Undo = KubeUndo;

    fn kind(&self) -> TargetKind {
        TargetKind::Kubernetes
    }

    async fn undo_for(&self, action: &Action) -> Result<Option<KubeUndo>, TargetError> {
        self.read_undo(action).await
    }

    async fn apply(&self, action: &Action, rng: &mut StdRng) -> Result<Applied, TargetError> {
        self.apply_step(action, rng).await
    }

    async fn undo(&self, undo: KubeUndo) -> Result<(), TargetError> {
        undo.apply(&self.target).await
    }

    /// Pod-template hashes of a Deployment's current pods.
    async fn identities(&self, deployment: &str) -> BTreeSet<String> {
        self.target
            .template_hashes(deployment)
            .await
            .unwrap_or_default()
    }

    async fn observations(&self) -> Observations {
        let mut observations = self.observed();
        for check in &self.checks {
            match &check.kind {
                CheckKind::Logs(l) => {
                    let read = self.target.log_matches(l, self.reference.1).await;
                    let matches = read.1.iter().map(|at| self.instant_of(*at)).collect();
                    observations.logs.insert(
                        check.name.value.clone(),
                        LogMatches {
                            read: read.0,
                            matches,
                            errors: read.2,
                        },
                    );
                }
                CheckKind::Version(v) => {
                    let pods = self
                        .target
                        .pod_versions(&v.selector.value)
                        .await
                        .map_err(|e| e.to_string());
                    observations.versions.insert(check.name.value.clone(), pods);
                }
                _ => {}
            }
        }
        for service in &self.faulted_services {
            let (per_second, errors) = self.target.fault_proxy_counts(service).await;
            let per_second = per_second
                .into_iter()
                .map(|(at, counts)| (self.instant_of(at), counts))
                .collect();
            observations
                .faults
                .insert(service.clone(), FaultCounts { per_second, errors });
        }
        observations
    }

    fn notable(&self) -> Vec<(Instant, String)> {
        self.warnings_and_failures()
    }

    async fn jobs_running(&self) -> bool {
        self.observed()
            .jobs
            .iter()
            .any(|j| j.state == JobState::Running)
    }

    /// The scenario's variables are for local targets only; validation keeps them out here.
    async fn preflight(&self, scenario: &Scenario) -> Vec<PreflightResult> {
        self.target.preflight(scenario).await
    }

    fn fleet_undo(&self, fleet: &FleetSpec) -> Result<KubeUndo, TargetError> {
        Ok(KubeUndo::DeleteLoadWorkers {
            jobs: fleet.job_names(),
        })
    }

    async fn start_fleet(
        &self,
        fleet: &FleetSpec,
        stop: CancellationToken,
    ) -> Result<mpsc::UnboundedReceiver<FleetEvent>, TargetError> {
        Ok(self.target.start_fleet(fleet, stop).await?)
    }

    async fn shutdown(self) {
        self.observer.stop();
    }

    fn pod_health(&self, selector: &LabelSelector) -> Option<PodHealth> {
        Some(self.observer.pod_health(selector))
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

/// `key=value` assignments in the form the patch functions take (`None` would remove a key).
fn set_all(values: &BTreeMap<String, String>) -> BTreeMap<String, Option<String>> {
    values
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect()
}
