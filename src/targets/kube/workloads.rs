//! Deployments and ConfigMaps: restart, scale, env and data patches (each with a reader for the
//! undo), and the waits: rollout complete and pods ready.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{StreamExt, stream::BoxStream};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sSelector;
use kube::Resource;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::pods::PodInfo;
use super::retry::retrying;
use super::{KubeError, KubeTarget};
use crate::units::LabelSelector;

/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Whether pods really rolled between two [`KubeTarget::template_hashes`] readings: some pod
/// now runs a template hash that no pod ran before.
pub fn pods_rolled(before: &BTreeSet<String>, after: &BTreeSet<String>) -> bool {
    after.difference(before).next().is_some()
}

impl KubeTarget {
    async fn deployment(&self, name: &str) -> Result<Deployment, KubeError> {
        let api = self.api::<Deployment>();
        retrying("get deployment", || api.get(name))
            .await
            .map_err(|e| {
                self.object_error("deployment", name, format!("get deployment `{name}`"), e)
            })
    }

    /// Patches a Deployment. Every patch drillbook sends sets fixed values, so it is idempotent
    /// and may be retried.
    async fn patch_deployment(
        &self,
        name: &str,
        patch: &Patch<Value>,
        what: &str,
    ) -> Result<(), KubeError> {
        let api = self.api::<Deployment>();
        let params = PatchParams::default();
        retrying(what, || api.patch(name, &params, patch))
            .await
            .map_err(|e| self.object_error("deployment", name, format!("{what} `{name}`"), e))?;
        tracing::info!(deployment = name, context = %self.context, namespace = %self.namespace, "{what}");
        Ok(())
    }

    /// Restarts a Deployment's pods the way `kubectl rollout restart` does: a merge patch that
    /// sets the `kubectl.kubernetes.io/restartedAt` annotation on the pod template.
    pub async fn rollout_restart(&self, deployment: &str) -> Result<(), KubeError> {
        self.patch_deployment(
            deployment,
            &restart_patch(Timestamp::now()),
            "rollout restart deployment",
        )
        .await
    }

    /// The Deployment's desired replica count (`spec.replicas`, default 1). Read it before
    /// [`Self::scale`] to register the undo.
    pub async fn replicas(&self, deployment: &str) -> Result<i32, KubeError> {
        let d = self.deployment(deployment).await?;
        Ok(d.spec.and_then(|s| s.replicas).unwrap_or(1))
    }

    /// Sets the Deployment's replica count (merge patch on `spec.replicas`).
    pub async fn scale(&self, deployment: &str, replicas: i32) -> Result<(), KubeError> {
        self.patch_deployment(deployment, &scale_patch(replicas), "scale deployment")
            .await
    }

    /// The literal env vars of a container (default: the first) of a Deployment's pod template,
    /// for the undo of [`Self::patch_env`]. Vars set through `valueFrom` are left out (patch_env
    /// refuses to touch them); a var missing from the map is not set.
    pub async fn env_of(
        &self,
        deployment: &str,
        container: Option<&str>,
    ) -> Result<BTreeMap<String, Option<String>>, KubeError> {
        let d = self.deployment(deployment).await?;
        let c = find_container(&d, deployment, container)?;
        Ok(c.env
            .iter()
            .flatten()
            .filter(|var| var.value_from.is_none())
            .map(|var| {
                (
                    var.name.clone(),
                    Some(var.value.clone().unwrap_or_default()),
                )
            })
            .collect())
    }

    /// Sets (`Some`) or removes (`None`) env vars of a container (default: the first) with a
    /// strategic merge patch keyed by container and var name. Setting a var to the value it
    /// already has changes nothing, so nothing rolls. Vars set through `valueFrom` are refused.
    pub async fn patch_env(
        &self,
        deployment: &str,
        container: Option<&str>,
        env: &BTreeMap<String, Option<String>>,
    ) -> Result<(), KubeError> {
        let d = self.deployment(deployment).await?;
        let c = find_container(&d, deployment, container)?;
        if let Some(var) = c
            .env
            .iter()
            .flatten()
            .find(|var| var.value_from.is_some() && env.contains_key(&var.name))
        {
            return Err(KubeError::EnvFromReference {
                deployment: deployment.to_string(),
                var: var.name.clone(),
            });
        }
        self.patch_deployment(
            deployment,
            &env_patch(&c.name, env),
            "patch env of deployment",
        )
        .await
    }

