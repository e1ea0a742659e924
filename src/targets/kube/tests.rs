//! Exact request shapes against a scripted API server (see `mock.rs`).

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::mock::{self, status};
use super::*;
use crate::scenario::{Evict, KillPods, PickMode, Sp};
use crate::units::{HumanDuration, LabelSelector};

fn selector(s: &str) -> Sp<LabelSelector> {
    Sp::unplaced(s.parse().unwrap())
}

fn kill(count: Option<u32>, percent: Option<u32>, mode: PickMode) -> KillPods {
    KillPods {
        selector: selector("app=proxy"),
        count,
        percent: percent.map(Sp::unplaced),
        mode,
        grace_period: None,
        force: false,
    }
}

fn pod(name: &str, created: &str) -> Value {
    json!({
        "metadata": {
            "name": name, "uid": format!("uid-{name}"), "namespace": "ns",
            "labels": {"app": "proxy", "pod-template-hash": "abc"},
            "creationTimestamp": created,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "proxy-abc", "uid": "rs", "controller": true}],
        },
        "spec": {"nodeName": "node-1", "containers": [{"name": "proxy", "image": "x"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    })
}

fn pod_list(pods: &[Value]) -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": pods})
}

fn three_pods() -> Value {
    pod_list(&[
        pod("proxy-b", "2026-01-01T00:00:02Z"),
        pod("proxy-a", "2026-01-01T00:00:01Z"),
        pod("proxy-c", "2026-01-01T00:00:03Z"),
    ])
}

/// The core discovery document with `pods/eviction` served by policy/`version`.
fn core_resources(version: &str) -> Value {
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "pods", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
        {"name": "pods/eviction", "singularName": "", "namespaced": true, "group": "policy", "version": version, "kind": "Eviction", "verbs": ["create"]},
    ]})
}

fn deployment(env: &Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "proxy", "namespace": "ns", "generation": 1},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "proxy"}},
            "template": {
                "metadata": {"labels": {"app": "proxy"}},
                "spec": {"containers": [
                    {"name": "sidecar", "image": "s"},
                    {"name": "proxy", "image": "p", "env": env},
                ]},
            },
        },
    })
}

#[tokio::test]
async fn kill_lists_by_selector_and_deletes_with_grace_period_and_uid() {
    let (target, mut server) = mock::target(5);
    let mut k = kill(Some(1), None, PickMode::Oldest);
    k.grace_period = Some(HumanDuration::from_secs(7));
    let run = tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(1);
        target.kill_pods(&k, &mut rng).await
    });
    let list = server.answer(200, three_pods()).await;
    assert_eq!(list.method, http::Method::GET);
    assert_eq!(
        list.uri,
        "/api/v1/namespaces/ns/pods?&labelSelector=app%3Dproxy"
    );
    let delete = server
        .answer(200, pod("proxy-a", "2026-01-01T00:00:01Z"))
        .await;
    assert_eq!(delete.method, http::Method::DELETE);
    assert_eq!(delete.uri, "/api/v1/namespaces/ns/pods/proxy-a?");
    assert_eq!(
        delete.body,
        json!({"gracePeriodSeconds": 7, "preconditions": {"uid": "uid-proxy-a"}})
    );
    let killed = run.await.unwrap().unwrap();
    assert_eq!(killed.len(), 1);
    assert_eq!(killed[0].pod.name, "proxy-a");
    assert_eq!(killed[0].pod.owner.as_deref(), Some("ReplicaSet/proxy-abc"));
    assert_eq!(
        killed[0].method,
        KillMethod::Delete {
            grace_period_seconds: Some(7)
        }
    );
    assert!(!killed[0].already_gone);
}

#[tokio::test]
async fn force_kill_uses_grace_period_zero_and_tolerates_a_gone_pod() {
    let (target, mut server) = mock::target(5);
    let mut k = kill(Some(1), None, PickMode::Newest);
    k.force = true;
    let run = tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(1);
        target.kill_pods(&k, &mut rng).await
    });
    server.answer(200, three_pods()).await;
    let delete = server.answer(404, status(404, "NotFound", "gone")).await;
    assert_eq!(delete.uri, "/api/v1/namespaces/ns/pods/proxy-c?");
    assert_eq!(delete.body["gracePeriodSeconds"], json!(0));
    let killed = run.await.unwrap().unwrap();
    assert!(killed[0].already_gone);
}

