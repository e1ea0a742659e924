//! In a cluster, the jobs-manager starts real training Jobs: each Job's pod holds the token the
//! jobs-manager minted for it **in its env** (`LAB_TRAINER_TOKEN`), exactly as the cutover ticket
//! describes ("tokens already minted as JWTs in env on running pods"). That is what makes a
//! mid-flight rollback strand those pods: the token cannot change under a running pod.
//!
//! Legacy tokens live in each proxy replica's memory, so in a cluster the jobs-manager
//! registers them with every ready endpoint of the proxy Service, not with whichever replica
//! the Service picks.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, Endpoints, EnvVar, PodSecurityContext, PodSpec, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::{Api, Client};

use super::TokenMode;

/// Label every launched Job and its pods carry; drills select them with it.
pub const JOB_APP_LABEL: &str = "training-job";
/// Finished Jobs kept in the namespace (the oldest are deleted beyond this), so a long bake
/// does not fill the namespace; a drill only looks at Jobs that ended during it.
const KEEP_FINISHED: usize = 30;

/// How a launched training Job behaves.
#[derive(Debug, Clone)]
pub struct TrainingJobSpec {
    /// Image of the Job's pod (the jobs-manager's own image).
    pub image: String,
    /// Base URL of the proxy as the Job's pod reaches it (the proxy Service).
    pub proxy_url: String,
    /// Training steps (proxy calls) of one Job.
    pub steps: u64,
    /// Pause between two calls.
    pub interval: Duration,
    /// Consecutive 401s after which the trainer gives up as stranded.
    pub give_up_after: u32,
    /// The Job's deadline: it never outlives this, whatever happens.
    pub max_runtime: Duration,
}

/// Why a Job could not be started or a token not registered.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The Kubernetes API refused or failed a call.
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// The proxy Service has no ready endpoint to register a legacy token with.
    #[error("the proxy Service `{0}` has no ready endpoint")]
    NoProxyEndpoint(String),
}

/// Starts training Jobs and finds proxy replicas, in the jobs-manager's own namespace.
#[derive(Debug, Clone)]
pub struct Launcher {
    jobs: Api<Job>,
    endpoints: Api<Endpoints>,
    spec: TrainingJobSpec,
}

impl Launcher {
    /// A launcher using the pod's ServiceAccount (or the ambient kubeconfig outside a pod).
    pub async fn connect(namespace: &str, spec: TrainingJobSpec) -> Result<Self, LaunchError> {
        let client = Client::try_default().await?;
        Ok(Self {
            jobs: Api::namespaced(client.clone(), namespace),
            endpoints: Api::namespaced(client, namespace),
            spec,
        })
    }

    /// Creates one training Job for `job_id` whose pod holds `token` in its env.
    pub async fn launch(
        &self,
        job_id: &str,
        token: &str,
        mode: TokenMode,
    ) -> Result<String, LaunchError> {
        let job = training_job(&self.spec, job_id, token, mode);
        let created = self.jobs.create(&PostParams::default(), &job).await?;
        Ok(created.metadata.name.unwrap_or_default())
    }

    /// Base URLs (`http://IP:PORT`) of every ready address of the Service `service`.
    pub async fn ready_endpoints(&self, service: &str) -> Result<Vec<String>, LaunchError> {
        let endpoints = self.endpoints.get(service).await?;
        let urls: Vec<String> = endpoints
            .subsets
            .unwrap_or_default()
            .iter()
            .flat_map(|subset| {
                let port = subset
                    .ports
                    .as_ref()
                    .and_then(|ports| ports.first())
                    .map_or(80, |port| port.port);
                subset
                    .addresses
                    .iter()
                    .flatten()
                    .map(move |address| format!("http://{}:{port}", address.ip))
            })
            .collect();
        if urls.is_empty() {
            return Err(LaunchError::NoProxyEndpoint(service.to_owned()));
        }
        Ok(urls)
    }

