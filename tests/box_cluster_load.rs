//! Cluster load (issue #13) on the box: load workers (`drillbook load --worker-output`) behind
//! the proxy's Service, their per-second windows merged by `load::wire::FleetMerger`.
//!
//! The wire format is checked with workers as processes next to the test (the host reaches the
//! Service's ClusterIP through kube-proxy, as a pod does); the fleet's lifecycle with workers as
//! Jobs that drillbook creates (`load.from: cluster`): Ctrl-C, SIGKILL + `recover`, a worker
//! that crashes. The seed drills with cluster load are in `tests/box_drills.rs`. Skips without
//! `DRILLBOOK_BOX_KUBECONFIG`, fails without a box under `DRILLBOOK_REQUIRE_BOX=1`.

use crate::common::cli::{self, Ran};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use drillbook::load::wire::{FleetMerger, WorkerLine};

const PROXY: &str = "http://10.252.0.80:8080/v1/train";
const TOKENS: &str = "http://10.252.0.81:8081/token";
const WORKERS: u32 = 2;
const RATE_PER_WORKER: u64 = 25;
const SECONDS: u64 = 10;
const CALLERS_PER_WORKER: u32 = 2;

use crate::common;

use common::boxed::{self, kubectl, wait_exit};

const WORKERS_LABEL: &str = "app.kubernetes.io/name=drillbook-load";
const CONTAINERD: &str = "/run/drillbook-box/containerd/containerd.sock";

fn have_box() -> bool {
    boxed::kubeconfig().is_some()
}

/// A drill with cluster load (2 workers, 20/s through the stateless proxy's Service) and one
/// `wait` step, so the load runs `seconds` long with nothing else going on.
fn write_scenario(dir: &Path, name: &str, seconds: u64) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = format!(
        "apiVersion: drillbook/v1\nname: {name}\ntarget:\n  kubernetes:\n    context: box\n    \
         namespace: tracebloc\n    allowed_contexts: [box]\n    allowed_namespaces: [tracebloc]\n\
         load:\n  url: {PROXY}\n  from: cluster\n  cluster: {{workers: 2, image: \"box.local/drillbook:dev\", \
         memory: 128Mi, start_within: 8s}}\n  rate: 20/s\n  duration: {seconds}s\n  \
         requests_per_connection: 1\n  auth: {{token_url: \"{TOKENS}\", callers: 2}}\n\
         steps:\n  - at: 2s\n    wait: 1s\nchecks:\n  - name: no-401\n    http: \"rate(401) == 0\"\n"
    );
    std::fs::write(&path, text).expect("write scenario");
    path
}

/// Like [`write_scenario`], with the token held in Secret `secret` instead of minted per caller.
fn write_secret_scenario(dir: &Path, name: &str, seconds: u64, secret: &str) -> PathBuf {
    let path = write_scenario(dir, name, seconds);
    let text = std::fs::read_to_string(&path)
        .expect("read scenario")
        .replace(
            &format!("auth: {{token_url: \"{TOKENS}\", callers: 2}}"),
            &format!("auth: {{bearer_secret: {{name: {secret}, key: token}}, callers: 2}}"),
        );
    assert!(text.contains("bearer_secret"));
    std::fs::write(&path, text).expect("write scenario");
    path
}

