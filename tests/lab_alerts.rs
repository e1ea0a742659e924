//! Monitoring under test (issue #25), with real parts: Debian's Prometheus scrapes the lab
//! proxy and evaluates alerting rules every second, sending to Debian's Alertmanager; a drill
//! kills the proxy and its `alerts` check expects `LabProxyDown` to fire, resolve and reach
//! Alertmanager, under a silence that hides the rest of the drill's alerts.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::alertmanager::Alertmanager;
use common::cli::Ran;
use common::prometheus::Prometheus;
use drillbook::report::model::{CheckVerdict, Report, Verdict};

/// `LabProxyDown` fires 1 s after the proxy stops answering its scrapes, `LabProxyDownSlow`
/// only after 5 s. Both carry the drill's `job` label: a silence on it must hide the slow one
/// and keep the one the drill expects audible.
const RULES: &str = r#"groups:
  - name: lab
    rules:
      - alert: LabProxyDown
        expr: up{job="drill"} == 0
        for: 1s
      - alert: LabProxyDownSlow
        expr: up{job="drill"} == 0
        for: 5s
"#;

struct Lab {
    proxy: u16,
    prometheus: Prometheus,
    alertmanager: Alertmanager,
    dir: tempfile::TempDir,
}

fn lab() -> Option<Lab> {
    let alertmanager = Alertmanager::start()?;
    let proxy = common::base::free_port();
    let prometheus = Prometheus::start_alerting(
        &[format!("127.0.0.1:{proxy}")],
        Some(RULES),
        Some(&alertmanager.addr.to_string()),
    )?;
    Some(Lab {
        proxy,
        prometheus,
        alertmanager,
        dir: tempfile::tempdir().expect("tempdir"),
    })
}

impl Lab {
    /// The proxy is SIGKILLed at 3 s and restarted 9 s later; `silence` and `checks` are
    /// appended as given.
    fn scenario(&self, load_s: u32, silence: &str, checks: &str) -> PathBuf {
        let text = format!(
            r#"apiVersion: drillbook/v1
name: lab-alerts
target:
  local:
    processes:
      - name: requests-proxy
        command: ["${{drillbook}}", "lab", "proxy", "--listen", "127.0.0.1:{proxy}"]
        ready: http://127.0.0.1:{proxy}/healthz
        restart_delay: 9s
load:
  url: http://127.0.0.1:{proxy}/healthz
  rate: 20/s
  duration: {load_s}s
  connections: 2
  timeout: 1s
steps:
  - at: 3s
    name: kill-proxy
    kill_process: {{name: requests-proxy, signal: SIGKILL}}
  - name: proxy-back
    wait_ready: {{name: requests-proxy, timeout: 30s}}
{silence}checks:
{checks}"#,
            proxy = self.proxy
        );
        let file = self.dir.path().join("drill.yaml");
        std::fs::write(&file, text).expect("write scenario");
        file
    }

    fn silence(&self, extra: &str) -> String {
        format!(
            "silence:\n  alertmanager: {}\n  matchers: ['job=\"drill\"']\n  comment: lab alerts test\n  margin: 2m\n{extra}",
            self.alertmanager.url
        )
    }

    fn fire_check(&self, alert: &str, within: &str) -> String {
        format!(
            "  - name: proxy-down-pages\n    alerts:\n      url: {}\n      fire: [{alert}]\n      within: {within}\n      after: kill-proxy\n      resolve_within: 10s\n      alertmanager: {}\n",
            self.prometheus.url, self.alertmanager.url
        )
    }

    fn command(&self, scenario: &Path) -> common::cli::Drillbook {
        let mut command = common::cli::drillbook();
        command
            .args(["-q", "run"])
            .arg(scenario)
            .arg("--report-dir")
            .arg(self.dir.path().join("reports"))
            .arg("--no-drill-log");
        command
    }

    fn spawn(&self, scenario: &Path) -> Child {
        self.command(scenario).spawn()
    }

