//! What a person sees from a drill when stderr is not a terminal (`2>file`, CI): structured
//! lines without ANSI escapes, and no Rust debug formatting (`Some(0)`, `None`) anywhere.

use crate::common::cli::{self, Ran};
use std::process::{Output, Stdio};

/// A drill of a few seconds with a job that exits (code 0) and a process killed by signal:
/// both used to be logged as `code=Some(0) signal=None`.
const QUICK: &str = r#"apiVersion: drillbook/v1
name: cli-output
target:
  local:
    processes:
      - name: requests-proxy
        command: ["${drillbook}", "lab", "proxy", "--listen", "127.0.0.1:${port.proxy}"]
        env: {LAB_STATELESS_TOKENS: "true"}
        ready: http://127.0.0.1:${port.proxy}/healthz
      - name: trainer
        kind: job
        command: ["true"]
load:
  url: http://127.0.0.1:${port.proxy}/healthz
  rate: 20/s
  duration: 3s
steps:
  - at: 1s
    kill_process: {name: requests-proxy, signal: SIGKILL}
checks:
  - name: answered
    phase: all
    http: "rate(5xx) < 100%"
"#;

/// Runs the drill with stderr redirected to a file, as `2>file` does.
fn run_to_file(no_color: Option<&str>) -> (Output, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("quick.yaml");
    std::fs::write(&scenario, QUICK).expect("write the scenario");
    let err_path = dir.path().join("stderr.txt");
    let err_file = std::fs::File::create(&err_path).expect("stderr file");
    let mut command = cli::drillbook();
    command
        .arg("run")
        .arg(&scenario)
        .arg("--report-dir")
        .arg(dir.path().join("reports"))
        .arg("--no-drill-log")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err_file);
    if let Some(value) = no_color {
        command.env("NO_COLOR", value);
    }
    let output = command.output();
    let err = std::fs::read_to_string(&err_path).expect("read stderr");
    (output, err)
}

fn assert_plain(err: &str) {
    assert!(!err.contains('\x1b'), "no ANSI escapes in a file: {err:?}");
    for internal in ["Some(", "None", "Killed {"] {
        assert!(
            !err.contains(internal),
            "no debug formatting ({internal}): {err}"
        );
    }
}

#[test]
fn a_drill_logged_to_a_file_has_no_escapes_and_no_debug_formatting() {
    let (output, err) = run_to_file(None);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert_plain(&err);
    assert!(
        err.contains("exit=code 0"),
        "the job's exit in words: {err}"
    );
    assert!(err.contains("exit=signal SIGKILL"), "{err}");
    let stdout = output.stdout_str();
    assert!(!stdout.contains('\x1b'), "stdout is a pipe: {stdout:?}");
}

#[test]
fn no_color_set_means_no_escapes() {
    let (output, err) = run_to_file(Some("1"));
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert_plain(&err);
}

/// `plan` says where the drill-log row will go: the runbook, its heading and table columns.
#[test]
fn plan_names_the_drill_log_file_and_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("quick.yaml");
    std::fs::write(&scenario, format!("{QUICK}runbook: RUNBOOK.md\n")).expect("scenario");
    std::fs::write(
        dir.path().join("RUNBOOK.md"),
        "# Runbook\n\n## Drill log\n\n| Date | Drill | Result |\n|---|---|---|\n",
    )
    .expect("runbook");
    let output = cli::drillbook()
        .args(["plan", "--offline"])
        .arg(&scenario)
        .output();
    let stdout = output.stdout_str();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "RUNBOOK.md — the table under `## Drill log` (line 5), columns: Date, Drill, Result"
        ),
        "{stdout}"
    );
}

