//! Scheduled drills: `drillbook schedule` renders what a weekly in-cluster run needs (the
//! scenario in a ConfigMap, a ServiceAccount with a Role derived from the scenario, and a
//! CronJob), and `drillbook rbac` prints just the Role.
//!
//! With `--context`, the same safety rules as `run` apply, discovery picks the CronJob API the
//! cluster serves (`batch/v1`, or `batch/v1beta1` before Kubernetes 1.21), and every object is
//! validated with a server-side dry run.

pub mod cron;
pub mod rbac;
pub mod results;

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

use crate::scenario::{KubernetesTarget, LoadedScenario, TargetSpec};
use crate::targets::kube::{KubeError, KubeTarget};
use crate::units::HumanDuration;

/// Key of the scenario file in its ConfigMap, and its file name in the pod.
pub const SCENARIO_KEY: &str = "scenario.yaml";
/// Where the scenario ConfigMap is mounted in the drill pod.
pub const SCENARIO_MOUNT: &str = "/scenario";
/// Writable scratch space in the pod (reports, undo journal); the root filesystem is read-only.
const WORK_DIR: &str = "/tmp/drillbook";
/// The distroless `nonroot` user.
const NON_ROOT_UID: i64 = 65532;

/// Why `schedule` or `rbac` could not render or validate.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The scenario file is invalid.
    #[error("{0}")]
    Invalid(Box<crate::scenario::FileDiagnostics>),
    /// Scheduling is only for Kubernetes targets.
    #[error(
        "scenario `{0}` has a local target: only Kubernetes drills can run on a schedule in a cluster"
    )]
    NotKubernetes(String),
    /// A safety rule refused the context, or the cluster could not be reached.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// Rendering an object failed.
    #[error("rendering {what}: {message}")]
    Render { what: String, message: String },
    /// Writing a manifest file failed.
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Which CronJob API version to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronJobApi {
    /// `batch/v1` (Kubernetes 1.21 and later).
    BatchV1,
    /// `batch/v1beta1` (Kubernetes 1.8 to 1.24; the only one before 1.21).
    BatchV1Beta1,
}

impl CronJobApi {
    /// The `apiVersion` string.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::BatchV1 => "batch/v1",
            Self::BatchV1Beta1 => "batch/v1beta1",
        }
    }
}

/// What the CronJob is made of, beyond the scenario.
#[derive(Debug, Clone)]
pub struct ScheduleOptions {
    /// Cron expression, e.g. `0 3 * * 1`.
    pub schedule: String,
    /// Container image holding `drillbook`.
    pub image: String,
    /// The Job is killed (and the run counts as failed) after this long.
    pub deadline: HumanDuration,
    /// The cluster name the in-cluster run must match (the scenario's context).
    pub cluster_name: String,
    /// More arguments of the in-cluster `drillbook run`: what the schedule was rendered with
    /// beyond the scenario file (`--namespace`, `--var`), so the Job runs what was validated.
    pub run_args: Vec<String>,
}

/// One rendered object: enough to print it and to dry-run it through a dynamic API.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// `Kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// Resource plural (`roles`, `cronjobs`).
    pub plural: &'static str,
    /// Whether the object lives in the namespace (else cluster-scoped).
    pub namespaced: bool,
    /// The object itself.
    pub body: Value,
}

impl Manifest {
    fn of<T: serde::Serialize + kube::Resource<DynamicType = ()>>(
        object: &T,
        namespaced: bool,
    ) -> Result<Self, ScheduleError> {
        let mut body = serde_json::to_value(object).map_err(|e| ScheduleError::Render {
            what: T::kind(&()).to_string(),
            message: e.to_string(),
        })?;
        // k8s-openapi writes apiVersion/kind through its own Serialize; make sure they are set.
        body["apiVersion"] = json!(T::api_version(&()));
        body["kind"] = json!(T::kind(&()));
        let plural = match T::kind(&()).as_ref() {
            "ConfigMap" => "configmaps",
            "ServiceAccount" => "serviceaccounts",
            "Role" => "roles",
            "RoleBinding" => "rolebindings",
            "ClusterRole" => "clusterroles",
            _ => "clusterrolebindings",
        };
        Ok(Self {
            kind: T::kind(&()).to_string(),
            name: object.meta().name.clone().unwrap_or_default(),
            plural,
            namespaced,
            body,
        })
    }

    /// `apiVersion` of the object.
    pub fn api_version(&self) -> &str {
        self.body["apiVersion"].as_str().unwrap_or_default()
    }

