//! `KubeUndo`: how a step on a Kubernetes target is reverted, the undo journal's format, and
//! how it is applied (on unwind or by `recover`). Below the step runners (`steps.rs`,
//! `resource_steps.rs`), which build it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::KubeTarget;
use super::resources::{PatchBody, ResourceId};
use crate::scenario::WorkloadKind;
use crate::support::alertmanager::SilenceUndo;
use crate::targets::{TargetError, UndoAction, assignments};

/// How long an undo's helm/kubectl run may take.
const UNDO_TOOL_TIMEOUT: Duration = Duration::from_secs(300);

/// How to revert a step on a Kubernetes target. The serialised names are the undo journal's
/// format: they must not change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KubeUndo {
    /// Run a command (argv, no shell; already pinned to the scenario's context).
    Command { argv: Vec<String> },
    /// Scale a Deployment back to its previous replica count.
    #[serde(rename = "kube_scale")]
    Scale { deployment: String, replicas: i32 },
    /// Restore container env vars of a Deployment (None = remove).
    #[serde(rename = "kube_restore_env")]
    RestoreEnv {
        deployment: String,
        container: Option<String>,
        previous: BTreeMap<String, Option<String>>,
    },
    /// Restore ConfigMap keys (None = remove).
    #[serde(rename = "kube_restore_config_map")]
    RestoreConfigMap {
        name: String,
        previous: BTreeMap<String, Option<String>>,
    },
    /// `helm rollback <release> <revision>`.
    HelmRollback { release: String, revision: u32 },
    /// Delete the Jobs (and pods) of a cluster load's workers.
    #[serde(rename = "kube_delete_load_workers")]
    DeleteLoadWorkers { jobs: Vec<String> },
    /// Set a container's image back (`set_image`).
    #[serde(rename = "kube_restore_image")]
    RestoreImage {
        workload: WorkloadKind,
        name: String,
        container: String,
        image: String,
    },
    /// Put back the pod template that was live (`rollout_undo`).
    #[serde(rename = "kube_restore_template")]
    RestoreTemplate { deployment: String, template: Value },
    /// Send the inverse of a `patch`, computed from the live object before it.
    #[serde(rename = "kube_restore_patch")]
    RestorePatch {
        resource: ResourceId,
        patch: PatchBody,
    },
    /// Route a Service back to its own backends (`selector`), then delete the fault proxy
    /// Deployment and the temporary origin Service (`http_fault`).
    #[serde(rename = "kube_restore_service")]
    RestoreService {
        service: String,
        selector: BTreeMap<String, String>,
        proxy: String,
        origin: String,
    },
    /// Expire the drill's Alertmanager silence (`silence:`).
    #[serde(rename = "expire_silence")]
    ExpireSilence(SilenceUndo),
}

impl From<SilenceUndo> for KubeUndo {
    fn from(silence: SilenceUndo) -> Self {
        Self::ExpireSilence(silence)
    }
}

impl UndoAction for KubeUndo {
    fn describe(&self) -> String {
        match self {
            KubeUndo::Scale {
                deployment,
                replicas,
            } => format!("scale `{deployment}` back to {replicas} replicas"),
            KubeUndo::RestoreEnv {
                deployment,
                previous,
                ..
            } => {
                format!(
                    "restore env {} on deployment `{deployment}`",
                    assignments(previous)
                )
            }
            KubeUndo::RestoreConfigMap { name, previous } => {
                let keys: Vec<&str> = previous.keys().map(String::as_str).collect();
                format!("restore keys {} of configmap `{name}`", keys.join(", "))
            }
            KubeUndo::HelmRollback { release, revision } => {
                format!("helm rollback `{release}` to revision {revision}")
            }
            KubeUndo::Command { argv } => format!("run `{}`", argv.join(" ")),
            KubeUndo::DeleteLoadWorkers { jobs } => {
                format!("delete load worker Job(s) {}", jobs.join(", "))
            }
            KubeUndo::RestoreImage {
                workload,
                name,
                container,
                image,
            } => format!(
                "set image of container `{container}` of {} `{name}` back to `{image}`",
                workload.kind().to_lowercase()
            ),
            KubeUndo::RestoreTemplate { deployment, .. } => {
                format!("restore the previous pod template of deployment `{deployment}`")
            }
            KubeUndo::RestorePatch { resource, .. } => {
                format!("restore the patched fields of {resource}")
            }
            KubeUndo::RestoreService {
                service, selector, ..
            } => format!(
                "route service `{service}` back to `{}`; delete its fault proxies",
                assignments(
                    &selector
                        .iter()
                        .map(|(k, v)| (k.clone(), Some(v.clone())))
                        .collect()
                )
            ),
            KubeUndo::ExpireSilence(silence) => silence.describe(),
        }
    }
}

impl KubeUndo {
    /// Applies this undo (during a run's unwind, or from `drillbook recover`).
    pub async fn apply(self, t: &KubeTarget) -> Result<(), TargetError> {
        match self {
            KubeUndo::Scale {
                deployment,
                replicas,
            } => Ok(t.scale(&deployment, replicas).await?),
            KubeUndo::RestoreEnv {
                deployment,
                container,
                previous,
            } => Ok(t
                .patch_env(&deployment, container.as_deref(), &previous)
                .await?),
            KubeUndo::RestoreConfigMap { name, previous } => {
                Ok(t.patch_configmap(&name, &previous).await?)
            }
            KubeUndo::HelmRollback { release, revision } => {
                run_ok(t, &t.helm_rollback_argv(&release, revision)).await
            }
            KubeUndo::Command { argv } => run_ok(t, &argv).await,
            KubeUndo::DeleteLoadWorkers { jobs } => Ok(t.delete_jobs(&jobs).await?),
            KubeUndo::RestoreImage {
                workload,
                name,
                container,
                image,
            } => Ok(t.set_image(workload, &name, &container, &image).await?),
            KubeUndo::RestoreTemplate {
                deployment,
                template,
            } => Ok(t.replace_template(&deployment, &template).await?),
            KubeUndo::RestorePatch { resource, patch } => {
                Ok(t.patch_resource(&resource, &patch).await?)
            }
            KubeUndo::RestoreService {
                service,
                selector,
                proxy,
                origin,
            } => Ok(t
                .restore_service(&service, &selector, &proxy, &origin)
                .await?),
            KubeUndo::ExpireSilence(silence) => silence.apply().await.map(drop).map_err(Into::into),
        }
    }
}

async fn run_ok(t: &KubeTarget, argv: &[String]) -> Result<(), TargetError> {
    let out = t
        .run_tool(argv, &BTreeMap::new(), UNDO_TOOL_TIMEOUT)
        .await?;
    if out.status == Some(0) {
        Ok(())
    } else {
        Err(TargetError::Exited {
            argv: argv.join(" "),
            status: out.status,
            stderr_tail: out.stderr_tail(),
        })
    }
}