    /// Current values of `keys` in a ConfigMap's `data` (`None`: the key is not set), for the
    /// undo of [`Self::patch_configmap`].
    pub async fn configmap_data(
        &self,
        name: &str,
        keys: &[String],
    ) -> Result<BTreeMap<String, Option<String>>, KubeError> {
        let api = self.api::<ConfigMap>();
        let cm = retrying("get configmap", || api.get(name))
            .await
            .map_err(|e| {
                self.object_error("configmap", name, format!("get configmap `{name}`"), e)
            })?;
        let data = cm.data.unwrap_or_default();
        Ok(keys
            .iter()
            .map(|k| (k.clone(), data.get(k).cloned()))
            .collect())
    }

    /// Sets (`Some`) or removes (`None`) keys of a ConfigMap's `data` (merge patch).
    pub async fn patch_configmap(
        &self,
        name: &str,
        data: &BTreeMap<String, Option<String>>,
    ) -> Result<(), KubeError> {
        let api = self.api::<ConfigMap>();
        let patch = configmap_patch(data);
        let params = PatchParams::default();
        retrying("patch configmap", || api.patch(name, &params, &patch))
            .await
            .map_err(|e| {
                self.object_error("configmap", name, format!("patch configmap `{name}`"), e)
            })?;
        tracing::info!(configmap = name, context = %self.context, namespace = %self.namespace, "patched configmap");
        Ok(())
    }

    /// The `pod-template-hash` labels of the Deployment's current (non-terminating) pods. Compare
    /// two readings with [`pods_rolled`] to tell whether a step really rolled pods.
    pub async fn template_hashes(&self, deployment: &str) -> Result<BTreeSet<String>, KubeError> {
        let d = self.deployment(deployment).await?;
        let selector = d
            .spec
            .as_ref()
            .map(|s| selector_query(&s.selector))
            .unwrap_or_default();
        let api = self.api::<Pod>();
        let params = ListParams::default().labels(&selector);
        let pods = retrying("list pods", || api.list(&params))
            .await
            .map_err(|e| self.api_error(format!("list pods of deployment `{deployment}`"), e))?;
        Ok(pods
            .items
            .iter()
            .map(PodInfo::from_pod)
            .filter(|p| !p.terminating)
            .filter_map(|p| p.template_hash)
            .collect())
    }

    /// Waits, watching the Deployment, until its rollout is complete by the same rule as
    /// `kubectl rollout status`: the controller has observed the latest generation, and
    /// updated = desired = current = available replicas (no old pods left). Fails early on
    /// `ProgressDeadlineExceeded`. Returns how long it waited.
    pub async fn wait_rollout(
        &self,
        deployment: &str,
        timeout: Duration,
    ) -> Result<Duration, KubeError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let config = watcher::Config::default().fields(&format!("metadata.name={deployment}"));
        let mut watched = Watched::new(self.api::<Deployment>(), config);
        let mut last_state = "no answer from the API server yet".to_string();
        loop {
            if let Err(state) = watched.changed(deadline, &mut last_state).await {
                return Err(KubeError::Timeout {
                    what: format!("the rollout of deployment `{deployment}`"),
                    waited: started.elapsed(),
                    last_state: state,
                });
            }
            let Some(d) = watched.objects.get(deployment) else {
                last_state = format!("deployment `{deployment}` does not exist");
                continue;
            };
            match rollout_state(d) {
                RolloutState::Complete => return Ok(started.elapsed()),
                RolloutState::Waiting(state) => last_state = state,
                RolloutState::Failed(message) => {
                    return Err(KubeError::RolloutFailed {
                        deployment: deployment.to_string(),
                        message,
                    });
                }
            }
        }
    }

    /// Waits, watching the pods, until every (non-terminating) pod matching `selector` is Ready
    /// and there are as many as their controllers want (so a pod that was just deleted and not
    /// yet replaced does not count as done). Returns how long it waited.
    pub async fn wait_pods_ready(
        &self,
        selector: &LabelSelector,
        timeout: Duration,
    ) -> Result<Duration, KubeError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let config = watcher::Config::default().labels(&selector.to_string());
        let mut watched = Watched::new(self.api::<Pod>(), config);
        let mut last_state = "no answer from the API server yet".to_string();
        loop {
            if let Err(state) = watched.changed(deadline, &mut last_state).await {
                return Err(KubeError::Timeout {
                    what: format!("pods matching `{selector}` to be ready"),
                    waited: started.elapsed(),
                    last_state: state,
                });
            }
            let live: Vec<PodInfo> = watched
                .objects
                .values()
                .map(PodInfo::from_pod)
                .filter(|p| !p.terminating)
                .collect();
            let ready = live.iter().filter(|p| p.ready).count();
            last_state = format!("{ready} of {} matching pods ready", live.len());
            if live.is_empty() || ready < live.len() {
                continue;
            }
            let wanted = self.wanted_pods(&live).await?;
            if ready >= wanted {
                return Ok(started.elapsed());
            }
            last_state = format!("{ready} pods ready, their controllers want {wanted}");
        }
    }

    /// How many pods the controllers of `pods` want in total (pods without a controller count
    /// as themselves).
    async fn wanted_pods(&self, pods: &[PodInfo]) -> Result<usize, KubeError> {
        let owners: BTreeSet<&str> = pods.iter().filter_map(|p| p.owner.as_deref()).collect();
        let mut wanted = pods.iter().filter(|p| p.owner.is_none()).count();
        for owner in owners {
            let replicas = match owner.split_once('/') {
                Some(("ReplicaSet", name)) => self
                    .get_opt::<ReplicaSet>(name)
                    .await?
                    .and_then(|rs| rs.spec.and_then(|s| s.replicas)),
                Some(("StatefulSet", name)) => self
                    .get_opt::<StatefulSet>(name)
                    .await?
                    .and_then(|s| s.spec.and_then(|s| s.replicas)),
                // Other controllers (Jobs, DaemonSets) have no simple replica count: the pods
                // that exist are what they want.
                _ => None,
            };
            let present = pods
                .iter()
                .filter(|p| p.owner.as_deref() == Some(owner))
                .count();
            wanted += replicas.map_or(present, |r| usize::try_from(r).unwrap_or(0));
        }
        Ok(wanted)
    }

    async fn get_opt<K>(&self, name: &str) -> Result<Option<K>, KubeError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        let api = self.api::<K>();
        retrying("get", || api.get_opt(name)).await.map_err(|e| {
            self.api_error(format!("get {} `{name}`", K::kind(&Default::default())), e)
        })
    }
}

