//! Broken scenarios: each must be rejected with its exact location and a helpful message,
//! never a panic or a hang. The rendered diagnostics are snapshot-tested.

use crate::common;
use crate::common::cli::{self, Ran};

use std::path::Path;
use std::process::Command;

use drillbook::scenario;

/// A valid Kubernetes scenario that the cases below break one way at a time.
const BASE: &str = r#"apiVersion: drillbook/v1
name: base
target:
  kubernetes:
    context: staging
    namespace: tracebloc
    allowed_contexts: [staging]
load:
  url: http://127.0.0.1:8080/
  rate: 10/s
  duration: 60s
steps:
  - at: 10s
    name: kill
    kill_pods: {selector: "app=requests-proxy", count: 1}
checks:
  - name: no-401
    phase: fault
    http: "rate(401) == 0"
"#;

fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "case does not apply: {from}");
    BASE.replacen(from, to, 1)
}

/// Validates `source` as `case.yaml` and renders what a user would see.
fn rendered(source: &str) -> String {
    match scenario::load_source(Path::new("case.yaml"), source.to_string()) {
        Ok(_) => panic!("scenario should be invalid:\n{source}"),
        Err(diagnostics) => {
            assert!(diagnostics.has_errors());
            diagnostics.to_string()
        }
    }
}

fn cases() -> Vec<(&'static str, String)> {
    vec![
        ("wrong_type", with("rate: 10/s", "rate: 10/s\n  connections: many")),
        ("unknown_top_level_key", with("steps:", "stpes:")),
        ("misspelled_step_kind", with("kill_pods:", "kil_pods:")),
        ("unknown_field_in_action", with("{selector:", "{slector:")),
        ("bad_duration_unit", with("at: 10s", "at: 10 fortnights")),
        ("duration_without_unit", with("duration: 60s", "duration: 60")),
        ("negative_duration", with("at: 10s", "at: -5s")),
        ("bad_rate", with("rate: 10/s", "rate: 10")),
        ("bad_selector", with("app=requests-proxy", "app in production")),
        ("duplicate_key", with("name: base", "name: base\nname: again")),
        ("step_after_load_ends", with("at: 10s", "at: 90s")),
        ("unknown_phase", with("phase: fault", "phase: falt")),
        ("unknown_step_reference", with(
            "    http: \"rate(401) == 0\"",
            "    http: \"rate(401) == 0\"\n  - name: rolled\n    rolled: {deployment: proxy, after: kil}",
        )),
        ("bad_check_expression", with("rate(401) == 0", "p(99) < 800")),
        ("rate_above_one", with("rate(401) == 0", "rate(401) == 5")),
        ("two_actions_in_one_step", with("    name: kill\n", "    name: kill\n    wait: 5s\n")),
        ("context_not_allowed", with("context: staging", "context: production")),
        ("wrong_api_version", with("drillbook/v1", "drillbook/v2")),
        ("missing_target", BASE.replace(
            "target:\n  kubernetes:\n    context: staging\n    namespace: tracebloc\n    allowed_contexts: [staging]\n",
            "",
        )),
        ("local_action_on_kubernetes", with("kill_pods: {selector: \"app=requests-proxy\", count: 1}", "kill_process: {name: proxy}")),
        ("count_and_percent", with("count: 1}", "count: 1, percent: 50}")),
        ("yaml_syntax_error", with("[staging]", "[staging")),
        ("empty_file", String::new()),
        ("only_comments", "# nothing here\n".to_string()),
        ("not_a_mapping", "- just\n- a list\n".to_string()),
        ("deeply_nested", format!("apiVersion: drillbook/v1\nname: deep\ndescription: {}x{}\n", "[".repeat(200), "]".repeat(200))),
        ("deeply_nested_block", deep_block()),
        ("alias_bomb", alias_bomb()),
        ("connections_zero_points_at_its_line", with("rate: 10/s", "rate: 10/s\n  connections: 0")),
        ("connections_above_the_limit", with("rate: 10/s", "rate: 10/s\n  connections: 10000000")),
        ("callers_above_the_limit", with("duration: 60s", "duration: 60s\n  auth:\n    token_url: http://127.0.0.1:8081/token\n    callers: 100000000")),
        ("callers_zero_points_at_its_line", with("duration: 60s", "duration: 60s\n  auth:\n    token_url: http://127.0.0.1:8081/token\n    callers: 0")),
        ("rate_above_the_limit", with("rate: 10/s", "rate: 5000000/s")),
        ("negative_latency_threshold", with("rate(401) == 0", "p(95) < -5ms")),
        ("negative_count_threshold", with("rate(401) == 0", "count(503) <= -1")),
        ("rate_threshold_beyond_100_percent", with("rate(401) == 0", "rate(5xx) > 500%")),
        ("two_documents", format!("{BASE}---\n{BASE}")),
        ("list_where_a_duration_goes", with("duration: 60s", "duration: [60, s]")),
        ("regression_limits_that_do_not_parse", with(
            "    http: \"rate(401) == 0\"",
            "    http: \"rate(401) == 0\"\n  - name: usual\n    regression:\n      min_runs: 9\n      limits:\n        - {metric: p95, relative: \"50\"}\n        - {metric: \"rate(401)\", absolute: \"+1s\"}\n        - {metric: p95, phase: faults, relative: \"+5%\"}",
        )),
        ("regression_metric_misspelled", with(
            "    http: \"rate(401) == 0\"",
            "    http: \"rate(401) == 0\"\n  - name: usual\n    regression:\n      limits: [{metric: p59, relative: \"+50%\"}]",
        )),
        ("phase_that_ends_before_it_starts", with("checks:", "phases:\n  - {name: fault, from: 20s, to: 10s}\nchecks:")),
    ]
}