    /// The object as YAML.
    pub fn to_yaml(&self) -> Result<String, ScheduleError> {
        serde_saphyr::to_string(&self.body).map_err(|e| ScheduleError::Render {
            what: format!("{} {}", self.kind, self.name),
            message: e.to_string(),
        })
    }

    /// The object as pretty JSON, with a final newline.
    pub fn to_json(&self) -> Result<String, ScheduleError> {
        serde_json::to_string_pretty(&self.body)
            .map(|text| text + "\n")
            .map_err(|e| ScheduleError::Render {
                what: self.kind.clone(),
                message: e.to_string(),
            })
    }
}

/// The Kubernetes part of a scenario, or why it has none.
pub fn kubernetes_spec(loaded: &LoadedScenario) -> Result<&KubernetesTarget, ScheduleError> {
    match &loaded.scenario.target {
        TargetSpec::Kubernetes(k) => Ok(k),
        TargetSpec::Local(_) => Err(ScheduleError::NotKubernetes(
            loaded.scenario.name.value.clone(),
        )),
    }
}

/// Loads a scenario, turning its diagnostics into an error.
pub fn load_scenario(
    path: &Path,
    vars: &[(String, String)],
) -> Result<LoadedScenario, ScheduleError> {
    crate::scenario::load_with(path, vars).map_err(|d| ScheduleError::Invalid(Box::new(d)))
}

/// Every object of a scheduled drill, in apply order: ConfigMap, ServiceAccount, Role,
/// RoleBinding, the namespace-reader ClusterRole and its binding, CronJob.
pub fn render(
    loaded: &LoadedScenario,
    options: &ScheduleOptions,
    cron_api: CronJobApi,
) -> Result<Vec<Manifest>, ScheduleError> {
    let spec = kubernetes_spec(loaded)?;
    let scenario = &loaded.scenario;
    let namespace = spec.namespace.value.as_str();
    let name = scenario.name.value.as_str();
    let identity = rbac::identity_name(name);
    let config_map = ConfigMap {
        metadata: rbac::metadata(&format!("{identity}-scenario"), namespace, name),
        data: Some([(SCENARIO_KEY.to_string(), loaded.source.clone())].into()),
        ..ConfigMap::default()
    };
    let service_account = ServiceAccount {
        metadata: rbac::metadata(&identity, namespace, name),
        ..ServiceAccount::default()
    };
    Ok(vec![
        Manifest::of(&config_map, true)?,
        Manifest::of(&service_account, true)?,
        Manifest::of(&rbac::role(scenario, namespace), true)?,
        Manifest::of(&rbac::role_binding(scenario, namespace), true)?,
        Manifest::of(&rbac::namespace_reader(scenario, namespace), false)?,
        Manifest::of(&rbac::namespace_reader_binding(scenario, namespace), false)?,
        cron_job(loaded, namespace, options, cron_api),
    ])
}

fn cron_job(
    loaded: &LoadedScenario,
    namespace: &str,
    options: &ScheduleOptions,
    cron_api: CronJobApi,
) -> Manifest {
    let name = loaded.scenario.name.value.as_str();
    let identity = rbac::identity_name(name);
    let labels = json!({ rbac::SCENARIO_LABEL: name, "app.kubernetes.io/managed-by": "drillbook" });
    let mut command: Vec<String> = [
        "drillbook",
        "run",
        &format!("{SCENARIO_MOUNT}/{SCENARIO_KEY}"),
        "--in-cluster",
        "--store-results",
        "--no-drill-log",
        "--report-dir",
        &format!("{WORK_DIR}/reports"),
    ]
    .map(String::from)
    .into();
    command.extend(options.run_args.iter().cloned());
    let pod_spec = json!({
        "serviceAccountName": identity,
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": NON_ROOT_UID,
            "runAsGroup": NON_ROOT_UID,
            "fsGroup": NON_ROOT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": "drillbook",
            "image": options.image,
            "command": command,
            "env": [
                {"name": "DRILLBOOK_CLUSTER_NAME", "value": options.cluster_name},
                {"name": "DRILLBOOK_STATE_DIR", "value": format!("{WORK_DIR}/state")},
                {"name": "DRILL_OPERATOR", "value": format!("cronjob/{identity}")},
            ],
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "1", "memory": "512Mi"},
            },
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [
                {"name": "scenario", "mountPath": SCENARIO_MOUNT, "readOnly": true},
                {"name": "work", "mountPath": WORK_DIR},
            ],
        }],
        "volumes": [
            {"name": "scenario", "configMap": {"name": format!("{identity}-scenario")}},
            {"name": "work", "emptyDir": {}},
        ],
    });
    let body = json!({
        "apiVersion": cron_api.api_version(),
        "kind": "CronJob",
        "metadata": {"name": identity, "namespace": namespace, "labels": labels},
        "spec": {
            "schedule": options.schedule,
            "concurrencyPolicy": "Forbid",
            // A run missed by more than this (controller down, cluster upgrade) is skipped.
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    // A drill is not retried blindly: a failed run is a result to read.
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": options.deadline.0.as_secs().max(1),
                    "template": {"metadata": {"labels": labels}, "spec": pod_spec},
                },
            },
        },
    });
    Manifest {
        kind: "CronJob".into(),
        name: identity,
        plural: "cronjobs",
        namespaced: true,
        body,
    }
}

