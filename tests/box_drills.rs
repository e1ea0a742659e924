//! The seed drills on the box: a real one-node Kubernetes (real kubelet, containerd, kube-proxy)
//! with the cutover system installed by real helm (`make box`, see `e2e/box/`). Each drill runs
//! through the drillbook binary exactly as an operator would, and must reach its expected
//! verdict for the expected reasons.
//!
//! `make e2e-box` brings the box up, runs these with `DRILLBOOK_BOX_KUBECONFIG` set and takes it
//! down. Without that variable they skip loudly; with `DRILLBOOK_REQUIRE_BOX=1` (CI) a missing
//! box fails them. They share one cluster, so they run one at a time (`--test-threads=1`), and
//! each waits for the releases to settle before it starts.

use crate::common::cli::{self, Ran};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);

use crate::common;

use common::boxed::{self, kubeconfig as box_kubeconfig, kubectl, path_with_tools};

/// Waits until both deployments of `namespace` are fully rolled out and only their current
/// pods exist, so a drill's baseline is not an earlier drill's undo still rolling.
fn settle(kubeconfig: &Path, namespace: &str) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    for deployment in ["requests-proxy", "jobs-manager"] {
        let status = kubectl(
            kubeconfig,
            &[
                "-n",
                namespace,
                "rollout",
                "status",
                &format!("deployment/{deployment}"),
                "--timeout=180s",
            ],
        );
        assert!(
            status.status.success(),
            "{deployment} in {namespace} did not settle: {}",
            status.stderr_str()
        );
    }
    // Terminating pods of the previous ReplicaSet still hold connections and endpoints.
    loop {
        let pods = kubectl(
            kubeconfig,
            &[
                "-n",
                namespace,
                "get",
                "pods",
                "-l",
                "app in (requests-proxy,jobs-manager)",
                "-o",
                "jsonpath={range .items[*]}{.metadata.deletionTimestamp}{\"\\n\"}{end}",
            ],
        );
        let terminating = pods
            .stdout_str()
            .lines()
            .any(|line| !line.trim().is_empty());
        if !terminating {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pods of {namespace} still terminating after {SETTLE_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What one drill run left behind.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    report: Option<Value>,
    runbook: String,
}

impl Run {
    fn check(&self, name: &str) -> &Value {
        let report = self.report.as_ref().expect("the run wrote report.json");
        report["checks"]
            .as_array()
            .expect("checks array")
            .iter()
            .find(|check| check["name"] == name)
            .unwrap_or_else(|| panic!("no check `{name}` in the report"))
    }

    fn verdict_of(&self, name: &str) -> &str {
        self.check(name)["verdict"].as_str().unwrap_or_default()
    }

    fn phase_count(&self, phase: &str, status: &str) -> u64 {
        let report = self.report.as_ref().expect("the run wrote report.json");
        report["phases"]
            .as_array()
            .expect("phases array")
            .iter()
            .find(|p| p["name"] == phase)
            .and_then(|p| p["load"]["statuses"][status].as_u64())
            .unwrap_or(0)
    }

    fn explain(&self) -> String {
        format!(
            "exit {}\n--- stdout ---\n{}\n--- stderr (tail) ---\n{}",
            self.code,
            self.stdout,
            tail(&self.stderr, 40)
        )
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `scenarios/box/<name>.yaml` through the binary from the repository root (the helm
/// steps name the chart by a path relative to it), with a scratch runbook for its drill log.
fn run_drill(kubeconfig: &Path, name: &str) -> Run {
    run_drill_with(kubeconfig, name, &[])
}

/// [`run_drill`] with extra arguments (`--var NAME=VALUE`).
fn run_drill_with(kubeconfig: &Path, name: &str, extra: &[&str]) -> Run {
    run_scenario(kubeconfig, &format!("scenarios/box/{name}.yaml"), extra)
}

/// Runs the scenario at `path` (relative to the repository, or absolute) on the box.
fn run_scenario(kubeconfig: &Path, path: &str, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let runbook = dir.path().join("RUNBOOK.md");
    std::fs::copy(Path::new(REPO).join("docs/RUNBOOK.box.md"), &runbook).expect("copy runbook");
    let reports = dir.path().join("reports");
    let output = cli::drillbook()
        .current_dir(REPO)
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", path_with_tools())
        .env("DRILLBOOK_STATE_DIR", dir.path().join("state"))
        .args(["run", path])
        .arg("--report-dir")
        .arg(&reports)
        .arg("--drill-log")
        .arg(&runbook)
        .args(["--operator", "box-tests"])
        .args(extra)
        .output();
    let report = boxed::first_report(&reports);
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: output.stdout_str(),
        stderr: output.stderr_str(),
        report,
        runbook: std::fs::read_to_string(&runbook).unwrap_or_default(),
    }
}

/// A user submits a training Job (`POST /jobs` on the jobs-manager Service): it runs for about
/// 30 s, so a pre-flight right after it finds an active Job whatever the background launches
/// are doing (the previous drill's undo may just have stranded theirs).
fn submit_training_job() {
    let answer = Command::new("curl")
        .args(["-fsS", "--noproxy", "*", "--max-time", "10", "-X", "POST"])
        .arg("http://10.252.0.81:8081/jobs")
        .output()
        .expect("curl runs");
    assert!(
        answer.status.success(),
        "POST /jobs failed: {}",
        answer.stderr_str()
    );
}

fn assert_logged(run: &Run, drill: &str, result: &str) {
    let row = run
        .runbook
        .lines()
        .find(|line| line.contains(drill))
        .unwrap_or_else(|| panic!("no drill-log row for {drill}:\n{}", run.runbook));
    assert!(
        row.contains(result),
        "drill-log row without {result}: {row}"
    );
}

/// The drill's load came from 2 worker pods through the Service, every second of both arrived,
/// the merged total is the scenario's rate × duration within 1 %, and no worker is left.
fn assert_cluster_load(run: &Run, kubeconfig: &Path, namespace: &str, expected: u64) {
    let report = run.report.as_ref().expect("the run wrote report.json");
    let workers = &report["load_workers"];
    assert_eq!(workers["workers"], 2, "{}", run.explain());
    assert_eq!(
        workers["complete_seconds"], workers["seconds"],
        "every second has both workers' windows: {workers}"
    );
    let total = report["load"]["requests"].as_u64().unwrap_or(0);
    let off = total.abs_diff(expected) as f64 / expected as f64;
    assert!(off <= 0.01, "{total} requests for {expected} expected");
    let left = kubectl(
        kubeconfig,
        &[
            "-n",
            namespace,
            "get",
            "jobs",
            "-l",
            "app.kubernetes.io/name=drillbook-load",
            "-o",
            "name",
        ],
    );
    assert!(
        left.stdout_str().trim().is_empty(),
        "worker Jobs left after the drill: {}",
        left.stdout_str()
    );
}

/// The image of the stateless release's requests-proxy template, and of each of its pods.
fn proxy_images(kubeconfig: &Path) -> (String, Vec<String>) {
    let get = |what: &[&str]| {
        let output = kubectl(kubeconfig, &[&["-n", "tracebloc", "get"], what].concat());
        output.stdout_str().trim().to_string()
    };
    let template = get(&[
        "deployment/requests-proxy",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    let pods = get(&[
        "pods",
        "-l",
        "app=requests-proxy",
        "-o",
        "jsonpath={range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}",
    ]);
    (template, pods.lines().map(str::to_string).collect())
}

/// Puts the release's proxy back on its chart image (after a bake that kept a candidate).
fn restore_proxy_image(kubeconfig: &Path, image: &str) {
    let set = kubectl(
        kubeconfig,
        &[
            "-n",
            "tracebloc",
            "set",
            "image",
            "deployment/requests-proxy",
            &format!("requests-proxy={image}"),
        ],
    );
    assert!(set.status.success(), "{}", set.stderr_str());
    settle(kubeconfig, "tracebloc");
}

/// Waits (bounded) until the box's Prometheus has no `LabProxy*` alert firing, so a bake's
/// baseline does not inherit the alert of an earlier bad rollout (it lingers for its `for:`
/// and the 30 s rate window).
fn wait_for_no_proxy_alert() {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let answer = Command::new("curl")
            .args(["-fsS", "--noproxy", "*", "--max-time", "5"])
            .arg("http://10.250.0.2:9090/api/v1/alerts")
            .output()
            .expect("curl runs");
        let body = answer.stdout_str();
        if answer.status.success() && !body.contains("\"LabProxy") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a LabProxy alert still fires: {body}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// When the timeline's first event of `step` happened.
fn step_at(run: &Run, step: &str) -> Option<f64> {
    let report = run.report.as_ref()?;
    let events = report["events"].as_array()?;
    let event = events
        .iter()
        .find(|event| event["step"].as_str() == Some(step))?;
    event["at_s"].as_f64()
}

/// When the abort guard `name` tripped, from the timeline.
fn guard_tripped_at(run: &Run, name: &str) -> Option<f64> {
    let report = run.report.as_ref()?;
    let events = report["events"].as_array()?;
    let event = events.iter().find(|event| {
        event["kind"] == "guard"
            && event["description"]
                .as_str()
                .is_some_and(|text| text.contains(&format!("`{name}`")))
    })?;
    event["at_s"].as_f64()
}

/// The rollback trigger's alert (the box's rule `LabProxyErrorRateHigh`) must page.
const ROLLBACK_ALERT_CHECK: &str = "  - name: rollback-trigger-pages
    alerts:
      url: \"${var.prometheus}\"
      fire: [LabProxyErrorRateHigh]
      within: 90s
      after: promote
      resolve_within: 120s
      resolve_after: rolled-back.end
      alertmanager: http://10.250.0.2:9093
";

#[test]
fn canary_bake_of_a_candidate_failing_5_percent_trips_its_prometheus_trigger_and_rolls_back() {
    let Some(kubeconfig) = box_kubeconfig() else {
        return;
    };
    settle(&kubeconfig, "tracebloc");
    wait_for_no_proxy_alert();
    let (stable, _) = proxy_images(&kubeconfig);
    // The shipped bake, plus the monitoring under test (#25): the rollback trigger's alert
    // must fire after the promotion, reach the box's Alertmanager and resolve after the
    // rollback. (Not in the shipped file: a healthy candidate must not page.)
    let shipped = std::fs::read_to_string(Path::new(REPO).join("scenarios/box/canary-bake.yaml"))
        .expect("the shipped scenario");
    let at = shipped.find("abort_when:").expect("abort_when section");
    let mut text = shipped.replace("runbook: ../../docs/RUNBOOK.box.md\n", "");
    text.insert_str(at - (shipped.len() - text.len()), ROLLBACK_ALERT_CHECK);
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("canary-bake-paging.yaml");
    std::fs::write(&scenario, text).expect("write scenario");
    let run = run_scenario(
        &kubeconfig,
        &scenario.display().to_string(),
        &["--var", "image=box.local/drillbook:candidate-fails-5pct"],
    );
    assert_eq!(run.code, 4, "aborted: {}", run.explain());
    let paging = run
        .report
        .as_ref()
        .and_then(|r| r["checks"].as_array())
        .and_then(|checks| {
            checks
                .iter()
                .find(|c| c["name"] == "rollback-trigger-pages")
        })
        .unwrap_or_else(|| panic!("the alerts check ran: {}", run.explain()))
        .clone();
    eprintln!("rollback-trigger-pages: {paging}");
    assert_eq!(paging["verdict"], "pass", "{}", paging["detail"]);
    let timing = &paging["alerts"][0];
    assert!(
        timing["detect_s"]
            .as_f64()
            .is_some_and(|s| s > 0.0 && s <= 90.0),
        "{timing}"
    );
    assert!(timing["resolve_s"].as_f64().is_some(), "{timing}");
    assert_eq!(timing["reached_alertmanager"], true, "{timing}");
    assert_eq!(timing["receivers"][0], "on-call", "{timing}");
    let report = run.report.as_ref().expect("report.json");
    let reason = report["verdict_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("proxy-5xx-over-3-percent"),
        "the reason names the trigger: {reason}\n{}",
        run.explain()
    );
    let promoted = step_at(&run, "promote").expect("the promotion is on the timeline");
    let tripped = guard_tripped_at(&run, "proxy-5xx-over-3-percent")
        .unwrap_or_else(|| panic!("the trigger is on the timeline: {}", run.explain()));
    let rolled_back = step_at(&run, "rollback")
        .unwrap_or_else(|| panic!("the rollback is on the timeline: {}", run.explain()));
    let watched = step_at(&run, "rolled-back")
        .unwrap_or_else(|| panic!("the rollback's rollout is watched: {}", run.explain()));
    assert!(
        reason.contains("rolled back by on_abort: `rollback` ok, `rolled-back` ok"),
        "{reason}"
    );
    // 20 s of 5 %-503s over the 30 s rate: the trigger cannot fire sooner after the promotion.
    assert!(
        tripped > promoted + 20.0,
        "tripped at {tripped}, promoted at {promoted}"
    );
    assert!(
        rolled_back >= tripped,
        "rollback at {rolled_back}, trigger at {tripped}"
    );
    assert!(
        watched >= rolled_back,
        "watched at {watched}, rollback at {rolled_back}"
    );
    assert!(
        run.stdout.contains("proxy-5xx-over-3-percent"),
        "the terminal report names the trigger: {}",
        run.explain()
    );
    settle(&kubeconfig, "tracebloc");
    let (template, pods) = proxy_images(&kubeconfig);
    assert_eq!(template, stable, "rolled back to the stable image");
    assert!(pods.iter().all(|image| *image == stable), "{pods:?}");
    assert_logged(&run, "box-canary-bake", "aborted");
}

#[test]
fn canary_bake_of_a_healthy_candidate_passes_and_keeps_the_promotion() {
    let Some(kubeconfig) = box_kubeconfig() else {
        return;
    };
    settle(&kubeconfig, "tracebloc");
    wait_for_no_proxy_alert();
    let (stable, _) = proxy_images(&kubeconfig);
    let candidate = "box.local/drillbook:candidate";
    let run = run_drill_with(
        &kubeconfig,
        "canary-bake",
        &["--var", &format!("image={candidate}")],
    );
    settle(&kubeconfig, "tracebloc");
    let (template, pods) = proxy_images(&kubeconfig);
    restore_proxy_image(&kubeconfig, &stable);
    assert_eq!(run.code, 0, "{}", run.explain());
    for check in [
        "baseline-clean",
        "no-proxy-alert-before-promotion",
        "error-rate-during-rollout",
        "error-rate-after-rollout",
        "proxy-cpu-below-half-a-core",
        "all-pods-run-the-candidate",
        "no-proxy-alert-after-rollout",
    ] {
        assert_eq!(run.verdict_of(check), "pass", "{check}: {}", run.explain());
    }
    assert!(
        step_at(&run, "rollback").is_none(),
        "no rollback on a clean bake"
    );
    assert_eq!(template, candidate, "`keep: true` kept the promotion");
    assert!(pods.iter().all(|image| image == candidate), "{pods:?}");
    assert_logged(&run, "box-canary-bake", "| pass |");
}

#[test]
fn proxy_restart_stateless_passes_with_no_401() {
    let Some(kubeconfig) = box_kubeconfig() else {
        return;
    };
    settle(&kubeconfig, "tracebloc");
    let run = run_drill(&kubeconfig, "proxy-restart");
    assert_eq!(run.code, 0, "{}", run.explain());
    for check in [
        "baseline-clean",
        "no-401-during-fault",
        "no-401-after",
        "training-jobs-survive",
        "proxy-ready-again",
    ] {
        assert_eq!(run.verdict_of(check), "pass", "{check}: {}", run.explain());
    }
    assert_eq!(run.phase_count("all", "401"), 0, "{}", run.explain());
    assert!(run.phase_count("all", "200") > 1500, "{}", run.explain());
    assert_cluster_load(&run, &kubeconfig, "tracebloc", 50 * 40);
    assert_logged(&run, "box-proxy-restart", "| pass |");
    // Pod logs are not a terminal: the lab programs write plain lines there.
    let logs = kubectl(
        &kubeconfig,
        &[
            "-n",
            "tracebloc",
            "logs",
            "-l",
            "app=requests-proxy",
            "--tail=200",
        ],
    );
    let text = logs.stdout_str();
    assert!(!text.trim().is_empty(), "the proxy logged nothing");
    assert_plain_log(&text);
}

/// No colour escapes and no Rust debug formatting in a log that is not a terminal.
fn assert_plain_log(text: &str) {
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a pod log:\n{text}"
    );
    assert!(
        !text.contains("Some(") && !text.contains("None"),
        "debug formatting in a pod log:\n{text}"
    );
}

#[test]
fn proxy_restart_legacy_fails_with_401s_and_stranded_jobs() {
    let Some(kubeconfig) = box_kubeconfig() else {
        return;
    };
    settle(&kubeconfig, "tracebloc-legacy");
    let run = run_drill(&kubeconfig, "proxy-restart-legacy");
    assert_eq!(run.code, 1, "{}", run.explain());
    // Before the kill, every token is registered with both replicas: no 401.
    assert_eq!(
        run.verdict_of("baseline-clean"),
        "pass",
        "{}",
        run.explain()
    );
    assert_eq!(run.phase_count("baseline", "401"), 0, "{}", run.explain());
    // The replacement pod has an empty map: the callers' calls routed to it get 401.
    assert_eq!(run.verdict_of("no-401-after"), "fail", "{}", run.explain());
    assert!(
        run.phase_count("recovery", "401") > 100,
        "{}",
        run.explain()
    );
    assert_cluster_load(&run, &kubeconfig, "tracebloc-legacy", 50 * 40);
    assert_logged(&run, "box-proxy-restart-legacy", "| fail |");
}

#[test]
fn jobs_manager_restart_mid_job_passes() {
    let Some(kubeconfig) = box_kubeconfig() else {
        return;
    };
    settle(&kubeconfig, "tracebloc");
    let run = run_drill(&kubeconfig, "jobs-manager-restart");
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.verdict_of("tokens-still-verify"), "pass");
    assert_eq!(run.verdict_of("jobs-manager-rolled"), "pass");
    assert_eq!(run.verdict_of("training-jobs-survive"), "pass");
}

#[test]
fn midflight_rollback_strands_exactly_the_jwt_holders() {
    let Some(kubeconfig) = box_kubeconfig() else {
        return;
    };
    settle(&kubeconfig, "tracebloc");
    let run = run_drill(&kubeconfig, "midflight-rollback");
    assert_eq!(run.code, 0, "{}", run.explain());
    for check in [
        "baseline-clean",
        "only-jwt-holders-stranded",
        "settled",
        "jwt-jobs-stranded",
        "legacy-jobs-unaffected",
        "proxy-really-rolled",
        "jobs-manager-really-rolled",
    ] {
        assert_eq!(run.verdict_of(check), "pass", "{check}: {}", run.explain());
    }
    // The predicted failure really happened: 401s, then none once the JWT holders ended.
    assert!(run.phase_count("stranded", "401") > 0, "{}", run.explain());
    assert_eq!(run.phase_count("settled", "401"), 0, "{}", run.explain());
    // The undo (`helm rollback`) put the release back on stateless tokens.
    settle(&kubeconfig, "tracebloc");
    let env = kubectl(
        &kubeconfig,
        &[
            "-n",
            "tracebloc",
            "get",
            "deployment/requests-proxy",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[?(@.name==\"LAB_STATELESS_TOKENS\")].value}",
        ],
    );
    assert_eq!(env.stdout_str(), "true");
}

#[test]
fn flag_flip_rolls_pods_and_a_no_op_upgrade_does_not() {
    let Some(kubeconfig) = box_kubeconfig() else {
        return;
    };
    settle(&kubeconfig, "tracebloc-legacy");
    let run = run_drill(&kubeconfig, "flag-flip-rolls-pods");
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.verdict_of("no-op-rolls-nothing"), "pass");
    assert_eq!(run.verdict_of("flip-rolls-proxy"), "pass");
    assert_eq!(run.verdict_of("flip-rolls-jobs-manager"), "pass");
    settle(&kubeconfig, "tracebloc-legacy");
}

#[test]
fn preflight_refuses_while_training_jobs_run() {
    let Some(kubeconfig) = box_kubeconfig() else {
        return;
    };
    settle(&kubeconfig, "tracebloc");
    submit_training_job();
    let run = run_drill(&kubeconfig, "preflight");
    assert_eq!(run.code, 5, "{}", run.explain());
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("active Job(s) in namespace `tracebloc`: training-"),
        "{}",
        run.explain()
    );
}

/// Item 4 of "Staging in a box": `drillbook schedule` renders the CronJob and its RBAC, the real
/// CronJob controller starts the Job, the pod runs `drillbook run --in-cluster` with its real
/// ServiceAccount token (`Config::incluster()`), stores the result ConfigMap, and `collect`
/// appends exactly one drill-log row however often it runs.
#[test]
fn a_scheduled_drill_fires_in_cluster_and_collect_appends_its_row_once() {
    let Some(kubeconfig) = box_kubeconfig() else {
        return;
    };
    settle(&kubeconfig, "tracebloc");
    let dir = tempfile::tempdir().expect("temp dir");
    let manifests = dir.path().join("manifests");
    let render = cli::drillbook()
        .current_dir(REPO)
        .env("KUBECONFIG", &kubeconfig)
        .args(["schedule", "scenarios/box/proxy-restart.yaml"])
        .args([
            "--schedule",
            "* * * * *",
            "--image",
            "box.local/drillbook:dev",
        ])
        .args(["--context", "box", "--deadline", "5m", "-o"])
        .arg(&manifests)
        .output();
    assert!(render.status.success(), "schedule: {}", render.stderr_str());
    let manifests_arg = manifests.to_string_lossy().into_owned();
    let apply = kubectl(&kubeconfig, &["apply", "-f", &manifests_arg]);
    assert!(apply.status.success(), "apply: {}", apply.stderr_str());
    // Whatever happens below, no CronJob may keep firing drills after the test.
    let _cleanup = Cleanup {
        kubeconfig: kubeconfig.clone(),
        manifests: manifests_arg,
    };

    // The controller checks schedules every 10 s; a "* * * * *" job starts within ~70 s, and the
    // 40 s drill (plus pod start and reporting) ends well within the rest.
    let deadline = Instant::now() + Duration::from_secs(300);
    let job = loop {
        let jobs = kubectl(
            &kubeconfig,
            &[
                "-n",
                "tracebloc",
                "get",
                "jobs",
                "-o",
                "jsonpath={range .items[?(@.metadata.ownerReferences[0].kind==\"CronJob\")]}{.metadata.name} {.status.succeeded} {.status.failed}{\"\\n\"}{end}",
            ],
        );
        let listing = jobs.stdout_str();
        let finished = listing.lines().find_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?.to_owned();
            let rest: Vec<&str> = fields.collect();
            (!rest.is_empty()).then_some((name, rest.join(" ")))
        });
        if let Some(found) = finished {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no drill Job finished within 300 s: {listing}\n{}",
            String::from_utf8_lossy(
                &kubectl(
                    &kubeconfig,
                    &["-n", "tracebloc", "get", "cronjobs,jobs,pods"]
                )
                .stdout
            )
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    let (job_name, counts) = job;
    let logs = kubectl(
        &kubeconfig,
        &["-n", "tracebloc", "logs", &format!("job/{job_name}")],
    );
    let log_text = logs.stdout_str();
    assert!(
        counts.starts_with('1'),
        "the drill Job {job_name} did not succeed ({counts}):\n{log_text}"
    );
    assert_plain_log(&log_text);

    let runbook = dir.path().join("RUNBOOK.md");
    std::fs::copy(Path::new(REPO).join("docs/RUNBOOK.box.md"), &runbook).expect("copy runbook");
    let collect = || {
        cli::drillbook()
            .current_dir(REPO)
            .env("KUBECONFIG", &kubeconfig)
            .args(["collect", "--context", "box", "--namespace", "tracebloc"])
            .args(["--scenario", "box-proxy-restart", "--drill-log"])
            .arg(&runbook)
            .arg("--report-dir")
            .arg(dir.path().join("reports"))
            .output()
    };
    let first = collect();
    assert!(first.status.success(), "collect: {}", first.stderr_str());
    let rows = |text: &str| {
        text.lines()
            .filter(|line| line.contains("box-proxy-restart"))
            .count()
    };
    let after_first = std::fs::read_to_string(&runbook).expect("runbook");
    assert!(
        rows(&after_first) >= 1,
        "collect appended no row:\n{after_first}"
    );
    assert!(after_first.contains("| pass |"), "{after_first}");
    let second = collect();
    assert!(second.status.success());
    let after_second = std::fs::read_to_string(&runbook).expect("runbook");
    assert_eq!(
        rows(&after_second),
        rows(&after_first),
        "collect is not idempotent"
    );
    // The collected run is in the history, with a link to its report.
    let history = cli::drillbook()
        .args(["history", "box-proxy-restart", "--report-dir"])
        .arg(dir.path().join("reports"))
        .output();
    assert!(
        history.status.success(),
        "history: {}",
        history.stderr_str()
    );
    let table = history.stdout_str();
    assert!(
        table.contains("scenario `box-proxy-restart` on box/tracebloc: 1 run(s) (1 pass)"),
        "{table}"
    );
    assert!(table.contains("report.md"), "{table}");
}

/// Deletes what a test applied, on every exit path (a failed assertion included).
struct Cleanup {
    kubeconfig: PathBuf,
    manifests: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = kubectl(
            &self.kubeconfig,
            &[
                "delete",
                "--ignore-not-found",
                "--wait=false",
                "-f",
                &self.manifests,
            ],
        );
        let _ = kubectl(
            &self.kubeconfig,
            &[
                "-n",
                "tracebloc",
                "delete",
                "jobs,configmaps",
                "-l",
                "drillbook.dev/scenario=box-proxy-restart",
                "--ignore-not-found",
            ],
        );
    }
}
