//! The e2e harness itself, end to end on the real control plane (`make e2e`): kube 5 with
//! k8s-openapi `v1_33` against the 1.20 API server for core/v1, apps/v1 and batch/v1, the
//! controllers, the scheduler and the stand-in kubelet doing their parts.

/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common;

use std::time::Duration;

use common::base::wait_until;
use common::e2e::{JobRun, cluster, create_deployment, create_job, pod_ready, pods};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

const TIMEOUT: Duration = Duration::from_secs(60);

fn job_conditions(job: &Job) -> Vec<(String, String)> {
    job.status
        .iter()
        .flat_map(|status| status.conditions.iter().flatten())
        .map(|condition| (condition.type_.clone(), condition.status.clone()))
        .collect()
}

fn deployment_available(deployment: &Deployment, replicas: i32) -> bool {
    let Some(status) = &deployment.status else {
        return false;
    };
    status.observed_generation >= deployment.metadata.generation
        && status.available_replicas == Some(replicas)
        && status.updated_replicas == Some(replicas)
        && status
            .conditions
            .iter()
            .flatten()
            .any(|condition| condition.type_ == "Available" && condition.status == "True")
}

async fn ready_pods(client: &Client, namespace: &str, selector: &str) -> Vec<Pod> {
    pods(client, namespace, selector)
        .await
        .into_iter()
        .filter(pod_ready)
        .collect()
}

#[tokio::test]
async fn deployment_pods_become_ready_and_a_deleted_pod_is_replaced() {
    let Some(cluster) = cluster() else { return };
    let client = cluster.client().await;
    let namespace = cluster.fresh_namespace(&client, "smoke-deploy").await;
    create_deployment(
        &client,
        &namespace,
        "web",
        &[("app", "web")],
        2,
        &[("MODE", "stateless")],
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);

    let available = wait_until(TIMEOUT, || async {
        deployments
            .get("web")
            .await
            .is_ok_and(|deployment| deployment_available(&deployment, 2))
    })
    .await;
    assert!(available, "deployment never became available");
    let running = ready_pods(&client, &namespace, "app=web").await;
    assert_eq!(running.len(), 2, "two ready pods");
    for pod in &running {
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.node_name.as_deref(), Some(common::e2e::NODE));
        let env = spec.containers[0].env.as_ref().expect("env");
        assert_eq!(env[0].value.as_deref(), Some("stateless"));
        let status = pod.status.as_ref().expect("status");
        assert!(
            status
                .pod_ip
                .as_deref()
                .is_some_and(|ip| ip.starts_with("127.0.0.")),
            "loopback pod IP: {:?}",
            status.pod_ip
        );
        let containers = status.container_statuses.as_ref().expect("containers");
        assert_eq!(containers.len(), 1);
        assert!(containers[0].ready);
        assert_eq!(containers[0].started, Some(true));
        assert_eq!(containers[0].restart_count, 0);
        assert!(containers[0].container_id.is_some());
    }

    // A graceful delete (default 30 s grace): the stand-in kubelet finishes it within a second.
    let victim = running[0].metadata.name.clone().expect("name");
    let victim_uid = running[0].metadata.uid.clone().expect("uid");
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    pod_api
        .delete(&victim, &DeleteParams::default())
        .await
        .expect("delete a pod");
    let replaced = wait_until(TIMEOUT, || async {
        let now = ready_pods(&client, &namespace, "app=web").await;
        let victim_gone = pod_api
            .get_opt(&victim)
            .await
            .is_ok_and(|pod| pod.is_none());
        victim_gone
            && now.len() == 2
            && now
                .iter()
                .all(|pod| pod.metadata.uid.as_deref() != Some(victim_uid.as_str()))
    })
    .await;
    assert!(replaced, "the deleted pod was not replaced by a ready one");
}

#[tokio::test]
async fn restart_annotation_counts_container_restarts() {
    let Some(cluster) = cluster() else { return };
    let client = cluster.client().await;
    let namespace = cluster.fresh_namespace(&client, "smoke-restart").await;
    create_deployment(&client, &namespace, "crashy", &[("app", "crashy")], 1, &[]).await;
    let started = wait_until(TIMEOUT, || async {
        ready_pods(&client, &namespace, "app=crashy").await.len() == 1
    })
    .await;
    assert!(started, "pod never became ready");
    let pod = ready_pods(&client, &namespace, "app=crashy")
        .await
        .remove(0);
    let name = pod.metadata.name.clone().expect("name");
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &namespace);

    for (value, expected) in [("first", 1), ("second", 2)] {
        let patch = serde_json::json!({
            "metadata": { "annotations": { common::e2e::RESTART: value } }
        });
        pod_api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotate the pod");
        let counted = wait_until(TIMEOUT, || async {
            pod_api.get(&name).await.is_ok_and(|pod| {
                pod.status
                    .and_then(|status| status.container_statuses)
                    .is_some_and(|containers| containers[0].restart_count == expected)
            })
        })
        .await;
        assert!(counted, "restart count never reached {expected}");
    }
}

