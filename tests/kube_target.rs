//! The Kubernetes target on the real 1.20 control plane (`make e2e`, or
//! `cargo run --example e2e_cluster -- cargo test --test kube_target`). Skips loudly otherwise.

/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::base::wait_until;
use common::e2e::{Cluster, JobRun, cluster, create_deployment, create_job, pod_ready, pods};
use drillbook::report::model::PreflightStatus;
use drillbook::scenario::{KillPods, KubernetesTarget, PickMode, Sp};
use drillbook::targets::kube::{KubeError, KubeEventKind, KubeTarget, pods_rolled};
use drillbook::units::LabelSelector;
use rand::SeedableRng;
use rand::rngs::StdRng;

const WAIT: Duration = Duration::from_secs(60);

fn spec(cluster: &Cluster, context: &str, namespace: &str, max_pods: u32) -> KubernetesTarget {
    KubernetesTarget {
        context: Sp::unplaced(context.to_string()),
        namespace: Sp::unplaced(namespace.to_string()),
        allowed_contexts: vec![
            Sp::unplaced(cluster.context.clone()),
            Sp::unplaced(common::e2e::PROD_CONTEXT.to_string()),
        ],
        allowed_namespaces: Vec::new(),
        kubeconfig: Some(cluster.kubeconfig.display().to_string()),
        max_pods,
    }
}

/// A fresh namespace with a ready Deployment `proxy` (`app=proxy`), and a target pinned to it.
async fn setup(
    prefix: &str,
    replicas: i32,
    env: &[(&str, &str)],
    max_pods: u32,
) -> Option<(Cluster, String, KubeTarget)> {
    let cluster = cluster()?;
    let client = cluster.client().await;
    let namespace = cluster.fresh_namespace(&client, prefix).await;
    let target = KubeTarget::connect(
        &spec(&cluster, &cluster.context, &namespace, max_pods),
        None,
        false,
    )
    .await
    .expect("connect to the e2e context");
    if replicas > 0 {
        create_deployment(
            &client,
            &namespace,
            "proxy",
            &[("app", "proxy")],
            replicas,
            env,
        )
        .await;
        target
            .wait_rollout("proxy", WAIT)
            .await
            .expect("the new deployment rolls out");
    }
    Some((cluster, namespace, target))
}

fn proxy() -> LabelSelector {
    "app=proxy".parse().expect("a valid selector")
}

async fn pod_names(cluster: &Cluster, namespace: &str) -> BTreeSet<String> {
    pods(&cluster.client().await, namespace, "app=proxy")
        .await
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}

fn kill_one() -> KillPods {
    KillPods {
        selector: Sp::unplaced(proxy()),
        count: Some(1),
        percent: None,
        mode: PickMode::Random,
        grace_period: Some(Duration::from_secs(1).into()),
        force: false,
    }
}

#[tokio::test]
async fn killed_proxy_pod_is_replaced_and_its_ready_again_time_recorded() {
    let Some((cluster, namespace, target)) = setup("kill", 2, &[], 5).await else {
        return;
    };
    let before = pod_names(&cluster, &namespace).await;
    let observer = target.observe(vec![proxy()], Vec::new());
    // Give the watcher its initial list, so the kill is news to it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = target
        .kill_pods(&kill_one(), &mut StdRng::seed_from_u64(7))
        .await
        .unwrap();
    assert_eq!(killed.len(), 1);
    assert!(before.contains(&killed[0].pod.name));

    target.wait_pods_ready(&proxy(), WAIT).await.unwrap();
    let ready_again = wait_until(WAIT, || async {
        observer.ready_again(&killed, &proxy()).is_some()
    })
    .await;
    assert!(
        ready_again,
        "no replacement became ready: {:#?}",
        observer.events()
    );
    let took = observer.ready_again(&killed, &proxy()).unwrap();
    println!("ready again {took:?} after the kill");

    let after = pod_names(&cluster, &namespace).await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        !after.contains(&killed[0].pod.name),
        "killed pod still there: {after:?}"
    );
    let deleted = wait_until(WAIT, || async {
        observer.events().iter().any(|e| {
            matches!(&e.kind, KubeEventKind::PodDeleted { name, .. } if *name == killed[0].pod.name)
        })
    })
    .await;
    assert!(
        deleted,
        "the observer never saw the deletion: {:#?}",
        observer.events()
    );
    let created = observer
        .events()
        .iter()
        .filter(|e| matches!(e.kind, KubeEventKind::PodCreated { .. }))
        .count();
    assert_eq!(created, 1, "{:#?}", observer.events());
    observer.stop();
}

