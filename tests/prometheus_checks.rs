//! Prometheus checks against a real Prometheus: pass, fail, and inconclusive when the query
//! comes back empty or Prometheus is stopped.

/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use drillbook::checks::prometheus::{judge, sample};
use drillbook::report::model::CheckVerdict;
use drillbook::scenario::{OnEmpty, PrometheusCheck, Sp};

fn check(query: &str, success: &str) -> PrometheusCheck {
    PrometheusCheck {
        url: String::new(),
        query: Sp::unplaced(query.to_string()),
        success_condition: Some(Sp::unplaced(success.into())),
        failure_condition: None,
        interval: None,
        count: 1,
        failure_limit: 0,
        headers: BTreeMap::new(),
        inconclusive_limit: 0,
        consecutive_error_limit: 0,
        dry_run: false,
        on_empty: OnEmpty::Inconclusive,
    }
}

/// Polls until Prometheus returns `expected` for `query` (it scrapes every second).
async fn wait_for_value(url: &str, query: &str, expected: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = sample(url, query, &BTreeMap::new(), Duration::from_secs(2)).await;
        if s.as_ref()
            .is_ok_and(|v| (*v - expected).abs() < f64::EPSILON)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never reported {expected} for {query}: last {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_pass_fail_and_go_inconclusive_against_a_real_prometheus() {
    drillbook::telemetry::install_crypto_provider();
    let metrics = common::prometheus::MetricsServer::start("drill_auth_failures_total").await;
    let Some(mut prometheus) = common::prometheus::Prometheus::start(&[metrics.addr.to_string()])
    else {
        return;
    };
    let query = "sum(drill_auth_failures_total)";

    // Pass: no auth failures.
    wait_for_value(&prometheus.url, query, 0.0).await;
    let samples = vec![
        sample(
            &prometheus.url,
            query,
            &BTreeMap::new(),
            Duration::from_secs(5),
        )
        .await,
    ];
    let j = judge(&check(query, "result == 0"), &samples);
    assert_eq!(j.verdict, CheckVerdict::Pass, "{}", j.detail);

    // Fail: the counter moves, Prometheus scrapes it, the same check fails.
    metrics.value.store(7, Ordering::SeqCst);
    wait_for_value(&prometheus.url, query, 7.0).await;
    let samples = vec![
        sample(
            &prometheus.url,
            query,
            &BTreeMap::new(),
            Duration::from_secs(5),
        )
        .await,
    ];
    let j = judge(&check(query, "result == 0"), &samples);
    assert_eq!(j.verdict, CheckVerdict::Fail, "{}", j.detail);
    assert_eq!(j.measured, Some(7.0));

    // Inconclusive: a query with no series is missing data, not a pass.
    let empty = "sum(no_such_metric_total) or absent_over_time(nothing[1s])";
    let samples = vec![
        sample(
            &prometheus.url,
            "no_such_metric_total",
            &BTreeMap::new(),
            Duration::from_secs(5),
        )
        .await,
    ];
    let j = judge(&check(empty, "result == 0"), &samples);
    assert_eq!(j.verdict, CheckVerdict::Inconclusive, "{}", j.detail);
    assert!(j.detail.contains("empty result"), "{}", j.detail);

    // Inconclusive: Prometheus is gone.
    let url = prometheus.url.clone();
    prometheus.stop();
    let samples = vec![sample(&url, query, &BTreeMap::new(), Duration::from_secs(2)).await];
    let j = judge(&check(query, "result == 0"), &samples);
    assert_eq!(j.verdict, CheckVerdict::Inconclusive, "{}", j.detail);
    assert!(j.detail.contains("query failed"), "{}", j.detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_and_infinite_results_from_a_real_prometheus_are_inconclusive() {
    drillbook::telemetry::install_crypto_provider();
    let Some(prometheus) = common::prometheus::Prometheus::start(&[]) else {
        return;
    };
    for (query, shown) in [("0/0", "NaN"), ("1/0", "inf"), ("-1/0", "-inf")] {
        let s = sample(
            &prometheus.url,
            query,
            &BTreeMap::new(),
            Duration::from_secs(5),
        )
        .await;
        assert!(
            s.as_ref().is_ok_and(|v| !v.is_finite()),
            "{query} gives a non-finite number: {s:?}"
        );
        // A failure condition alone would let these through: `NaN > 0` is false.
        let mut c = check(query, "result == 0");
        c.success_condition = None;
        c.failure_condition = Some(Sp::unplaced("result > 0".into()));
        let j = judge(&c, &[s]);
        assert_eq!(
            j.verdict,
            CheckVerdict::Inconclusive,
            "{query}: {}",
            j.detail
        );
        assert!(
            j.detail.contains(&format!("returned {shown}")),
            "{}",
            j.detail
        );
    }
}