/// A local scenario whose load URL is `url`, for the port checks.
fn local_with_load(url: &str) -> String {
    format!(
        "apiVersion: drillbook/v1\nname: ports\ntarget:\n  local:\n    processes:\n      \
         - name: proxy\n        command: [\"${{drillbook}}\", \"lab\", \"proxy\", \"--listen\", \
         \"127.0.0.1:${{port.proxy}}\"]\nload:\n  url: {url}\n  rate: 10/s\n  duration: 30s\n"
    )
}

#[test]
fn a_port_no_process_gets_is_refused_with_the_names_that_exist() {
    let output = rendered(&local_with_load("http://127.0.0.1:${port.proxi}/"));
    assert!(
        output.contains("`${port.proxi}` is given to no process, so nothing listens on it (did you mean `${port.proxy}`?)"),
        "{output}"
    );
    assert!(
        scenario::load_source(
            Path::new("case.yaml"),
            local_with_load("http://127.0.0.1:${port.proxy}/")
        )
        .is_ok()
    );
}

#[test]
fn a_phase_after_the_load_is_a_warning() {
    let source = with(
        "checks:",
        "phases:\n  - {name: fault, from: 70s, to: 80s}\nchecks:",
    );
    let loaded =
        scenario::load_source(Path::new("case.yaml"), source).expect("valid, with a warning");
    let warnings: Vec<&str> = loaded.warnings.iter().map(|w| w.message.as_str()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("phase `fault` starts at 1m10s but the load ends at 1m")),
        "{warnings:?}"
    );
}

#[test]
fn allow_large_lifts_the_sanity_limits_deliberately() {
    let large = with("rate: 10/s", "rate: 5000000/s\n  connections: 20000")
        .replace("name: base\n", "name: base\nallow_large: true\n");
    let loaded = scenario::load_source(Path::new("case.yaml"), large);
    assert!(
        loaded.is_ok(),
        "{}",
        loaded.err().map(|d| d.to_string()).unwrap_or_default()
    );
}

#[test]
fn too_many_replicas_of_a_local_process_are_refused_at_their_line() {
    let source = "apiVersion: drillbook/v1\nname: many\ntarget:\n  local:\n    processes:\n      - name: svc\n        command: [\"true\"]\n        replicas: 10000000\n";
    let output = rendered(source);
    assert!(
        output.starts_with(
            "case.yaml:8:19: error: replicas 10000000 is above drillbook's limit of 64"
        ),
        "{output}"
    );
}

/// 100 levels of block mappings (not flow), deeper than any scenario.
fn deep_block() -> String {
    let mut s = String::from("apiVersion: drillbook/v1\nname: deep\n");
    for depth in 0..100 {
        s.push_str(&format!("{}k{depth}:\n", "  ".repeat(depth)));
    }
    s
}