fn start_drill(kubeconfig: &Path, dir: &Path, scenario: &Path) -> Child {
    boxed::drillbook(kubeconfig, &dir.join("state"))
        .arg("run")
        .arg(scenario)
        .arg("--report-dir")
        .arg(dir.join("reports"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr file"))
        .spawn()
}

/// Starts the drill and waits until both of its worker pods run.
fn start_with_workers(kubeconfig: &Path, dir: &Path, scenario: &Path) -> Child {
    // Worker pods of an earlier test may still be terminating; the tests find "worker 1" by
    // label, so each starts from none.
    clean_up(kubeconfig);
    assert!(
        eventually(Duration::from_secs(90), || {
            worker_pods(kubeconfig).is_empty() && worker_jobs(kubeconfig).is_empty()
        }),
        "worker pods of an earlier drill are still there: {:?}",
        worker_pods(kubeconfig)
    );
    let drill = start_drill(kubeconfig, dir, scenario);
    let started = eventually(Duration::from_secs(60), || both_workers_running(kubeconfig));
    if !started {
        let listing = kubectl(
            kubeconfig,
            &[
                "-n",
                "tracebloc",
                "get",
                "pods,jobs",
                "-l",
                WORKERS_LABEL,
                "-o",
                "wide",
            ],
        );
        panic!(
            "the workers did not start: {}\nkubectl get pods,jobs: {}{}",
            stderr_of(dir),
            listing.stdout_str(),
            listing.stderr_str()
        );
    }
    drill
}

/// A fresh [`write_scenario`] drill started, with both worker pods running.
fn drill_with_workers(kubeconfig: &Path, name: &str, seconds: u64) -> (tempfile::TempDir, Child) {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = write_scenario(dir.path(), name, seconds);
    let drill = start_with_workers(kubeconfig, dir.path(), &scenario);
    (dir, drill)
}

/// One line per worker object of `kind` (`pods`, `jobs`): `fields` (a jsonpath list) of each.
fn worker_lines(kubeconfig: &Path, kind: &str, fields: &str) -> String {
    let jsonpath = format!("jsonpath={{range .items[*]}}{fields}{{\"\\n\"}}{{end}}");
    let out = kubectl(
        kubeconfig,
        &[
            "-n",
            "tracebloc",
            "get",
            kind,
            "-l",
            WORKERS_LABEL,
            "-o",
            &jsonpath,
        ],
    );
    out.stdout_str()
}

/// The worker pods' phases (`Running`, `Succeeded`, …), by pod name.
fn worker_pods(kubeconfig: &Path) -> Vec<(String, String)> {
    worker_lines(kubeconfig, "pods", "{.metadata.name} {.status.phase}")
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, phase)| (name.to_string(), phase.to_string()))
        .collect()
}

fn worker_jobs(kubeconfig: &Path) -> Vec<String> {
    worker_lines(kubeconfig, "jobs", "{.metadata.name}")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Polls `done` every 500 ms until it holds or `within` passed; returns whether it held.
fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    done()
}

/// Two worker pods run (pods of earlier drills still being cleaned up do not count).
fn both_workers_running(kubeconfig: &Path) -> bool {
    worker_lines(
        kubeconfig,
        "pods",
        "{.status.phase} {.metadata.deletionTimestamp}",
    )
    .lines()
    .filter(|line| line.trim_end() == "Running")
    .count()
        == 2
}

fn report_of(dir: &Path) -> Value {
    boxed::first_report(&dir.join("reports")).expect("a report.json")
}

fn stderr_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
}

/// Leaves no worker behind for the next test, whatever this one did.
/// Deletes the worker Jobs and their pods (a Job's pods are otherwise removed in the
/// background, after `delete` returns) and waits for both.
fn clean_up(kubeconfig: &Path) {
    let _ = kubectl(
        kubeconfig,
        &[
            "-n",
            "tracebloc",
            "delete",
            "jobs,pods",
            "-l",
            WORKERS_LABEL,
            "--wait=true",
        ],
    );
}