/// `batch/v1` when the cluster serves CronJob there, else `batch/v1beta1`.
pub async fn discover_cron_api(client: &kube::Client) -> Result<CronJobApi, kube::Error> {
    match client.list_api_group_resources("batch/v1").await {
        Ok(list) if list.resources.iter().any(|r| r.name == "cronjobs") => Ok(CronJobApi::BatchV1),
        Ok(_) => Ok(CronJobApi::BatchV1Beta1),
        Err(e) => Err(e),
    }
}

/// What the server said to one object's dry-run create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunResult {
    /// `Kind/name`.
    pub object: String,
    /// Whether the server accepted it (an already existing object counts as accepted).
    pub accepted: bool,
    /// The server's answer, in words.
    pub detail: String,
}

/// Creates every manifest with `dryRun=All`: the API server validates, defaults and admits it
/// (RBAC included) without storing anything.
pub async fn dry_run(
    client: &kube::Client,
    namespace: &str,
    manifests: &[Manifest],
) -> Vec<DryRunResult> {
    let params = PostParams {
        dry_run: true,
        field_manager: Some("drillbook".into()),
    };
    let mut results = Vec::with_capacity(manifests.len());
    for manifest in manifests {
        let object = format!("{}/{}", manifest.kind, manifest.name);
        let (accepted, detail) = match dry_run_one(client, namespace, manifest, &params).await {
            Ok(()) => (true, format!("{} accepted", manifest.api_version())),
            Err(kube::Error::Api(status)) if status.code == 409 => (
                true,
                "already exists (valid; `kubectl apply` updates it)".to_string(),
            ),
            Err(e) => (false, crate::targets::kube::api_words(&e)),
        };
        results.push(DryRunResult {
            object,
            accepted,
            detail,
        });
    }
    results
}

async fn dry_run_one(
    client: &kube::Client,
    namespace: &str,
    manifest: &Manifest,
    params: &PostParams,
) -> Result<(), kube::Error> {
    let object: DynamicObject =
        serde_json::from_value(manifest.body.clone()).map_err(kube::Error::SerdeError)?;
    let (group, version) = match manifest.api_version().split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", manifest.api_version()),
    };
    let gvk = GroupVersionKind::gvk(group, version, &manifest.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, manifest.plural);
    let api: kube::Api<DynamicObject> = if manifest.namespaced {
        kube::Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        kube::Api::all_with(client.clone(), &resource)
    };
    api.create(params, &object).await.map(|_| ())
}

/// Renders the manifests as one multi-document YAML stream.
pub fn to_yaml_stream(manifests: &[Manifest]) -> Result<String, ScheduleError> {
    let mut out = String::new();
    for manifest in manifests {
        out.push_str("---\n");
        out.push_str(&manifest.to_yaml()?);
    }
    Ok(out)
}

/// Writes one file per object (`NN-kind-name.yaml`) into `dir`, creating it.
pub fn write_dir(manifests: &[Manifest], dir: &Path) -> Result<Vec<PathBuf>, ScheduleError> {
    let write_error = |path: &Path, source| ScheduleError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
    let mut written = Vec::with_capacity(manifests.len());
    for (index, manifest) in manifests.iter().enumerate() {
        let file = dir.join(format!(
            "{:02}-{}-{}.yaml",
            index + 1,
            manifest.kind.to_ascii_lowercase(),
            manifest.name
        ));
        std::fs::write(&file, manifest.to_yaml()?).map_err(|e| write_error(&file, e))?;
        written.push(file);
    }
    Ok(written)
}

/// The Role a scenario needs, as a manifest (`drillbook rbac`).
pub fn role_manifest(loaded: &LoadedScenario) -> Result<Manifest, ScheduleError> {
    let spec = kubernetes_spec(loaded)?;
    Manifest::of(&rbac::role(&loaded.scenario, &spec.namespace.value), true)
}