/// The "billion laughs": each level references the previous one ten times.
fn alias_bomb() -> String {
    let mut s = String::from(
        "apiVersion: drillbook/v1\nname: bomb\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        s.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    s.push_str("description: *a9\n");
    s
}

#[test]
fn every_broken_scenario_is_located_and_explained() {
    for (name, source) in cases() {
        let output = rendered(&source);
        // Every error line names file:line:column, except whole-file problems.
        let first = output.lines().next().unwrap_or_default();
        if !matches!(name, "empty_file" | "only_comments") {
            assert!(
                first.starts_with("case.yaml:")
                    && first
                        .split(':')
                        .nth(1)
                        .is_some_and(|l| l.parse::<u32>().is_ok()),
                "{name}: {first}"
            );
        }
        common::snapshot::assert_snapshot!(name, output);
    }
}

#[test]
fn the_base_scenario_is_valid() {
    let loaded = scenario::load_source(Path::new("case.yaml"), BASE.to_string());
    assert!(
        loaded.is_ok(),
        "{}",
        loaded.err().map(|d| d.to_string()).unwrap_or_default()
    );
}

#[test]
fn oversized_binary_and_unreadable_files_are_refused_without_reading_them_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.yaml");
    // 50 MB of valid-looking YAML: refused by size before parsing.
    let line = "# padding padding padding padding padding padding padding padding padding\n";
    let file = std::fs::File::create(&big).expect("create");
    file.set_len(50 * 1024 * 1024).expect("size");
    std::fs::write(dir.path().join("prefix.yaml"), line).expect("write");
    let err = scenario::load(&big)
        .expect_err("50 MB must be refused")
        .to_string();
    assert!(err.contains("larger than 1024 KiB"), "{err}");

    let binary = dir.path().join("garbage.yaml");
    std::fs::write(&binary, [0x7f, b'E', b'L', b'F', 0, 1, 2, 0xff, 0xfe]).expect("write");
    let err = scenario::load(&binary)
        .expect_err("binary must be refused")
        .to_string();
    assert!(err.contains("binary file"), "{err}");

    let latin1 = dir.path().join("latin1.yaml");
    std::fs::write(&latin1, b"name: caf\xe9\n").expect("write");
    let err = scenario::load(&latin1)
        .expect_err("non-UTF-8 must be refused")
        .to_string();
    assert!(err.contains("not UTF-8"), "{err}");

    let missing = dir.path().join("missing.yaml");
    let err = scenario::load(&missing).expect_err("missing").to_string();
    assert!(err.contains("cannot open"), "{err}");
}

#[test]
fn the_cli_exits_2_with_file_line_column_for_each_broken_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, source) in cases() {
        std::fs::write(dir.path().join(format!("{name}.yaml")), source).expect("write");
    }
    for (name, _) in cases() {
        let path = dir.path().join(format!("{name}.yaml"));
        let out = cli::drillbook().arg("validate").arg(&path).output();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = out.stderr_str();
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        if !matches!(name, "empty_file" | "only_comments") {
            let prefix = format!("{}:", path.display());
            let located = stderr.lines().any(|l| {
                l.strip_prefix(&prefix).is_some_and(|rest| {
                    rest.split(':')
                        .next()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
            });
            assert!(located, "{name}: no file:line:column in\n{stderr}");
        }
    }
}

/// Runs `drillbook <verb> <path>` and kills it if it has not finished within 10 s.
fn run_bounded(verb: &str, path: &Path) -> std::process::Output {
    let mut child = cli::drillbook()
        .arg(verb)
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().expect("kill");
            panic!("drillbook {verb} {} hung", path.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn fifos_and_directories_are_refused_without_hanging() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("pipe.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    for verb in ["validate", "plan"] {
        let out = run_bounded(verb, &fifo);
        assert_eq!(out.status.code(), Some(2), "{verb}");
        let stderr = out.stderr_str();
        assert!(stderr.contains("named pipe (FIFO)"), "{verb}: {stderr}");
    }
    let err = scenario::load(dir.path())
        .expect_err("directory")
        .to_string();
    assert!(err.contains("directory, not a regular file"), "{err}");
}

#[test]
fn utf16_is_reported_as_utf16_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bom) in [("bom.yaml", true), ("nobom.yaml", false)] {
        let mut bytes: Vec<u8> = if bom { vec![0xff, 0xfe] } else { vec![] };
        bytes.extend(BASE.encode_utf16().flat_map(u16::to_le_bytes));
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        let err = scenario::load(&path).expect_err("utf-16").to_string();
        assert!(
            err.contains("UTF-16") && err.contains("UTF-8"),
            "{name}: {err}"
        );
        assert!(!err.contains("binary"), "{name}: {err}");
    }
}
