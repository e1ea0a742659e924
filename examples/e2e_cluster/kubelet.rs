//! The stand-in kubelet: there are no containers on this machine, so a tokio task plays the one
//! node's kubelet through the API alone. It registers `drill-node` Ready, and for every pod bound
//! to it writes the status a real kubelet would: Running/Ready at once, Job pods finishing after
//! `drillbook.test/run-seconds` (exit code from `drillbook.test/exit-code`), graceful deletions
//! completed after at most a second, restarts counted when `drillbook.test/restart` changes.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, Node,
    NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Pod, PodCondition, PodIP,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;

/// The one node every pod is scheduled to.
pub const NODE_NAME: &str = "drill-node";
/// Seconds a Job pod "runs" before it finishes (default 2).
pub const RUN_SECONDS_ANNOTATION: &str = "drillbook.test/run-seconds";
/// Exit code of a Job pod's container; non-zero makes the pod Failed.
pub const EXIT_CODE_ANNOTATION: &str = "drillbook.test/exit-code";
/// A new value of this annotation counts as one container restart.
pub const RESTART_ANNOTATION: &str = "drillbook.test/restart";

const DEFAULT_RUN_SECONDS: f64 = 2.0;
/// Upper bound on a Job pod's fake run time, so a typo cannot park a test for hours.
const MAX_RUN_SECONDS: f64 = 600.0;
/// A real kubelet kills within the grace period; tests should not wait 30 s for that.
const MAX_GRACE: Duration = Duration::from_secs(1);
/// Nothing watches node heartbeats (the node-lifecycle controller is off); a fresh one still
/// keeps the node looking alive to anyone reading it.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(20);
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
const FIELD_MANAGER: &str = "drillbook-e2e-kubelet";

/// Why the stand-in kubelet could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// An API call failed.
    #[error("{action}: {source}")]
    Api {
        /// What the kubelet was doing.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The kubelet log file could not be created.
    #[error("creating the kubelet log {path}: {source}")]
    Log {
        /// The log path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn api_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeletError {
    let action = action.into();
    move |source| KubeletError::Api { action, source }
}

/// Appends timestamped lines to `kubelet.log`, like the other components' logs.
#[derive(Debug, Clone)]
pub struct KubeletLog(Arc<Mutex<File>>);

impl KubeletLog {
    /// Creates (truncates) the log file.
    pub fn create(path: &Path) -> Result<Self, KubeletError> {
        let file = File::create(path).map_err(|source| KubeletError::Log {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self(Arc::new(Mutex::new(file))))
    }

    fn line(&self, message: impl std::fmt::Display) {
        // A poisoned lock or a full disk must not take the kubelet down: logging is best effort.
        if let Ok(mut file) = self.0.lock() {
            let _ = writeln!(file, "{} {message}", Timestamp::now());
        }
    }
}

/// Registers `drill-node`: created, status Ready with capacity, the `not-ready` taint that the
/// `TaintNodesByCondition` admission plugin adds on create lifted.
pub async fn register_node(client: &Client, log: &KubeletLog) -> Result<(), KubeletError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), NODE_NAME.to_owned()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
    ]);
    let node = Node {
        metadata: ObjectMeta {
            name: Some(NODE_NAME.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: None,
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => log.line(format_args!("node {NODE_NAME} created")),
        Err(kube::Error::Api(status)) if status.is_already_exists() => {}
        Err(source) => return Err(api_error("creating the node")(source)),
    }
    heartbeat(client, log).await
}

/// Writes the node's Ready status and lifts the `not-ready` taint if something put it back.
async fn heartbeat(client: &Client, log: &KubeletLog) -> Result<(), KubeletError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let status = json!({ "status": node_status(Timestamp::now()) });
    // A merge patch replaces the condition list wholesale: this kubelet is its only writer.
    nodes
        .patch_status(NODE_NAME, &patch_params(), &Patch::Merge(&status))
        .await
        .map_err(api_error("writing the node status"))?;
    let node = nodes
        .get(NODE_NAME)
        .await
        .map_err(api_error("reading the node"))?;
    let taints = node.spec.and_then(|spec| spec.taints).unwrap_or_default();
    if taints.iter().any(|taint| taint.key == NOT_READY_TAINT) {
        let kept: Vec<_> = taints
            .into_iter()
            .filter(|taint| taint.key != NOT_READY_TAINT)
            .collect();
        nodes
            .patch(
                NODE_NAME,
                &patch_params(),
                &Patch::Merge(&json!({ "spec": { "taints": kept } })),
            )
            .await
            .map_err(api_error("lifting the not-ready taint"))?;
        log.line(format_args!("lifted the {NOT_READY_TAINT} taint"));
    }
    Ok(())
}