    fn report(&self) -> Report {
        let run = std::fs::read_dir(self.dir.path().join("reports"))
            .expect("a report directory")
            .filter_map(Result::ok)
            // Beside the run folders lies the history index.
            .find(|entry| entry.path().is_dir())
            .expect("a run's report")
            .path();
        drillbook::report::load(&run.join("report.json")).expect("report")
    }
}

/// What the test saw at Alertmanager while the drill ran.
#[derive(Debug, Default)]
struct Seen {
    silence_states: Vec<String>,
    other_suppressed: bool,
    expected_active_unsilenced: bool,
}

/// Polls Alertmanager every 250 ms until the drill exits (bounded); returns its exit code.
fn watch_until_exit(lab: &Lab, child: &mut Child, limit: Duration, seen: &mut Seen) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the drill did not end within {limit:?}");
        }
        seen.silence_states
            .extend(lab.alertmanager.silence_states("drill `lab-alerts`"));
        for alert in lab.alertmanager.alerts() {
            let name = alert["labels"]["alertname"].as_str().unwrap_or("");
            let state = alert["status"]["state"].as_str().unwrap_or("");
            let silenced = alert["status"]["silencedBy"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            if name == "LabProxyDownSlow" && state == "suppressed" && silenced {
                seen.other_suppressed = true;
            }
            if name == "LabProxyDown" && state == "active" && !silenced {
                seen.expected_active_unsilenced = true;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn fire_check_of(report: &Report) -> &drillbook::report::model::CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.name == "proxy-down-pages")
        .expect("the alerts check ran")
}

#[test]
fn the_expected_alert_fires_resolves_and_reaches_alertmanager_under_a_silence_that_hides_the_rest()
{
    let Some(lab) = lab() else { return };
    assert!(
        lab.alertmanager
            .silence_states("drill `lab-alerts`")
            .is_empty(),
        "no silence before the drill"
    );
    let scenario = lab.scenario(26, &lab.silence(""), &lab.fire_check("LabProxyDown", "10s"));
    let mut child = lab.spawn(&scenario);
    let mut seen = Seen::default();
    let code = watch_until_exit(&lab, &mut child, Duration::from_secs(120), &mut seen);
    let report = lab.report();
    let check = fire_check_of(&report);
    eprintln!("measured: {:?} — {}", check.alerts, check.detail);
    assert_eq!(check.verdict, CheckVerdict::Pass, "{}", check.detail);
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.verdict_reason);
    assert_eq!(code, Some(0));
    let timing = &check.alerts[0];
    let detect = timing.detect_s.expect("a time to detect");
    let resolve = timing.resolve_s.expect("a time to resolve");
    assert!(detect > 0.0 && detect <= 10.0, "{timing:?}");
    assert!(resolve <= 10.0, "{timing:?}");
    assert_eq!(timing.reached_alertmanager, Some(true));
    assert_eq!(timing.receivers, vec!["on-call".to_string()]);
    // The silence: active during the drill, hiding the noise but not the expected alert.
    assert!(
        seen.silence_states.iter().any(|s| s == "active"),
        "{seen:?}"
    );
    assert!(
        seen.other_suppressed,
        "the silence hid the drill's other alert: {seen:?}"
    );
    assert!(
        seen.expected_active_unsilenced,
        "the expected alert stayed audible: {seen:?}"
    );
    let silence = report
        .silence
        .as_ref()
        .expect("the report names the silence");
    assert!(
        silence.silenced.contains(&"job=\"drill\"".to_string()),
        "{silence:?}"
    );
    assert!(
        silence
            .silenced
            .contains(&"alertname!~\"LabProxyDown\"".to_string()),
        "{silence:?}"
    );
    assert_eq!(silence.kept_audible, vec!["LabProxyDown".to_string()]);
    // After: removed by the undo (expired), not left to its margin.
    assert_eq!(
        lab.alertmanager.silence_states("drill `lab-alerts`"),
        vec!["expired".to_string()]
    );
}

