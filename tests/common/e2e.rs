//! What the Kubernetes integration tests share: the cluster that `make e2e` starts
//! (`examples/e2e_cluster.rs`, a real 1.20 control plane on loopback with a stand-in kubelet)
//! or the box that `make e2e-box` starts (a real node: `e2e/box/`), a client for it, fresh
//! namespaces, Deployment and Job helpers, and polling.
//!
//! The helpers' workloads run on both: the stand-in kubelet follows the `drillbook.test/*`
//! annotations and never runs a container; the box's kubelet runs the same pods for real, as
//! busybox containers whose commands do what the annotations say.
//!
//! Outside `make e2e` the environment is absent and [`cluster`] skips the test loudly — unless
//! `DRILLBOOK_REQUIRE_E2E=1` (CI), where a skip would hide a broken harness, so it panics.
//! `DRILLBOOK_E2E_DEFERRED=1` (set by `make test` for its first, cluster-less pass, which is
//! followed by `make e2e`) skips quietly.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, Namespace, Pod, PodSpec, PodTemplateSpec, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

use super::base::wait_until;

/// Annotation: seconds a Job pod runs before the stand-in kubelet finishes it (default 2).
pub const RUN_SECONDS: &str = "drillbook.test/run-seconds";
/// Annotation: exit code of a Job pod's container; non-zero makes the pod Failed.
pub const EXIT_CODE: &str = "drillbook.test/exit-code";
/// Annotation: each new value counts one restart of the pod's containers.
pub const RESTART: &str = "drillbook.test/restart";
/// The one node the stand-in kubelet runs.
pub const NODE: &str = "drill-node";
/// A context of the same kubeconfig, same cluster, with a production-looking name.
pub const PROD_CONTEXT: &str = "prod-e2e";
/// The kubeconfig's current-context, which points at nothing on purpose.
pub const WRONG_DEFAULT_CONTEXT: &str = "wrong-default";
/// Image of the helpers' containers: imported into the box's containerd (never pulled); the
/// stand-in kubelet never runs it.
pub const IMAGE: &str = "box.local/busybox:1.35";
/// A long-running service container that ends at once on SIGTERM (a Deployment's pod).
const SERVE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// The cluster `make e2e` started, as its environment describes it.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Kubeconfig with the contexts `drill-e2e`, `prod-e2e` and the bogus current `wrong-default`.
    pub kubeconfig: PathBuf,
    /// The context to use (`drill-e2e`).
    pub context: String,
    /// The API server's URL (`https://127.0.0.1:<port>`).
    pub server: String,
}

/// The cluster, or `None` (after a loud message) outside `make e2e`. Panics instead of skipping
/// when `DRILLBOOK_REQUIRE_E2E=1`; skips quietly when `DRILLBOOK_E2E_DEFERRED=1`.
pub fn cluster() -> Option<Cluster> {
    let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let found = (|| {
        Some(Cluster {
            kubeconfig: PathBuf::from(var("DRILLBOOK_E2E_KUBECONFIG")?),
            context: var("DRILLBOOK_E2E_CONTEXT")?,
            server: var("DRILLBOOK_E2E_SERVER")?,
        })
    })();
    if found.is_none() {
        // `make test` runs every target once without the cluster, then these tests again under
        // `make e2e`: the first pass is not a skip worth shouting about.
        if var("DRILLBOOK_E2E_DEFERRED").as_deref() == Some("1") {
            return None;
        }
        assert!(
            var("DRILLBOOK_REQUIRE_E2E").as_deref() != Some("1"),
            "DRILLBOOK_REQUIRE_E2E=1 but no e2e cluster in the environment: run through `make e2e`"
        );
        // Straight to the stderr handle: libtest captures `eprintln!`, and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPING: no Kubernetes control plane; run through `make e2e` ***\n"
        );
    }
    found
}

impl Cluster {
    /// A client for [`Cluster::context`], loaded with an explicit context so the kubeconfig's
    /// (wrong) current-context is never consulted.
    pub async fn client(&self) -> Client {
        self.client_for(&self.context).await
    }

