//! A lab drill judged by a real Prometheus: Debian's `prometheus` scrapes the lab proxy on
//! loopback and a scenario check runs PromQL through prometheus-http-query.

/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common;

use std::path::PathBuf;

use drillbook::report::model::{CheckVerdict, Report};

const CHECK: &str = "auth-failures-in-prometheus";

/// The shipped lab scenario with fixed ports (Prometheus must know the proxy's port before the
/// drill starts) and a Prometheus check appended.
fn scenario(mode_stateless: bool, proxy: u16, jobs: u16, prometheus_url: &str) -> String {
    let base = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/lab/proxy-restart.yaml"),
    )
    .expect("scenario");
    let mut text = base
        .replace("${port.proxy}", &proxy.to_string())
        .replace("${port.jobs}", &jobs.to_string())
        .replace("runbook: ../../docs/RUNBOOK.md\n", "");
    if !mode_stateless {
        text = text.replace(
            "LAB_STATELESS_TOKENS: \"true\"",
            "LAB_STATELESS_TOKENS: \"false\"",
        );
    }
    let abort_at = text.find("abort_when:").expect("abort_when section");
    text.insert_str(
        abort_at,
        &format!(
            "  - name: {CHECK}\n    prometheus:\n      url: {prometheus_url}\n      query: sum(increase(lab_proxy_auth_failures_total[1m]))\n      success_condition: \"result == 0\"\n"
        ),
    );
    text
}

fn run_with_prometheus(stateless: bool) -> Option<Report> {
    let (proxy, jobs) = (common::base::free_port(), common::base::free_port());
    let prometheus = common::prometheus::Prometheus::start(&[format!("127.0.0.1:{proxy}")])?;
    let (code, report) =
        common::prometheus::run_drill(&scenario(stateless, proxy, jobs, &prometheus.url));
    assert!(matches!(code, Some(0 | 1)), "{}", report.verdict_reason);
    Some(report)
}

fn prometheus_check(report: &Report) -> &drillbook::report::model::CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.name == CHECK)
        .expect("the prometheus check ran")
}

#[test]
fn prometheus_sees_no_auth_failures_in_stateless_mode() {
    let Some(report) = run_with_prometheus(true) else {
        return;
    };
    let check = prometheus_check(&report);
    assert_eq!(check.verdict, CheckVerdict::Pass, "{}", check.detail);
    assert_eq!(check.measured, Some(0.0));
}

#[test]
fn prometheus_sees_the_legacy_401s() {
    let Some(report) = run_with_prometheus(false) else {
        return;
    };
    let check = prometheus_check(&report);
    assert_eq!(check.verdict, CheckVerdict::Fail, "{}", check.detail);
    assert!(
        check.measured.is_some_and(|v| v > 100.0),
        "hundreds of auth failures: {:?}",
        check.measured
    );
}
