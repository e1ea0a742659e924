//! The lab drills end to end through the real binary: real processes, real signals, real load.
//! Each run is checked for its verdict, its reports, its drill-log row, and for leaving no
//! process behind (every child inherits a per-test marker that is looked for in /proc).

use crate::common::cli::Ran;
use crate::common::lab_drill::{Drill, check};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use drillbook::report::model::{CheckVerdict, EventKind, Report, Verdict};

fn stderr(output: &Output) -> String {
    output.stderr_str()
}

fn assert_reports_written(drill: &Drill, report: &Report, step: &str) {
    let dir = drill.report_dir();
    for file in [
        "report.json",
        "report.md",
        "junit.xml",
        "timeline.svg",
        "report.html",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let svg = std::fs::read_to_string(dir.join("timeline.svg")).expect("svg");
    assert!(svg.contains(step), "the SVG timeline marks step {step}");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).expect("junit");
    assert_eq!(
        junit.matches("<testcase").count(),
        report.checks.len(),
        "one testcase per check"
    );
    // Exactly one drill-log row for this run.
    let runbook = drill.runbook();
    assert_eq!(
        runbook
            .lines()
            .filter(|l| l.contains(&report.run_id))
            .count(),
        1,
        "one drill-log row for run {}",
        report.run_id
    );
    assert!(
        runbook.contains("| pending | initial lab setup |"),
        "the placeholder row is kept"
    );
}

#[test]
fn proxy_restart_in_stateless_mode_passes() {
    let drill = Drill::new();
    let (output, report) = drill.run("proxy-restart.yaml");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.verdict_reason);
    let fault = report
        .phases
        .iter()
        .find(|p| p.name == "fault")
        .expect("fault phase");
    let load = fault.load.as_ref().expect("load in the fault phase");
    assert_eq!(load.status_count(401), 0);
    assert!(load.requests > 0);
    assert_eq!(
        check(&report, "trainers-finished").verdict,
        CheckVerdict::Pass
    );
    let kill = report
        .events
        .iter()
        .find(|e| e.kind == EventKind::Fault)
        .expect("the kill is on the timeline");
    assert!(
        kill.targets.iter().any(|t| t.starts_with("requests-proxy")),
        "{:?}",
        kill.targets
    );
    assert!(stderr(&output).contains("seed"), "the seed is printed");
    assert_reports_written(&drill, &report, "kill-proxy");
    drill.assert_no_survivors();
}

#[test]
fn proxy_restart_in_legacy_mode_fails_with_401s_and_stranded_trainers() {
    let drill = Drill::new();
    let (output, report) = drill.run("proxy-restart-legacy.yaml");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(
        check(&report, "no-401-in-recovery").verdict,
        CheckVerdict::Fail
    );
    let trainers = check(&report, "trainers-finished");
    assert_eq!(trainers.verdict, CheckVerdict::Fail);
    assert!(
        trainers.detail.contains("exit 3"),
        "stranded trainers exit 3: {}",
        trainers.detail
    );
    // Every in-flight caller lost its registered token with the proxy's memory.
    assert!(!report.callers.is_empty());
    for caller in &report.callers {
        assert!(
            caller.statuses.get("401").copied().unwrap_or(0) > 0,
            "{} saw no 401",
            caller.label
        );
    }
    assert_reports_written(&drill, &report, "kill-proxy");
    drill.assert_no_survivors();
}

#[test]
fn jobs_manager_restart_keeps_tokens_valid() {
    let drill = Drill::new();
    let (output, report) = drill.run("jobs-manager-restart.yaml");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.verdict_reason);
    assert_eq!(report.load.as_ref().expect("load").status_count(401), 0);
    drill.assert_no_survivors();
}