#[tokio::test]
async fn a_kill_over_max_pods_is_refused_before_any_deletion() {
    let Some((cluster, namespace, target)) = setup("maxpods", 3, &[], 2).await else {
        return;
    };
    let before = pod_names(&cluster, &namespace).await;
    let mut all = kill_one();
    all.count = None;
    all.percent = Some(Sp::unplaced(100));
    let err = target
        .kill_pods(&all, &mut StdRng::seed_from_u64(1))
        .await
        .unwrap_err();
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
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = cluster.client().await;
    let now = pods(&client, &namespace, "app=proxy").await;
    assert!(now.iter().all(pod_ready), "a pod was touched: {now:#?}");
    assert_eq!(pod_names(&cluster, &namespace).await, before);
}

#[tokio::test]
async fn rollout_restart_replaces_every_pod_and_wait_rollout_sees_it_through() {
    let Some((cluster, namespace, target)) = setup("restart", 2, &[], 5).await else {
        return;
    };
    let names_before = pod_names(&cluster, &namespace).await;
    let hashes_before = target.template_hashes("proxy").await.unwrap();
    target.rollout_restart("proxy").await.unwrap();
    let took = target.wait_rollout("proxy", WAIT).await.unwrap();
    println!("rollout restart completed in {took:?}");
    let names_after = pod_names(&cluster, &namespace).await;
    assert_eq!(names_after.len(), 2, "{names_after:?}");
    assert!(
        names_after.is_disjoint(&names_before),
        "{names_before:?} → {names_after:?}"
    );
    let hashes_after = target.template_hashes("proxy").await.unwrap();
    assert!(
        pods_rolled(&hashes_before, &hashes_after),
        "{hashes_before:?} → {hashes_after:?}"
    );
    assert_eq!(hashes_after.len(), 1, "old pods left: {hashes_after:?}");
}