fn node_status(now: Timestamp) -> NodeStatus {
    let resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity("16".to_owned())),
        ("memory".to_owned(), Quantity("64Gi".to_owned())),
        ("pods".to_owned(), Quantity("250".to_owned())),
        ("ephemeral-storage".to_owned(), Quantity("100Gi".to_owned())),
    ]);
    let condition = |type_: &str, status: &str, reason: &str| NodeCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some("drillbook e2e stand-in kubelet".to_owned()),
        last_heartbeat_time: Some(Time(now)),
        // Unchanged conditions keep their transition time server-side only with a real
        // kubelet's bookkeeping; "now" is as good as any for a node that is always Ready.
        last_transition_time: Some(Time(now)),
    };
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_owned(),
                address: "127.0.0.1".to_owned(),
            },
            NodeAddress {
                type_: "Hostname".to_owned(),
                address: NODE_NAME.to_owned(),
            },
        ]),
        allocatable: Some(resources.clone()),
        capacity: Some(resources),
        conditions: Some(vec![
            condition("Ready", "True", "KubeletReady"),
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID"),
        ]),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".to_owned(),
            boot_id: "drillbook-e2e".to_owned(),
            container_runtime_version: "drillbook://0".to_owned(),
            kernel_version: "stand-in".to_owned(),
            kube_proxy_version: "v1.20.2".to_owned(),
            kubelet_version: "v1.20.2".to_owned(),
            machine_id: "drillbook-e2e".to_owned(),
            operating_system: "linux".to_owned(),
            os_image: "drillbook stand-in kubelet".to_owned(),
            swap: None,
            system_uuid: "drillbook-e2e".to_owned(),
        }),
        ..NodeStatus::default()
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// What the kubelet remembers about one pod (by uid) between watch events.
#[derive(Debug, Default)]
struct Tracked {
    started: bool,
    finish_scheduled: bool,
    delete_scheduled: bool,
    /// The restart annotation's value last acted on; the value present at start is the baseline.
    restart_seen: Option<String>,
}

/// The kubelet's loop: a watch on pods bound to `drill-node`, plus the node heartbeat. Runs until
/// the task is aborted; API errors are logged and retried, never fatal.
pub async fn run(client: Client, log: KubeletLog) {
    let heartbeat_client = client.clone();
    let heartbeat_log = log.clone();
    let heartbeats = tokio::spawn(async move {
        let mut every = tokio::time::interval(HEARTBEAT_EVERY);
        loop {
            every.tick().await;
            if let Err(error) = heartbeat(&heartbeat_client, &heartbeat_log).await {
                heartbeat_log.line(format_args!("heartbeat failed: {error}"));
            }
        }
    });
    let kubelet = Kubelet {
        client: client.clone(),
        log: log.clone(),
        next_ip: Arc::new(AtomicU32::new(0)),
    };
    let pods: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={NODE_NAME}"));
    let mut events = watcher(pods, config).default_backoff().boxed();
    let mut tracked: HashMap<String, Tracked> = HashMap::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                kubelet.handle(&pod, &mut tracked).await;
            }
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid {
                    tracked.remove(&uid);
                }
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
            Err(error) => log.line(format_args!("pod watch error (retrying): {error}")),
        }
    }
    heartbeats.abort();
}

#[derive(Clone)]
struct Kubelet {
    client: Client,
    log: KubeletLog,
    next_ip: Arc<AtomicU32>,
}

/// Identity of a pod for the delayed actions: they must never hit a same-named successor.
#[derive(Debug, Clone)]
struct PodRef {
    namespace: String,
    name: String,
    uid: String,
}

