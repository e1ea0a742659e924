//! Drill history end to end through the binary (issue #24): real local drills against loopback
//! servers write real reports; the `regression` check compares a run with the earlier ones;
//! `history` shows the trend and flags exactly the slow run; concurrent runs lose no history;
//! damaged, foreign and newer files are named; results go to Debian's Pushgateway and are
//! read back through a real Prometheus with PromQL.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use crate::common;
use common::browser::{self, Theme};
use common::cli::{self, Ran};
use common::prometheus::{Prometheus, StatusServer, value_of};
use common::pushgateway::Pushgateway;
use drillbook::report::model::{CheckVerdict, Report};

/// A 3-second local drill whose load goes to `${var.url}`; with `regression`, a regression
/// check against the earlier runs (at least 2).
fn scenario(regression: bool) -> String {
    let check = if regression {
        r#"  - name: not-slower
    phase: bake
    regression:
      min_runs: 2
      limits:
        - {metric: p95, relative: "+50%", absolute: "+20ms"}
        - {metric: "rate(5xx)", absolute: "+1pp"}
"#
    } else {
        ""
    };
    format!(
        r#"apiVersion: drillbook/v1
name: history-drill
vars:
  url: {{description: where the load goes}}
target:
  local:
    processes:
      - name: idle
        command: ["sleep", "120"]
load:
  url: ${{var.url}}
  rate: 40/s
  duration: 3s
  connections: 4
phases:
  - {{name: bake, from: start, to: end}}
checks:
  - name: served
    phase: bake
    http: "rate(5xx) == 0"
{check}"#
    )
}

struct Lab {
    dir: tempfile::TempDir,
    scenario: PathBuf,
}

impl Lab {
    fn new(regression: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let scenario = dir.path().join("drill.yaml");
        std::fs::write(&scenario, scenario_text(regression)).expect("write scenario");
        Self { dir, scenario }
    }

    fn reports(&self) -> PathBuf {
        self.dir.path().join("reports")
    }

    fn run(&self, url: &str, extra: &[&str]) -> Output {
        cli::drillbook()
            .args(["-q", "run"])
            .arg(&self.scenario)
            .arg("--report-dir")
            .arg(self.reports())
            .args(["--no-drill-log", "--var", &format!("url={url}")])
            .args(extra)
            .output()
    }

    fn history(&self, args: &[&str]) -> Output {
        cli::drillbook()
            .arg("history")
            .arg("--report-dir")
            .arg(self.reports())
            .args(args)
            .output()
    }

    /// Every report written so far, oldest first.
    fn reports_written(&self) -> Vec<Report> {
        let mut reports: Vec<Report> = std::fs::read_dir(self.reports())
            .expect("reports")
            .filter_map(Result::ok)
            .map(|e| e.path().join("report.json"))
            .filter(|p| p.exists())
            .map(|p| drillbook::report::load(&p).expect("report"))
            .collect();
        reports.sort_by_key(|r| r.started_at);
        reports
    }
}

