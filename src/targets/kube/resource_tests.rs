//! Request shapes of the resource steps and the state checks against a scripted API server,
//! and the undo journal format of their undos.

use serde_json::{Value, json};

use super::mock;
use super::*;
use crate::scenario::{FieldCondition, LogsCheck, Sp, WorkloadKind};
use crate::targets::UndoAction;

fn deployment_with(image: &str, revision: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "proxy", "namespace": "ns", "uid": "dep-uid",
                     "annotations": {"deployment.kubernetes.io/revision": revision}},
        "spec": {"selector": {"matchLabels": {"app": "proxy"}},
                 "template": {"metadata": {"labels": {"app": "proxy"}},
                              "spec": {"containers": [{"name": "proxy", "image": image}]}}},
    })
}

fn replica_set(name: &str, owner: &str, revision: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "ns",
                     "annotations": {"deployment.kubernetes.io/revision": revision},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "proxy", "uid": owner, "controller": true}]},
        "spec": {"selector": {"matchLabels": {"app": "proxy"}},
                 "template": {"metadata": {"labels": {"app": "proxy", "pod-template-hash": name}},
                              "spec": {"containers": [{"name": "proxy", "image": image}]}}},
    })
}

/// The discovery document of the test CRD group.
fn rollouts_group() -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "drill.example.com/v1", "resources": [
        {"name": "rollouts", "singularName": "rollout", "namespaced": true, "kind": "Rollout", "verbs": ["get", "patch"]},
        {"name": "rollouts/status", "singularName": "", "namespaced": true, "kind": "Rollout", "verbs": ["get", "patch"]},
    ]})
}

fn rollout(phase: &str) -> Value {
    json!({"apiVersion": "drill.example.com/v1", "kind": "Rollout",
           "metadata": {"name": "canary", "namespace": "ns"},
           "spec": {"paused": false}, "status": {"phase": phase}})
}

fn rollout_id(status: bool) -> ResourceId {
    ResourceId {
        api_version: "drill.example.com/v1".into(),
        kind: "Rollout".into(),
        name: "canary".into(),
        status,
    }
}

#[tokio::test]
async fn set_image_reads_the_old_image_then_sends_a_strategic_merge_patch() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move {
        let old = target
            .image_of(WorkloadKind::Deployment, "proxy", "proxy")
            .await?;
        target
            .set_image(
                WorkloadKind::Deployment,
                "proxy",
                "proxy",
                "box.local/drillbook:dev",
            )
            .await?;
        Ok::<_, KubeError>(old)
    });
    let get = server.answer(200, deployment_with("proxy:1", "1")).await;
    assert_eq!(get.method, http::Method::GET);
    assert_eq!(get.uri, "/apis/apps/v1/namespaces/ns/deployments/proxy");
    let patch = server.answer(200, deployment_with("x", "2")).await;
    assert_eq!(patch.method, http::Method::PATCH);
    assert_eq!(patch.uri, "/apis/apps/v1/namespaces/ns/deployments/proxy?");
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    assert_eq!(
        patch.body,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "box.local/drillbook:dev"}]}}}})
    );
    assert_eq!(run.await.unwrap().unwrap(), "proxy:1");
}

#[tokio::test]
async fn set_image_of_a_missing_container_is_refused_before_any_patch() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move {
        target
            .image_of(WorkloadKind::StatefulSet, "proxy", "nope")
            .await
    });
    let get = server.answer(200, deployment_with("proxy:1", "1")).await;
    assert_eq!(get.uri, "/apis/apps/v1/namespaces/ns/statefulsets/proxy");
    assert!(matches!(
        run.await.unwrap(),
        Err(KubeError::NoSuchContainer { .. })
    ));
    assert!(server.sent_nothing_more().await);
}

#[tokio::test]
async fn rollout_undo_patches_the_template_of_the_previous_owned_revision() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move {
        let previous = target.previous_template("proxy").await?;
        target.replace_template("proxy", &previous).await
    });
    server.answer(200, deployment_with("proxy:3", "3")).await;
    let list = server
        .answer(
            200,
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {}, "items": [
                replica_set("proxy-1", "dep-uid", "1", "proxy:1"),
                replica_set("proxy-3", "dep-uid", "3", "proxy:3"),
                replica_set("proxy-2", "dep-uid", "2", "proxy:2"),
                replica_set("other-9", "other-uid", "2", "other:9"),
            ]}),
        )
        .await;
    assert_eq!(list.uri, "/apis/apps/v1/namespaces/ns/replicasets?");
    // Discovery of apps/v1, then the JSON patch.
    let discovery = server
        .answer(
            200,
            json!({"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": [
                {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment", "verbs": ["get", "patch"]},
            ]}),
        )
        .await;
    assert_eq!(discovery.uri, "/apis/apps/v1");
    let patch = server.answer(200, deployment_with("proxy:2", "4")).await;
    assert_eq!(patch.uri, "/apis/apps/v1/namespaces/ns/deployments/proxy?");
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/json-patch+json")
    );
    assert_eq!(
        patch.body,
        json!([{"op": "replace", "path": "/spec/template", "value":
            {"metadata": {"labels": {"app": "proxy"}},
             "spec": {"containers": [{"name": "proxy", "image": "proxy:2"}]}}}])
    );
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn rollout_undo_without_a_previous_revision_changes_nothing() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move { target.previous_template("proxy").await });
    server.answer(200, deployment_with("proxy:1", "1")).await;
    server
        .answer(
            200,
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {}, "items": [
                replica_set("proxy-1", "dep-uid", "1", "proxy:1"),
            ]}),
        )
        .await;
    assert!(matches!(
        run.await.unwrap(),
        Err(KubeError::Unexpected { .. })
    ));
    assert!(server.sent_nothing_more().await);
}