/// What `schedule --context` rendered for, and checked on, the server.
#[derive(Debug)]
pub struct Validated {
    /// The context the manifests were validated in.
    pub context: String,
    /// The CronJob API the cluster serves.
    pub cron_api: CronJobApi,
    pub manifests: Vec<Manifest>,
    /// One server-side dry run per manifest.
    pub results: Vec<DryRunResult>,
}

/// Connects to `context` (the same safety rules as `run`), discovers the CronJob API, renders
/// for it and dry-runs every object on the server.
pub async fn render_validated(
    loaded: &LoadedScenario,
    mut options: ScheduleOptions,
    context: &str,
    allow_production: bool,
) -> Result<Validated, ScheduleError> {
    let spec = kubernetes_spec(loaded)?;
    let target = KubeTarget::connect(spec, Some(context), allow_production).await?;
    options.cluster_name = target.context().to_string();
    let cron_api = discover_cron_api(target.client())
        .await
        .map_err(|e| KubeError::Api {
            action: "discover the batch API".into(),
            context: target.context().to_string(),
            namespace: target.namespace().to_string(),
            error: Box::new(e),
        })?;
    let manifests = render(loaded, &options, cron_api)?;
    let results = dry_run(target.client(), target.namespace(), &manifests).await;
    Ok(Validated {
        context: target.context().to_string(),
        cron_api,
        manifests,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded() -> LoadedScenario {
        let source = "apiVersion: drillbook/v1\nname: weekly_kill\ntarget:\n  kubernetes:\n    \
             context: staging\n    namespace: shop\n    allowed_contexts: [staging]\n\
             steps:\n  - at: 1s\n    kill_pods: {selector: app=api, count: 1}\n"
            .to_string();
        crate::scenario::load_source(Path::new("weekly.yaml"), source)
            .map_err(|d| d.to_string())
            .unwrap()
    }

    fn options() -> ScheduleOptions {
        ScheduleOptions {
            schedule: "0 3 * * 1".into(),
            image: "registry.example/drillbook:1".into(),
            deadline: HumanDuration(std::time::Duration::from_secs(1800)),
            cluster_name: "staging".into(),
            run_args: Vec::new(),
        }
    }

    #[test]
    fn renders_every_object_in_apply_order() {
        let manifests = render(&loaded(), &options(), CronJobApi::BatchV1).unwrap();
        let kinds: Vec<&str> = manifests.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "ConfigMap",
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "ClusterRole",
                "ClusterRoleBinding",
                "CronJob"
            ]
        );
        let config_map = &manifests[0].body;
        assert!(
            config_map["data"][SCENARIO_KEY]
                .as_str()
                .unwrap()
                .contains("name: weekly_kill")
        );
        assert_eq!(manifests[1].name, "drillbook-weekly-kill");
        assert_eq!(manifests[0].body["metadata"]["namespace"], "shop");
    }

    #[test]
    fn cron_job_is_bounded_non_root_and_runs_in_cluster() {
        let manifests = render(&loaded(), &options(), CronJobApi::BatchV1Beta1).unwrap();
        let cron = &manifests[6].body;
        assert_eq!(cron["apiVersion"], "batch/v1beta1");
        let spec = &cron["spec"];
        assert_eq!(spec["schedule"], "0 3 * * 1");
        assert_eq!(spec["concurrencyPolicy"], "Forbid");
        assert!(spec["startingDeadlineSeconds"].as_u64().unwrap() > 0);
        assert!(spec["successfulJobsHistoryLimit"].as_u64().is_some());
        assert!(spec["failedJobsHistoryLimit"].as_u64().is_some());
        let job = &spec["jobTemplate"]["spec"];
        assert_eq!(job["activeDeadlineSeconds"], 1800);
        let pod = &job["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "drillbook-weekly-kill");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let container = &pod["containers"][0];
        assert_eq!(container["image"], "registry.example/drillbook:1");
        assert!(container["resources"]["requests"]["cpu"].is_string());
        assert!(container["resources"]["limits"]["memory"].is_string());
        let command: Vec<&str> = container["command"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            &command[..5],
            [
                "drillbook",
                "run",
                "/scenario/scenario.yaml",
                "--in-cluster",
                "--store-results"
            ]
        );
        assert_eq!(
            pod["volumes"][0]["configMap"]["name"],
            "drillbook-weekly-kill-scenario"
        );
    }

    #[test]
    fn yaml_stream_round_trips() {
        let manifests = render(&loaded(), &options(), CronJobApi::BatchV1).unwrap();
        let text = to_yaml_stream(&manifests).unwrap();
        assert_eq!(text.matches("---\n").count(), manifests.len());
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        assert_eq!(
            docs,
            manifests.iter().map(|m| m.body.clone()).collect::<Vec<_>>()
        );
    }
}