#[tokio::test]
async fn over_max_pods_is_refused_before_any_delete() {
    let (target, mut server) = mock::target(2);
    let run = tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(1);
        let k = kill(None, Some(100), PickMode::Random);
        target.kill_pods(&k, &mut rng).await
    });
    server.answer(200, three_pods()).await;
    let err = run.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            KubeError::TooManyPods {
                wanted: 3,
                max_pods: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was touched"));
    assert!(
        server.sent_nothing_more().await,
        "a request followed the refusal"
    );
}

#[tokio::test]
async fn percent_rounds_up_and_random_picks_are_reproducible() {
    let (target, _server) = mock::target(5);
    let pods: Vec<PodInfo> = ["d", "b", "a", "c"]
        .iter()
        .map(|n| {
            let p: k8s_openapi::api::core::v1::Pod =
                serde_json::from_value(pod(n, "2026-01-01T00:00:00Z")).unwrap();
            PodInfo::from_pod(&p)
        })
        .collect();
    let k = kill(None, Some(30), PickMode::Random);
    let names = |seed: u64| -> Vec<String> {
        let mut rng = StdRng::seed_from_u64(seed);
        target
            .pick(&pods, &k, &mut rng)
            .unwrap()
            .into_iter()
            .map(|p| p.name.clone())
            .collect()
    };
    // 30 % of 4 pods is 1.2: rounded up to 2.
    assert_eq!(names(42).len(), 2);
    assert_eq!(names(42), names(42));
    // Input order does not matter: picks are drawn from the pods sorted by name.
    let mut reversed = pods.clone();
    reversed.reverse();
    let mut rng = StdRng::seed_from_u64(42);
    let again: Vec<String> = target
        .pick(&reversed, &k, &mut rng)
        .unwrap()
        .into_iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(again, names(42));
}

#[tokio::test]
async fn terminating_pods_are_not_picked() {
    let (target, _server) = mock::target(5);
    let mut gone = pod("a", "2026-01-01T00:00:00Z");
    gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
    let pods: Vec<PodInfo> = [gone, pod("b", "2026-01-01T00:00:05Z")]
        .into_iter()
        .map(|v| PodInfo::from_pod(&serde_json::from_value(v).unwrap()))
        .collect();
    let mut rng = StdRng::seed_from_u64(0);
    let picked = target
        .pick(&pods, &kill(Some(1), None, PickMode::Oldest), &mut rng)
        .unwrap();
    assert_eq!(picked[0].name, "b");
    let err = target
        .pick(&pods[..1], &kill(Some(1), None, PickMode::Oldest), &mut rng)
        .unwrap_err();
    assert!(matches!(err, KubeError::NoPodsMatch { .. }), "{err}");
}

#[tokio::test]
async fn scale_sends_a_merge_patch_on_spec_replicas() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move { target.scale("proxy", 3).await });
    let patch = server.answer(200, deployment(&json!([]))).await;
    assert_eq!(patch.method, http::Method::PATCH);
    assert_eq!(patch.uri, "/apis/apps/v1/namespaces/ns/deployments/proxy?");
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(patch.body, json!({"spec": {"replicas": 3}}));
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn replicas_reads_spec_and_a_missing_deployment_is_named() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move {
        (
            target.replicas("proxy").await,
            target.replicas("nope").await,
        )
    });
    let get = server.answer(200, deployment(&json!([]))).await;
    assert_eq!(get.uri, "/apis/apps/v1/namespaces/ns/deployments/proxy");
    server
        .answer(404, status(404, "NotFound", "not found"))
        .await;
    let (found, missing) = run.await.unwrap();
    assert_eq!(found.unwrap(), 2);
    let err = missing.unwrap_err();
    assert_eq!(
        err.to_string(),
        "deployment `nope` not found in context `test`, namespace `ns`"
    );
}