impl PodRef {
    fn of(pod: &Pod) -> Option<Self> {
        Some(Self {
            namespace: pod.metadata.namespace.clone()?,
            name: pod.metadata.name.clone()?,
            uid: pod.metadata.uid.clone()?,
        })
    }
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl Kubelet {
    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn handle(&self, pod: &Pod, tracked: &mut HashMap<String, Tracked>) {
        let Some(pod_ref) = PodRef::of(pod) else {
            return;
        };
        let state = tracked.entry(pod_ref.uid.clone()).or_default();
        let restart_value = annotation(pod, RESTART_ANNOTATION).map(str::to_owned);

        if pod.metadata.deletion_timestamp.is_some() {
            if !state.delete_scheduled {
                state.delete_scheduled = true;
                self.finish_deletion_later(pod_ref, pod.metadata.deletion_grace_period_seconds);
            }
            return;
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|status| status.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return;
        }
        if !state.started {
            state.started = true;
            state.restart_seen = restart_value;
            if phase != Some("Running") {
                self.start(pod, &pod_ref).await;
            }
            if owned_by_job(pod) && !state.finish_scheduled {
                state.finish_scheduled = true;
                self.finish_job_pod_later(pod, pod_ref);
            }
            return;
        }
        if restart_value.is_some() && restart_value != state.restart_seen {
            state.restart_seen = restart_value;
            self.restart(pod, &pod_ref).await;
        }
    }

    /// Running, Ready, every container started and ready.
    async fn start(&self, pod: &Pod, pod_ref: &PodRef) {
        let now = Timestamp::now();
        let ip = format!(
            "127.0.0.{}",
            2 + self.next_ip.fetch_add(1, Ordering::Relaxed) % 250
        );
        let container_statuses = containers(pod)
            .map(|(name, image)| ContainerStatus {
                state: Some(running_since(now)),
                ..container_status(name, image, pod_ref, 0, true)
            })
            .collect();
        let status = PodStatus {
            phase: Some("Running".to_owned()),
            host_ip: Some("127.0.0.1".to_owned()),
            pod_ip: Some(ip.clone()),
            pod_ips: Some(vec![PodIP { ip: ip.clone() }]),
            start_time: Some(Time(now)),
            conditions: Some(pod_conditions(now, true, None)),
            container_statuses: Some(container_statuses),
            ..PodStatus::default()
        };
        if self.patch_status(pod_ref, &status).await {
            self.log.line(format_args!("{pod_ref} running at {ip}"));
        }
    }

    /// One more restart of every container: the last state records the crash.
    async fn restart(&self, pod: &Pod, pod_ref: &PodRef) {
        let now = Timestamp::now();
        let previous: HashMap<&str, i32> = pod
            .status
            .as_ref()
            .and_then(|status| status.container_statuses.as_ref())
            .map(|statuses| {
                statuses
                    .iter()
                    .map(|status| (status.name.as_str(), status.restart_count))
                    .collect()
            })
            .unwrap_or_default();
        let container_statuses = containers(pod)
            .map(|(name, image)| {
                let restarts = previous.get(name).copied().unwrap_or(0) + 1;
                ContainerStatus {
                    state: Some(running_since(now)),
                    last_state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 1,
                            reason: Some("Error".to_owned()),
                            finished_at: Some(Time(now)),
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    }),
                    ..container_status(name, image, pod_ref, restarts, true)
                }
            })
            .collect();
        let status = PodStatus {
            container_statuses: Some(container_statuses),
            ..PodStatus::default()
        };
        if self.patch_status(pod_ref, &status).await {
            self.log
                .line(format_args!("{pod_ref} containers restarted"));
        }
    }

    fn finish_job_pod_later(&self, pod: &Pod, pod_ref: PodRef) {
        let run_for = run_seconds(pod);
        let exit_code = exit_code(pod);
        let kubelet = self.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            tokio::time::sleep(run_for).await;
            let still_there = kubelet
                .pods(&pod_ref.namespace)
                .get_opt(&pod_ref.name)
                .await
                .ok()
                .flatten()
                .is_some_and(|current| {
                    current.metadata.uid.as_deref() == Some(pod_ref.uid.as_str())
                        && current.metadata.deletion_timestamp.is_none()
                });
            if still_there {
                kubelet.finish(&pod, &pod_ref, exit_code).await;
            }
        });
    }

    /// The containers exited with `exit_code`: Succeeded on 0, Failed otherwise.
    async fn finish(&self, pod: &Pod, pod_ref: &PodRef, exit_code: i32) {
        let now = Timestamp::now();
        let (phase, reason) = if exit_code == 0 {
            ("Succeeded", "Completed")
        } else {
            ("Failed", "Error")
        };
        let container_statuses = containers(pod)
            .map(|(name, image)| ContainerStatus {
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code,
                        reason: Some(reason.to_owned()),
                        finished_at: Some(Time(now)),
                        container_id: Some(container_id(pod_ref, name, 0)),
                        ..ContainerStateTerminated::default()
                    }),
                    ..ContainerState::default()
                }),
                started: Some(false),
                ..container_status(name, image, pod_ref, 0, false)
            })
            .collect();
        let status = PodStatus {
            phase: Some(phase.to_owned()),
            conditions: Some(pod_conditions(now, false, Some("PodCompleted"))),
            container_statuses: Some(container_statuses),
            ..PodStatus::default()
        };
        if self.patch_status(pod_ref, &status).await {
            self.log
                .line(format_args!("{pod_ref} {phase} (exit code {exit_code})"));
        }
    }

    /// Like a kubelet done killing the containers: the final delete with grace period 0.
    fn finish_deletion_later(&self, pod_ref: PodRef, grace_seconds: Option<i64>) {
        let grace = grace_seconds
            .and_then(|seconds| u64::try_from(seconds).ok())
            .map_or(MAX_GRACE, |seconds| {
                Duration::from_secs(seconds).min(MAX_GRACE)
            });
        let kubelet = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(pod_ref.uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match kubelet
                .pods(&pod_ref.namespace)
                .delete(&pod_ref.name, &params)
                .await
            {
                Ok(_) => kubelet
                    .log
                    .line(format_args!("{pod_ref} deleted after {grace:?}")),
                // Gone already, or replaced by a same-named pod (uid precondition).
                Err(kube::Error::Api(status)) if status.is_not_found() || status.is_conflict() => {}
                Err(error) => kubelet
                    .log
                    .line(format_args!("{pod_ref} final delete failed: {error}")),
            }
        });
    }

    /// A strategic-merge status patch (conditions merge by type, so the scheduler's
    /// PodScheduled stays). Logs failures; returns whether it applied.
    async fn patch_status(&self, pod_ref: &PodRef, status: &PodStatus) -> bool {
        let patch = json!({
            "metadata": { "uid": pod_ref.uid },
            "status": status,
        });
        match self
            .pods(&pod_ref.namespace)
            .patch_status(&pod_ref.name, &patch_params(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => true,
            Err(kube::Error::Api(status)) if status.is_not_found() || status.is_conflict() => false,
            Err(error) => {
                self.log
                    .line(format_args!("{pod_ref} status patch failed: {error}"));
                false
            }
        }
    }
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn owned_by_job(pod: &Pod) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.kind == "Job")
}