#[test]
fn an_alert_whose_for_is_too_long_fails_with_its_measured_time_to_detect() {
    let Some(lab) = lab() else { return };
    let scenario = lab.scenario(24, "", &lab.fire_check("LabProxyDownSlow", "2s"));
    let mut child = lab.spawn(&scenario);
    let code = watch_until_exit(
        &lab,
        &mut child,
        Duration::from_secs(120),
        &mut Seen::default(),
    );
    let report = lab.report();
    let check = fire_check_of(&report);
    eprintln!("measured: {:?} — {}", check.alerts, check.detail);
    assert_eq!(check.verdict, CheckVerdict::Fail, "{}", check.detail);
    assert_eq!(code, Some(1));
    let detect = check.alerts[0].detect_s.expect("it fired, late");
    assert!(detect > 2.0, "later than the 2 s allowed: {detect}");
    assert!(
        check.detail.contains("LabProxyDownSlow fired"),
        "{}",
        check.detail
    );
}

#[test]
fn sigint_mid_drill_removes_the_silence() {
    let Some(lab) = lab() else { return };
    let scenario = lab.scenario(40, &lab.silence(""), &lab.fire_check("LabProxyDown", "10s"));
    let mut child = lab.spawn(&scenario);
    common::base::block_until("the silence is active", Duration::from_secs(30), || {
        lab.alertmanager
            .silence_states("drill `lab-alerts`")
            .contains(&"active".to_string())
    });
    std::thread::sleep(Duration::from_secs(4));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let code = watch_until_exit(
        &lab,
        &mut child,
        Duration::from_secs(60),
        &mut Seen::default(),
    );
    assert_eq!(code, Some(130));
    assert_eq!(lab.report().verdict, Verdict::Interrupted);
    assert_eq!(
        lab.alertmanager.silence_states("drill `lab-alerts`"),
        vec!["expired".to_string()],
        "the interrupt's unwind removed the silence"
    );
}

#[test]
fn a_refused_silence_refuses_the_drill_unless_it_is_not_required() {
    let Some(lab) = lab() else { return };
    // Alertmanager refuses a silence whose every matcher matches the empty label.
    let refused = format!(
        "silence:\n  alertmanager: {}\n  matchers: ['job=~\".*\"']\n",
        lab.alertmanager.url
    );
    let checks = "  - name: answers\n    http: \"rate(5xx) < 100%\"\n";
    let scenario = lab.scenario(6, &refused, checks);
    let ran = lab.command(&scenario).output();
    ran.assert_code(5);
    assert!(
        ran.stderr_str().contains("the silence was not created")
            && ran.stderr_str().contains("answered HTTP 400"),
        "{}",
        ran.stderr_str()
    );
    assert!(
        !lab.dir.path().join("reports").exists(),
        "nothing ran, no report"
    );
    assert!(lab.alertmanager.silence_states("lab-alerts").is_empty());

    let optional = format!("{refused}  required: false\n");
    let scenario = lab.scenario(6, &optional, checks);
    let ran = lab.command(&scenario).output();
    assert!(
        matches!(ran.status.code(), Some(0 | 1)),
        "ran unsilenced: {}",
        ran.stderr_str()
    );
    let report = lab.report();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("running without the silence")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn validate_warns_about_an_alert_no_rule_defines() {
    let Some(lab) = lab() else { return };
    let scenario = lab.scenario(6, "", &lab.fire_check("LabProxyDwn", "10s"));
    let ran = common::cli::drillbook()
        .arg("validate")
        .arg(&scenario)
        .output();
    ran.assert_code(0);
    let stderr = ran.stderr_str();
    assert!(
        stderr.contains("no alerting rule `LabProxyDwn`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `LabProxyDown`"), "{stderr}");
    let known = lab.scenario(6, "", &lab.fire_check("LabProxyDown", "10s"));
    let ran = common::cli::drillbook()
        .arg("validate")
        .arg(&known)
        .output();
    ran.assert_code(0);
    assert!(
        !ran.stderr_str().contains("no alerting rule"),
        "{}",
        ran.stderr_str()
    );
}

#[test]
fn plan_shows_the_silence_as_sent_and_its_expiry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("drill.yaml");
    let text = r#"apiVersion: drillbook/v1
name: planned-silence
target:
  local:
    processes:
      - name: requests-proxy
        command: ["${drillbook}", "lab", "proxy", "--listen", "127.0.0.1:${port.proxy}"]
        ready: http://127.0.0.1:${port.proxy}/healthz
load:
  url: http://127.0.0.1:${port.proxy}/healthz
  rate: 10/s
  duration: 30s
silence:
  alertmanager: http://127.0.0.1:9093
  matchers: ['namespace="tracebloc"', 'severity=~"warning|page"']
  margin: 5m
steps:
  - at: 5s
    name: kill-proxy
    kill_process: {name: requests-proxy}
checks:
  - name: pages
    alerts:
      url: http://127.0.0.1:9090
      fire: [LabProxyDown, "LabProxy:Errors"]
      within: 30s
      after: kill-proxy
"#;
    std::fs::write(&file, text).expect("write scenario");
    let ran = common::cli::drillbook()
        .args(["plan", "--offline"])
        .arg(&file)
        .output();
    ran.assert_code(0);
    let out = ran.stdout_str();
    let line = out
        .lines()
        .find(|l| l.starts_with("Silence"))
        .unwrap_or_else(|| panic!("a Silence line: {out}"));
    assert!(
        line.contains(
            r#"namespace="tracebloc", severity=~"warning|page", alertname!~"LabProxy:Errors|LabProxyDown""#
        ),
        "{line}"
    );
    assert!(
        line.contains("kept audible: LabProxy:Errors, LabProxyDown"),
        "{line}"
    );
    assert!(
        line.contains("expires by itself 5m30s after the start"),
        "{line}"
    );
}