fn restart_patch(now: Timestamp) -> Patch<Value> {
    Patch::Merge(json!({
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now.to_string()}}}}
    }))
}

fn scale_patch(replicas: i32) -> Patch<Value> {
    Patch::Merge(json!({"spec": {"replicas": replicas}}))
}

/// Strategic merge patch: containers and env vars merge by `name`, `$patch: delete` removes a var.
fn env_patch(container: &str, env: &BTreeMap<String, Option<String>>) -> Patch<Value> {
    let vars: Vec<Value> = env
        .iter()
        .map(|(name, value)| match value {
            Some(value) => json!({"name": name, "value": value}),
            None => json!({"name": name, "$patch": "delete"}),
        })
        .collect();
    Patch::Strategic(json!({
        "spec": {"template": {"spec": {"containers": [{"name": container, "env": vars}]}}}
    }))
}

/// Merge patch: `null` removes a key.
fn configmap_patch(data: &BTreeMap<String, Option<String>>) -> Patch<Value> {
    Patch::Merge(json!({ "data": data }))
}

fn find_container<'a>(
    d: &'a Deployment,
    deployment: &str,
    container: Option<&str>,
) -> Result<&'a Container, KubeError> {
    let containers: &[Container] = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map_or(&[], |s| s.containers.as_slice());
    let found = match container {
        Some(name) => containers.iter().find(|c| c.name == name),
        None => containers.first(),
    };
    found.ok_or_else(|| KubeError::NoSuchContainer {
        deployment: deployment.to_string(),
        container: container.unwrap_or("(first)").to_string(),
        available: containers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// A Kubernetes label selector object as a query string (`a=b,c in (d,e)`).
fn selector_query(selector: &K8sSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.clone().unwrap_or_default().join(",");
        parts.push(match expr.operator.as_str() {
            "In" => format!("{} in ({values})", expr.key),
            "NotIn" => format!("{} notin ({values})", expr.key),
            "Exists" => expr.key.clone(),
            _ => format!("!{}", expr.key),
        });
    }
    parts.join(",")
}

/// Where a Deployment's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RolloutState {
    Complete,
    Waiting(String),
    Failed(String),
}

/// `kubectl rollout status`'s rule, plus `current == desired` so no old pod is left running.
fn rollout_state(d: &Deployment) -> RolloutState {
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return RolloutState::Waiting(format!(
            "waiting for the controller to observe generation {generation} (seen: {observed})"
        ));
    }
    if let Some(stalled) = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return RolloutState::Failed(
            stalled
                .message
                .clone()
                .unwrap_or_else(|| "progress deadline exceeded".into()),
        );
    }
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let current = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        RolloutState::Waiting(format!("{updated} of {desired} new replicas updated"))
    } else if current > updated {
        RolloutState::Waiting(format!(
            "{} old replicas pending termination",
            current - updated
        ))
    } else if available < updated || available != desired {
        RolloutState::Waiting(format!(
            "{available} of {desired} updated replicas available"
        ))
    } else {
        RolloutState::Complete
    }
}

