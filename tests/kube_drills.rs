//! Whole drills against the real control plane (run through `make e2e`), through the binary:
//! what an SRE runs against staging. No load section: the stand-in kubelet runs no containers.

use crate::common;
/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common::cli::{self, Ran};

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::e2e::{Cluster, JobRun};
use drillbook::report::model::{CheckVerdict, EventKind, Report, Verdict};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

struct Setup {
    cluster: Cluster,
    client: kube::Client,
    namespace: String,
    dir: tempfile::TempDir,
}

async fn setup(prefix: &str) -> Option<Setup> {
    let cluster = common::e2e::cluster()?;
    common::e2e::install_crypto_provider();
    let client = cluster.client().await;
    let namespace = cluster.fresh_namespace(&client, prefix).await;
    common::e2e::create_deployment(
        &client,
        &namespace,
        "requests-proxy",
        &[("app", "requests-proxy")],
        2,
        &[("STATELESS_TOKENS", "true")],
    )
    .await;
    let ready = common::base::wait_until(Duration::from_secs(60), || async {
        common::e2e::pods(&client, &namespace, "app=requests-proxy")
            .await
            .iter()
            .filter(|p| common::e2e::pod_ready(p))
            .count()
            == 2
    })
    .await;
    assert!(ready, "the proxy Deployment never became ready");
    Some(Setup {
        cluster,
        client,
        namespace,
        dir: tempfile::tempdir().expect("tempdir"),
    })
}

impl Setup {
    /// A scenario for this namespace; `body` holds the steps and checks.
    fn scenario(&self, name: &str, body: &str) -> std::path::PathBuf {
        let text = format!(
            "apiVersion: drillbook/v1\nname: {name}\ntarget:\n  kubernetes:\n    context: {ctx}\n    namespace: {ns}\n    allowed_contexts: [{ctx}, prod-e2e]\n    allowed_namespaces: [{ns}]\n    kubeconfig: {kc}\n    max_pods: 2\n{body}",
            ctx = self.cluster.context,
            ns = self.namespace,
            kc = self.cluster.kubeconfig.display(),
        );
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, text).expect("write scenario");
        path
    }

    fn state_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    /// `drillbook recover` (or `--dry-run`) on this setup's undo journals.
    fn recover(&self, dry: bool) -> Output {
        let mut c = cli::drillbook();
        c.arg("recover")
            .env("DRILLBOOK_STATE_DIR", self.state_dir())
            .env_remove("KUBECONFIG");
        if dry {
            c.arg("--dry-run");
        }
        c.output()
    }

    fn command(&self, scenario: &Path, extra: &[&str]) -> cli::Drillbook {
        let mut c = cli::drillbook();
        c.env("DRILLBOOK_STATE_DIR", self.state_dir());
        c.arg("run")
            .arg(scenario)
            .arg("--report-dir")
            .arg(self.dir.path().join("reports"))
            .arg("--no-drill-log")
            .args(extra);
        c.env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run(&self, scenario: &Path, extra: &[&str]) -> Output {
        self.command(scenario, extra).output()
    }

    fn report(&self, name: &str) -> Report {
        let reports = self.dir.path().join("reports");
        let dir = std::fs::read_dir(&reports)
            .expect("reports")
            .map(|e| e.expect("entry").path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(name))
            })
            .unwrap_or_else(|| panic!("no report for {name}"));
        drillbook::report::load(&dir.join("report.json")).expect("report")
    }

    async fn replicas(&self) -> i32 {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        api.get("requests-proxy")
            .await
            .expect("deployment")
            .spec
            .and_then(|s| s.replicas)
            .unwrap_or_default()
    }
}