#[tokio::test]
async fn an_env_flip_rolls_pods_and_a_no_op_flip_rolls_nothing() {
    let Some((cluster, namespace, target)) = setup("flip", 2, &[("STATELESS", "false")], 5).await
    else {
        return;
    };
    let flip = BTreeMap::from([("STATELESS".to_string(), Some("true".to_string()))]);
    let undo = target.env_of("proxy", None).await.unwrap();
    assert_eq!(undo.get("STATELESS"), Some(&Some("false".to_string())));

    let h0 = target.template_hashes("proxy").await.unwrap();
    target.patch_env("proxy", None, &flip).await.unwrap();
    target.wait_rollout("proxy", WAIT).await.unwrap();
    let h1 = target.template_hashes("proxy").await.unwrap();
    assert!(
        pods_rolled(&h0, &h1),
        "the flip rolled nothing: {h0:?} → {h1:?}"
    );
    let env = target.env_of("proxy", None).await.unwrap();
    assert_eq!(env.get("STATELESS"), Some(&Some("true".to_string())));

    let names = pod_names(&cluster, &namespace).await;
    target.patch_env("proxy", None, &flip).await.unwrap();
    target.wait_rollout("proxy", WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let h2 = target.template_hashes("proxy").await.unwrap();
    assert!(
        !pods_rolled(&h1, &h2),
        "a no-op flip rolled pods: {h1:?} → {h2:?}"
    );
    assert_eq!(pod_names(&cluster, &namespace).await, names);

    // The undo puts the old value back, which rolls again.
    target.patch_env("proxy", None, &undo).await.unwrap();
    target.wait_rollout("proxy", WAIT).await.unwrap();
    let h3 = target.template_hashes("proxy").await.unwrap();
    assert!(pods_rolled(&h2, &h3));
}

#[tokio::test]
async fn the_job_observer_sees_a_job_fail_during_the_drill() {
    let Some((cluster, namespace, target)) = setup("jobs", 0, &[], 5).await else {
        return;
    };
    let trainer: LabelSelector = "app=trainer".parse().unwrap();
    let observer = target.observe(Vec::new(), vec![trainer]);
    let client = cluster.client().await;
    let run = |exit_code| JobRun {
        run_seconds: 1.0,
        exit_code,
    };
    create_job(
        &client,
        &namespace,
        "train-bad",
        &[("app", "trainer")],
        run(1),
    )
    .await;
    create_job(
        &client,
        &namespace,
        "train-good",
        &[("app", "trainer")],
        run(0),
    )
    .await;
    create_job(&client, &namespace, "other", &[("app", "other")], run(1)).await;
    let both = wait_until(WAIT, || async {
        let events = observer.events();
        let failed = events.iter().any(
            |e| matches!(&e.kind, KubeEventKind::JobFailed { name, .. } if name == "train-bad"),
        );
        let succeeded = events.iter().any(
            |e| matches!(&e.kind, KubeEventKind::JobSucceeded { name, .. } if name == "train-good"),
        );
        failed && succeeded
    })
    .await;
    let events = observer.events();
    assert!(both, "{events:#?}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(&e.kind, KubeEventKind::JobFailed { name, .. } if name == "other")),
        "a Job outside the selector was reported: {events:#?}"
    );
    let failures = events
        .iter()
        .filter(|e| matches!(e.kind, KubeEventKind::JobFailed { .. }))
        .count();
    assert_eq!(failures, 1, "each outcome is reported once: {events:#?}");
}

fn scenario(context: &str, namespace: &str, on_found: &str) -> drillbook::scenario::Scenario {
    let source = format!(
        "apiVersion: drillbook/v1\nname: preflight\ntarget:\n  kubernetes:\n    context: {context}\n    namespace: {namespace}\n    allowed_contexts: [{context}]\npreflight:\n  - active_jobs: {{selector: app=trainer, on_found: {on_found}}}\nsteps:\n  - kill_pods: {{selector: app=proxy}}\n  - scale: {{deployment: proxy, replicas: 1}}\n"
    );
    drillbook::scenario::parse_str(&source).expect("a valid scenario")
}

#[tokio::test]
async fn preflight_lists_active_jobs_as_warning_or_failure() {
    let Some((cluster, namespace, target)) = setup("preflight", 1, &[], 5).await else {
        return;
    };
    let client = cluster.client().await;
    let long = JobRun {
        run_seconds: 120.0,
        exit_code: 0,
    };
    create_job(
        &client,
        &namespace,
        "train-long",
        &[("app", "trainer")],
        long,
    )
    .await;
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> =
        kube::Api::namespaced(client.clone(), &namespace);
    let active = wait_until(WAIT, || async {
        jobs.get("train-long")
            .await
            .ok()
            .and_then(|j| j.status)
            .and_then(|s| s.active)
            .unwrap_or(0)
            > 0
    })
    .await;
    assert!(active, "the job never became active");

    for (on_found, expected) in [
        ("warn", PreflightStatus::Warn),
        ("fail", PreflightStatus::Fail),
    ] {
        let results = target
            .preflight(&scenario(&cluster.context, &namespace, on_found))
            .await;
        let jobs = results
            .iter()
            .find(|r| r.name.starts_with("active jobs"))
            .unwrap();
        assert_eq!(jobs.status, expected, "{results:#?}");
        assert!(jobs.detail.contains("train-long"), "{}", jobs.detail);
        // Everything else holds: context, namespace, permissions (admin), the selector.
        let others: Vec<_> = results
            .iter()
            .filter(|r| !r.name.starts_with("active jobs"))
            .collect();
        assert!(
            others.iter().all(|r| r.status == PreflightStatus::Ok),
            "{results:#?}"
        );
        assert!(
            others.iter().any(|r| r.name == "permissions"),
            "{results:#?}"
        );
        assert!(
            others.iter().any(|r| r.name == "pods match app=proxy"),
            "{results:#?}"
        );
    }

    // A selector without pods fails pre-flight.
    let source = format!(
        "apiVersion: drillbook/v1\nname: p\ntarget:\n  kubernetes: {{context: {c}, namespace: {namespace}, allowed_contexts: [{c}]}}\nsteps:\n  - kill_pods: {{selector: app=ghost}}\n",
        c = cluster.context
    );
    let results = target
        .preflight(&drillbook::scenario::parse_str(&source).unwrap())
        .await;
    let ghost = results
        .iter()
        .find(|r| r.name == "pods match app=ghost")
        .unwrap();
    assert_eq!(ghost.status, PreflightStatus::Fail, "{results:#?}");
}

#[tokio::test]
async fn disallowed_and_production_contexts_are_refused() {
    let Some(cluster) = cluster() else { return };
    let s = spec(&cluster, &cluster.context, "drill", 5);
    let err = KubeTarget::connect(&s, Some(common::e2e::WRONG_DEFAULT_CONTEXT), false)
        .await
        .unwrap_err();
    assert!(matches!(err, KubeError::ContextNotAllowed { .. }), "{err}");

    let prod = spec(&cluster, common::e2e::PROD_CONTEXT, "drill", 5);
    let err = KubeTarget::connect(&prod, None, false).await.unwrap_err();
    assert!(
        matches!(
            err,
            KubeError::Production {
                what: "context",
                ..
            }
        ),
        "{err}"
    );
    let err = KubeTarget::connect(&s, Some(common::e2e::PROD_CONTEXT), false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, KubeError::Production { .. }),
        "--context cannot sneak prod in: {err}"
    );

    // With --allow-production the same context works, pinned to it (not the bogus current one).
    let target = KubeTarget::connect(&prod, None, true).await.unwrap();
    assert_eq!(target.context(), common::e2e::PROD_CONTEXT);
    assert!(target.matching_pods(&proxy()).await.unwrap().is_empty());
}