#[tokio::test]
async fn a_merge_patch_on_a_custom_resource_status_goes_through_discovery() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move {
        let live = target.live_object(&rollout_id(false)).await?;
        let body = PatchBody::Merge(json!({"status": {"phase": "Healthy", "added": 1}}));
        target.patch_resource(&rollout_id(true), &body).await?;
        Ok::<_, KubeError>(live)
    });
    let discovery = server.answer(200, rollouts_group()).await;
    assert_eq!(discovery.uri, "/apis/drill.example.com/v1");
    let get = server.answer(200, rollout("Progressing")).await;
    assert_eq!(
        get.uri,
        "/apis/drill.example.com/v1/namespaces/ns/rollouts/canary"
    );
    server.answer(200, rollouts_group()).await;
    let patch = server.answer(200, rollout("Healthy")).await;
    assert_eq!(
        patch.uri,
        "/apis/drill.example.com/v1/namespaces/ns/rollouts/canary/status?"
    );
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        patch.body,
        json!({"status": {"phase": "Healthy", "added": 1}})
    );
    let live = run.await.unwrap().unwrap();
    assert_eq!(
        inverse_merge_patch(&live, &patch.body),
        json!({"status": {"phase": "Progressing", "added": null}})
    );
}

#[tokio::test]
async fn wait_for_returns_once_the_field_matches_and_times_out_otherwise() {
    let (target, mut server) = mock::target(5);
    let healthy = FieldCondition::parse("status.phase == Healthy").unwrap();
    let run = tokio::spawn(async move {
        let ok = target
            .wait_for(
                &rollout_id(false),
                &healthy,
                "status.phase == Healthy",
                std::time::Duration::from_secs(5),
            )
            .await;
        let late = target
            .wait_for(
                &rollout_id(false),
                &healthy,
                "status.phase == Healthy",
                std::time::Duration::ZERO,
            )
            .await;
        (ok, late)
    });
    server.answer(200, rollouts_group()).await;
    server.answer(200, rollout("Progressing")).await;
    server.answer(200, rollout("Healthy")).await;
    server.answer(200, rollouts_group()).await;
    server.answer(200, rollout("Degraded")).await;
    let (ok, late) = run.await.unwrap();
    assert!(ok.is_ok(), "{ok:?}");
    match late {
        Err(KubeError::Timeout { last_state, .. }) => {
            assert_eq!(last_state, "the field is `Degraded`");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn the_logs_check_reads_each_container_since_the_drill_started_with_timestamps() {
    let (target, mut server) = mock::target(5);
    let check = LogsCheck {
        selector: Sp::unplaced("app=jobs-manager".parse().unwrap()),
        container: None,
        pattern: Sp::unplaced("ERROR".into()),
        max: Some(0),
        min: None,
    };
    let since: jiff::Timestamp = "2026-11-23T22:00:00Z".parse().unwrap();
    let run = tokio::spawn(async move { target.log_matches(&check, since).await });
    server
        .answer(
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
                {"metadata": {"name": "jm-1", "labels": {"app": "jobs-manager"}},
                 "spec": {"containers": [{"name": "jobs-manager", "image": "x"}]}},
            ]}),
        )
        .await;
    let (seen, send) = server.next().await;
    assert_eq!(
        seen.uri,
        "/api/v1/namespaces/ns/pods/jm-1/log?&container=jobs-manager&limitBytes=8388608&sinceTime=2026-11-23T22%3A00%3A00Z&timestamps=true"
    );
    let body = "2026-11-23T22:00:01Z INFO fine\n2026-11-23T22:00:02Z ERROR boom\n";
    send.send_response(
        http::Response::builder()
            .status(200)
            .body(kube::client::Body::from(body.as_bytes().to_vec()))
            .unwrap(),
    );
    let (read, matches, errors) = run.await.unwrap();
    assert_eq!(read, vec!["jm-1/jobs-manager".to_string()]);
    assert_eq!(matches.len(), 1);
    assert!(errors.is_empty());
}

#[test]
fn the_new_undos_keep_their_journal_names_and_round_trip() {
    let undos = [
        KubeUndo::RestoreImage {
            workload: WorkloadKind::DaemonSet,
            name: "agent".into(),
            container: "agent".into(),
            image: "agent:1".into(),
        },
        KubeUndo::RestoreTemplate {
            deployment: "proxy".into(),
            template: json!({"spec": {"containers": []}}),
        },
        KubeUndo::RestorePatch {
            resource: rollout_id(true),
            patch: PatchBody::Json(vec![json!({"op": "remove", "path": "/status/added"})]),
        },
    ];
    let kinds = [
        "kube_restore_image",
        "kube_restore_template",
        "kube_restore_patch",
    ];
    for (undo, kind) in undos.iter().zip(kinds) {
        let written = serde_json::to_value(undo).unwrap();
        assert_eq!(written["kind"], kind);
        let read: KubeUndo = serde_json::from_value(written).unwrap();
        assert_eq!(&read, undo);
        assert!(!undo.describe().is_empty());
    }
    assert_eq!(
        serde_json::to_value(&undos[0]).unwrap()["workload"],
        "daemonset"
    );
}
