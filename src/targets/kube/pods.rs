//! Pods: listing by selector, picking (count/percent, mode, `max_pods`), deleting and evicting.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Preconditions};
use tokio::time::Instant;

use super::retry::{retrying, status_code};
use super::{KubeError, KubeTarget};
use crate::scenario::{Evict, KillPods, PickMode};
use crate::units::LabelSelector;

/// What a pod looked like when it was listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// Pod name.
    pub name: String,
    /// Pod UID: deletions are conditioned on it, so a same-named successor is never hit.
    pub uid: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// `metadata.creationTimestamp`.
    pub created: Option<Timestamp>,
    /// Whether the `Ready` condition is true.
    pub ready: bool,
    /// Whether the pod is already being deleted (`deletionTimestamp` set).
    pub terminating: bool,
    /// Node the pod is bound to.
    pub node: Option<String>,
    /// Controlling owner as `Kind/name` (e.g. `ReplicaSet/proxy-6d4cf56db6`).
    pub owner: Option<String>,
    /// The `pod-template-hash` label (pods of a Deployment).
    pub template_hash: Option<String>,
    /// Sum of container restart counts.
    pub restarts: i32,
}

impl PodInfo {
    /// Reads the fields drills care about out of a Pod.
    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let labels: BTreeMap<String, String> = meta.labels.clone().unwrap_or_default();
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
        let restarts = status
            .and_then(|s| s.container_statuses.as_ref())
            .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
        Self {
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            template_hash: labels.get("pod-template-hash").cloned(),
            labels,
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
            ready,
            terminating: meta.deletion_timestamp.is_some(),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            owner: meta.owner_references.as_ref().and_then(|owners| {
                owners
                    .iter()
                    .find(|o| o.controller == Some(true))
                    .map(|o| format!("{}/{}", o.kind, o.name))
            }),
            restarts,
        }
    }
}

/// How a pod was taken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillMethod {
    /// DELETE with this grace period (`None`: the pod's own).
    Delete { grace_period_seconds: Option<u32> },
    /// Eviction through this API version (`policy/v1` or `policy/v1beta1`).
    Evict { api_version: &'static str },
}

/// One pod a kill or eviction hit, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KilledPod {
    /// The pod as it was picked.
    pub pod: PodInfo,
    /// When the request was sent (monotonic, for durations).
    pub at: Instant,
    /// When the request was sent (wall clock, for reports).
    pub wall: Timestamp,
    /// Delete or evict, and how.
    pub method: KillMethod,
    /// The pod was already gone when the request arrived (it still counts as picked, which
    /// keeps a seeded pick reproducible).
    pub already_gone: bool,
}

impl KubeTarget {
    /// Every pod in the namespace matching `selector` (the selector goes to the server).
    pub async fn matching_pods(&self, selector: &LabelSelector) -> Result<Vec<PodInfo>, KubeError> {
        let api = self.api::<Pod>();
        let params = ListParams::default().labels(&selector.to_string());
        let list = retrying("list pods", || api.list(&params))
            .await
            .map_err(|e| self.api_error(format!("list pods matching `{selector}`"), e))?;
        Ok(list.items.iter().map(PodInfo::from_pod).collect())
    }