#[tokio::test]
async fn rollout_restart_sets_the_kubectl_annotation_with_a_merge_patch() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move { target.rollout_restart("proxy").await });
    let patch = server.answer(200, deployment(&json!([]))).await;
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    let annotations = &patch.body["spec"]["template"]["metadata"]["annotations"];
    let stamp = annotations[RESTARTED_AT].as_str().unwrap();
    assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{stamp}");
    assert_eq!(annotations.as_object().unwrap().len(), 1);
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn patch_env_sends_a_strategic_merge_patch_for_the_named_container() {
    let (target, mut server) = mock::target(5);
    let env = BTreeMap::from([
        ("STATELESS".to_string(), Some("true".to_string())),
        ("LEGACY".to_string(), None),
    ]);
    let run = tokio::spawn(async move {
        let before = target.env_of("proxy", Some("proxy")).await?;
        target.patch_env("proxy", Some("proxy"), &env).await?;
        Ok::<_, KubeError>(before)
    });
    let current = json!([{"name": "STATELESS", "value": "false"}, {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]);
    server.answer(200, deployment(&current)).await;
    server.answer(200, deployment(&current)).await;
    let patch = server.answer(200, deployment(&current)).await;
    assert_eq!(patch.method, http::Method::PATCH);
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    assert_eq!(
        patch.body,
        json!({"spec": {"template": {"spec": {"containers": [{
            "name": "proxy",
            "env": [{"name": "LEGACY", "$patch": "delete"}, {"name": "STATELESS", "value": "true"}],
        }]}}}})
    );
    let before = run.await.unwrap().unwrap();
    // valueFrom vars are not literal values: left out of the undo map.
    assert_eq!(
        before,
        BTreeMap::from([("STATELESS".to_string(), Some("false".to_string()))])
    );
}

#[tokio::test]
async fn patch_env_refuses_value_from_vars_and_unknown_containers() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move {
        let key = BTreeMap::from([("KEY".to_string(), Some("x".to_string()))]);
        let unknown = target.patch_env("proxy", Some("nope"), &key).await;
        let from_secret = target.patch_env("proxy", Some("proxy"), &key).await;
        (unknown, from_secret)
    });
    let current =
        json!([{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]);
    server.answer(200, deployment(&current)).await;
    server.answer(200, deployment(&current)).await;
    let (unknown, from_secret) = run.await.unwrap();
    let err = unknown.unwrap_err();
    assert!(
        err.to_string().contains("(it has: sidecar, proxy)"),
        "{err}"
    );
    assert!(
        matches!(from_secret, Err(KubeError::EnvFromReference { ref var, .. }) if var == "KEY"),
        "{from_secret:?}"
    );
    assert!(server.sent_nothing_more().await, "nothing may be patched");
}

#[tokio::test]
async fn configmap_patch_sets_and_removes_keys() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move {
        let before = target
            .configmap_data("flags", &["a".to_string(), "b".to_string()])
            .await?;
        let data = BTreeMap::from([
            ("a".to_string(), Some("2".to_string())),
            ("b".to_string(), None),
        ]);
        target.patch_configmap("flags", &data).await?;
        Ok::<_, KubeError>(before)
    });
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flags"}, "data": {"a": "1"}});
    let get = server.answer(200, cm.clone()).await;
    assert_eq!(get.uri, "/api/v1/namespaces/ns/configmaps/flags");
    let patch = server.answer(200, cm).await;
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(patch.body, json!({"data": {"a": "2", "b": null}}));
    let before = run.await.unwrap().unwrap();
    assert_eq!(
        before,
        BTreeMap::from([
            ("a".to_string(), Some("1".to_string())),
            ("b".to_string(), None)
        ])
    );
}

#[tokio::test]
async fn evict_falls_back_to_v1beta1_on_an_old_server() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move {
        let e = Evict {
            selector: selector("app=proxy"),
            count: Some(1),
            mode: PickMode::Oldest,
        };
        let mut rng = StdRng::seed_from_u64(0);
        target.evict(&e, &mut rng).await
    });
    server.answer(200, three_pods()).await;
    let discovery = server.answer(200, core_resources("v1beta1")).await;
    assert_eq!(discovery.uri, "/api/v1");
    let post = server
        .answer(
            201,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}),
        )
        .await;
    assert_eq!(post.method, http::Method::POST);
    assert_eq!(post.uri, "/api/v1/namespaces/ns/pods/proxy-a/eviction");
    assert_eq!(
        post.body,
        json!({"apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": "proxy-a", "namespace": "ns"}})
    );
    let evicted = run.await.unwrap().unwrap();
    assert_eq!(
        evicted[0].method,
        KillMethod::Evict {
            api_version: "policy/v1beta1"
        }
    );
}

