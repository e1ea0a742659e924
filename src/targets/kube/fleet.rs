//! Load workers as Jobs in the pinned namespace (cluster load, issue #13): one Job per worker
//! (Indexed Jobs need Kubernetes 1.21+), each pod running `drillbook load --worker-output`; the
//! controller follows every worker's log through the API server and passes the lines on.
//!
//! Workers are bounded three times over: their own load profile, the Job's
//! `activeDeadlineSeconds`, and the deletion the engine registers (and journals) before the
//! first Job exists. On `stop` the Jobs are deleted at once, so an interrupted drill leaves no
//! worker sending.

use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::retry::{retrying, status_code};
use super::{KubeError, KubeTarget};
use crate::targets::fleet::{FleetEvent, FleetSpec, WorkerEnd};

/// Label on every worker Job and pod: the fleet's name.
pub const FLEET_LABEL: &str = "drillbook.dev/load-fleet";
/// Label on every worker Job and pod: the worker's index.
pub const WORKER_LABEL: &str = "drillbook.dev/load-worker";
/// Workers run as this non-root user (the drillbook image's user).
const WORKER_UID: i64 = 65532;
/// How long workers' output is still read after a stop (their pods' grace period).
const STOP_DRAIN: Duration = Duration::from_secs(5);
/// How often a worker's pod is looked up while it is not running yet.
const POD_POLL: Duration = Duration::from_millis(500);

/// The Job of worker `index` of `fleet`.
pub fn worker_job(fleet: &FleetSpec, index: usize) -> serde_json::Value {
    let labels = json!({
        "app.kubernetes.io/name": "drillbook-load",
        "app.kubernetes.io/managed-by": "drillbook",
        FLEET_LABEL: fleet.name,
        WORKER_LABEL: index.to_string(),
    });
    let mut container = json!({
        "name": "load",
        "image": fleet.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/usr/local/bin/drillbook"],
        "args": fleet.workers.get(index).cloned().unwrap_or_default(),
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
        },
    });
    let mut quantities = serde_json::Map::new();
    if let Some(cpu) = &fleet.resources.cpu {
        quantities.insert("cpu".into(), json!(cpu));
    }
    if let Some(memory) = &fleet.resources.memory {
        quantities.insert("memory".into(), json!(memory));
    }
    if !quantities.is_empty() {
        // Requests equal limits: a worker's CPU is what its rate was planned with.
        container["resources"] = json!({"requests": quantities, "limits": quantities});
    }
    if let Some(secret) = &fleet.bearer_secret {
        container["env"] = json!([{
            "name": secret.env,
            "valueFrom": {"secretKeyRef": {"name": secret.secret, "key": secret.key}},
        }]);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": fleet.job_name(index), "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": fleet.deadline.as_secs().max(1),
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": 5,
                    "nodeSelector": fleet.node_selector,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": WORKER_UID,
                        "runAsGroup": WORKER_UID,
                    },
                    "containers": [container],
                },
            },
        },
    })
}