#[test]
fn ctrl_c_mid_load_removes_every_worker_pod() {
    let Some(kubeconfig) = boxed::kubeconfig() else {
        return;
    };
    let (dir, mut drill) = drill_with_workers(&kubeconfig, "box-cluster-load-interrupt", 40);
    // Into the load: time zero is 8 s after the start, the workers run a little before it.
    std::thread::sleep(Duration::from_secs(16));
    kill(Pid::from_raw(drill.id() as i32), Signal::SIGINT).expect("SIGINT");
    let code = wait_exit(&mut drill, Duration::from_secs(90));
    assert_eq!(code, 130, "{}", stderr_of(dir.path()));
    // Grace period 5 s; the Jobs and pods are deleted at once on stop and again by the undo.
    // What remains is the kubelet's own clean-up (a terminated pod object is removed only after
    // its volumes are torn down): 11 s for a bare pod with a 1 s grace on a quiet box, more on
    // a loaded CI machine (a 20 s bound once saw a `Failed` worker pod still listed).
    let gone = eventually(Duration::from_secs(45), || {
        worker_pods(&kubeconfig).is_empty() && worker_jobs(&kubeconfig).is_empty()
    });
    let left = worker_pods(&kubeconfig);
    clean_up(&kubeconfig);
    assert!(gone, "worker pods left after Ctrl-C: {left:?}");
    let report = report_of(dir.path());
    assert_eq!(report["verdict"], "interrupted");
    assert!(
        report["load"]["requests"].as_u64().unwrap_or(0) >= 100,
        "{report}"
    );
    // The stopped workers still sent their last windows and final lines.
    assert_eq!(
        report["load_workers"]["problems"],
        serde_json::json!([]),
        "{report}"
    );
    assert_eq!(
        report["callers"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
}

#[test]
fn after_sigkill_workers_end_by_themselves_and_recover_removes_the_jobs() {
    let Some(kubeconfig) = boxed::kubeconfig() else {
        return;
    };
    let (dir, mut drill) = drill_with_workers(&kubeconfig, "box-cluster-load-sigkill", 20);
    std::thread::sleep(Duration::from_secs(10));
    drill.kill().expect("SIGKILL");
    let _ = drill.wait();
    assert_eq!(
        worker_jobs(&kubeconfig).len(),
        2,
        "the Jobs outlive drillbook"
    );
    // The load is 20 s from a time zero 8 s after the start: the workers stop on their own.
    let ended = eventually(Duration::from_secs(60), || {
        let pods = worker_pods(&kubeconfig);
        !pods.is_empty()
            && pods
                .iter()
                .all(|(_, phase)| phase != "Running" && phase != "Pending")
    });
    let pods = worker_pods(&kubeconfig);
    if !ended {
        clean_up(&kubeconfig);
    }
    assert!(ended, "workers still running after their load: {pods:?}");
    let recover = boxed::drillbook(&kubeconfig, &dir.path().join("state"))
        .arg("recover")
        .output();
    let gone = eventually(Duration::from_secs(20), || {
        worker_jobs(&kubeconfig).is_empty()
    });
    clean_up(&kubeconfig);
    assert!(
        recover.status.success(),
        "recover: {}",
        recover.stderr_str()
    );
    assert!(gone, "recover left the worker Jobs");
    assert!(
        recover.stdout_str().contains("drillbook-load-")
            || recover.stderr_str().contains("drillbook-load-"),
        "recover names the worker Jobs it removed"
    );
}

#[test]
fn a_worker_that_crashes_leaves_visible_gaps_and_no_pass() {
    let Some(kubeconfig) = boxed::kubeconfig() else {
        return;
    };
    let (dir, mut drill) = drill_with_workers(&kubeconfig, "box-cluster-load-crash", 30);
    std::thread::sleep(Duration::from_secs(14));
    // A real crash: the kernel kills worker 1's process (as the OOM killer would).
    let id = kubectl(
        &kubeconfig,
        &[
            "-n",
            "tracebloc",
            "get",
            "pods",
            "-l",
            &format!("{WORKERS_LABEL},drillbook.dev/load-worker=1"),
            "-o",
            "jsonpath={.items[0].status.containerStatuses[0].containerID}",
        ],
    );
    let id = id
        .stdout_str()
        .trim()
        .trim_start_matches("containerd://")
        .to_string();
    assert!(!id.is_empty(), "worker 1's container id");
    let killed = Command::new("ctr")
        .args([
            "--address",
            CONTAINERD,
            "-n",
            "k8s.io",
            "tasks",
            "kill",
            "-s",
            "SIGKILL",
        ])
        .arg(&id)
        .output()
        .expect("ctr runs");
    assert!(killed.status.success(), "ctr kill: {}", killed.stderr_str());
    let code = wait_exit(&mut drill, Duration::from_secs(120));
    clean_up(&kubeconfig);
    let report = report_of(dir.path());
    assert_ne!(code, 0, "a drill on partial data must not pass: {report}");
    assert_ne!(report["verdict"], "pass");
    let workers = &report["load_workers"];
    assert_eq!(workers["workers"], 2);
    let partial = workers["partial"].as_array().expect("partial seconds");
    assert!(
        partial.len() >= 10,
        "the crashed worker's seconds are missing: {workers}"
    );
    assert!(partial.iter().all(|p| p["reported"] == 1));
    let problems = workers["problems"].to_string();
    assert!(
        problems.contains("worker 1") && problems.contains("137"),
        "the report says which worker failed and how: {problems}"
    );
    let check = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "no-401"))
        .expect("no-401 check");
    assert_eq!(check["verdict"], "inconclusive", "{check}");
}