/// The objects one watcher sees, kept current (by name) as events arrive.
struct Watched<K> {
    stream: BoxStream<'static, Result<Event<K>, watcher::Error>>,
    objects: BTreeMap<String, K>,
    /// Objects of a relist in progress; swapped in when it is complete.
    relist: Option<BTreeMap<String, K>>,
}

impl<K> Watched<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    fn new(api: kube::Api<K>, config: watcher::Config) -> Self {
        Self {
            stream: watcher::watcher(api, config).default_backoff().boxed(),
            objects: BTreeMap::new(),
            relist: None,
        }
    }

    /// Returns after the next change once the initial list is complete; `Err(last state)` at
    /// the deadline. Watch errors are recorded in `last_state` (the watcher recovers by itself).
    async fn changed(&mut self, deadline: Instant, last_state: &mut String) -> Result<(), String> {
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next()).await;
            let event = match next {
                Err(_) | Ok(None) => return Err(last_state.clone()),
                Ok(Some(Err(e))) => {
                    *last_state = format!("watch error: {e}");
                    continue;
                }
                Ok(Some(Ok(event))) => event,
            };
            let name = |o: &K| o.meta().name.clone().unwrap_or_default();
            match event {
                Event::Init => self.relist = Some(BTreeMap::new()),
                Event::InitApply(o) => {
                    if let Some(relist) = &mut self.relist {
                        relist.insert(name(&o), o);
                    }
                }
                Event::InitDone => {
                    self.objects = self.relist.take().unwrap_or_default();
                    return Ok(());
                }
                Event::Apply(o) => {
                    self.objects.insert(name(&o), o);
                    return Ok(());
                }
                Event::Delete(o) => {
                    self.objects.remove(&name(&o));
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};

    fn deployment(generation: i64, observed: i64, desired: i32, counts: [i32; 3]) -> Deployment {
        let [updated, current, available] = counts;
        let mut d = Deployment::default();
        d.metadata.generation = Some(generation);
        d.spec = Some(DeploymentSpec {
            replicas: Some(desired),
            ..DeploymentSpec::default()
        });
        d.status = Some(DeploymentStatus {
            observed_generation: Some(observed),
            updated_replicas: Some(updated),
            replicas: Some(current),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        });
        d
    }

    #[test]
    fn rollout_needs_the_latest_generation_observed() {
        // The counts look complete, but they describe the previous generation.
        let d = deployment(3, 2, 2, [2, 2, 2]);
        assert!(
            matches!(rollout_state(&d), RolloutState::Waiting(s) if s.contains("generation 3"))
        );
        assert_eq!(
            rollout_state(&deployment(3, 3, 2, [2, 2, 2])),
            RolloutState::Complete
        );
    }

    #[test]
    fn rollout_waits_for_old_pods_and_availability() {
        assert!(
            matches!(rollout_state(&deployment(2, 2, 2, [1, 3, 2])), RolloutState::Waiting(s) if s.contains("new replicas"))
        );
        assert!(
            matches!(rollout_state(&deployment(2, 2, 2, [2, 3, 2])), RolloutState::Waiting(s) if s.contains("old replicas"))
        );
        assert!(
            matches!(rollout_state(&deployment(2, 2, 2, [2, 2, 1])), RolloutState::Waiting(s) if s.contains("available"))
        );
    }

    #[test]
    fn rollout_reports_a_stalled_deployment() {
        let mut d = deployment(2, 2, 2, [1, 2, 1]);
        if let Some(status) = d.status.as_mut() {
            status.conditions = Some(vec![k8s_openapi::api::apps::v1::DeploymentCondition {
                type_: "Progressing".into(),
                status: "False".into(),
                reason: Some("ProgressDeadlineExceeded".into()),
                message: Some("ReplicaSet \"x\" has timed out progressing.".into()),
                ..Default::default()
            }]);
        }
        assert!(matches!(rollout_state(&d), RolloutState::Failed(m) if m.contains("timed out")));
    }

    #[test]
    fn rolled_means_a_new_hash() {
        let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert!(pods_rolled(&set(&["a"]), &set(&["b"])));
        assert!(pods_rolled(&set(&["a"]), &set(&["a", "b"])));
        assert!(!pods_rolled(&set(&["a", "b"]), &set(&["a"])));
        assert!(!pods_rolled(&set(&["a"]), &set(&["a"])));
    }

    #[test]
    fn selector_objects_become_queries() {
        let selector: K8sSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "proxy"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]
        }))
        .unwrap();
        assert_eq!(selector_query(&selector), "app=proxy,tier in (a,b)");
    }
}