#[tokio::test]
async fn scale_and_its_undo_restore_the_replicas() {
    let Some((cluster, namespace, target)) = setup("scale", 2, &[], 5).await else {
        return;
    };
    let previous = target.replicas("proxy").await.unwrap();
    assert_eq!(previous, 2);
    target.scale("proxy", 3).await.unwrap();
    target.wait_rollout("proxy", WAIT).await.unwrap();
    target.wait_pods_ready(&proxy(), WAIT).await.unwrap();
    assert_eq!(pod_names(&cluster, &namespace).await.len(), 3);

    target.scale("proxy", previous).await.unwrap();
    target.wait_rollout("proxy", WAIT).await.unwrap();
    assert_eq!(target.replicas("proxy").await.unwrap(), 2);
    let settled = wait_until(WAIT, || async {
        pod_names(&cluster, &namespace).await.len() == 2
    })
    .await;
    assert!(settled, "{:?}", pod_names(&cluster, &namespace).await);
}

#[tokio::test]
async fn eviction_on_a_1_20_server_falls_back_to_policy_v1beta1() {
    let Some((cluster, namespace, target)) = setup("evict", 2, &[], 5).await else {
        return;
    };
    let before = pod_names(&cluster, &namespace).await;
    let evict = drillbook::scenario::Evict {
        selector: Sp::unplaced(proxy()),
        count: Some(1),
        mode: PickMode::Oldest,
    };
    let evicted = target
        .evict(&evict, &mut StdRng::seed_from_u64(3))
        .await
        .unwrap();
    assert_eq!(evicted.len(), 1);
    assert_eq!(
        evicted[0].method,
        drillbook::targets::kube::KillMethod::Evict {
            api_version: "policy/v1beta1"
        }
    );
    assert!(before.contains(&evicted[0].pod.name));
    let gone = wait_until(WAIT, || async {
        !pod_names(&cluster, &namespace)
            .await
            .contains(&evicted[0].pod.name)
    })
    .await;
    assert!(gone, "the evicted pod is still there");
    target.wait_pods_ready(&proxy(), WAIT).await.unwrap();
}

#[tokio::test]
async fn the_observer_sees_container_restarts_and_warning_events() {
    let Some((cluster, namespace, target)) = setup("observe", 1, &[], 5).await else {
        return;
    };
    let observer = target.observe(vec![proxy()], Vec::new());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = cluster.client().await;
    let pod = target.matching_pods(&proxy()).await.unwrap().remove(0);
    let pods_api: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), &namespace);
    let restart = serde_json::json!({"metadata": {"annotations": {common::e2e::RESTART: "1"}}});
    pods_api
        .patch(
            &pod.name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&restart),
        )
        .await
        .unwrap();
    let warning: k8s_openapi::api::core::v1::Event = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "proxy-warning"},
        "type": "Warning",
        "reason": "BackOff",
        "message": "Back-off restarting failed container",
        "involvedObject": {"kind": "Pod", "name": pod.name, "namespace": namespace},
    }))
    .unwrap();
    kube::Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), &namespace)
        .create(&Default::default(), &warning)
        .await
        .unwrap();
    let seen = wait_until(WAIT, || async {
        let events = observer.events();
        let restarted = events.iter().any(|e| matches!(&e.kind, KubeEventKind::ContainerRestarted { pod: p, count: 1, .. } if *p == pod.name));
        let warned = events.iter().any(|e| matches!(&e.kind, KubeEventKind::WarningEvent { reason, object, .. } if reason == "BackOff" && *object == format!("Pod/{}", pod.name)));
        restarted && warned
    })
    .await;
    assert!(seen, "{:#?}", observer.events());
}
