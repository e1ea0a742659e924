//! `http_fault` on the box (issue #23): fault proxies interposed in front of a real Service
//! (real kubelet, kube-proxy in iptables mode, Endpoints controller), through the binary.
//!
//! - the seed drill "jobs-manager unreachable" (`scenarios/box/jobs-manager-unreachable.yaml`)
//!   reaches PASS, and while its blackhole holds this test measures what interposition cannot
//!   see: a caller using a pod IP, and a connection established before the switch (conntrack
//!   keeps it on its old backend);
//! - Ctrl-C mid-fault restores the Service within seconds;
//! - SIGKILL mid-fault: the proxies fail open at their deadline, `drillbook recover` restores
//!   the Service and removes the proxies.
//!
//! Measurements are written to stderr as `measured: ...` lines (run with `--nocapture`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::common;
use common::boxed::{self, kubectl, wait_exit};
use common::cli::Ran;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const JOBS_MANAGER: &str = "10.252.0.81:8081";
const FAULT_LABEL: &str = "drillbook.dev/fault-for";

fn measured(what: &str) {
    let _ = writeln!(std::io::stderr(), "measured: {what}");
}

fn selector(kubeconfig: &Path) -> String {
    kubectl(
        kubeconfig,
        &[
            "-n",
            "tracebloc",
            "get",
            "svc",
            "jobs-manager",
            "-o",
            "jsonpath={.spec.selector}",
        ],
    )
    .stdout_str()
}

fn interposed(kubeconfig: &Path) -> bool {
    selector(kubeconfig).contains(FAULT_LABEL)
}

/// The proxy Deployment and origin Service of jobs-manager, as `kind/name` lines.
fn leftovers(kubeconfig: &Path) -> String {
    kubectl(
        kubeconfig,
        &[
            "-n",
            "tracebloc",
            "get",
            "deployments,services",
            "-l",
            FAULT_LABEL,
            "-o",
            "name",
        ],
    )
    .stdout_str()
    .trim()
    .to_string()
}

/// Whether `POST /token` at `addr` answers 200 within `within`.
fn token_answers(addr: &str, within: Duration) -> bool {
    Command::new("curl")
        .args([
            "-fsS",
            "-o",
            "/dev/null",
            "--noproxy",
            "*",
            "-X",
            "POST",
            "--max-time",
        ])
        .arg(format!("{}", within.as_secs_f64()))
        .arg(format!("http://{addr}/token"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if done() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// One kept-alive HTTP/1.1 connection to the jobs-manager Service, opened before a fault.
struct KeptConnection(TcpStream);

impl KeptConnection {
    fn open() -> Self {
        let stream = TcpStream::connect(JOBS_MANAGER).expect("connect to the jobs-manager Service");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        Self(stream)
    }

    /// The status of `GET /healthz` on this connection, or `None` when it got no answer.
    fn healthz(&mut self) -> Option<u16> {
        self.0
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: jobs-manager\r\n\r\n")
            .ok()?;
        let mut buffer = vec![0u8; 4096];
        let mut filled = 0;
        loop {
            let n = self.0.read(&mut buffer[filled..]).ok()?;
            if n == 0 {
                return None;
            }
            filled += n;
            let text = String::from_utf8_lossy(&buffer[..filled]).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    return head.split(' ').nth(1)?.parse().ok();
                }
            }
        }
    }
}

fn jobs_manager_pod_ip(kubeconfig: &Path) -> String {
    kubectl(
        kubeconfig,
        &[
            "-n",
            "tracebloc",
            "get",
            "pods",
            "-l",
            "app=jobs-manager",
            "-o",
            "jsonpath={.items[0].status.podIP}",
        ],
    )
    .stdout_str()
    .trim()
    .to_string()
}

/// A scratch copy of the box runbook in `dir`, for the drill's row.
fn runbook_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("RUNBOOK.box.md");
    std::fs::copy(Path::new(REPO).join("docs/RUNBOOK.box.md"), &copy).expect("copy the runbook");
    copy
}