    /// Deletes the oldest finished training Jobs beyond [`KEEP_FINISHED`].
    pub async fn prune_finished(&self) -> Result<usize, LaunchError> {
        let selector = format!("app={JOB_APP_LABEL}");
        let mut finished: Vec<Job> = self
            .jobs
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .into_iter()
            .filter(|job| {
                job.status.as_ref().is_some_and(|status| {
                    status.completion_time.is_some() || status.failed > Some(0)
                })
            })
            .collect();
        if finished.len() <= KEEP_FINISHED {
            return Ok(0);
        }
        finished.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        });
        let excess = finished.len() - KEEP_FINISHED;
        let background = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        for job in finished.iter().take(excess) {
            if let Some(name) = &job.metadata.name {
                self.jobs.delete(name, &background).await?;
            }
        }
        Ok(excess)
    }
}

/// The Job object: one pod, never retried (a stranded trainer must show as a failed Job), with
/// the minted token as a plain env value — the design whose rollback caveat the drills rehearse.
fn training_job(spec: &TrainingJobSpec, job_id: &str, token: &str, mode: TokenMode) -> Job {
    let labels = BTreeMap::from([
        ("app".to_owned(), JOB_APP_LABEL.to_owned()),
        (
            "drillbook.dev/token-mode".to_owned(),
            mode.label().to_owned(),
        ),
    ]);
    let env = |name: &str, value: String| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        value_from: None,
    };
    let container = Container {
        name: "trainer".to_owned(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some("Never".to_owned()),
        args: Some(vec!["lab".to_owned(), "trainer".to_owned()]),
        env: Some(vec![
            env("LAB_PROXY_URL", spec.proxy_url.clone()),
            env("LAB_TRAINER_TOKEN", token.to_owned()),
            env("LAB_TRAINER_JOB_ID", job_id.to_owned()),
            env("LAB_TRAINER_STEPS", spec.steps.to_string()),
            env(
                "LAB_TRAINER_INTERVAL",
                format!("{}ms", spec.interval.as_millis()),
            ),
            env("LAB_TRAINER_GIVE_UP_AFTER", spec.give_up_after.to_string()),
            env(
                "LAB_TRAINER_MAX_RUNTIME",
                format!("{}s", spec.max_runtime.as_secs()),
            ),
        ]),
        ..Container::default()
    };
    Job {
        metadata: ObjectMeta {
            generate_name: Some("training-".to_owned()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            // A little beyond the trainer's own limit, so the trainer reports why it stopped.
            active_deadline_seconds: Some(
                i64::try_from(spec.max_runtime.as_secs()).unwrap_or(i64::MAX / 2) + 30,
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_owned()),
                    automount_service_account_token: Some(false),
                    termination_grace_period_seconds: Some(5),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TrainingJobSpec {
        TrainingJobSpec {
            image: "box.local/drillbook:dev".into(),
            proxy_url: "http://10.252.0.20:8080".into(),
            steps: 300,
            interval: Duration::from_millis(100),
            give_up_after: 5,
            max_runtime: Duration::from_secs(120),
        }
    }

    #[test]
    fn the_token_is_in_the_pod_env_and_the_job_is_never_retried() {
        let job = training_job(&spec(), "job-7", "tok-abc", TokenMode::Stateless);
        let job_spec = job.spec.expect("job spec");
        assert_eq!(job_spec.backoff_limit, Some(0));
        assert_eq!(job_spec.active_deadline_seconds, Some(150));
        let pod = job_spec.template.spec.expect("pod spec");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let env = pod.containers[0].env.clone().expect("env");
        let value = |name: &str| {
            env.iter()
                .find(|var| var.name == name)
                .and_then(|var| var.value.clone())
        };
        assert_eq!(value("LAB_TRAINER_TOKEN").as_deref(), Some("tok-abc"));
        assert_eq!(value("LAB_TRAINER_JOB_ID").as_deref(), Some("job-7"));
        assert_eq!(
            value("LAB_PROXY_URL").as_deref(),
            Some("http://10.252.0.20:8080")
        );
        assert_eq!(value("LAB_TRAINER_INTERVAL").as_deref(), Some("100ms"));
        let labels = job.metadata.labels.expect("labels");
        assert_eq!(labels.get("app").map(String::as_str), Some(JOB_APP_LABEL));
        assert_eq!(
            labels.get("drillbook.dev/token-mode").map(String::as_str),
            Some("stateless")
        );
    }
}