fn run_seconds(pod: &Pod) -> Duration {
    let seconds = annotation(pod, RUN_SECONDS_ANNOTATION)
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite())
        .unwrap_or(DEFAULT_RUN_SECONDS)
        .clamp(0.0, MAX_RUN_SECONDS);
    Duration::from_secs_f64(seconds)
}

fn exit_code(pod: &Pod) -> i32 {
    annotation(pod, EXIT_CODE_ANNOTATION)
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// `(name, image)` of every regular container.
fn containers(pod: &Pod) -> impl Iterator<Item = (&str, &str)> {
    pod.spec
        .iter()
        .flat_map(|spec| spec.containers.iter())
        .map(|container| {
            (
                container.name.as_str(),
                container.image.as_deref().unwrap_or_default(),
            )
        })
}

fn container_id(pod_ref: &PodRef, name: &str, restarts: i32) -> String {
    format!("drillbook://{}-{name}-{restarts}", pod_ref.uid)
}

fn container_status(
    name: &str,
    image: &str,
    pod_ref: &PodRef,
    restarts: i32,
    running: bool,
) -> ContainerStatus {
    ContainerStatus {
        name: name.to_owned(),
        image: image.to_owned(),
        image_id: format!("drillbook://{image}"),
        container_id: Some(container_id(pod_ref, name, restarts)),
        ready: running,
        started: Some(running),
        restart_count: restarts,
        ..ContainerStatus::default()
    }
}

fn running_since(now: Timestamp) -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(Time(now)),
        }),
        ..ContainerState::default()
    }
}

/// Initialized and PodScheduled true; Ready and ContainersReady as `ready` says.
fn pod_conditions(now: Timestamp, ready: bool, reason: Option<&str>) -> Vec<PodCondition> {
    let condition = |type_: &str, status: bool| PodCondition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: if status {
            None
        } else {
            reason.map(str::to_owned)
        },
        last_transition_time: Some(Time(now)),
        ..PodCondition::default()
    };
    vec![
        condition("Initialized", true),
        condition("Ready", ready),
        condition("ContainersReady", ready),
        condition("PodScheduled", true),
    ]
}