    /// Chooses the pods `k` hits among `pods` (terminating ones are skipped). `count` (default 1)
    /// or `percent` (rounded up) says how many; `mode` which. Random picks draw from the pods
    /// sorted by name, so a seeded `rng` picks the same pods again. More than `max_pods` is
    /// refused here, before anything is deleted.
    pub fn pick<'a>(
        &self,
        pods: &'a [PodInfo],
        k: &KillPods,
        rng: &mut impl rand::Rng,
    ) -> Result<Vec<&'a PodInfo>, KubeError> {
        let selector = k.selector.to_string();
        let mut live: Vec<&PodInfo> = pods.iter().filter(|p| !p.terminating).collect();
        if live.is_empty() {
            return Err(KubeError::NoPodsMatch {
                selector,
                namespace: self.namespace.clone(),
            });
        }
        let wanted = match (&k.percent, k.count) {
            (Some(percent), _) => (live.len() * percent.value as usize).div_ceil(100),
            (None, count) => count.unwrap_or(1) as usize,
        };
        if wanted > self.max_pods as usize {
            return Err(KubeError::TooManyPods {
                action: "kill",
                wanted,
                max_pods: self.max_pods,
                selector,
            });
        }
        Ok(choose(&mut live, wanted, k.mode, rng))
    }

    /// Picks pods like [`Self::pick`] and deletes them one after the other, with the step's grace
    /// period (`force`: 0). Each deletion is conditioned on the pod's UID. Returns exactly which
    /// pods were hit and when.
    pub async fn kill_pods(
        &self,
        k: &KillPods,
        rng: &mut impl rand::Rng,
    ) -> Result<Vec<KilledPod>, KubeError> {
        let pods = self.matching_pods(&k.selector).await?;
        let picked = self.pick(&pods, k, rng)?;
        let grace_period_seconds = if k.force {
            Some(0)
        } else {
            k.grace_period
                .map(|g| u32::try_from(g.0.as_secs()).unwrap_or(u32::MAX))
        };
        let api = self.api::<Pod>();
        let mut killed = Vec::with_capacity(picked.len());
        for pod in picked {
            let params = DeleteParams {
                grace_period_seconds,
                preconditions: Some(Preconditions {
                    uid: Some(pod.uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let (at, wall) = (Instant::now(), Timestamp::now());
            // The UID precondition makes a repeated DELETE harmless, so it may be retried.
            let result = retrying("delete pod", || api.delete(&pod.name, &params)).await;
            let already_gone = match result {
                Ok(_) => false,
                Err(e) if status_code(&e) == Some(404) => true,
                Err(e) => {
                    return Err(self.api_error(format!("delete pod `{}`", pod.name), e));
                }
            };
            tracing::info!(pod = %pod.name, context = %self.context, namespace = %self.namespace, grace_period_seconds, already_gone, "killed pod");
            killed.push(KilledPod {
                pod: pod.clone(),
                at,
                wall,
                method: KillMethod::Delete {
                    grace_period_seconds,
                },
                already_gone,
            });
        }
        Ok(killed)
    }

    /// Evicts pods through the Eviction API, which honours PodDisruptionBudgets. Uses
    /// `policy/v1`; on an API server without it (before 1.22) it falls back to
    /// `policy/v1beta1` and says so in the log and in each [`KilledPod::method`].
    pub async fn evict(
        &self,
        e: &Evict,
        rng: &mut impl rand::Rng,
    ) -> Result<Vec<KilledPod>, KubeError> {
        let as_kill = e.as_kill();
        let pods = self.matching_pods(&e.selector).await?;
        let picked = self.pick(&pods, &as_kill, rng)?;
        if picked.is_empty() {
            return Ok(Vec::new());
        }
        let api_version = self.eviction_version().await?;
        let mut evicted = Vec::with_capacity(picked.len());
        for pod in picked {
            let (at, wall) = (Instant::now(), Timestamp::now());
            let already_gone = self.evict_one(&pod.name, api_version).await?;
            tracing::info!(pod = %pod.name, context = %self.context, namespace = %self.namespace, api_version, already_gone, "evicted pod");
            evicted.push(KilledPod {
                pod: pod.clone(),
                at,
                wall,
                method: KillMethod::Evict { api_version },
                already_gone,
            });
        }
        Ok(evicted)
    }

    /// `policy/v1` when the server has it, else `policy/v1beta1`, else an error naming
    /// `kill_pods` as the alternative. The core discovery document lists the `pods/eviction`
    /// subresource with the policy version it accepts.
    async fn eviction_version(&self) -> Result<&'static str, KubeError> {
        let resources = retrying("discover the core API", || {
            self.client.list_core_api_resources("v1")
        })
        .await
        .map_err(|e| self.api_error("discover the core API (v1)", e))?;
        let eviction = resources
            .resources
            .iter()
            .find(|r| r.name == "pods/eviction");
        match eviction.and_then(|r| r.version.as_deref()) {
            Some("v1") => Ok("policy/v1"),
            Some("v1beta1") => {
                tracing::warn!(
                    context = %self.context,
                    "the API server has no policy/v1 Eviction (Kubernetes < 1.22); evicting through policy/v1beta1"
                );
                Ok("policy/v1beta1")
            }
            _ => Err(KubeError::EvictionUnsupported {
                context: self.context.clone(),
            }),
        }
    }

    /// POSTs one Eviction. Returns whether the pod was already gone. Not retried on 429: for
    /// an eviction that means a PodDisruptionBudget said no, which the drill must report.
    async fn evict_one(&self, pod: &str, api_version: &'static str) -> Result<bool, KubeError> {
        let body = serde_json::json!({
            "apiVersion": api_version,
            "kind": "Eviction",
            "metadata": {"name": pod, "namespace": self.namespace},
        });
        let url = format!(
            "/api/v1/namespaces/{}/pods/{}/eviction",
            self.namespace, pod
        );
        let request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string().into_bytes())
            .map_err(|e| KubeError::Unexpected {
                what: format!("eviction request for pod `{pod}`"),
                message: e.to_string(),
            })?;
        match self.client.request::<kube::core::Status>(request).await {
            Ok(_) => Ok(false),
            Err(e) if status_code(&e) == Some(404) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 429 => {
                Err(KubeError::EvictionRefused {
                    pod: pod.to_string(),
                    namespace: self.namespace.clone(),
                    message: status.message,
                })
            }
            Err(e) => Err(self.api_error(format!("evict pod `{pod}`"), e)),
        }
    }
}

/// Takes `wanted` pods (or all, when fewer) by `mode`. Random draws from the pods sorted by name.
fn choose<'a>(
    live: &mut Vec<&'a PodInfo>,
    wanted: usize,
    mode: PickMode,
    rng: &mut impl rand::Rng,
) -> Vec<&'a PodInfo> {
    let wanted = wanted.min(live.len());
    match mode {
        PickMode::Random => {
            live.sort_by(|a, b| a.name.cmp(&b.name));
            rand::seq::index::sample(rng, live.len(), wanted)
                .into_iter()
                .map(|index| live[index])
                .collect()
        }
        PickMode::Oldest | PickMode::Newest => {
            live.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
            if mode == PickMode::Newest {
                live.reverse();
            }
            live.truncate(wanted);
            live.clone()
        }
    }
}