#[tokio::test]
async fn eviction_blocked_by_a_budget_is_reported_not_retried() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move {
        let e = Evict {
            selector: selector("app=proxy"),
            count: Some(1),
            mode: PickMode::Oldest,
        };
        let mut rng = StdRng::seed_from_u64(0);
        target.evict(&e, &mut rng).await
    });
    server.answer(200, three_pods()).await;
    server.answer(200, core_resources("v1")).await;
    let post = server
        .answer(
            429,
            status(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            ),
        )
        .await;
    assert_eq!(post.body["apiVersion"], json!("policy/v1"));
    let err = run.await.unwrap().unwrap_err();
    assert!(matches!(err, KubeError::EvictionRefused { .. }), "{err}");
    assert!(err.to_string().contains("disruption budget"), "{err}");
    assert!(server.sent_nothing_more().await);
}

#[tokio::test(start_paused = true)]
async fn reads_are_retried_on_transient_errors() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move { target.replicas("proxy").await });
    server
        .answer(
            503,
            status(503, "ServiceUnavailable", "etcd leader changed"),
        )
        .await;
    server
        .answer(429, status(429, "TooManyRequests", "slow down"))
        .await;
    server.answer(200, deployment(&json!([]))).await;
    assert_eq!(run.await.unwrap().unwrap(), 2);
}

#[tokio::test]
async fn template_hashes_use_the_deployment_selector_and_skip_terminating_pods() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move { target.template_hashes("proxy").await });
    server.answer(200, deployment(&json!([]))).await;
    let mut old = pod("proxy-old", "2026-01-01T00:00:00Z");
    old["metadata"]["labels"]["pod-template-hash"] = json!("old");
    old["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
    let list = server
        .answer(
            200,
            pod_list(&[old, pod("proxy-new", "2026-01-01T00:00:30Z")]),
        )
        .await;
    assert_eq!(
        list.uri,
        "/api/v1/namespaces/ns/pods?&labelSelector=app%3Dproxy"
    );
    let hashes = run.await.unwrap().unwrap();
    assert_eq!(
        hashes.into_iter().collect::<Vec<_>>(),
        vec!["abc".to_string()]
    );
}

#[tokio::test]
async fn evict_without_any_eviction_api_names_the_alternative() {
    let (target, mut server) = mock::target(5);
    let run = tokio::spawn(async move {
        let e = Evict {
            selector: selector("app=proxy"),
            count: Some(1),
            mode: PickMode::Oldest,
        };
        target.evict(&e, &mut StdRng::seed_from_u64(0)).await
    });
    server.answer(200, three_pods()).await;
    server
        .answer(
            200,
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": []}),
        )
        .await;
    let err = run.await.unwrap().unwrap_err();
    assert!(
        matches!(err, KubeError::EvictionUnsupported { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("use `kill_pods` instead"), "{err}");
    assert!(
        server.sent_nothing_more().await,
        "no eviction may be posted"
    );
}

#[test]
fn api_errors_read_as_the_api_servers_words_with_the_context() {
    let response = kube::core::Status {
        status: Some(kube::core::response::StatusSummary::Failure),
        code: 404,
        message: "namespaces \"mcp\" not found".into(),
        reason: "NotFound".into(),
        metadata: None,
        details: None,
    };
    let error = KubeError::Api {
        action: "read the namespace".into(),
        context: "staging".into(),
        namespace: "mcp".into(),
        error: Box::new(kube::Error::Api(Box::new(response))),
    };
    assert_eq!(
        error.to_string(),
        "read the namespace in context `staging`, namespace `mcp`: namespaces \"mcp\" not \
         found (NotFound, HTTP 404)"
    );
    // Nothing more in the chain: the cause's words are already in the message.
    assert!(std::error::Error::source(&error).is_none());
}

#[tokio::test]
async fn a_refused_list_names_the_api_message_not_a_debug_dump() {
    let (target, mut server) = mock::target(5);
    let list =
        tokio::spawn(async move { target.matching_pods(&"app=proxy".parse().unwrap()).await });
    server
        .answer(
            403,
            status(
                403,
                "Forbidden",
                "pods is forbidden: User \"drill\" cannot list resource \"pods\"",
            ),
        )
        .await;
    let error = list.await.unwrap().unwrap_err().to_string();
    assert!(
        error.contains("context `test`, namespace `ns`: pods is forbidden: User \"drill\" cannot list resource \"pods\" (Forbidden, HTTP 403)"),
        "{error}"
    );
    for internal in ["Status {", "Some(", "ApiError"] {
        assert!(!error.contains(internal), "{error}");
    }
}