/// `--junit FILE` and `--json FILE` put CI artefacts at fixed paths, besides the run's folder;
/// JUnit testcases carry their time.
#[test]
fn run_writes_junit_and_json_at_fixed_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("quick.yaml");
    std::fs::write(&scenario, QUICK).expect("write the scenario");
    let (junit, json) = (
        dir.path().join("ci/junit.xml"),
        dir.path().join("ci/report.json"),
    );
    let output = cli::drillbook()
        .arg("run")
        .arg(&scenario)
        .arg("--report-dir")
        .arg(dir.path().join("reports"))
        .arg("--no-drill-log")
        .arg("--junit")
        .arg(&junit)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .output();
    let err = output.stderr_str();
    assert_eq!(output.status.code(), Some(0), "{err}");
    let junit = std::fs::read_to_string(&junit).expect("junit at its fixed path");
    assert!(
        junit.contains("<testcase name=\"answered\"") && junit.contains("time=\""),
        "{junit}"
    );
    let report = drillbook::report::load(&json).expect("report.json at its fixed path");
    assert_eq!(report.scenario.name, "cli-output");
}

/// Terminal escapes written into a scenario's text (a description that clears the screen, a
/// check name that retitles the window) reach no output raw: `plan`, `validate` and the report
/// `run` prints show them as visible escapes; report.json keeps the text as written.
#[test]
fn escapes_in_scenario_text_are_shown_not_obeyed() {
    let hostile = QUICK
        .replace(
            "name: cli-output\n",
            "name: cli-output\ndescription: \"clear\\e[2J\\e]0;owned\\athere\"\n",
        )
        .replace("  - name: answered", "  - name: \"answered\\e[1A\"");
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("hostile.yaml");
    std::fs::write(&scenario, hostile).expect("write the scenario");
    let reports = dir.path().join("reports");
    let run_args = [
        "run".as_ref(),
        scenario.as_os_str(),
        "--report-dir".as_ref(),
        reports.as_os_str(),
        "--no-drill-log".as_ref(),
    ];
    let plan_args = ["plan".as_ref(), "--offline".as_ref(), scenario.as_os_str()];
    let validate_args = ["validate".as_ref(), scenario.as_os_str()];
    // What each prints of the hostile text, escaped.
    let cases: [(&[&std::ffi::OsStr], &str); 3] = [
        (&plan_args, "clear\\x1b[2J\\x1b]0;owned\\x07there"),
        (&validate_args, "ok "),
        (&run_args, "answered\\x1b[1A"),
    ];
    for (args, shown) in cases {
        let output = cli::drillbook().args(args).stdin(Stdio::null()).output();
        let (stdout, stderr) = (output.stdout_str(), output.stderr_str());
        assert!(
            !stdout.contains('\x1b') && !stdout.contains('\x07') && !stderr.contains('\x1b'),
            "{args:?} printed a raw escape:\n{stdout:?}\n{stderr:?}"
        );
        assert!(stdout.contains(shown), "{args:?} shows {shown}: {stdout}");
    }
    let report = std::fs::read_dir(dir.path().join("reports"))
        .expect("reports")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("report.json"))
        .find(|path| path.exists())
        .expect("report.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).expect("read")).expect("json");
    assert_eq!(
        json["scenario"]["description"], "clear\x1b[2J\x1b]0;owned\x07there",
        "report.json keeps the raw text"
    );
}

/// `-n/--namespace` and `--kubeconfig` are accepted by `run` and `plan` like by `collect`; `-n`
/// cannot move a drill out of the namespaces its scenario allows (refused, exit 5, before any
/// kubeconfig is read or cluster contacted).
#[test]
fn namespace_flag_cannot_leave_the_scenarios_pin() {
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/box/proxy-restart.yaml"
    );
    let output = cli::drillbook()
        .args([
            "run",
            scenario,
            "-n",
            "kube-system",
            "--kubeconfig",
            "/nonexistent",
        ])
        .stdin(Stdio::null())
        .output();
    let stderr = output.stderr_str();
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("namespace `kube-system` is not in allowed_namespaces (tracebloc)"),
        "{stderr}"
    );
    let plan = cli::drillbook()
        .args(["plan", "--offline", scenario, "--namespace", "tracebloc"])
        .output();
    assert_eq!(plan.status.code(), Some(0), "{}", plan.stderr_str());
}