#[test]
fn midflight_rollback_strands_only_callers_holding_jwts() {
    let drill = Drill::new();
    let (output, report) = drill.run("midflight-rollback.yaml");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.verdict_reason);
    let rollback_end = report
        .events
        .iter()
        .find(|e| e.step.as_deref() == Some("rollback") && e.kind == EventKind::Fault)
        .map(|e| e.at_s)
        .expect("rollback step");
    let stranded: Vec<_> = report
        .callers
        .iter()
        .filter(|c| c.statuses.contains_key("401"))
        .collect();
    assert!(
        !stranded.is_empty(),
        "the rollback must strand the callers holding JWTs"
    );
    for caller in &stranded {
        assert!(
            caller.started_at_s < rollback_end + 1.0,
            "{} started after the rollback and still got 401",
            caller.label
        );
    }
    assert!(report.callers.iter().any(|c| c.started_at_s > rollback_end
        && c.requests > 0
        && !c.statuses.contains_key("401")));
    // The rollback was undone: both groups were rolled back to stateless mode.
    let undos: Vec<_> = report
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Undo)
        .collect();
    assert!(
        undos
            .iter()
            .any(|u| u.description.contains("LAB_STATELESS_TOKENS=true")
                && u.outcome.as_deref() == Some("ok"))
    );
    drill.assert_no_survivors();
}

/// Waits for `needle` on the child's stderr (its progress log), bounded.
fn wait_for_stderr(child: &mut Child, needle: &str, timeout: Duration) -> String {
    use std::io::Read;
    let mut stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        // Keep draining after the waiter is gone, so drillbook never writes into a closed pipe.
        while let Ok(n) = stderr.read(&mut buffer) {
            if n == 0 {
                return;
            }
            let _ = tx.send(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
    });
    let deadline = Instant::now() + timeout;
    let mut seen = String::new();
    while Instant::now() < deadline {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push_str(&chunk);
            if seen.contains(needle) {
                return seen;
            }
        }
    }
    panic!("`{needle}` did not appear within {timeout:?}:\n{seen}");
}

fn interrupt_mid_drill(signal: nix::sys::signal::Signal) {
    let drill = Drill::new();
    let mut child = drill.command("midflight-rollback.yaml").spawn();
    // Interrupt once the rollback has been applied, so there is something to undo.
    wait_for_stderr(&mut child, "new-jobs", Duration::from_secs(60));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, signal).expect("signal drillbook");
    let status = wait_bounded(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(130), "interrupted runs exit 130");
    let report = drill.report();
    assert_eq!(report.verdict, Verdict::Interrupted);
    let undos: Vec<_> = report
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Undo)
        .collect();
    assert_eq!(
        undos.len(),
        3,
        "start_process and both env flips are undone: {undos:#?}"
    );
    assert!(
        undos.iter().all(|u| u.outcome.as_deref() == Some("ok")),
        "{undos:#?}"
    );
    let runbook = drill.runbook();
    let row = runbook
        .lines()
        .find(|l| l.contains(&report.run_id))
        .expect("a drill-log row for the interrupted run");
    assert!(row.contains("interrupted"), "{row}");
    drill.assert_no_survivors();
}