#[test]
fn two_workers_through_the_service_merge_to_rate_times_duration() {
    if !have_box() {
        return;
    }
    // A shared time zero a little ahead, so both workers' seconds line up.
    let zero_ms = jiff::Timestamp::now().as_millisecond() + 3000;
    let children: Vec<_> = (0..WORKERS)
        .map(|worker| {
            cli::drillbook()
                .args(["load", PROXY, "--worker-output"])
                .args(["--rate", &format!("{RATE_PER_WORKER}/s")])
                .args(["--duration", &format!("{SECONDS}s")])
                .args(["--requests-per-connection", "1", "--connections", "4"])
                .args(["--token-url", TOKENS])
                .args(["--callers", &CALLERS_PER_WORKER.to_string()])
                .args(["--worker-index", &worker.to_string()])
                .args([
                    "--caller-slot-offset",
                    &(worker * CALLERS_PER_WORKER).to_string(),
                ])
                .args(["--start-at-unix-ms", &zero_ms.to_string()])
                .args([
                    "--max-requests",
                    &(RATE_PER_WORKER * SECONDS * 2).to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect();
    let mut merger = FleetMerger::new(WORKERS);
    for mut child in children {
        let stdout = child.stdout.take().expect("piped stdout");
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("worker output is text");
            merger
                .push(WorkerLine::parse(&line).unwrap_or_else(|e| panic!("{e}: {line}")))
                .expect("a valid window");
        }
        assert!(child.wait().expect("the worker ends").success());
    }
    assert!(
        merger.unfinished().is_empty(),
        "every worker sent its final line"
    );
    let windows = merger.take_all();
    assert_eq!(windows.len() as u64, SECONDS);
    assert!(
        windows.iter().all(|w| w.complete()),
        "every second has both workers"
    );
    let total: u64 = windows.iter().map(|w| w.window.stats.requests).sum();
    let expected = WORKERS as u64 * RATE_PER_WORKER * SECONDS;
    let off = total.abs_diff(expected) as f64 / expected as f64;
    eprintln!(
        "merged {total} requests, expected {expected} ({:.2} % off)",
        off * 100.0
    );
    assert!(off <= 0.01, "{total} requests for {expected} expected");
    let ok: u64 = windows.iter().map(|w| w.window.stats.class_count(2)).sum();
    assert_eq!(ok, total, "stateless tokens: every request answered 2xx");
    let callers: usize = merger.finals().values().map(|f| f.callers.len()).sum();
    assert_eq!(callers, (WORKERS * CALLERS_PER_WORKER) as usize);
}

#[test]
fn a_bearer_token_from_a_secret_reaches_the_workers_and_nowhere_else() {
    let Some(kubeconfig) = boxed::kubeconfig() else {
        return;
    };
    let minted = Command::new("curl")
        .args(["-fsS", "--noproxy", "*", "--max-time", "10", "-X", "POST"])
        .arg(TOKENS)
        .output()
        .expect("curl runs");
    let answer: Value = serde_json::from_slice(&minted.stdout).expect("token JSON");
    let token = answer["token"].as_str().expect("a token").to_string();
    let secret = "drill-token-e2e";
    let _ = kubectl(
        &kubeconfig,
        &["-n", "tracebloc", "delete", "secret", secret],
    );
    let created = kubectl(
        &kubeconfig,
        &[
            "-n",
            "tracebloc",
            "create",
            "secret",
            "generic",
            secret,
            &format!("--from-literal=token={token}"),
        ],
    );
    assert!(created.status.success(), "{}", created.stderr_str());

    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = write_secret_scenario(dir.path(), "box-cluster-load-secret", 12, secret);
    let mut drill = start_with_workers(&kubeconfig, dir.path(), &scenario);
    let jobs = kubectl(
        &kubeconfig,
        &[
            "-n",
            "tracebloc",
            "get",
            "jobs",
            "-l",
            WORKERS_LABEL,
            "-o",
            "json",
        ],
    );
    let jobs = jobs.stdout_str();
    let code = wait_exit(&mut drill, Duration::from_secs(90));
    let _ = kubectl(
        &kubeconfig,
        &["-n", "tracebloc", "delete", "secret", secret],
    );
    clean_up(&kubeconfig);
    assert!(
        jobs.contains("secretKeyRef") && jobs.contains(secret),
        "{jobs}"
    );
    assert!(!jobs.contains(&token), "the token is in the Job spec");
    let report = report_of(dir.path());
    assert_eq!(code, 0, "{}", stderr_of(dir.path()));
    assert_eq!(report["load"]["requests"], 20 * 12, "{report}");
    assert_eq!(
        report["load"]["statuses"]["200"],
        20 * 12,
        "every call carried the token"
    );
    let outputs = std::fs::read_dir(dir.path().join("reports"))
        .expect("reports")
        .filter_map(Result::ok)
        .flat_map(|d| {
            std::fs::read_dir(d.path())
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
        })
        .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
        .chain([stderr_of(dir.path())]);
    for text in outputs {
        assert!(!text.contains(&token), "the token leaked into an output");
    }
}
