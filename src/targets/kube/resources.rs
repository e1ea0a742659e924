//! Steps on any resource: `set_image` (Deployment, StatefulSet, DaemonSet), `rollout_undo`
//! (a Deployment back to its previous ReplicaSet's template, as `kubectl rollout undo` does),
//! generic merge/JSON patches through discovery, and `wait_for` a field condition. Each undo
//! is computed from the live object before the change.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::retry::retrying;
use super::{KubeError, KubeTarget};
use crate::scenario::{FieldCondition, WorkloadKind};

/// The annotation holding a Deployment's (and its ReplicaSets') revision.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// How often `wait_for` reads the object.
const WAIT_FOR_POLL: Duration = Duration::from_millis(500);

/// A patch as sent: merge (RFC 7386) or JSON (RFC 6902).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchBody {
    Merge(Value),
    Json(Vec<Value>),
}

/// A resource addressed by apiVersion, kind and name in the target's namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResourceId {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// The `status` subresource instead of the object.
    #[serde(default)]
    pub status: bool,
}

impl std::fmt::Display for ResourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}` ({})", self.kind, self.name, self.api_version)?;
        if self.status {
            f.write_str(" status")?;
        }
        Ok(())
    }
}

fn apps(kind: WorkloadKind) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", kind.kind()))
}

/// The strategic merge patch `kubectl set image` sends: containers merge by name.
fn image_patch(container: &str, image: &str) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}})
}

impl KubeTarget {
    fn dynamic(&self, resource: &ApiResource) -> kube::Api<DynamicObject> {
        kube::Api::namespaced_with(self.client.clone(), &self.namespace, resource)
    }

    /// The API resource of `api_version`/`kind`, through discovery (one request).
    pub(super) async fn discover(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<ApiResource, KubeError> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, _) = retrying("discovery", || {
            kube::discovery::pinned_kind(&self.client, &gvk)
        })
        .await
        .map_err(|e| self.api_error(format!("discover {kind} in {api_version}"), e))?;
        Ok(resource)
    }

    async fn get_dynamic(
        &self,
        resource: &ApiResource,
        name: &str,
    ) -> Result<DynamicObject, KubeError> {
        let api = self.dynamic(resource);
        retrying("get", || api.get(name)).await.map_err(|e| {
            self.object_error("object", name, format!("get {} `{name}`", resource.kind), e)
        })
    }

    /// The image of `container` in the workload's pod template (the undo of `set_image`).
    pub async fn image_of(
        &self,
        kind: WorkloadKind,
        name: &str,
        container: &str,
    ) -> Result<String, KubeError> {
        let object = self.get_dynamic(&apps(kind), name).await?;
        let containers = object.data["spec"]["template"]["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let names = || {
            containers
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        containers
            .iter()
            .find(|c| c["name"] == container)
            .and_then(|c| c["image"].as_str())
            .map(str::to_string)
            .ok_or_else(|| KubeError::NoSuchContainer {
                deployment: name.to_string(),
                container: container.to_string(),
                available: names(),
            })
    }

    /// Sets `container`'s image in the workload's pod template, like `kubectl set image`.
    pub async fn set_image(
        &self,
        kind: WorkloadKind,
        name: &str,
        container: &str,
        image: &str,
    ) -> Result<(), KubeError> {
        let api = self.dynamic(&apps(kind));
        let patch = Patch::Strategic(image_patch(container, image));
        let params = PatchParams::default();
        retrying("set image", || api.patch(name, &params, &patch))
            .await
            .map_err(|e| {
                self.object_error("workload", name, format!("set image of `{name}`"), e)
            })?;
        tracing::info!(workload = name, container, image, context = %self.context, "set image");
        Ok(())
    }

    /// The Deployment's live pod template (the undo of `rollout_undo`).
    pub async fn template_of(&self, deployment: &str) -> Result<Value, KubeError> {
        let object = self
            .get_dynamic(&apps(WorkloadKind::Deployment), deployment)
            .await?;
        Ok(object.data["spec"]["template"].clone())
    }

    /// The pod template of the Deployment's previous revision: the ReplicaSet it owns with the
    /// highest revision below the Deployment's own, without its `pod-template-hash` label.
    pub async fn previous_template(&self, deployment: &str) -> Result<Value, KubeError> {
        let object = self
            .get_dynamic(&apps(WorkloadKind::Deployment), deployment)
            .await?;
        let uid = object.metadata.uid.clone().unwrap_or_default();
        let current = revision(object.metadata.annotations.as_ref());
        let api = self.api::<ReplicaSet>();
        let params = ListParams::default();
        let list = retrying("list replicasets", || api.list(&params))
            .await
            .map_err(|e| self.api_error("list replicasets", e))?;
        let previous = list
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == uid && o.controller == Some(true))
            })
            .filter_map(|rs| {
                let r = revision(rs.metadata.annotations.as_ref())?;
                (Some(r) < current || current.is_none()).then_some((r, rs))
            })
            .max_by_key(|(r, _)| *r)
            .ok_or_else(|| KubeError::Unexpected {
                what: format!("rollout undo of deployment `{deployment}`"),
                message: format!(
                    "no previous revision (the deployment is at revision {})",
                    current.map_or("?".into(), |r| r.to_string())
                ),
            })?
            .1;
        let mut template =
            serde_json::to_value(previous.spec.and_then(|s| s.template)).map_err(|e| {
                KubeError::Unexpected {
                    what: "a ReplicaSet's template".into(),
                    message: e.to_string(),
                }
            })?;
        if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
            labels.remove("pod-template-hash");
        }
        Ok(template)
    }

    /// Replaces the Deployment's pod template (a JSON patch, as `kubectl rollout undo` does).
    pub async fn replace_template(
        &self,
        deployment: &str,
        template: &Value,
    ) -> Result<(), KubeError> {
        let ops = vec![json!({"op": "replace", "path": "/spec/template", "value": template})];
        self.patch_resource(
            &ResourceId {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: deployment.into(),
                status: false,
            },
            &PatchBody::Json(ops),
        )
        .await
    }

    /// The object as it is now (for computing a patch's undo).
    pub async fn live_object(&self, id: &ResourceId) -> Result<Value, KubeError> {
        let resource = self.discover(&id.api_version, &id.kind).await?;
        let object = self.get_dynamic(&resource, &id.name).await?;
        serde_json::to_value(object).map_err(|e| KubeError::Unexpected {
            what: format!("{id}"),
            message: e.to_string(),
        })
    }

    /// Sends a merge or JSON patch to the resource (or its status).
    pub async fn patch_resource(&self, id: &ResourceId, body: &PatchBody) -> Result<(), KubeError> {
        let resource = self.discover(&id.api_version, &id.kind).await?;
        let api = self.dynamic(&resource);
        let patch: Patch<Value> = match body {
            PatchBody::Merge(merge) => Patch::Merge(merge.clone()),
            PatchBody::Json(ops) => {
                let parsed: json_patch::Patch = serde_json::from_value(Value::Array(ops.clone()))
                    .map_err(|e| KubeError::Unexpected {
                    what: format!("the json patch for {id}"),
                    message: e.to_string(),
                })?;
                Patch::Json(parsed)
            }
        };
        let params = PatchParams::default();
        let name = id.name.as_str();
        let action = format!("patch {id}");
        let sent = if id.status {
            retrying("patch status", || api.patch_status(name, &params, &patch)).await
        } else {
            retrying("patch", || api.patch(name, &params, &patch)).await
        };
        sent.map_err(|e| self.object_error("object", name, action, e))?;
        tracing::info!(%id, context = %self.context, namespace = %self.namespace, "patched");
        Ok(())
    }

    /// Reads the object every half second until `condition` holds; returns how long it took.
    pub async fn wait_for(
        &self,
        id: &ResourceId,
        condition: &FieldCondition,
        shown: &str,
        timeout: Duration,
    ) -> Result<Duration, KubeError> {
        let resource = self.discover(&id.api_version, &id.kind).await?;
        let started = Instant::now();
        let deadline = started + timeout;
        loop {
            let last_state = match self.get_dynamic(&resource, &id.name).await {
                Ok(object) => {
                    let value = serde_json::to_value(&object).unwrap_or(Value::Null);
                    if condition.holds(&value) {
                        return Ok(started.elapsed());
                    }
                    match condition.field(&value) {
                        Some(field) => format!("the field is `{field}`"),
                        None => "the field is not set".into(),
                    }
                }
                Err(KubeError::NotFound { .. }) => "the object does not exist".into(),
                Err(other) => return Err(other),
            };
            if Instant::now() + WAIT_FOR_POLL > deadline {
                return Err(KubeError::Timeout {
                    what: format!("{id} to have {shown}"),
                    waited: timeout,
                    last_state,
                });
            }
            tokio::time::sleep(WAIT_FOR_POLL).await;
        }
    }
}

fn revision(annotations: Option<&std::collections::BTreeMap<String, String>>) -> Option<u64> {
    annotations?.get(REVISION)?.parse().ok()
}

/// The merge patch that puts back, in `live`, every path `patch` touches: old values where
/// they existed, `null` (remove) where the patch adds a key.
pub fn inverse_merge_patch(live: &Value, patch: &Value) -> Value {
    match patch {
        Value::Object(fields) => {
            let mut inverse = Map::new();
            for (key, change) in fields {
                let old = live.get(key);
                let restore = match (old, change) {
                    (Some(old @ Value::Object(_)), Value::Object(_)) => {
                        inverse_merge_patch(old, change)
                    }
                    (Some(old), _) => old.clone(),
                    (None, _) => Value::Null,
                };
                inverse.insert(key.clone(), restore);
            }
            Value::Object(inverse)
        }
        _ => live.clone(),
    }
}

/// One JSON pointer, split into unescaped tokens.
fn tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

fn pointer_of(tokens: &[String]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// The JSON patch that restores, in `live`, everything `ops` touch. Each touched path is
/// restored at its deepest ancestor that is an object member (array positions shift under
/// `add`/`remove`, so a touched array is restored whole); a restore point inside another one
/// is dropped. Old values come back with `add` (which replaces an existing member); members
/// the patch creates are removed.
pub fn inverse_json_patch(live: &Value, ops: &[Value]) -> Vec<Value> {
    let mut points: Vec<Vec<String>> = Vec::new();
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let mut touched = Vec::new();
        if kind != "test" {
            touched.extend(op.get("path").and_then(Value::as_str));
        }
        if kind == "move" {
            touched.extend(op.get("from").and_then(Value::as_str));
        }
        for path in touched {
            let point = restore_point(live, &tokens(path));
            if !points.contains(&point) {
                points.push(point);
            }
        }
    }
    let outermost: Vec<&Vec<String>> = points
        .iter()
        .filter(|p| {
            !points
                .iter()
                .any(|other| other.len() < p.len() && p.starts_with(other))
        })
        .collect();
    outermost
        .into_iter()
        .map(|point| {
            let path = pointer_of(point);
            match live.pointer(&path) {
                Some(old) => json!({"op": "add", "path": path, "value": old}),
                None => json!({"op": "remove", "path": path}),
            }
        })
        .collect()
}

/// The path cut before its first step into an array (as the array stands in `live`).
fn restore_point(live: &Value, path: &[String]) -> Vec<String> {
    let mut at = Some(live);
    let mut point = Vec::new();
    for token in path {
        if matches!(at, Some(Value::Array(_))) {
            break;
        }
        point.push(token.clone());
        at = at.and_then(|v| v.get(token));
    }
    point
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inverse_merge_patch_restores_old_values_and_nulls_added_keys() {
        let live = json!({"spec": {"paused": false, "keep": 1, "list": [1, 2]}});
        let patch =
            json!({"spec": {"paused": true, "added": "x", "list": [3]}, "status": {"a": 1}});
        assert_eq!(
            inverse_merge_patch(&live, &patch),
            json!({"spec": {"paused": false, "added": null, "list": [1, 2]}, "status": null})
        );
    }

    #[test]
    fn the_inverse_json_patch_restores_members_removes_added_ones_and_whole_arrays() {
        let live = json!({"spec": {"paused": false, "items": [1, 2]}, "metadata": {}});
        let ops = vec![
            json!({"op": "replace", "path": "/spec/paused", "value": true}),
            json!({"op": "add", "path": "/spec/items/0", "value": 0}),
            json!({"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}),
            json!({"op": "add", "path": "/metadata/labels/c", "value": "d"}),
            json!({"op": "test", "path": "/spec", "value": {}}),
        ];
        assert_eq!(
            inverse_json_patch(&live, &ops),
            vec![
                json!({"op": "add", "path": "/spec/paused", "value": false}),
                json!({"op": "add", "path": "/spec/items", "value": [1, 2]}),
                json!({"op": "remove", "path": "/metadata/labels"}),
            ]
        );
    }

    #[test]
    fn a_patched_then_inverted_object_is_the_live_object_again() {
        let live = json!({"spec": {"paused": false, "items": [1, 2], "a~b": {"c/d": 1}}});
        let ops = vec![
            json!({"op": "remove", "path": "/spec/items/1"}),
            json!({"op": "replace", "path": "/spec/a~0b/c~1d", "value": 2}),
            json!({"op": "add", "path": "/spec/new", "value": 3}),
        ];
        let mut object = live.clone();
        let forward: json_patch::Patch = serde_json::from_value(Value::Array(ops.clone())).unwrap();
        json_patch::patch(&mut object, &forward).unwrap();
        assert_ne!(object, live);
        let back: json_patch::Patch =
            serde_json::from_value(Value::Array(inverse_json_patch(&live, &ops))).unwrap();
        json_patch::patch(&mut object, &back).unwrap();
        assert_eq!(object, live);
    }

    #[test]
    fn field_conditions_read_nested_paths_and_indices() {
        let object = json!({"status": {"phase": "Healthy", "conditions": [{"type": "Ready"}]}});
        let healthy = FieldCondition::parse("status.phase == Healthy").unwrap();
        assert!(healthy.holds(&object));
        assert!(!healthy.holds(&json!({"status": {"phase": "Degraded"}})));
        assert!(!healthy.holds(&json!({})));
        let first = FieldCondition::parse("status.conditions[0].type == \"Ready\"").unwrap();
        assert!(first.holds(&object));
        assert!(
            FieldCondition::parse("status.phase != Healthy")
                .unwrap()
                .holds(&json!({}))
        );
        assert!(FieldCondition::parse("status.phase").is_none());
    }
}