fn start(kubeconfig: &Path, dir: &Path, scenario: &Path) -> Child {
    assert!(
        !interposed(kubeconfig),
        "jobs-manager is interposed before the test: {}",
        selector(kubeconfig)
    );
    boxed::drillbook(kubeconfig, &dir.join("state"))
        .current_dir(REPO)
        .arg("run")
        .arg(scenario)
        .arg("--report-dir")
        .arg(dir.join("reports"))
        // The drill-log row goes to the test's own copy, never to the tracked runbook.
        .arg("--drill-log")
        .arg(runbook_copy(dir))
        .stdout(std::fs::File::create(dir.join("stdout")).expect("stdout file"))
        .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr file"))
        .spawn()
}

/// [`start`], then waits until the Service is switched to the fault proxies (calling
/// `meanwhile` on each look); returns the drill and how long the switch took.
fn start_interposed(
    kubeconfig: &Path,
    dir: &Path,
    scenario: &Path,
    mut meanwhile: impl FnMut(),
) -> (Child, Duration) {
    let mut drill = start(kubeconfig, dir, scenario);
    let switched = eventually(Duration::from_secs(60), || {
        meanwhile();
        interposed(kubeconfig)
    });
    match switched {
        Some(took) => (drill, took),
        None => {
            let _ = drill.kill();
            clean_up(kubeconfig);
            panic!(
                "the Service was never switched to the fault proxies\n{}",
                output_of(dir)
            );
        }
    }
}

fn output_of(dir: &Path) -> String {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        read("stdout"),
        read("stderr")
    )
}

/// Leaves jobs-manager routed to its own pods for the next test, whatever this one did.
fn clean_up(kubeconfig: &Path) {
    if interposed(kubeconfig) {
        let _ = kubectl(
            kubeconfig,
            &[
                "-n",
                "tracebloc",
                "patch",
                "svc",
                "jobs-manager",
                "--type=json",
                "-p",
                r#"[{"op":"replace","path":"/spec/selector","value":{"app":"jobs-manager"}}]"#,
            ],
        );
    }
    let _ = kubectl(
        kubeconfig,
        &[
            "-n",
            "tracebloc",
            "delete",
            "deployments,services",
            "-l",
            FAULT_LABEL,
            "--wait=true",
        ],
    );
}

/// A blackhole on jobs-manager from 3 s into a `seconds` long load, until the drill ends.
fn write_scenario(dir: &Path, name: &str, seconds: u64, margin: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = format!(
        "apiVersion: drillbook/v1\nname: {name}\ntarget:\n  kubernetes:\n    context: box\n    \
         namespace: tracebloc\n    allowed_contexts: [box]\n    allowed_namespaces: [tracebloc]\n\
         load:\n  url: http://10.252.0.80:8080/healthz\n  rate: 10/s\n  duration: {seconds}s\n\
         steps:\n  - at: 3s\n    name: blackhole\n    http_fault:\n      service: jobs-manager\n      \
         image: box.local/drillbook:dev\n      fail_open_margin: {margin}\n      blackhole: {{mode: hang}}\n\
         checks:\n  - name: proxy-up\n    http: \"rate(errors) < 1%\"\n"
    );
    std::fs::write(&path, text).expect("write scenario");
    path
}

/// A fresh [`write_scenario`] drill started, with jobs-manager switched to the fault proxies.
fn blackhole_drill(
    kubeconfig: &Path,
    name: &str,
    seconds: u64,
    margin: &str,
) -> (tempfile::TempDir, Child, Duration) {
    clean_up(kubeconfig);
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = write_scenario(dir.path(), name, seconds, margin);
    let (drill, switched) = start_interposed(kubeconfig, dir.path(), &scenario, || {});
    (dir, drill, switched)
}

