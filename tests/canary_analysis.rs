//! Issue #14's analysis constructs, end to end through `drillbook run` against a real
//! Prometheus (Debian's binary) scraping loopback test servers: NaN results are inconclusive,
//! `prometheus` abort guards trip (or not) after their `for:`, `alerts` checks see rules
//! that fire (or not), and `compare` checks judge a canary stream against a stable one.

/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common;

use std::time::Duration;

use common::prometheus::{Prometheus, StatusServer};
use drillbook::report::model::{CheckVerdict, EventKind, Report, Verdict};

/// A local drill whose load goes to `url` for `duration`; `extra` adds top-level sections
/// (indented YAML) after `load:`'s own keys (e.g. `  streams: ...`) and after it.
fn scenario(url: &str, duration: &str, load_extra: &str, rest: &str) -> String {
    format!(
        r#"apiVersion: drillbook/v1
name: canary-analysis
target:
  local:
    processes:
      - name: idle
        command: ["sleep", "120"]
load:
  url: {url}
  rate: 40/s
  duration: {duration}
  connections: 4
{load_extra}phases:
  - {{name: bake, from: start, to: end}}
{rest}"#
    )
}

/// Runs the scenario through the binary (off the async runtime); the exit code and the report.
async fn run(text: String) -> (Option<i32>, Report) {
    tokio::task::spawn_blocking(move || common::prometheus::run_drill(&text))
        .await
        .expect("run")
}

fn check<'a>(report: &'a Report, name: &str) -> &'a drillbook::report::model::CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {:?}", report.checks))
}