    /// A client for any context of the kubeconfig.
    pub async fn client_for(&self, context: &str) -> Client {
        install_crypto_provider();
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("read the e2e kubeconfig");
        let options = KubeConfigOptions {
            context: Some(context.to_owned()),
            ..KubeConfigOptions::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .unwrap_or_else(|error| panic!("load context {context}: {error}"));
        Client::try_from(config).expect("build a kube client")
    }

    /// Creates `<prefix>-<random>` and waits until its `default` service account has the token
    /// secret that 1.20's ServiceAccount admission requires before it admits a pod.
    pub async fn fresh_namespace(&self, client: &Client, prefix: &str) -> String {
        let name = format!("{prefix}-{:08x}", rand::random::<u32>());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|error| panic!("create namespace {name}: {error}"));
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        let ready = wait_until(Duration::from_secs(30), || async {
            accounts
                .get_opt("default")
                .await
                .ok()
                .flatten()
                .and_then(|account| account.secrets)
                .is_some_and(|secrets| !secrets.is_empty())
        })
        .await;
        assert!(ready, "namespace {name}: no default service account token");
        name
    }
}

/// The process-wide rustls provider kube's TLS needs (the crate's one: aws-lc-rs).
pub fn install_crypto_provider() {
    let _already_installed = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn string_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn container(env: &[(&str, &str)], script: &str) -> Container {
    Container {
        name: "app".to_owned(),
        image: Some(IMAGE.to_owned()),
        image_pull_policy: Some("Never".to_owned()),
        command: Some(vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()]),
        env: (!env.is_empty()).then(|| {
            env.iter()
                .map(|(name, value)| EnvVar {
                    name: (*name).to_owned(),
                    value: Some((*value).to_owned()),
                    ..EnvVar::default()
                })
                .collect()
        }),
        ..Container::default()
    }
}

/// Creates a Deployment of `replicas` pods labelled (and selected by) `labels`, with one
/// container `app` carrying `env`.
pub async fn create_deployment(
    client: &Client,
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
    replicas: i32,
    env: &[(&str, &str)],
) -> Deployment {
    let labels = string_map(labels);
    let deployment = Deployment {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container(env, SERVE)],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    };
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap_or_else(|error| panic!("create deployment {namespace}/{name}: {error}"))
}

/// How a Job's pod ends under the stand-in kubelet.
#[derive(Debug, Clone, Copy)]
pub struct JobRun {
    /// Seconds the pod runs (`drillbook.test/run-seconds`).
    pub run_seconds: f64,
    /// Its exit code (`drillbook.test/exit-code`); non-zero fails the Job (backoffLimit 0).
    pub exit_code: i32,
}

/// Creates a one-pod Job (`backoffLimit: 0`, `restartPolicy: Never`) whose pod is labelled
/// `labels` and ends as `run` says.
pub async fn create_job(
    client: &Client,
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
    run: JobRun,
) -> Job {
    let run_seconds = run.run_seconds.to_string();
    let exit_code = run.exit_code.to_string();
    let job = Job {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(string_map(labels)),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(string_map(labels)),
                    annotations: Some(string_map(&[
                        (RUN_SECONDS, &run_seconds),
                        (EXIT_CODE, &exit_code),
                    ])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container(
                        &[],
                        &format!("sleep {run_seconds}; exit {exit_code}"),
                    )],
                    restart_policy: Some("Never".to_owned()),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    };
    Api::<Job>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &job)
        .await
        .unwrap_or_else(|error| panic!("create job {namespace}/{name}: {error}"))
}

/// Pods of `namespace` matching the label selector `selector` (`app=x`).
pub async fn pods(client: &Client, namespace: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&kube::api::ListParams::default().labels(selector))
        .await
        .unwrap_or_else(|error| panic!("list pods {selector} in {namespace}: {error}"))
        .items
}

/// Whether a pod is Running with its Ready condition true (and not being deleted).
pub fn pod_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    pod.metadata.deletion_timestamp.is_none()
        && status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|condition| condition.type_ == "Ready" && condition.status == "True")
}