#[test]
fn jobs_manager_blackholed_the_stateless_proxy_serves_without_401() {
    let Some(kubeconfig) = boxed::kubeconfig() else {
        return;
    };
    clean_up(&kubeconfig);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut kept = KeptConnection::open();
    assert_eq!(
        kept.healthz(),
        Some(200),
        "the kept connection answers before the fault"
    );
    let scenario = Path::new("scenarios/box/jobs-manager-unreachable.yaml");
    // Keep the connection busy while waiting, so neither side closes it as idle.
    let (mut drill, _) = start_interposed(&kubeconfig, dir.path(), scenario, || {
        let _ = kept.healthz();
    });
    std::thread::sleep(Duration::from_secs(1));
    // During the blackhole: the Service does not answer new connections...
    let through_service = token_answers(JOBS_MANAGER, Duration::from_secs(2));
    // ...but a caller using a pod IP goes around the interposition,
    let pod = format!("{}:8081", jobs_manager_pod_ip(&kubeconfig));
    let through_pod_ip = token_answers(&pod, Duration::from_secs(2));
    // and a connection established before the switch stays on its old backend (conntrack).
    let kept_answers = (0..5).filter(|_| kept.healthz() == Some(200)).count();
    measured(&format!(
        "blackhole on jobs-manager: new token request via the Service answered={through_service}; \
         via pod IP {pod} answered={through_pod_ip}; kept-alive connection opened before the \
         switch answered {kept_answers}/5 requests during the fault"
    ));
    let code = wait_exit(&mut drill, Duration::from_secs(120));
    let restored = !interposed(&kubeconfig);
    let left = leftovers(&kubeconfig);
    let after = token_answers(JOBS_MANAGER, Duration::from_secs(5));
    clean_up(&kubeconfig);
    let report = boxed::first_report(&dir.path().join("reports"));
    let explain = output_of(dir.path());
    assert!(
        !through_service,
        "the blackhole let a new token request through\n{explain}"
    );
    assert!(
        through_pod_ip,
        "a pod-IP caller is outside interposition's reach\n{explain}"
    );
    assert_eq!(
        kept_answers, 5,
        "conntrack keeps an established connection on its backend"
    );
    assert_eq!(code, 0, "{explain}");
    assert!(
        restored && left.is_empty(),
        "not undone: selector {}, left {left}",
        selector(&kubeconfig)
    );
    assert!(
        after,
        "jobs-manager answers through its Service after the drill"
    );
    let report = report.expect("report.json");
    let statuses = &report["load"]["statuses"];
    measured(&format!(
        "drill jobs-manager-unreachable: verdict {}, load statuses {statuses}, callers {}",
        report["verdict"],
        report["callers"].as_array().map_or(0, Vec::len)
    ));
    assert_eq!(report["verdict"], "pass", "{explain}");
    assert_eq!(statuses["401"].as_u64().unwrap_or(0), 0);
    let counted = assert_fault_counted(&report, "jobs-manager-unreachable");
    measured(&format!(
        "jobs-manager-unreachable: the fault proxies counted {counted}"
    ));
    assert!(counted.contains("blackholed"), "{counted}");
}

#[test]
fn ctrl_c_mid_fault_restores_the_service_within_seconds() {
    let Some(kubeconfig) = boxed::kubeconfig() else {
        return;
    };
    let (dir, mut drill, _) = blackhole_drill(&kubeconfig, "box-fault-interrupt", 60, "2m");
    // The selector is switched a moment before kube-proxy routes by it.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !token_answers(JOBS_MANAGER, Duration::from_secs(2)),
        "the blackhole holds"
    );
    kill(Pid::from_raw(drill.id() as i32), Signal::SIGINT).expect("SIGINT");
    let answered = eventually(Duration::from_secs(30), || {
        token_answers(JOBS_MANAGER, Duration::from_millis(500))
    });
    let code = wait_exit(&mut drill, Duration::from_secs(60));
    let left = leftovers(&kubeconfig);
    let restored = !interposed(&kubeconfig);
    clean_up(&kubeconfig);
    measured(&format!(
        "Ctrl-C mid-blackhole: jobs-manager answered through its Service {answered:?} after SIGINT"
    ));
    let explain = output_of(dir.path());
    assert_eq!(code, 130, "{explain}");
    let answered = answered
        .unwrap_or_else(|| panic!("the Service did not answer within 30 s of Ctrl-C\n{explain}"));
    assert!(answered < Duration::from_secs(15), "{answered:?}");
    assert!(restored && left.is_empty(), "not undone: left {left}");
}