fn stderr(o: &Output) -> String {
    o.stderr_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_proxy_pod_passes_and_a_failing_training_job_fails_the_drill() {
    let Some(s) = setup("drill-kill").await else {
        return;
    };
    common::e2e::create_job(
        &s.client,
        &s.namespace,
        "train-ok",
        &[("app", "training-job")],
        JobRun {
            run_seconds: 4.0,
            exit_code: 0,
        },
    )
    .await;
    let body = "preflight:\n  - active_jobs: {selector: app=training-job, on_found: warn}\nsteps:\n  - name: kill-proxy\n    kill_pods: {selector: app=requests-proxy, count: 1}\n  - name: back\n    wait_ready: {selector: app=requests-proxy, timeout: 60s}\nchecks:\n  - name: ready-again\n    ready_within: {selector: app=requests-proxy, within: 30s}\n  - name: training-survives\n    jobs: {selector: app=training-job, max_failed: 0, min_succeeded: 1}\n";
    let file = s.scenario("kill-proxy", body);
    // `plan` names exactly the pod a run with the same seed kills, and changes nothing.
    let plan = cli::drillbook()
        .arg("plan")
        .arg(&file)
        .args(["--seed", "7"])
        .env_remove("KUBECONFIG")
        .output();
    let plan_out = plan.stdout_str();
    assert_eq!(plan.status.code(), Some(0), "{plan_out}{}", stderr(&plan));
    let planned = plan_out
        .split("would delete: ")
        .nth(1)
        .and_then(|rest| rest.split([' ', '│', '\n']).next())
        .expect("the plan names a pod")
        .to_string();
    let before = common::e2e::pods(&s.client, &s.namespace, "app=requests-proxy")
        .await
        .len();
    assert_eq!(before, 2, "plan deleted nothing");
    let out = s.run(&file, &["--seed", "7"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = s.report("kill-proxy");
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.verdict_reason);
    assert_eq!(report.seed, 7);
    let kill = report
        .events
        .iter()
        .find(|e| e.kind == EventKind::Fault)
        .expect("kill event");
    assert_eq!(kill.targets.len(), 1);
    assert!(
        kill.targets[0].starts_with("requests-proxy-"),
        "{:?}",
        kill.targets
    );
    assert_eq!(
        kill.targets[0], planned,
        "the run killed the pod the plan named"
    );
    assert!(
        report
            .preflight
            .iter()
            .any(|p| p.name.contains("active") || p.detail.contains("train-ok")),
        "{:?}",
        report.preflight
    );

    // The same drill while a training Job fails: the Job observer sees it and the drill fails.
    common::e2e::create_job(
        &s.client,
        &s.namespace,
        "train-bad",
        &[("app", "training-job")],
        JobRun {
            run_seconds: 2.0,
            exit_code: 3,
        },
    )
    .await;
    let file = s.scenario("kill-proxy-failing-job", body);
    let out = s.run(&file, &["--seed", "7"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = s.report("kill-proxy-failing-job");
    let jobs = report
        .checks
        .iter()
        .find(|c| c.name == "training-survives")
        .expect("jobs check");
    assert_eq!(jobs.verdict, CheckVerdict::Fail, "{}", jobs.detail);
    assert!(jobs.detail.contains("train-bad"), "{}", jobs.detail);
    assert!(
        report
            .events
            .iter()
            .any(|e| e.kind == EventKind::Observation
                && e.description.contains("Job train-bad failed")),
        "the Job failure is on the timeline: {:#?}",
        report.events
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_flip_must_really_roll_the_pods_and_a_no_op_flip_rolls_nothing() {
    let Some(s) = setup("drill-flip").await else {
        return;
    };
    let body = "steps:\n  - name: no-op\n    patch_env: {deployment: requests-proxy, env: {STATELESS_TOKENS: \"true\"}}\n  - name: flip\n    patch_env: {deployment: requests-proxy, env: {STATELESS_TOKENS: \"false\"}}\n  - name: rolled-out\n    wait_rollout: {deployment: requests-proxy, timeout: 60s}\nchecks:\n  - name: no-op-rolls-nothing\n    rolled: {deployment: requests-proxy, after: no-op, expect: false}\n  - name: flip-rolls\n    rolled: {deployment: requests-proxy, after: flip}\n";
    let file = s.scenario("flag-flip", body);
    let out = s.run(&file, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = s.report("flag-flip");
    for name in ["no-op-rolls-nothing", "flip-rolls"] {
        let check = report
            .checks
            .iter()
            .find(|c| c.name == name)
            .expect("check");
        assert_eq!(
            check.verdict,
            CheckVerdict::Pass,
            "{name}: {}",
            check.detail
        );
    }
    let undo = report
        .events
        .iter()
        .find(|e| e.kind == EventKind::Undo && e.step.as_deref() == Some("flip"))
        .expect("the flip is undone");
    assert_eq!(undo.outcome.as_deref(), Some("ok"), "{undo:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_a_scale_step_restores_the_replicas() {
    let Some(s) = setup("drill-scale").await else {
        return;
    };
    assert_eq!(s.replicas().await, 2);
    let body = "steps:\n  - name: scale-up\n    scale: {deployment: requests-proxy, replicas: 4}\n  - name: hold\n    wait: 60s\nchecks:\n  - name: stays-ready\n    ready_within: {selector: app=requests-proxy, within: 30s}\n";
    let file = s.scenario("scale", body);
    let mut child = s.command(&file, &[]).spawn();
    // Wait until the scale has been applied in the cluster, then interrupt.
    let scaled = common::base::wait_until(Duration::from_secs(60), || async {
        s.replicas().await == 4
    })
    .await;
    assert!(scaled, "the scale step never ran");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "drillbook did not stop after SIGINT"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(130));
    assert_eq!(s.replicas().await, 2, "the scale was undone");
    let report = s.report("scale");
    assert_eq!(report.verdict, Verdict::Interrupted);
    assert!(
        report
            .events
            .iter()
            .any(|e| e.kind == EventKind::Undo && e.description.contains("back to 2 replicas"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disallowed_and_production_contexts_are_refused_before_anything_changes() {
    let Some(s) = setup("drill-safety").await else {
        return;
    };
    let body = "steps:\n  - name: scale-up\n    scale: {deployment: requests-proxy, replicas: 3}\n";
    let file = s.scenario("safety", body);
    let out = s.run(&file, &["--context", "wrong-default"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong-default"), "{}", stderr(&out));
    let out = s.run(&file, &["--context", "prod-e2e"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--allow-production"),
        "{}",
        stderr(&out)
    );
    assert_eq!(s.replicas().await, 2, "nothing was changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_recover_applies_the_journaled_undo() {
    let Some(s) = setup("drill-recover").await else {
        return;
    };
    let body = "steps:\n  - name: scale-up\n    scale: {deployment: requests-proxy, replicas: 4}\n  - name: hold\n    wait: 60s\n";
    let file = s.scenario("recover", body);
    let mut child = s.command(&file, &[]).spawn();
    let scaled = common::base::wait_until(Duration::from_secs(60), || async {
        s.replicas().await == 4
    })
    .await;
    assert!(scaled, "the scale step never ran");
    child.kill().expect("SIGKILL drillbook");
    let _ = child.wait();
    assert_eq!(
        s.replicas().await,
        4,
        "nothing undid the scale: drillbook was killed"
    );
    let journals: Vec<_> = std::fs::read_dir(s.state_dir())
        .expect("state dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(journals.len(), 1, "{journals:?}");

    // A new run against the same target is refused until the old one is recovered.
    let out = s.run(&file, &[]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("drillbook recover"),
        "{}",
        stderr(&out)
    );

    let recover = |dry: bool| s.recover(dry);
    let dry = recover(true);
    dry.assert_code(0);
    assert!(
        dry.stdout_str()
            .contains("scale `requests-proxy` back to 2 replicas"),
        "{}",
        dry.stdout_str()
    );
    assert_eq!(s.replicas().await, 4, "--dry-run changes nothing");

    let done = recover(false);
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}{}",
        done.stdout_str(),
        stderr(&done)
    );
    assert_eq!(s.replicas().await, 2, "recover restored the replicas");
    assert_eq!(
        std::fs::read_dir(s.state_dir()).expect("state dir").count(),
        0,
        "the journal is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_recover_removes_the_drills_silence() {
    let Some(alertmanager) = common::alertmanager::Alertmanager::start() else {
        return;
    };
    let Some(s) = setup("drill-silence").await else {
        return;
    };
    let body = format!(
        "silence:\n  alertmanager: {}\n  matchers: ['namespace=\"{}\"']\n  margin: 5m\nsteps:\n  - name: scale-up\n    scale: {{deployment: requests-proxy, replicas: 3}}\n  - name: hold\n    wait: 60s\n",
        alertmanager.url, s.namespace
    );
    let file = s.scenario("silenced", &body);
    let marker = "drill `silenced`";
    assert!(
        alertmanager.silence_states(marker).is_empty(),
        "none before"
    );
    let mut child = s.command(&file, &[]).spawn();
    let scaled = common::base::wait_until(Duration::from_secs(60), || async {
        s.replicas().await == 3
    })
    .await;
    assert!(scaled, "the scale step never ran");
    assert_eq!(
        alertmanager.silence_states(marker),
        vec!["active".to_string()]
    );
    child.kill().expect("SIGKILL drillbook");
    let _ = child.wait();
    assert_eq!(
        alertmanager.silence_states(marker),
        vec!["active".to_string()],
        "nothing removed the silence: drillbook was killed"
    );
    let recover = |dry: bool| s.recover(dry);
    let dry = recover(true);
    dry.assert_code(0);
    assert!(
        dry.stdout_str()
            .contains("expire the silence [drillbook run"),
        "the journal holds the silence's removal: {}",
        dry.stdout_str()
    );
    recover(false).assert_code(0);
    assert_eq!(
        alertmanager.silence_states(marker),
        vec!["expired".to_string()],
        "recover removed the silence"
    );
    assert_eq!(s.replicas().await, 2, "and undid the scale");
}