fn scenario_text(regression: bool) -> String {
    scenario(regression)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

fn check<'a>(report: &'a Report, name: &str) -> &'a drillbook::report::model::CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {:?}", report.checks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slower_run_fails_its_regression_check_and_history_flags_exactly_it() {
    let fast = StatusServer::start(0, Duration::ZERO).await;
    let slow = StatusServer::start(0, Duration::from_millis(60)).await;
    let (fast_url, slow_url) = (
        format!("http://{}/work", fast.addr),
        format!("http://{}/work", slow.addr),
    );
    let lab = std::sync::Arc::new(Lab::new(true));
    let mut codes = Vec::new();
    for url in [&fast_url, &fast_url, &fast_url, &slow_url] {
        let (run_lab, url) = (lab.clone(), url.clone());
        let output = blocking(move || run_lab.run(&url, &[])).await;
        codes.push(output.status.code());
        if codes.len() == 3 {
            // Before the slow run, `plan` names the baseline it would use: the three fast runs.
            let plan = cli::drillbook()
                .args(["plan", "--offline", "--var", &format!("url={fast_url}")])
                .arg(&lab.scenario)
                .arg("--report-dir")
                .arg(lab.reports())
                .output();
            let text = plan.stdout_str();
            assert!(
                text.contains(
                    "regression check `not-slower`: baseline from 3 earlier passing run(s)"
                ),
                "{text}"
            );
        }
    }
    let reports = lab.reports_written();
    assert_eq!(reports.len(), 4);
    // The first two have too few earlier runs: inconclusive, never a pass.
    assert_eq!(codes, [Some(3), Some(3), Some(0), Some(1)], "{reports:#?}");
    let first = check(&reports[0], "not-slower");
    assert_eq!(first.verdict, CheckVerdict::Inconclusive);
    assert!(
        first.detail.contains("too few earlier passing runs"),
        "{}",
        first.detail
    );
    assert_eq!(check(&reports[2], "not-slower").verdict, CheckVerdict::Pass);
    let regressed = check(&reports[3], "not-slower");
    assert_eq!(
        regressed.verdict,
        CheckVerdict::Fail,
        "{}",
        regressed.detail
    );
    assert!(regressed.detail.contains("p95 in bake") && regressed.detail.contains("REGRESSED"));
    for earlier in &reports[..3] {
        assert!(
            regressed.detail.contains(&earlier.run_id),
            "{}",
            regressed.detail
        );
    }
    assert!(
        reports[0]
            .scenario
            .content_hash
            .as_deref()
            .is_some_and(|h| h.starts_with("sha256:"))
    );

    let ids: Vec<&str> = reports.iter().map(|r| r.run_id.as_str()).collect();
    let table = lab.history(&["--min-runs", "2"]);
    table.assert_code(0);
    let text = table.stdout_str();
    assert!(
        text.contains("scenario `history-drill` on local: 4 run(s)"),
        "{text}"
    );
    assert_eq!(text.matches("REGRESSION").count(), 1, "{text}");
    let flagged = text
        .lines()
        .find(|l| l.contains("REGRESSION"))
        .expect("a flagged line");
    assert!(flagged.contains(ids[3]), "{text}");
    for id in &ids {
        assert!(
            text.contains(&format!("{id}/report.md")) || text.contains(id),
            "{text}"
        );
    }

    let gate = lab.history(&["--min-runs", "2", "--fail-on-regression"]);
    gate.assert_code(1);
    assert!(
        gate.stderr_str().contains(&format!("run {}", ids[3])),
        "{}",
        gate.stderr_str()
    );

    let json = lab.history(&["--min-runs", "2", "--format", "json"]);
    json.assert_code(0);
    let view: serde_json::Value = serde_json::from_str(&json.stdout_str()).expect("json");
    let rows = view["scenarios"][0]["rows"].as_array().expect("rows");
    let verdicts: Vec<&str> = rows
        .iter()
        .map(|r| r["regression"]["verdict"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(verdicts, ["inconclusive", "inconclusive", "pass", "fail"]);
    assert_eq!(view["scenarios"][0]["streak"]["verdict"], "fail");
    let chart = PathBuf::from(view["scenarios"][0]["chart"].as_str().expect("chart path"));
    let svg = std::fs::read_to_string(&chart).expect("chart written");
    assert!(svg.starts_with("<svg") && svg.contains(ids[3]), "{svg}");
    assert_eq!(
        svg.matches(r##"stroke="#d62728""##).count(),
        2,
        "one red frame per panel"
    );

    history_page_shows_the_trend_and_links_every_run(&lab, &ids);

    let md = lab.history(&["--min-runs", "2", "--format", "md", "--last", "2"]);
    let md = md.stdout_str();
    assert!(md.contains(&format!("[{}](<", ids[3])), "{md}");
    assert!(
        !md.contains(&format!("[{}](<", ids[1])),
        "--last 2 shows two runs: {md}"
    );
    assert!(md.contains("regressed"), "{md}");

    let elsewhere = lab.history(&["--context", "staging"]);
    assert!(
        elsewhere.stdout_str().contains("no runs"),
        "{}",
        elsewhere.stdout_str()
    );
    let future = lab.history(&["--since", "2999-01-01"]);
    assert!(future.stdout_str().contains("no runs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_lose_no_history_and_bad_files_are_named_and_skipped() {
    let server = StatusServer::start(0, Duration::ZERO).await;
    let url = format!("http://{}/work", server.addr);
    let lab = std::sync::Arc::new(Lab::new(false));
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (lab, url) = (lab.clone(), url.clone());
            tokio::task::spawn_blocking(move || lab.run(&url, &[]))
        })
        .collect();
    for run in runs {
        run.await.expect("run").assert_code(0);
    }
    let index = std::fs::read_to_string(lab.reports().join("history.ndjson")).expect("index");
    let lines: Vec<&str> = index.lines().collect();
    assert_eq!(lines.len(), 5, "a header and four runs:\n{index}");
    for line in &lines[1..] {
        let record: serde_json::Value = serde_json::from_str(line).expect("whole lines");
        assert_eq!(record["scenario"], "history-drill");
    }

    // A damaged, a foreign and a newer report: each named, the rest still read.
    for (name, text) in [
        ("damaged", "{\"schema_version\": 1, \"run_id\": "),
        ("foreign", "{\"hello\": \"world\"}"),
        ("newer", "{\"schema_version\": 99}"),
    ] {
        let dir = lab.reports().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("report.json"), text).expect("write");
    }
    let shown = lab.history(&[]);
    shown.assert_code(0);
    assert!(
        shown.stdout_str().contains("4 run(s) (4 pass)"),
        "{}",
        shown.stdout_str()
    );
    let warnings = shown.stderr_str();
    for (name, why) in [
        ("damaged", "not valid JSON"),
        ("foreign", "not a drillbook report"),
        ("newer", "newer drillbook"),
    ] {
        let line = warnings
            .lines()
            .find(|l| l.contains(&format!("{name}/report.json")))
            .unwrap_or_else(|| panic!("{name} not named: {warnings}"));
        assert!(line.contains(why), "{line}");
    }

    // An index from a newer drillbook: a clear error, nothing rewritten.
    let newer = tempfile::tempdir().expect("tempdir");
    let path = newer.path().join("history.ndjson");
    std::fs::write(&path, "{\"drillbook_history\": 2}\n").expect("write");
    let refused = cli::drillbook()
        .args(["history", "--report-dir"])
        .arg(newer.path())
        .output();
    refused.assert_code(2);
    assert!(
        refused
            .stderr_str()
            .contains("written by a newer drillbook"),
        "{}",
        refused.stderr_str()
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "{\"drillbook_history\": 2}\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_pushed_to_a_real_pushgateway_and_read_back_through_promql() {
    let Some(mut gateway) = Pushgateway::start() else {
        return;
    };
    let Some(prometheus) = Prometheus::start(std::slice::from_ref(&gateway.addr)) else {
        return;
    };
    let server = StatusServer::start(0, Duration::from_millis(5)).await;
    let url = format!("http://{}/work", server.addr);
    let lab = std::sync::Arc::new(Lab::new(false));
    let (run_lab, run_url, gateway_url) = (lab.clone(), url.clone(), gateway.url.clone());
    let pushed = blocking(move || run_lab.run(&run_url, &["--pushgateway", &gateway_url])).await;
    pushed.assert_code(0);
    assert!(
        pushed.stdout_str().contains("pushgateway: pushed run"),
        "{}",
        pushed.stdout_str()
    );
    let report = lab.reports_written().remove(0);

    let at = |labels: &str| format!("{{scenario=\"history-drill\"{labels}}}");
    let info = value_of(
        &prometheus.url,
        &format!(
            "drillbook_run_info{}",
            at(&format!(",run_id=\"{}\"", report.run_id))
        ),
    )
    .await;
    assert_eq!(info, 1.0);
    assert_eq!(
        value_of(
            &prometheus.url,
            &format!("drillbook_run_verdict{}", at(",verdict=\"pass\""))
        )
        .await,
        1.0
    );
    assert_eq!(
        value_of(
            &prometheus.url,
            &format!("drillbook_run_verdict{}", at(",verdict=\"fail\""))
        )
        .await,
        0.0
    );
    assert_eq!(
        value_of(
            &prometheus.url,
            &format!(
                "drillbook_check_verdict{}",
                at(",check=\"served\",verdict=\"pass\"")
            )
        )
        .await,
        1.0
    );
    let start = value_of(
        &prometheus.url,
        &format!("drillbook_run_start_timestamp_seconds{}", at("")),
    )
    .await;
    assert!((start - report.started_at.as_millisecond() as f64 / 1000.0).abs() < 0.01);
    let p95 = value_of(
        &prometheus.url,
        &format!(
            "drillbook_phase_latency_seconds{}",
            at(",phase=\"bake\",quantile=\"0.95\",latency=\"service\"")
        ),
    )
    .await;
    let measured = report.phases[0]
        .load
        .as_ref()
        .expect("load")
        .service_latency_ms
        .p95
        / 1000.0;
    assert!(
        (p95 - measured).abs() < 1e-6 && p95 >= 0.005,
        "{p95} vs {measured}"
    );
    let requests = value_of(
        &prometheus.url,
        &format!("drillbook_phase_requests{}", at(",phase=\"bake\"")),
    )
    .await;
    assert_eq!(
        requests,
        report.phases[0].load.as_ref().expect("load").requests as f64
    );

    // The gateway goes down: the verdict stands, the exit code says unreported (6), the cause
    // is named, and the report and its history line are on disk.
    gateway.stop();
    let (run_lab, run_url, gateway_url) = (lab.clone(), url, gateway.url.clone());
    let unpushed = blocking(move || run_lab.run(&run_url, &["--pushgateway", &gateway_url])).await;
    unpushed.assert_code(6);
    let stderr = unpushed.stderr_str();
    assert!(
        stderr.contains("were not pushed") && stderr.contains("did not answer"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing is lost"), "{stderr}");
    assert!(
        unpushed.stdout_str().contains("pass"),
        "{}",
        unpushed.stdout_str()
    );
    assert_eq!(lab.reports_written().len(), 2);
    let index = std::fs::read_to_string(lab.reports().join("history.ndjson")).expect("index");
    assert_eq!(index.lines().count(), 3, "{index}");
}

/// `history --format html`: one page beside the run folders, a chart per measure with one point
/// per run, the slow run marked, every run linked to its own `report.html`, and a real browser
/// that loads it without a console message.
fn history_page_shows_the_trend_and_links_every_run(lab: &Lab, ids: &[&str]) {
    let out = lab.history(&["--min-runs", "2", "--format", "html"]);
    out.assert_code(0);
    let page = lab.reports().join("history.html");
    assert!(
        out.stderr_str().contains("history.html"),
        "{}",
        out.stderr_str()
    );
    let html = std::fs::read_to_string(&page).expect("history.html written");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        html.contains("1 regressed"),
        "the header counts the regression"
    );
    for chart in ["ttr", "p95", "errors"] {
        assert!(
            html.contains(&format!("-{chart}\"")),
            "chart {chart} missing"
        );
    }
    // The first phase's p95 has one point per run; the slow run is marked.
    let p95 = html
        .split("-p95\"")
        .nth(1)
        .and_then(|chart| chart.split("data-index=\"0\" data-points=\"").nth(1))
        .and_then(|rest| rest.split('"').next());
    assert_eq!(p95, Some("4"), "one point per run");
    assert!(html.contains(&format!("regression: {}", ids[3])), "{html}");
    let links: Vec<&str> = html
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.ends_with("/report.html"))
        .collect();
    assert_eq!(links.len(), ids.len(), "{links:?}");
    for link in &links {
        assert!(
            lab.reports().join(link).is_file(),
            "{link} does not lead to a report.html"
        );
    }
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let loaded = browser::load(&chromium, &page, Theme::Light);
    let console = loaded.console();
    assert!(console.is_empty(), "console output: {console:#?}");
    assert!(loaded.dom.contains("data-enhanced=\"1\""), "the script ran");
}