#[test]
fn after_sigkill_the_proxies_fail_open_and_recover_restores_the_service() {
    let Some(kubeconfig) = boxed::kubeconfig() else {
        return;
    };
    // The load's end is 12 s after the start: the proxies fail open 5 s after it.
    let (dir, mut drill, switched) = blackhole_drill(&kubeconfig, "box-fault-sigkill", 12, "5s");
    let effective = eventually(Duration::from_secs(10), || {
        !token_answers(JOBS_MANAGER, Duration::from_secs(1))
    });
    drill.kill().expect("SIGKILL");
    let _ = drill.wait();
    let killed = Instant::now();
    assert!(effective.is_some(), "the blackhole never took effect");
    let blackholed = !token_answers(JOBS_MANAGER, Duration::from_secs(2));
    let failed_open = eventually(Duration::from_secs(45), || {
        token_answers(JOBS_MANAGER, Duration::from_secs(1))
    })
    .map(|_| killed.elapsed());
    let still_interposed = interposed(&kubeconfig);
    measured(&format!(
        "SIGKILL mid-blackhole: blackhole held after the kill={blackholed}; the proxies failed open \
         {:?} after the kill (fault applied {switched:?} after start)",
        failed_open
    ));
    let recovering = Instant::now();
    let recover = boxed::drillbook(&kubeconfig, &dir.path().join("state"))
        .arg("recover")
        .output();
    let recover_took = recovering.elapsed();
    let left = leftovers(&kubeconfig);
    let restored = !interposed(&kubeconfig);
    let answers = token_answers(JOBS_MANAGER, Duration::from_secs(5));
    clean_up(&kubeconfig);
    measured(&format!("recover after SIGKILL took {recover_took:?}"));
    assert!(
        blackholed,
        "the fault outlives drillbook until its deadline"
    );
    assert!(
        failed_open.is_some(),
        "the proxies did not fail open within 45 s"
    );
    assert!(
        still_interposed,
        "fail open, not undone: the selector is recover's to restore"
    );
    assert!(
        recover.status.success(),
        "recover: {}",
        recover.stderr_str()
    );
    assert!(
        recover.stdout_str().contains("jobs-manager")
            || recover.stderr_str().contains("jobs-manager"),
        "recover names the Service it restored"
    );
    assert!(restored && left.is_empty(), "recover left: {left}");
    assert!(
        answers,
        "jobs-manager answers through its Service after recover"
    );
}

/// Runs `scenarios/box/<name>.yaml`; returns its exit code, report and output.
fn run_seed(kubeconfig: &Path, name: &str) -> (i32, Value, String) {
    clean_up(kubeconfig);
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = PathBuf::from(format!("scenarios/box/{name}.yaml"));
    let mut drill = start(kubeconfig, dir.path(), &scenario);
    let code = wait_exit(&mut drill, Duration::from_secs(300));
    let explain = output_of(dir.path());
    let report = boxed::first_report(&dir.path().join("reports"))
        .unwrap_or_else(|| panic!("no report.json\n{explain}"));
    assert!(
        !interposed(kubeconfig) && leftovers(kubeconfig).is_empty(),
        "the fault was not undone: {}\n{explain}",
        leftovers(kubeconfig)
    );
    // The image undo rolls the proxy once more: let it finish for the next drill.
    let _ = kubectl(
        kubeconfig,
        &[
            "-n",
            "tracebloc",
            "rollout",
            "status",
            "deployment/requests-proxy",
            "--timeout=120s",
        ],
    );
    clean_up(kubeconfig);
    (code, report, explain)
}

fn phase<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["phases"]
        .as_array()
        .and_then(|phases| phases.iter().find(|p| p["name"] == name))
        .map_or(&Value::Null, |p| &p["load"])
}

/// The verdict line the run printed (it names the guard that tripped and the rollback).
fn verdict_line(explain: &str) -> &str {
    explain
        .lines()
        .find(|l| l.starts_with("Verdict"))
        .unwrap_or_default()
}