/// Waits until `query` returns at least one series (Prometheus scrapes and evaluates every second).
async fn wait_for_series(url: &str, query: &str) {
    common::prometheus::value_of(url, query).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nan_result_is_inconclusive_and_the_drill_does_not_pass() {
    let server = StatusServer::start(0, Duration::ZERO).await;
    let Some(prometheus) = Prometheus::start(&[server.addr.to_string()]) else {
        return;
    };
    let rest = format!(
        r#"checks:
  - name: no-5xx
    http: "rate(5xx) == 0"
  - name: error-ratio
    prometheus:
      url: {}
      query: "0/0"
      failure_condition: "result > 0"
"#,
        prometheus.url
    );
    let text = scenario(&format!("http://{}/work", server.addr), "3s", "", &rest);
    let (code, report) = run(text).await;
    let nan = check(&report, "error-ratio");
    assert_eq!(nan.verdict, CheckVerdict::Inconclusive, "{}", nan.detail);
    assert!(nan.detail.contains("returned NaN"), "{}", nan.detail);
    assert_eq!(check(&report, "no-5xx").verdict, CheckVerdict::Pass);
    assert_eq!(
        report.verdict,
        Verdict::Inconclusive,
        "{}",
        report.verdict_reason
    );
    assert_eq!(code, Some(3));
}

const ERROR_RATIO: &str =
    r#"sum(rate(test_requests_total{code=\"503\"}[3s])) / sum(rate(test_requests_total[3s]))"#;

/// A drill of 15 s whose prometheus guard watches the 503 ratio the server reports.
async fn guarded_drill(fail_one_in: u64) -> Option<(Option<i32>, Report)> {
    let server = StatusServer::start(fail_one_in, Duration::ZERO).await;
    let prometheus = Prometheus::start(&[server.addr.to_string()])?;
    let rest = format!(
        r#"checks:
  - name: served
    http: "rate(5xx) < 60%"
abort_when:
  - name: error-rate-high
    prometheus:
      url: {}
      query: "{ERROR_RATIO}"
      condition: "result > 0.2"
      interval: 1s
    for: 2s
"#,
        prometheus.url
    );
    let text = scenario(&format!("http://{}/work", server.addr), "15s", "", &rest);
    Some(run(text).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_guard_trips_after_its_for_and_aborts_the_drill() {
    let Some((code, report)) = guarded_drill(2).await else {
        return;
    };
    assert_eq!(
        report.verdict,
        Verdict::Aborted,
        "{}",
        report.verdict_reason
    );
    assert_eq!(code, Some(4));
    assert!(
        report
            .verdict_reason
            .contains("abort guard `error-rate-high` tripped"),
        "{}",
        report.verdict_reason
    );
    let event = report
        .events
        .iter()
        .find(|e| e.kind == EventKind::Guard)
        .expect("a guard event in the timeline");
    assert!(
        event.description.contains("result 0.5"),
        "{}",
        event.description
    );
    assert!(
        event.description.contains("held since"),
        "{}",
        event.description
    );
    assert!(
        event.at_s >= 2.0 && event.at_s < 14.0,
        "after its for: and before the load ended: {}",
        event.at_s
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_guard_whose_condition_never_holds_lets_the_drill_pass() {
    let Some((code, report)) = guarded_drill(0).await else {
        return;
    };
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.verdict_reason);
    assert_eq!(code, Some(0));
    assert!(report.events.iter().all(|e| e.kind != EventKind::Guard));
}

const RULES: &str = r#"groups:
  - name: canary
    rules:
      - alert: ZaiProxyCanaryAlwaysFiring
        expr: vector(1)
      - alert: ZaiProxyCanaryNeverFiring
        expr: vector(1) == 0
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_checks_fail_on_a_firing_rule_and_pass_on_a_silent_one() {
    let server = StatusServer::start(0, Duration::ZERO).await;
    let Some(prometheus) = Prometheus::start_with_rules(&[server.addr.to_string()], Some(RULES))
    else {
        return;
    };
    wait_for_series(
        &prometheus.url,
        r#"ALERTS{alertstate="firing",alertname="ZaiProxyCanaryAlwaysFiring"}"#,
    )
    .await;
    let rest = format!(
        r#"checks:
  - name: firing
    phase: bake
    alerts: {{url: "{url}", pattern: "ZaiProxyCanaryAlways.*"}}
  - name: silent
    phase: bake
    alerts: {{url: "{url}", pattern: "ZaiProxyCanaryNever.*"}}
  - name: other-names-only
    phase: bake
    alerts: {{url: "{url}", pattern: "AlwaysFiring"}}
"#,
        url = prometheus.url
    );
    let text = scenario(&format!("http://{}/work", server.addr), "3s", "", &rest);
    let (code, report) = run(text).await;
    let firing = check(&report, "firing");
    assert_eq!(firing.verdict, CheckVerdict::Fail, "{}", firing.detail);
    assert!(
        firing.detail.contains("ZaiProxyCanaryAlwaysFiring"),
        "{}",
        firing.detail
    );
    let silent = check(&report, "silent");
    assert_eq!(silent.verdict, CheckVerdict::Pass, "{}", silent.detail);
    let partial = check(&report, "other-names-only");
    assert_eq!(
        partial.verdict,
        CheckVerdict::Pass,
        "whole names only: {}",
        partial.detail
    );
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(code, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_with_5_percent_503s_and_slower_answers_fails_against_stable() {
    let canary = StatusServer::start(20, Duration::from_millis(20)).await;
    let stable = StatusServer::start(0, Duration::ZERO).await;
    let streams = format!(
        "  streams:\n    canary: {{url: \"http://{}/work\"}}\n    stable: {{url: \"http://{}/work\"}}\n",
        canary.addr, stable.addr
    );
    let rest = r#"checks:
  - name: canary-errors
    phase: bake
    compare: "canary.rate(5xx) <= stable.rate(5xx) + 1%"
  - name: stable-errors
    phase: bake
    compare: "stable.rate(5xx) <= canary.rate(5xx) + 1%"
  - name: canary-latency
    phase: bake
    compare: "canary.p(95) <= 1.2 * stable.p(95)"
  - name: stable-latency
    phase: bake
    compare: "stable.p(95) <= 1.2 * canary.p(95)"
"#;
    let text = scenario(
        &format!("http://{}/work", stable.addr),
        "4s",
        &streams,
        rest,
    );
    let (code, report) = run(text).await;
    let errors = check(&report, "canary-errors");
    assert_eq!(errors.verdict, CheckVerdict::Fail, "{}", errors.detail);
    assert!(
        errors.measured.is_some_and(|v| (0.04..=0.06).contains(&v)),
        "5 % of the canary's answers are 503: {:?}",
        errors.measured
    );
    let reverse = check(&report, "stable-errors");
    assert_eq!(reverse.verdict, CheckVerdict::Pass, "{}", reverse.detail);
    let slow = check(&report, "canary-latency");
    assert_eq!(slow.verdict, CheckVerdict::Fail, "{}", slow.detail);
    let fast = check(&report, "stable-latency");
    assert_eq!(fast.verdict, CheckVerdict::Pass, "{}", fast.detail);
    assert_eq!(code, Some(1));
}