/// `schedule` refuses a cron expression Kubernetes would refuse, offline, and names the next
/// runs of a valid one.
#[test]
fn schedule_checks_the_cron_expression_offline_and_prints_the_next_runs() {
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/box/proxy-restart.yaml"
    );
    let schedule = |cron: &str| {
        cli::drillbook()
            .args([
                "schedule",
                scenario,
                "--image",
                "box.local/drillbook:dev",
                "--schedule",
                cron,
            ])
            .output()
    };
    let bad = schedule("0 3 * * mondays");
    let stderr = bad.stderr_str();
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`mondays` is not a day of week value"),
        "{stderr}"
    );
    assert!(bad.stdout.is_empty(), "nothing rendered");
    let good = schedule("0 3 * * 1");
    let stderr = good.stderr_str();
    assert_eq!(good.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.matches("Mon 20").count(),
        3,
        "three Mondays: {stderr}"
    );
    assert!(good.stdout_str().contains("schedule: 0 3 * * 1"));
}

/// `-n` and `--var` given to `schedule` reach the in-cluster run: the objects land in that
/// namespace and the CronJob's `drillbook run` carries both, so the Job runs what was rendered.
/// A namespace outside `allowed_namespaces` is refused offline, as `run` would refuse it.
#[test]
fn schedule_carries_the_namespace_and_vars_into_the_cronjob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("weekly.yaml");
    std::fs::write(
        &scenario,
        "apiVersion: drillbook/v1\nname: weekly\nvars:\n  selector:\n    default: app=api\n\
         target:\n  kubernetes:\n    context: box\n    namespace: shop\n\
         \x20   allowed_contexts: [box]\n    allowed_namespaces: [shop, shop-canary]\n\
         steps:\n  - at: 1s\n    kill_pods: {selector: \"${var.selector}\", count: 1}\n",
    )
    .expect("write scenario");
    let schedule = |namespace: &str| {
        cli::drillbook()
            .arg("schedule")
            .arg(&scenario)
            .args([
                "--image",
                "box.local/drillbook:dev",
                "--schedule",
                "0 3 * * 1",
            ])
            .args(["-n", namespace, "--var", "selector=app=web"])
            .output()
    };
    let out = schedule("shop-canary");
    let stdout = out.stdout_str();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_str());
    // Every object's metadata names the override (the scenario text in the ConfigMap keeps its
    // own `namespace: shop`, deeper indented).
    let named = stdout.matches("\n  namespace: ").count();
    assert!(named >= 5, "the namespaced objects and subjects: {stdout}");
    assert_eq!(
        stdout.matches("\n  namespace: shop-canary\n").count(),
        named,
        "{stdout}"
    );
    let command: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.trim_start().ends_with("command:"))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("- "))
        .map(|l| l.trim_start().trim_start_matches("- ").trim_matches('\''))
        .collect();
    let joined = command.join(" ");
    assert!(joined.contains("--namespace shop-canary"), "{joined}");
    assert!(joined.contains("--var selector=app=web"), "{joined}");

    let refused = schedule("kube-system");
    let stderr = refused.stderr_str();
    assert_eq!(refused.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("kube-system"), "{stderr}");
    assert!(refused.stdout.is_empty(), "nothing rendered");
}

/// `-o` names the file to write on every command that has it; the format is `--format`.
#[test]
fn rbac_writes_the_format_asked_to_the_output_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("role.json");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/box/proxy-restart.yaml"
    );
    let out = cli::drillbook()
        .args(["rbac", scenario, "--format", "json", "-o"])
        .arg(&file)
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_str());
    assert!(out.stdout.is_empty(), "the Role went to the file");
    let role: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("role.json")).expect("json");
    assert_eq!(role["kind"], "Role");
    assert_eq!(role["metadata"]["namespace"], "tracebloc");

    // The old meaning of `--output` (a format) is caught rather than written to a file `json`.
    let old = cli::drillbook()
        .args(["rbac", scenario, "--output", "json"])
        .current_dir(dir.path())
        .output();
    let stderr = old.stderr_str();
    assert_eq!(old.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--format json"), "{stderr}");
    assert!(!dir.path().join("json").exists());
}
