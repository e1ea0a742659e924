//! The lab's requests-proxy and jobs-manager as real processes: tokens across restarts in both
//! modes, the revoke list, start-up 503s and the Prometheus exposition.

/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common;

use std::time::Duration;

use common::base::{block_until, free_port};
use common::lab::{
    LabProcess, metric, metrics, new_job, request, start_jobs_manager, start_proxy, train,
    wait_healthy,
};

#[test]
fn stateless_tokens_survive_restarts_and_honour_the_revoke_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let revoke_file = dir.path().join("revoked-jobs");
    let revoke_arg = revoke_file.to_str().expect("utf-8 temp path");
    let (proxy_port, jobs_port) = (free_port(), free_port());
    let mut proxy = start_proxy(proxy_port, true, &["--revoke-file", revoke_arg]);
    let mut jobs_manager = start_jobs_manager(jobs_port, proxy_port, true);

    let (job_id, token) = new_job(jobs_port);
    let answer = train(proxy_port, &token);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.field("job_id"), job_id);

    // Flip one character of the signature: the token no longer verifies.
    let mut tampered = token.clone().into_bytes();
    let index = tampered.len() - 2;
    tampered[index] = if tampered[index] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    let refused = train(proxy_port, &tampered);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.field("reason"), "bad_signature");
    let anonymous = request(proxy_port, "GET", "/v1/train", None);
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.field("reason"), "missing_token");

    // SIGKILL the proxy: the JWT carries everything needed to verify it again.
    proxy.restart();
    wait_healthy(proxy_port);
    assert_eq!(train(proxy_port, &token).status, 200);

    // Restart jobs-manager mid-job: old tokens still verify, new ones too.
    jobs_manager.restart();
    wait_healthy(jobs_port);
    assert_eq!(train(proxy_port, &token).status, 200);
    let (other_job, other_token) = new_job(jobs_port);
    assert_eq!(train(proxy_port, &other_token).status, 200);

    // Revoke the first job (the "revoke ConfigMap"): only its token stops working.
    std::fs::write(&revoke_file, format!("# revoked by the test\n{job_id}\n")).expect("write");
    block_until(
        "the revoked token to get 401",
        Duration::from_secs(5),
        || train(proxy_port, &token).status == 401,
    );
    assert_eq!(train(proxy_port, &token).field("reason"), "revoked");
    assert_eq!(
        train(proxy_port, &other_token).status,
        200,
        "{other_job} was not revoked"
    );
    let text = metrics(proxy_port);
    assert_eq!(metric(&text, "lab_proxy_revoked_jobs"), Some(1.0));
    assert!(
        metric(
            &text,
            r#"lab_proxy_auth_failures_total{mode="stateless",reason="revoked"}"#
        ) >= Some(1.0)
    );
}

#[test]
fn legacy_tokens_live_only_in_the_proxy_memory() {
    let (proxy_port, jobs_port) = (free_port(), free_port());
    let mut proxy = start_proxy(proxy_port, false, &[]);
    let _jobs_manager = start_jobs_manager(jobs_port, proxy_port, false);

    let (job_id, token) = new_job(jobs_port);
    assert!(
        !token.contains('.'),
        "legacy tokens are opaque, got {token}"
    );
    let answer = train(proxy_port, &token);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.field("job_id"), job_id);
    let text = metrics(proxy_port);
    assert_eq!(metric(&text, "lab_proxy_registered_tokens"), Some(1.0));
    assert_eq!(metric(&text, "lab_proxy_stateless_mode"), Some(0.0));

    // The restarted proxy has an empty map: the token that worked a moment ago is unknown.
    proxy.restart();
    wait_healthy(proxy_port);
    let refused = train(proxy_port, &token);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.field("reason"), "unknown_token");
    let text = metrics(proxy_port);
    assert_eq!(metric(&text, "lab_proxy_registered_tokens"), Some(0.0));
    assert_eq!(
        metric(
            &text,
            r#"lab_proxy_auth_failures_total{mode="legacy",reason="unknown_token"}"#
        ),
        Some(1.0)
    );

    // Without a proxy to register with, jobs-manager refuses to hand out a useless token.
    proxy.kill();
    let refused = request(jobs_port, "POST", "/jobs", None);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.field("error"), "proxy_unavailable");
    assert_eq!(
        metric(
            &metrics(jobs_port),
            "lab_jobs_manager_register_failures_total"
        ),
        Some(1.0)
    );
}

#[test]
fn a_starting_proxy_answers_503_but_still_serves_metrics() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // A start-up delay far longer than the test: every answer below comes from the delay.
    let _proxy = LabProcess::start(
        &["proxy", "--listen", &listen, "--startup-delay", "5m"],
        &[],
    );
    block_until("the proxy to listen", Duration::from_secs(20), || {
        common::lab::try_request(port, "GET", "/metrics", None, "").is_ok()
    });
    assert_eq!(request(port, "GET", "/healthz", None).status, 503);
    let starting = request(port, "GET", "/v1/train", Some("anything"));
    assert_eq!(starting.status, 503);
    assert_eq!(starting.field("error"), "starting");
    assert_eq!(
        metric(&metrics(port), r#"lab_proxy_requests_total{code="503"}"#),
        Some(1.0)
    );
}

