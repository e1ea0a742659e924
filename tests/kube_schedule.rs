//! Scheduled drills on the real control plane (run through `make e2e`): the rendered manifests
//! pass a server-side dry run with the CronJob API discovery picks (1.20: `batch/v1beta1`),
//! and the derived Role, bound to the drill's ServiceAccount, allows what the drill needs and
//! denies the rest, as seen by that ServiceAccount itself.

use crate::common;
/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common::cli::{self, Ran};

use std::path::PathBuf;
use std::time::Duration;

use common::e2e::Cluster;
use drillbook::schedule::{self, CronJobApi, Manifest, ScheduleOptions};
use drillbook::units::HumanDuration;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

struct Setup {
    cluster: Cluster,
    client: Client,
    namespace: String,
    dir: tempfile::TempDir,
}

async fn setup(prefix: &str) -> Option<Setup> {
    let cluster = common::e2e::cluster()?;
    common::e2e::install_crypto_provider();
    let client = cluster.client().await;
    let namespace = cluster.fresh_namespace(&client, prefix).await;
    Some(Setup {
        cluster,
        client,
        namespace,
        dir: tempfile::tempdir().expect("tempdir"),
    })
}

impl Setup {
    /// A drill that kills a pod, scales and patches env: pods, deployments and scale rules.
    fn scenario(&self) -> PathBuf {
        let text = format!(
            "apiVersion: drillbook/v1\nname: weekly-e2e\ntarget:\n  kubernetes:\n    \
             context: {ctx}\n    namespace: {ns}\n    allowed_contexts: [{ctx}]\n    \
             kubeconfig: {kc}\n    max_pods: 2\nsteps:\n  - at: 1s\n    \
             kill_pods: {{selector: app=api, count: 1}}\n  - at: 2s\n    \
             scale: {{deployment: api, replicas: 1}}\n  - at: 3s\n    \
             patch_env: {{deployment: api, env: {{A: b}}}}\nchecks:\n  - name: api-back\n    \
             ready_within: {{selector: app=api, within: 30s}}\n",
            ctx = self.cluster.context,
            ns = self.namespace,
            kc = self.cluster.kubeconfig.display(),
        );
        let path = self.dir.path().join("weekly.yaml");
        std::fs::write(&path, text).expect("write scenario");
        path
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_manifests_pass_a_server_side_dry_run_with_the_discovered_cronjob_api() {
    let Some(setup) = setup("sched-dry").await else {
        return;
    };
    let out_dir = setup.dir.path().join("manifests");
    let output = cli::drillbook()
        .arg("schedule")
        .arg(setup.scenario())
        .args([
            "--schedule",
            "0 3 * * 1",
            "--image",
            "registry.invalid/drillbook:1",
        ])
        .args(["--context", &setup.cluster.context])
        .arg("-o")
        .arg(&out_dir)
        .output();
    let stderr = output.stderr_str();
    assert_eq!(output.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(
        stderr.contains("CronJob served as batch/v1beta1"),
        "stderr:\n{stderr}"
    );
    let accepted = stderr
        .lines()
        .filter(|l| l.starts_with("server-side dry run") && l.contains(" ok: "))
        .count();
    assert_eq!(accepted, 7, "stderr:\n{stderr}");
    let files: Vec<_> = std::fs::read_dir(&out_dir)
        .expect("manifest dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 7, "{files:?}");
    let cron = files
        .iter()
        .find(|f| f.contains("cronjob"))
        .expect("a CronJob file");
    let cron_text = std::fs::read_to_string(out_dir.join(cron)).expect("read CronJob");
    assert!(
        cron_text.contains("apiVersion: batch/v1beta1"),
        "{cron_text}"
    );
    // A dry run stores nothing.
    let accounts: Api<ServiceAccount> = Api::namespaced(setup.client.clone(), &setup.namespace);
    assert!(
        accounts
            .get_opt("drillbook-weekly-e2e")
            .await
            .expect("get SA")
            .is_none()
    );
}

async fn create(client: &Client, namespace: &str, manifest: &Manifest) {
    let (group, version) = manifest
        .api_version()
        .split_once('/')
        .unwrap_or(("", manifest.api_version()));
    let gvk = GroupVersionKind::gvk(group, version, &manifest.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, manifest.plural);
    let api: Api<DynamicObject> = if manifest.namespaced {
        Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    let object: DynamicObject = serde_json::from_value(manifest.body.clone()).expect("object");
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("create {} {}: {e}", manifest.kind, manifest.name));
}

/// The token the 1.20 token controller puts in the ServiceAccount's Secret.
async fn service_account_token(setup: &Setup, account: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let mut secret_name = None;
    for _ in 0..60 {
        secret_name = accounts
            .get_opt(account)
            .await
            .ok()
            .flatten()
            .and_then(|a| a.secrets)
            .and_then(|s| s.into_iter().find_map(|r| r.name.filter(|n| !n.is_empty())));
        if secret_name.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let secret_name =
        secret_name.unwrap_or_else(|| panic!("no token Secret for service account {account}"));
    let secrets: Api<Secret> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let secret = secrets.get(&secret_name).await.expect("token secret");
    let token = secret
        .data
        .and_then(|d| d.get("token").cloned())
        .expect("token in the secret");
    String::from_utf8(token.0).expect("utf-8 token")
}

/// A client that authenticates as the ServiceAccount (same server and CA as the admin context).
async fn client_as_service_account(setup: &Setup, account: &str) -> Client {
    let token = service_account_token(setup, account).await;
    let kubeconfig = Kubeconfig::read_from(&setup.cluster.kubeconfig).expect("kubeconfig");
    let options = KubeConfigOptions {
        context: Some(setup.cluster.context.clone()),
        ..KubeConfigOptions::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("config");
    config.auth_info =
        serde_json::from_value(serde_json::json!({ "token": token })).expect("auth info");
    Client::try_from(config).expect("client")
}

async fn allowed(
    client: &Client,
    namespace: &str,
    group: &str,
    resource: &str,
    verb: &str,
) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                group: Some(group.to_string()),
                resource: Some(resource.to_string()),
                subresource,
                verb: Some(verb.to_string()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("access review");
    answer.status.is_some_and(|s| s.allowed)
}

/// Renders the scenario's manifests and creates the ServiceAccount and its RBAC for real.
async fn create_identity(setup: &Setup) -> Vec<Manifest> {
    let loaded = drillbook::scenario::load(&setup.scenario()).expect("scenario");
    let options = ScheduleOptions {
        schedule: "0 3 * * 1".into(),
        image: "registry.invalid/drillbook:1".into(),
        deadline: HumanDuration(Duration::from_secs(600)),
        cluster_name: setup.cluster.context.clone(),
        run_args: Vec::new(),
    };
    let manifests = schedule::render(&loaded, &options, CronJobApi::BatchV1Beta1).expect("render");
    for manifest in manifests
        .iter()
        .filter(|m| m.kind != "CronJob" && m.kind != "ConfigMap")
    {
        create(&setup.client, &setup.namespace, manifest).await;
    }
    manifests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_account_may_do_what_the_drill_needs_and_nothing_more() {
    let Some(setup) = setup("sched-rbac").await else {
        return;
    };
    let manifests = create_identity(&setup).await;
    let role = manifests.iter().find(|m| m.kind == "Role").expect("role");
    let sa_client = client_as_service_account(&setup, "drillbook-weekly-e2e").await;
    let ns = setup.namespace.as_str();

    // Every verb of every derived rule passes, as the ServiceAccount sees it.
    let rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule> =
        serde_json::from_value(role.body["rules"].clone()).expect("rules");
    let mut checked = 0;
    for rule in &rules {
        let group = &rule.api_groups.as_ref().expect("groups")[0];
        for resource in rule.resources.as_ref().expect("resources") {
            for verb in &rule.verbs {
                assert!(
                    allowed(&sa_client, ns, group, resource, verb).await,
                    "{verb} {resource}.{group} should be allowed"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} verbs checked");
    for (group, resource, verb) in [
        ("apps", "deployments", "patch"),
        ("apps", "deployments/scale", "update"),
        ("", "pods", "delete"),
    ] {
        assert!(
            allowed(&sa_client, ns, group, resource, verb).await,
            "{verb} {resource}"
        );
    }
    // What the drill does not need is denied.
    for (group, resource, verb) in [
        ("apps", "deployments", "delete"),
        ("apps", "deployments", "create"),
        ("", "secrets", "get"),
        ("", "configmaps", "patch"),
        ("", "pods/exec", "create"),
    ] {
        assert!(
            !allowed(&sa_client, ns, group, resource, verb).await,
            "{verb} {resource}.{group} must be denied"
        );
    }
    // Nothing outside the drill's namespace.
    assert!(!allowed(&sa_client, "default", "", "pods", "delete").await);
    assert!(!allowed(&sa_client, "default", "", "pods", "list").await);
    // The drill's own namespace object is readable (pre-flight reads it), no other one.
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(sa_client.clone());
    assert!(namespaces.get(ns).await.is_ok());
    assert!(namespaces.get("default").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_cluster_run_as_the_service_account_stores_its_result_and_collect_appends_it_once() {
    let Some(setup) = setup("sched-run").await else {
        return;
    };
    common::e2e::create_deployment(
        &setup.client,
        &setup.namespace,
        "api",
        &[("app", "api")],
        2,
        &[],
    )
    .await;
    let ready = common::base::wait_until(Duration::from_secs(60), || async {
        common::e2e::pods(&setup.client, &setup.namespace, "app=api")
            .await
            .iter()
            .filter(|p| common::e2e::pod_ready(p))
            .count()
            == 2
    })
    .await;
    assert!(ready, "the api Deployment never became ready");
    create_identity(&setup).await;
    let token_file = setup.dir.path().join("token");
    std::fs::write(
        &token_file,
        service_account_token(&setup, "drillbook-weekly-e2e").await,
    )
    .expect("write token");
    let kubeconfig = Kubeconfig::read_from(&setup.cluster.kubeconfig).expect("kubeconfig");
    let ca_file = kubeconfig
        .clusters
        .iter()
        .find_map(|c| c.cluster.as_ref()?.certificate_authority.clone())
        .expect("the e2e kubeconfig names its CA file");

    let run = |extra: &[&str]| {
        let mut command = cli::drillbook();
        command
            .arg("run")
            .arg(setup.scenario())
            .args([
                "--in-cluster",
                "--store-results",
                "--no-drill-log",
                "--report-dir",
            ])
            .arg(setup.dir.path().join("pod-reports"))
            .args(extra)
            .env("DRILLBOOK_STATE_DIR", setup.dir.path().join("state"))
            .env("DRILLBOOK_IN_CLUSTER_SERVER", &setup.cluster.server)
            .env("DRILLBOOK_IN_CLUSTER_TOKEN_FILE", &token_file)
            .env("DRILLBOOK_IN_CLUSTER_CA_FILE", &ca_file)
            // No kubeconfig may be used: point it at nothing.
            .env("KUBECONFIG", setup.dir.path().join("no-kubeconfig"))
            .env_remove("DRILLBOOK_CLUSTER_NAME");
        command.output()
    };
    // A scenario for another cluster refuses to run here.
    let elsewhere = run(&["--cluster-name", "some-other-cluster"]);
    assert_eq!(
        elsewhere.status.code(),
        Some(5),
        "{}",
        elsewhere.stderr_str()
    );

    let output = run(&["--cluster-name", &setup.cluster.context]);
    let stdout = output.stdout_str();
    let stderr = output.stderr_str();
    assert!(
        output.status.code() == Some(0),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status.code()
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("drill result: "))
        .unwrap_or_else(|| panic!("no one-line verdict\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    assert!(
        line.contains("scenario=weekly-e2e") && line.contains("verdict=pass"),
        "{line}"
    );
    let results: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(setup.client.clone(), &setup.namespace);
    let stored = results
        .list(
            &kube::api::ListParams::default()
                .labels("drillbook.dev/result=true,drillbook.dev/scenario=weekly-e2e"),
        )
        .await
        .expect("list results")
        .items;
    assert_eq!(stored.len(), 1, "{line}");
    let report: drillbook::report::model::Report =
        serde_json::from_str(&stored[0].data.as_ref().expect("data")["report.json"])
            .expect("stored report");
    assert!(line.contains(&format!("run={}", report.run_id)), "{line}");

    let runbook = setup.dir.path().join("RUNBOOK.md");
    std::fs::write(&runbook, "# Runbook\n").expect("runbook");
    let collect = || {
        cli::drillbook()
            .args(["collect", "--context", &setup.cluster.context])
            .args(["--namespace", &setup.namespace, "--scenario", "weekly-e2e"])
            .arg("--kubeconfig")
            .arg(&setup.cluster.kubeconfig)
            .arg("--drill-log")
            .arg(&runbook)
            .arg("--report-dir")
            .arg(setup.dir.path().join("collected"))
            .output()
    };
    for expected_new in [1, 0] {
        let output = collect();
        let stdout = output.stdout_str();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{stdout}{}",
            output.stderr_str()
        );
        assert!(
            stdout.contains(&format!("{expected_new} new row(s)")),
            "{stdout}"
        );
        let log = std::fs::read_to_string(&runbook).expect("read runbook");
        assert_eq!(
            log.lines().filter(|l| l.contains(&report.run_id)).count(),
            1,
            "{log}"
        );
    }

    // Retention: with keep = 2, storing two more runs deletes the oldest (the real run).
    for suffix in ["later1", "later2"] {
        let mut later = report.clone();
        later.run_id = format!("{}{suffix}", report.run_id);
        let stored = schedule::results::store(&setup.client, &setup.namespace, &later, 2)
            .await
            .expect("store");
        assert_eq!(stored.pruned, usize::from(suffix == "later2"), "{stored}");
    }
    let names: Vec<String> = results
        .list(&kube::api::ListParams::default().labels("drillbook.dev/result=true"))
        .await
        .expect("list results")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.contains("later")), "{names:?}");
}