impl KubeTarget {
    /// Creates every worker Job of `fleet` and follows the workers' logs until each ended or
    /// `stop` is cancelled (then the Jobs are deleted). A failed creation deletes the Jobs
    /// already created and returns the error.
    pub async fn start_fleet(
        &self,
        fleet: &FleetSpec,
        stop: CancellationToken,
    ) -> Result<mpsc::UnboundedReceiver<FleetEvent>, KubeError> {
        let jobs = self.api::<Job>();
        for index in 0..fleet.workers.len() {
            let name = fleet.job_name(index);
            let job: Job = serde_json::from_value(worker_job(fleet, index)).map_err(|e| {
                KubeError::Unexpected {
                    what: format!("the spec of Job `{name}`"),
                    message: e.to_string(),
                }
            })?;
            if let Err(e) = jobs.create(&PostParams::default(), &job).await {
                let error = self.api_error(format!("create load worker Job `{name}`"), e);
                if let Err(cleanup) = self.delete_jobs(&fleet.job_names()).await {
                    tracing::warn!(error = %cleanup, "cannot remove the load workers created so far");
                }
                return Err(error);
            }
        }
        tracing::info!(fleet = %fleet.name, workers = fleet.workers.len(), namespace = %self.namespace, "load workers created");
        let (tx, rx) = mpsc::unbounded_channel();
        let mut followers = Vec::new();
        for index in 0..fleet.workers.len() {
            let (target, tx, stop) = (self.clone(), tx.clone(), stop.clone());
            let (fleet_name, worker) =
                (fleet.name.clone(), u32::try_from(index).unwrap_or(u32::MAX));
            followers.push(tokio::spawn(async move {
                // After a stop the deleted workers still write their last windows and final
                // line while they terminate: read them for a moment longer.
                let end = tokio::select! {
                    end = target.follow_worker(&fleet_name, worker, &tx) => end,
                    () = async { stop.cancelled().await; tokio::time::sleep(STOP_DRAIN).await } => return,
                };
                let _ = tx.send(FleetEvent::Ended { worker, end });
            }));
        }
        let (target, names) = (self.clone(), fleet.job_names());
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {
                    if let Err(e) = target.delete_jobs(&names).await {
                        tracing::warn!(error = %e, "cannot remove the load workers on stop (the undo will retry)");
                    }
                }
                () = async { for f in followers { let _ = f.await; } } => {}
            }
        });
        Ok(rx)
    }

    /// Deletes worker Jobs and their pods; Jobs already gone are fine.
    pub async fn delete_jobs(&self, names: &[String]) -> Result<(), KubeError> {
        let jobs = self.api::<Job>();
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        for name in names {
            match retrying("delete job", || jobs.delete(name, &params)).await {
                Ok(_) => {}
                Err(e) if status_code(&e) == Some(404) => {}
                Err(e) => return Err(self.api_error(format!("delete load worker Job `{name}`"), e)),
            }
        }
        // Background propagation leaves the pods to the garbage collector; deleting them here
        // stops the workers now instead of a moment later.
        let pods = self.api::<Pod>();
        let selector = names
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let list = ListParams::default().labels(&format!("job-name in ({selector})"));
        match pods
            .delete_collection(&DeleteParams::default(), &list)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.api_error("delete load worker pods", e)),
        }
    }

    /// Follows one worker: waits for its pod, streams its log (again after a dropped stream;
    /// the merger ignores repeated windows), and says how it ended.
    async fn follow_worker(
        &self,
        fleet: &str,
        worker: u32,
        tx: &mpsc::UnboundedSender<FleetEvent>,
    ) -> WorkerEnd {
        let pods = self.api::<Pod>();
        let selector = format!("{FLEET_LABEL}={fleet},{WORKER_LABEL}={worker}");
        let mut last_waiting = String::new();
        let mut streamed_once = false;
        loop {
            let pod = match pods.list(&ListParams::default().labels(&selector)).await {
                Ok(list) => list.items.into_iter().next(),
                Err(e) => {
                    tracing::debug!(error = %e, worker, "cannot list the worker's pod yet");
                    None
                }
            };
            let Some(pod) = pod else {
                if streamed_once {
                    return WorkerEnd::Failed("its pod was deleted".into());
                }
                tokio::time::sleep(POD_POLL).await;
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            let state = PodState::of(&pod);
            match &state {
                PodState::Waiting(why) => {
                    if let Some(fatal) = fatal_waiting(why) {
                        return WorkerEnd::Failed(fatal);
                    }
                    if *why != last_waiting {
                        last_waiting.clone_from(why);
                        let _ = tx.send(FleetEvent::Waiting {
                            worker,
                            why: why.clone(),
                        });
                    }
                    tokio::time::sleep(POD_POLL).await;
                    continue;
                }
                PodState::Started | PodState::Ended(_) => {}
            }
            streamed_once = true;
            let params = LogParams {
                container: Some("load".into()),
                follow: !matches!(state, PodState::Ended(_)),
                ..LogParams::default()
            };
            match pods.log_stream(&name, &params).await {
                Ok(stream) => {
                    let mut lines = stream.lines();
                    loop {
                        match lines.try_next().await {
                            Ok(Some(line)) => {
                                if tx.send(FleetEvent::Line { worker, line }).is_err() {
                                    return WorkerEnd::Failed("nobody reads its output".into());
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::debug!(error = %e, worker, "worker log stream broke; reconnecting");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, worker, "cannot stream the worker's log yet"),
            }
            if let PodState::Ended(end) = state {
                return end;
            }
            // The stream ended: the container exited (its state tells how) or the connection
            // dropped (then the log is read again from the start).
            tokio::time::sleep(POD_POLL).await;
        }
    }
}

/// Where a worker's pod stands, for the log follower.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PodState {
    /// Not started; why (in the kubelet's words).
    Waiting(String),
    /// Its container runs (or ran): the log can be read.
    Started,
    /// It ended.
    Ended(WorkerEnd),
}

impl PodState {
    fn of(pod: &Pod) -> Self {
        let status = pod.status.clone().unwrap_or_default();
        let container = status
            .container_statuses
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.name == "load");
        let phase = status.phase.unwrap_or_default();
        if let Some(terminated) = container
            .as_ref()
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.terminated.as_ref())
        {
            return PodState::Ended(if terminated.exit_code == 0 {
                WorkerEnd::Succeeded
            } else {
                let reason = terminated.reason.clone().unwrap_or_default();
                WorkerEnd::Failed(if reason.is_empty() {
                    format!("exit code {}", terminated.exit_code)
                } else {
                    format!("exit code {} ({reason})", terminated.exit_code)
                })
            });
        }
        if phase == "Failed" {
            // e.g. DeadlineExceeded before the container ever ran.
            return PodState::Ended(WorkerEnd::Failed(
                status
                    .reason
                    .or(status.message)
                    .unwrap_or_else(|| "the pod failed".into()),
            ));
        }
        if container
            .as_ref()
            .and_then(|c| c.state.as_ref())
            .is_some_and(|s| s.running.is_some())
        {
            return PodState::Started;
        }
        let waiting = container
            .and_then(|c| c.state)
            .and_then(|s| s.waiting)
            .and_then(|w| match (w.reason, w.message) {
                (Some(r), Some(m)) => Some(format!("{r}: {m}")),
                (Some(r), None) => Some(r),
                (None, m) => m,
            });
        PodState::Waiting(waiting.unwrap_or_else(|| format!("pod {}", phase.to_lowercase())))
    }
}

/// A waiting reason that will not resolve by itself within a drill. The kubelet's "failed to
/// sync secret cache" (or configmap cache) is a `CreateContainerConfigError` it retries by
/// itself, seen when a Secret was created just before its pod; it is waited for like any
/// other start-up, within `start_within`.
fn fatal_waiting(why: &str) -> Option<String> {
    if why.starts_with("CreateContainerConfigError: failed to sync") {
        return None;
    }
    const FATAL: [&str; 4] = [
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    ];
    FATAL
        .iter()
        .any(|reason| why.starts_with(reason))
        .then(|| format!("cannot start: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seen on the box: a worker whose Secret was created a moment before failed the drill.
    #[test]
    fn a_cache_sync_timeout_is_waited_for_and_a_missing_secret_is_fatal() {
        let sync = "CreateContainerConfigError: failed to sync secret cache: timed out waiting for the condition";
        assert_eq!(fatal_waiting(sync), None);
        let missing = "CreateContainerConfigError: secret \"token\" not found";
        assert!(fatal_waiting(missing).is_some_and(|w| w.starts_with("cannot start")));
    }
    use crate::targets::fleet::{SecretEnv, WorkerResources};

    fn fleet() -> FleetSpec {
        FleetSpec {
            name: "drillbook-load-r1".into(),
            image: "box.local/drillbook:dev".into(),
            workers: vec![vec!["load".into(), "http://svc/".into()]; 2],
            resources: WorkerResources {
                cpu: Some("250m".into()),
                memory: None,
            },
            node_selector: [("pool".to_string(), "load".to_string())].into(),
            bearer_secret: Some(SecretEnv {
                env: "DRILLBOOK_BEARER_TOKEN".into(),
                secret: "drill-token".into(),
                key: "token".into(),
            }),
            deadline: Duration::from_secs(95),
        }
    }

    #[test]
    fn a_worker_job_is_bounded_and_holds_no_token() {
        let job = worker_job(&fleet(), 1);
        assert_eq!(job["metadata"]["name"], "drillbook-load-r1-1");
        assert_eq!(job["spec"]["backoffLimit"], 0);
        assert_eq!(job["spec"]["activeDeadlineSeconds"], 95);
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["nodeSelector"]["pool"], "load");
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"][WORKER_LABEL],
            "1"
        );
        let container = &pod["containers"][0];
        assert_eq!(container["resources"]["limits"]["cpu"], "250m");
        assert!(container["resources"]["limits"].get("memory").is_none());
        assert_eq!(
            container["env"][0]["valueFrom"]["secretKeyRef"]["name"],
            "drill-token"
        );
        assert!(container["env"][0].get("value").is_none());
        // It is a valid Job.
        assert!(serde_json::from_value::<Job>(job).is_ok());
    }

    fn pod_with(status: &serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "w"}, "status": status.clone()}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn pod_states_read_in_words() {
        let waiting = pod_with(&json!({"phase": "Pending", "containerStatuses": [{
            "name": "load", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImageNeverPull", "message": "image not present"}}
        }]}));
        let PodState::Waiting(why) = PodState::of(&waiting) else {
            panic!("waiting expected");
        };
        assert_eq!(why, "ErrImageNeverPull: image not present");
        assert!(fatal_waiting(&why).is_some());
        assert!(fatal_waiting("ContainerCreating").is_none());

        let crashed = pod_with(&json!({"phase": "Failed", "containerStatuses": [{
            "name": "load", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
        }]}));
        assert_eq!(
            PodState::of(&crashed),
            PodState::Ended(WorkerEnd::Failed("exit code 137 (OOMKilled)".into()))
        );
        let deadline = pod_with(&json!({"phase": "Failed", "reason": "DeadlineExceeded"}));
        assert_eq!(
            PodState::of(&deadline),
            PodState::Ended(WorkerEnd::Failed("DeadlineExceeded".into()))
        );
        assert_eq!(
            PodState::of(&pod_with(&json!({"phase": "Pending"}))),
            PodState::Waiting("pod pending".into())
        );
    }
}