/// The check an `http_fault` step adds, `<step>-took-effect`: it must pass (the proxies'
/// counts say the fault changed requests), and the report carries the counts per second.
/// Returns the counts in words.
fn assert_fault_counted(report: &Value, step: &str) -> String {
    let name = format!("{step}-took-effect");
    let check = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name.as_str()))
        .unwrap_or_else(|| panic!("no check {name}: {}", report["checks"]));
    assert_eq!(check["verdict"], "pass", "{check}");
    let faulted = format!("{step}: faulted");
    let tracked: f64 = report["tracks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == faulted.as_str()))
        .and_then(|t| t["points"].as_array())
        .map(|points| points.iter().filter_map(|p| p[1].as_f64()).sum())
        .unwrap_or_else(|| panic!("no track {faulted}: {}", report["tracks"]));
    assert_eq!(Some(tracked), check["measured"].as_f64(), "{check}");
    check["detail"].as_str().unwrap_or_default().to_string()
}

/// The drill aborted (exit 4) and `on_abort`'s `rollout_undo` ran.
fn assert_aborted_and_rolled_back(code: i32, report: &Value, explain: &str) {
    assert_eq!(code, 4, "{explain}");
    assert_eq!(report["verdict"], "aborted", "{explain}");
    assert!(
        verdict_line(explain).contains("rolled back by on_abort: `rollback` ok"),
        "on_abort's rollout_undo ran\n{explain}"
    );
}

#[test]
fn injected_503s_trip_the_canary_trigger_and_the_rollback_runs() {
    let Some(kubeconfig) = boxed::kubeconfig() else {
        return;
    };
    let (code, report, explain) = run_seed(&kubeconfig, "canary-injected-errors");
    let injected = phase(&report, "injected");
    let requests = injected["requests"].as_u64().unwrap_or(0);
    let share = injected["statuses"]["503"].as_u64().unwrap_or(0) as f64 / requests.max(1) as f64;
    measured(&format!(
        "canary-injected-errors: verdict {}, injected 5 % 503, measured {:.2} % of {requests} \
         requests in the injected phase; trigger: {}; the proxy pods' own metrics: {}",
        report["verdict"],
        share * 100.0,
        verdict_line(&explain),
        report["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "proxy-own-5xx"))
            .unwrap_or(&Value::Null)
    ));
    assert_aborted_and_rolled_back(code, &report, &explain);
    let counted = assert_fault_counted(&report, "errors");
    measured(&format!(
        "canary-injected-errors: the fault proxies counted {counted}"
    ));
    assert!(requests >= 200, "{injected}");
    assert!((0.02..0.09).contains(&share), "503 share {share}");
}

#[test]
fn a_slow_proxy_trips_the_p95_gate_and_the_rollback_runs() {
    let Some(kubeconfig) = boxed::kubeconfig() else {
        return;
    };
    let (code, report, explain) = run_seed(&kubeconfig, "slow-proxy");
    let (base, slow) = (phase(&report, "baseline"), phase(&report, "slowed"));
    let p50 = |p: &Value| p["latency_ms"]["p50"].as_f64().unwrap_or(f64::NAN);
    let p95 = |p: &Value| p["latency_ms"]["p95"].as_f64().unwrap_or(f64::NAN);
    let added = p50(slow) - p50(base);
    measured(&format!(
        "slow-proxy: verdict {}, injected +300 ms p50 (p99 450 ms), measured p50 {:.1} → {:.1} ms \
         (+{added:.1} ms), p95 {:.1} → {:.1} ms over {} requests; trigger: {}",
        report["verdict"],
        p50(base),
        p50(slow),
        p95(base),
        p95(slow),
        slow["requests"],
        verdict_line(&explain)
    ));
    assert_aborted_and_rolled_back(code, &report, &explain);
    let counted = assert_fault_counted(&report, "slow");
    measured(&format!("slow-proxy: the fault proxies counted {counted}"));
    // Tolerance: ±20 % of the injected median (the proxy's own time and the sampling).
    assert!((240.0..360.0).contains(&added), "added p50 {added} ms");
}