#[test]
fn sigterm_stops_accepting_finishes_the_request_in_flight_then_exits_0() {
    let (proxy_port, jobs_port) = (free_port(), free_port());
    let mut proxy = start_proxy(proxy_port, true, &["--upstream-delay", "3s"]);
    let _jobs_manager = start_jobs_manager(jobs_port, proxy_port, true);
    let (_, token) = new_job(jobs_port);

    let in_flight = std::thread::spawn(move || train(proxy_port, &token));
    // Give the request time to reach the upstream's delay before the signal.
    std::thread::sleep(Duration::from_millis(500));
    proxy.terminate();
    block_until("the listener to close", Duration::from_secs(5), || {
        common::lab::try_request(proxy_port, "GET", "/healthz", None, "").is_err()
    });
    assert!(
        !in_flight.is_finished(),
        "the in-flight request ended before the listener closed"
    );

    let answer = in_flight.join().expect("request thread");
    assert_eq!(
        answer.status, 200,
        "in-flight request cut off: {}",
        answer.body
    );
    let (status, _) = proxy.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn metrics_are_prometheus_text_and_counters_increase() {
    let (proxy_port, jobs_port) = (free_port(), free_port());
    let _proxy = start_proxy(proxy_port, true, &[]);
    let _jobs_manager = start_jobs_manager(jobs_port, proxy_port, true);

    let before = metrics(proxy_port);
    assert_exposition(&before);
    let (_, token) = new_job(jobs_port);
    for _ in 0..3 {
        assert_eq!(train(proxy_port, &token).status, 200);
    }
    for _ in 0..2 {
        assert_eq!(train(proxy_port, "not-a-jwt").status, 401);
    }
    let after = metrics(proxy_port);
    assert_exposition(&after);

    let increase = |series: &str| {
        let value = |text: &str| metric(text, series).unwrap_or_else(|| panic!("no {series}"));
        value(&after) - value(&before)
    };
    assert_eq!(increase(r#"lab_proxy_requests_total{code="200"}"#), 3.0);
    assert_eq!(increase(r#"lab_proxy_requests_total{code="401"}"#), 2.0);
    assert_eq!(
        increase(r#"lab_proxy_auth_failures_total{mode="stateless",reason="malformed"}"#),
        2.0
    );
    assert_eq!(increase("lab_proxy_request_duration_seconds_count"), 5.0);
    assert_eq!(
        increase(r#"lab_proxy_request_duration_seconds_bucket{le="+Inf"}"#),
        5.0
    );
    assert!(increase("lab_proxy_request_duration_seconds_sum") > 0.0);
    assert_eq!(metric(&after, "lab_proxy_stateless_mode"), Some(1.0));
    assert!(metric(&after, "lab_proxy_start_time_seconds") > Some(1.0e9));

    let jobs_metrics = metrics(jobs_port);
    assert_exposition(&jobs_metrics);
    assert_eq!(
        metric(&jobs_metrics, "lab_jobs_manager_jobs_started_total"),
        Some(1.0)
    );
    assert_eq!(
        request(jobs_port, "POST", "/token", None).status,
        200,
        "token endpoint of the load generator"
    );
    assert_eq!(
        metric(
            &metrics(jobs_port),
            r#"lab_jobs_manager_tokens_minted_total{mode="stateless"}"#
        ),
        Some(2.0)
    );
}

/// Every line is a `# HELP`/`# TYPE` comment or `name{labels} value` with a float value, every
/// sample belongs to a declared family, and histogram buckets are cumulative.
fn assert_exposition(text: &str) {
    let sample = regex::Regex::new(
        r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*\})? (\S+)$"#,
    )
    .expect("regex");
    let type_line =
        regex::Regex::new(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$")
            .expect("regex");
    let mut families = Vec::new();
    let mut last_bucket: Option<f64> = None;
    for line in text.lines() {
        if line.starts_with("# HELP ") {
            continue;
        }
        if let Some(captures) = type_line.captures(line) {
            families.push(captures[1].to_owned());
            last_bucket = None;
            continue;
        }
        let captures = sample
            .captures(line)
            .unwrap_or_else(|| panic!("not Prometheus text: {line:?}"));
        let name = &captures[1];
        let value: f64 = captures[7]
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| families.iter().any(|f| f == base))
            .unwrap_or(name);
        assert!(
            families.iter().any(|f| f == family),
            "sample {name} has no # TYPE line"
        );
        if name.ends_with("_bucket") {
            assert!(
                last_bucket <= Some(value),
                "buckets not cumulative at {line:?}"
            );
            last_bucket = Some(value);
        }
    }
    assert!(!families.is_empty(), "empty exposition");
}