#[test]
fn validate_refuses_a_fire_without_within_and_a_silence_without_matchers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("drill.yaml");
    let text = r#"apiVersion: drillbook/v1
name: broken-alerts
target:
  local:
    processes:
      - name: p
        command: ["sleep", "30"]
silence:
  alertmanager: http://127.0.0.1:9093
  matchers: []
checks:
  - name: pages
    alerts:
      url: http://127.0.0.1:9090
      fire: [LabProxyDown]
      after: no-such-step
"#;
    std::fs::write(&file, text).expect("write scenario");
    let ran = common::cli::drillbook().arg("validate").arg(&file).output();
    ran.assert_code(2);
    let stderr = ran.stderr_str();
    assert!(stderr.contains("`fire` needs `within`"), "{stderr}");
    assert!(
        stderr.contains("a silence needs at least one matcher"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`no-such-step` is not a phase boundary"),
        "{stderr}"
    );
}

#[test]
fn a_silence_that_cannot_be_removed_is_named_in_the_exit_message() {
    let Some(mut lab) = lab() else { return };
    let checks = "  - name: answers\n    http: \"rate(5xx) < 100%\"\n";
    let scenario = lab.scenario(12, &lab.silence(""), checks);
    let child = lab
        .command(&scenario)
        .stderr(std::process::Stdio::piped())
        .spawn();
    common::base::block_until("the silence is active", Duration::from_secs(30), || {
        lab.alertmanager
            .silence_states("drill `lab-alerts`")
            .contains(&"active".to_string())
    });
    // Alertmanager goes away mid-drill: the undo cannot reach it.
    lab.alertmanager.stop();
    let output = child.wait_with_output().expect("the drill ends");
    let stderr = output.stderr_str();
    assert!(
        stderr.contains("error: undo of `silence` failed: expire the silence [drillbook run"),
        "{stderr}"
    );
    assert!(stderr.contains("expires by itself at"), "{stderr}");
    let report = lab.report();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("undo of `silence` failed")),
        "{:?}",
        report.warnings
    );
}