async fn finished_job(client: &Client, namespace: &str, name: &str, condition: &str) -> Job {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let finished = wait_until(TIMEOUT, || async {
        jobs.get(name).await.is_ok_and(|job| {
            job_conditions(&job)
                .iter()
                .any(|(kind, status)| kind == condition && status == "True")
        })
    })
    .await;
    assert!(finished, "job {name} never got condition {condition}");
    jobs.get(name).await.expect("get job")
}

fn terminated_exit_code(pod: &Pod) -> Option<i32> {
    let containers = pod.status.as_ref()?.container_statuses.as_ref()?;
    Some(
        containers
            .first()?
            .state
            .as_ref()?
            .terminated
            .as_ref()?
            .exit_code,
    )
}

#[tokio::test]
async fn job_pod_succeeds_after_its_run_time() {
    let Some(cluster) = cluster() else { return };
    let client = cluster.client().await;
    let namespace = cluster.fresh_namespace(&client, "smoke-job-ok").await;
    let run = JobRun {
        run_seconds: 1.0,
        exit_code: 0,
    };
    create_job(&client, &namespace, "train", &[("job", "train")], run).await;

    let job = finished_job(&client, &namespace, "train", "Complete").await;
    let status = job.status.expect("job status");
    assert_eq!(status.succeeded, Some(1));
    assert_eq!(status.failed.unwrap_or(0), 0);
    let pods = pods(&client, &namespace, "job=train").await;
    assert_eq!(pods.len(), 1);
    let pod_status = pods[0].status.as_ref().expect("pod status");
    assert_eq!(pod_status.phase.as_deref(), Some("Succeeded"));
    assert_eq!(terminated_exit_code(&pods[0]), Some(0));
}

#[tokio::test]
async fn job_pod_with_an_exit_code_fails_the_job() {
    let Some(cluster) = cluster() else { return };
    let client = cluster.client().await;
    let namespace = cluster.fresh_namespace(&client, "smoke-job-fail").await;
    let run = JobRun {
        run_seconds: 0.5,
        exit_code: 3,
    };
    create_job(&client, &namespace, "train", &[("job", "train")], run).await;

    let job = finished_job(&client, &namespace, "train", "Failed").await;
    let status = job.status.expect("job status");
    assert_eq!(status.failed, Some(1));
    assert_eq!(status.succeeded.unwrap_or(0), 0);
    let pods = pods(&client, &namespace, "job=train").await;
    assert_eq!(pods.len(), 1);
    let pod_status = pods[0].status.as_ref().expect("pod status");
    assert_eq!(pod_status.phase.as_deref(), Some("Failed"));
    assert_eq!(terminated_exit_code(&pods[0]), Some(3));
}

#[tokio::test]
async fn explicit_contexts_work_and_the_current_context_goes_nowhere() {
    let Some(cluster) = cluster() else { return };
    let kubeconfig = Kubeconfig::read_from(&cluster.kubeconfig).expect("read kubeconfig");
    assert_eq!(
        kubeconfig.current_context.as_deref(),
        Some(common::e2e::WRONG_DEFAULT_CONTEXT)
    );

    let version = cluster
        .client()
        .await
        .apiserver_version()
        .await
        .expect("version");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "20")
    );
    let prod = cluster.client_for(common::e2e::PROD_CONTEXT).await;
    assert_eq!(
        prod.apiserver_version()
            .await
            .expect("prod-e2e version")
            .minor,
        "20",
        "prod-e2e is the same cluster under a production-looking name"
    );

    // What a tool that forgot the explicit context would get: the current context, unusable.
    common::e2e::install_crypto_provider();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("the current context loads");
    assert_ne!(config.cluster_url.to_string(), cluster.server);
    let wrong = Client::try_from(config).expect("client");
    let attempt = tokio::time::timeout(Duration::from_secs(20), wrong.apiserver_version()).await;
    assert!(
        matches!(attempt, Ok(Err(_)) | Err(_)),
        "the wrong-default context must not reach a server"
    );
}
