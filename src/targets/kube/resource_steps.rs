//! The resource steps (`set_image`, `rollout_undo`, `patch`, `wait_for`) as a drill runs
//! them: their undos read from the live objects, and their application.

use super::KubeTarget;
use super::resources::{PatchBody, ResourceId, inverse_json_patch, inverse_merge_patch};
use super::undo::KubeUndo;
use crate::scenario::{Action, PatchResource, TargetKind};
use crate::targets::{Applied, TargetError};

fn resource_id(p: &PatchResource) -> ResourceId {
    ResourceId {
        api_version: p.api_version.value.clone(),
        kind: p.kind.value.clone(),
        name: p.name.value.clone(),
        status: p.subresource_status,
    }
}

fn body(p: &PatchResource) -> Result<PatchBody, TargetError> {
    match (&p.merge, &p.json) {
        (Some(merge), None) => Ok(PatchBody::Merge(merge.clone())),
        (None, Some(ops)) => Ok(PatchBody::Json(ops.clone())),
        _ => Err(TargetError::Incomplete(
            "`patch` needs exactly one of `merge` or `json`",
        )),
    }
}

/// The undo of a resource step, computed from the live object before it runs.
pub(super) async fn read_undo(t: &KubeTarget, action: &Action) -> Result<KubeUndo, TargetError> {
    match action {
        Action::SetImage(i) => {
            let (workload, name) = i.workload().ok_or(TargetError::Incomplete(
                "`set_image` needs exactly one of deployment, statefulset or daemonset",
            ))?;
            let image = t.image_of(workload, name, &i.container.value).await?;
            Ok(KubeUndo::RestoreImage {
                workload,
                name: name.to_string(),
                container: i.container.value.clone(),
                image,
            })
        }
        Action::RolloutUndo(r) => Ok(KubeUndo::RestoreTemplate {
            deployment: r.deployment.value.clone(),
            template: t.template_of(&r.deployment.value).await?,
        }),
        Action::Patch(p) => {
            let resource = resource_id(p);
            let live = t.live_object(&resource).await?;
            let patch = match body(p)? {
                PatchBody::Merge(merge) => PatchBody::Merge(inverse_merge_patch(&live, &merge)),
                PatchBody::Json(ops) => PatchBody::Json(inverse_json_patch(&live, &ops)),
            };
            Ok(KubeUndo::RestorePatch { resource, patch })
        }
        other => Err(TargetError::not_runnable(other, TargetKind::Kubernetes)),
    }
}

/// Runs one resource step.
pub(super) async fn apply(
    t: &KubeTarget,
    action: &Action,
    described: String,
) -> Result<Applied, TargetError> {
    match action {
        Action::SetImage(i) => {
            let (workload, name) = i.workload().ok_or(TargetError::Incomplete(
                "`set_image` needs exactly one of deployment, statefulset or daemonset",
            ))?;
            t.set_image(workload, name, &i.container.value, &i.image.value)
                .await?;
        }
        Action::RolloutUndo(r) => {
            let previous = t.previous_template(&r.deployment.value).await?;
            t.replace_template(&r.deployment.value, &previous).await?;
        }
        Action::Patch(p) => t.patch_resource(&resource_id(p), &body(p)?).await?,
        Action::WaitFor(w) => {
            let condition = w.condition.get().map_err(|_| {
                TargetError::Incomplete("`wait_for` needs `path == value` or `path != value`")
            })?;
            let resource = ResourceId {
                api_version: w.api_version.value.clone(),
                kind: w.kind.value.clone(),
                name: w.name.value.clone(),
                status: false,
            };
            let took = t
                .wait_for(&resource, condition, w.condition.text(), w.timeout.0)
                .await?;
            return Ok(Applied::described(format!(
                "{resource} has {} after {:.1}s",
                w.condition.value,
                took.as_secs_f64()
            )));
        }
        other => return Err(TargetError::not_runnable(other, TargetKind::Kubernetes)),
    }
    Ok(Applied::described(described))
}