fn wait_bounded(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("drillbook did not exit within {timeout:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigint_mid_drill_undoes_the_rollback_and_reports_interrupted() {
    interrupt_mid_drill(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn sigterm_mid_drill_undoes_the_rollback_and_reports_interrupted() {
    interrupt_mid_drill(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn sigint_while_the_target_starts_still_reports_and_logs_interrupted() {
    let drill = Drill::new();
    let mut child = drill.command("proxy-restart.yaml").spawn();
    // The lab's processes take ~0.1-0.2 s to become ready: land the signal in that window.
    std::thread::sleep(Duration::from_millis(60));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let status = wait_bounded(&mut child, Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(130),
        "exit by code, not killed by the signal: {status:?}"
    );
    let report = drill.report();
    assert_eq!(report.verdict, Verdict::Interrupted);
    assert!(
        report.events.iter().all(|e| e.kind != EventKind::Fault),
        "no fault was injected"
    );
    assert!(
        drill
            .runbook()
            .lines()
            .any(|l| l.contains(&report.run_id) && l.contains("interrupted"))
    );
    drill.assert_no_survivors();
}

fn run_variant(drill: &Drill, name: &str, replace: &[(&str, &str)]) -> Output {
    drill.run_variant("proxy-restart.yaml", name, replace)
}

/// The drill stopped before its first fault: exit 4, the report says why, the kill never ran.
fn assert_aborted_before_the_fault(drill: &Drill, output: &Output, why: &str) -> Report {
    assert_eq!(output.status.code(), Some(4), "{}", stderr(output));
    let report = drill.report();
    assert_eq!(report.verdict, Verdict::Aborted);
    assert!(
        report.verdict_reason.contains(why),
        "the report says why: {}",
        report.verdict_reason
    );
    assert!(
        !report.events.iter().any(|e| e.kind == EventKind::Fault),
        "no fault was injected: {:?}",
        report.events
    );
    drill.assert_no_survivors();
    report
}

#[test]
fn a_load_that_cannot_start_aborts_before_the_first_fault() {
    let drill = Drill::new();
    // Port 1 on loopback: the token endpoint refuses, so no caller ever gets a token.
    let output = run_variant(
        &drill,
        "no-token.yaml",
        &[(
            "token_url: http://127.0.0.1:${port.jobs}/token",
            "token_url: http://127.0.0.1:1/token",
        )],
    );
    assert_aborted_before_the_fault(&drill, &output, "the load stopped");
}

#[test]
fn a_baseline_of_errors_aborts_before_the_first_fault() {
    let drill = Drill::new();
    // Port 1 on loopback: every request of the baseline is refused, so there is no steady
    // state to break; the kill must not run.
    let output = run_variant(
        &drill,
        "closed-port.yaml",
        &[(
            "url: http://127.0.0.1:${port.proxy}/v1/train",
            "url: http://127.0.0.1:1/v1/train",
        )],
    );
    let report = assert_aborted_before_the_fault(&drill, &output, "steady state");
    assert!(
        report.verdict_reason.contains("connect_refused"),
        "{}",
        report.verdict_reason
    );
}

/// A drill that passes in a few seconds: one proxy, two seconds of load on its health check.
const QUICK_PASS: &str = r#"apiVersion: drillbook/v1
name: lab-quick-pass
target:
  local:
    processes:
      - name: requests-proxy
        command: ["${drillbook}", "lab", "proxy", "--listen", "127.0.0.1:${port.proxy}"]
        env: {LAB_STATELESS_TOKENS: "true"}
        ready: http://127.0.0.1:${port.proxy}/healthz
load:
  url: http://127.0.0.1:${port.proxy}/healthz
  rate: 20/s
  duration: 2s
steps:
  - wait: 1s
checks:
  - name: healthy
    phase: all
    http: "rate(5xx) == 0"
"#;

#[test]
fn a_report_folder_that_cannot_be_written_is_not_a_pass() {
    let drill = Drill::new();
    let scenario = drill.path().join("quick-pass.yaml");
    std::fs::write(&scenario, QUICK_PASS).expect("write the scenario");
    // A regular file where the report folder should be: every report path is under a file.
    std::fs::write(drill.path().join("reports"), "not a folder").expect("write a file");
    let output = drill.command_at(&scenario).output();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(6), "{err}");
    assert!(
        err.contains("Not a directory"),
        "the OS cause is named: {err}"
    );
    let stdout = output.stdout_str();
    assert!(stdout.contains("reports: none written"), "{stdout}");
    // The row is still appended, but it links to no report that does not exist.
    let runbook = drill.runbook();
    let row = runbook
        .lines()
        .find(|l| l.contains("lab-quick-pass"))
        .unwrap_or_else(|| panic!("a drill-log row: {runbook}"));
    assert!(
        !row.contains("report.md"),
        "no link to a missing report: {row}"
    );
    assert!(row.contains("report not written"), "{row}");
    drill.assert_no_survivors();
}

#[test]
fn a_drill_log_that_cannot_be_appended_is_an_error_with_its_cause() {
    let drill = Drill::new();
    // `--drill-log RUNBOOK.md` names a directory: the append must fail, loudly.
    let runbook = drill.path().join("RUNBOOK.md");
    std::fs::remove_file(&runbook).expect("remove runbook");
    std::fs::create_dir(&runbook).expect("runbook as a directory");
    let (output, report) = drill.run("proxy-restart.yaml");
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.verdict_reason);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(6), "{err}");
    assert!(
        err.contains("error: could not append to the drill log"),
        "{err}"
    );
    assert!(
        err.contains("Is a directory"),
        "the OS cause is shown: {err}"
    );
    drill.assert_no_survivors();
}
