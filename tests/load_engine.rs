//! Load engine behaviour against in-test servers on loopback ephemeral ports. Every run is
//! bounded by its profile and an outer timeout.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::load::{Handler, TestServer, TokenAuthority, respond, sync_handler};
use drillbook::load::{
    self, AuthConfig, ErrorKind, LatencyKind, LoadConfig, LoadSummary, RateProfile, TokenSource,
    Window,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// No test run may take longer than this, whatever happens.
const BOUND: Duration = Duration::from_secs(20);

fn constant(per_second: f64, seconds: f64) -> RateProfile {
    RateProfile::Constant {
        per_second,
        duration: Duration::from_secs_f64(seconds),
    }
}

/// Runs a load and collects its windows.
async fn run_collecting(config: LoadConfig) -> (LoadSummary, Vec<Window>) {
    drillbook::telemetry::install_crypto_provider();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let summary =
        tokio::time::timeout(BOUND, load::run(config, CancellationToken::new(), Some(tx)))
            .await
            .expect("the run ends on its own")
            .expect("the run succeeds");
    let mut windows = Vec::new();
    while let Ok(window) = rx.try_recv() {
        windows.push(window);
    }
    (summary, windows)
}

fn ok_handler() -> Handler {
    sync_handler(|_| respond(200, "ok"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_gets_exactly_its_callers_share_of_401s() {
    // 10 callers round-robin; the server revokes the 4th token it hands out, so exactly every
    // 10th request is answered 401, all of them from one caller.
    let authority = Arc::new(TokenAuthority {
        revoke_index: Some(3),
        ..TokenAuthority::default()
    });
    let server = TestServer::start(authority.handler()).await;
    let mut config = LoadConfig::new(server.url("/"), constant(200.0, 3.0));
    config.auth = Some(AuthConfig {
        source: TokenSource::Url {
            url: server.url("/token"),
            field: "token".into(),
        },
        callers: 10,
        caller_lifetime: None,
    });
    let (summary, windows) = run_collecting(config).await;

    let total = &summary.total;
    assert_eq!(total.requests, 600);
    assert_eq!(total.status_count(401), 60, "{:?}", total.statuses);
    assert_eq!(total.status_count(200), 540, "{:?}", total.statuses);
    assert_eq!((total.error_count(), total.dropped), (0, 0));

    assert_eq!(windows.len(), 3);
    for (second, window) in windows.iter().enumerate() {
        assert_eq!(window.second, second as u64);
        assert_eq!(window.stats.requests, 200, "window {second}");
        assert_eq!(window.stats.status_count(401), 20, "window {second}");
    }

    let revoked = authority.revoked.lock().unwrap()[0].clone();
    let revoked_label = authority
        .label_of(&revoked)
        .expect("the revoked token was issued");
    assert_eq!(summary.callers.len(), 10);
    for caller in &summary.callers {
        assert_eq!(caller.requests, 60, "{}", caller.label);
        if caller.label == revoked_label {
            assert_eq!(caller.statuses.get("401"), Some(&60));
            assert_eq!(caller.failures(), 60);
            assert!(caller.first_failure_s.is_some_and(|s| s < 0.1));
            assert!(caller.last_failure_s.is_some_and(|s| s > 2.9));
        } else {
            assert_eq!(caller.statuses.get("200"), Some(&60), "{}", caller.label);
            assert_eq!(caller.first_failure_s, None);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_are_replaced_with_fresh_tokens_after_their_lifetime() {
    let authority = Arc::new(TokenAuthority::default());
    let server = TestServer::start(authority.handler()).await;
    let mut config = LoadConfig::new(server.url("/"), constant(100.0, 2.5));
    config.auth = Some(AuthConfig {
        source: TokenSource::Url {
            url: server.url("/token"),
            field: "token".into(),
        },
        callers: 2,
        caller_lifetime: Some(Duration::from_secs(1)),
    });
    let (summary, _) = run_collecting(config).await;

    let labels: Vec<&str> = summary.callers.iter().map(|c| c.label.as_str()).collect();
    for expected in ["caller-0.0", "caller-0.1", "caller-1.0", "caller-1.1"] {
        assert!(labels.contains(&expected), "{labels:?}");
    }
    // Every caller generation asked for its own token.
    assert_eq!(authority.tokens().len(), summary.callers.len());
    let first = &summary.callers[0];
    let ended = first.ended_at_s.expect("the first generation was retired");
    assert!((0.9..1.5).contains(&ended), "{ended}");
    let successor = summary
        .callers
        .iter()
        .find(|c| c.label == "caller-0.1")
        .unwrap();
    assert_eq!(successor.started_at_s, ended);
    let per_caller: u64 = summary.callers.iter().map(|c| c.requests).sum();
    assert_eq!(per_caller, summary.total.requests);
    assert_eq!(
        summary.total.status_count(200),
        summary.total.requests,
        "only issued tokens were used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_corrected_latency_but_not_in_service_latency() {
    // The server answers nothing between 1 s and 2 s after the start (requests arriving then
    // wait until 2 s), like a pod paused for a second.
    let zero = Instant::now() + Duration::from_millis(200);
    let stall = (zero + Duration::from_secs(1), zero + Duration::from_secs(2));
    let handler: Handler = Arc::new(move |_req| {
        Box::pin(async move {
            let now = Instant::now();
            if now >= stall.0 && now < stall.1 {
                tokio::time::sleep_until(stall.1).await;
            }
            respond(200, "ok")
        })
    });
    let server = TestServer::start(handler).await;
    let mut config = LoadConfig::new(server.url("/"), constant(200.0, 3.0));
    config.connections = 64;
    config.timeout = Duration::from_secs(3);
    config.max_lag = Duration::from_secs(3);
    config.start_at = Some(zero);
    let (summary, windows) = run_collecting(config).await;

    let total = &summary.total;
    assert_eq!(total.requests, 600);
    assert_eq!((total.error_count(), total.dropped), (0, 0));
    let corrected_p99 = total.quantile_ms(99.0, LatencyKind::Corrected).unwrap();
    let service_p50 = total.quantile_ms(50.0, LatencyKind::Service).unwrap();
    assert!(corrected_p99 >= 900.0, "corrected p99 {corrected_p99} ms");
    assert!(service_p50 < 100.0, "service p50 {service_p50} ms");
    assert_eq!(
        windows[1].stats.saturated_windows, 1,
        "the stalled second is saturated"
    );
    assert_eq!(windows[0].stats.saturated_windows, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_shows_errors_in_its_windows_and_the_run_recovers() {
    let mut server = TestServer::start(ok_handler()).await;
    let mut config = LoadConfig::new(server.url("/"), constant(200.0, 4.0));
    config.connections = 16;
    config.timeout = Duration::from_millis(500);
    let zero = Instant::now() + Duration::from_millis(100);
    config.start_at = Some(zero);
    let run = tokio::spawn(run_collecting(config));

    tokio::time::sleep_until(zero + Duration::from_millis(1200)).await;
    server.kill().await;
    tokio::time::sleep_until(zero + Duration::from_millis(2000)).await;
    server.restart().await;
    let (summary, windows) = run.await.unwrap();
    let elapsed = zero.elapsed();

    assert!(elapsed < Duration::from_secs(6), "ran {elapsed:?}");
    assert_eq!(windows.len(), 4);
    let errors: Vec<u64> = windows.iter().map(|w| w.stats.error_count()).collect();
    let oks: Vec<u64> = windows.iter().map(|w| w.stats.status_count(200)).collect();
    assert_eq!(errors[0], 0, "errors per window {errors:?}");
    assert!(errors[1] >= 80, "errors per window {errors:?}");
    assert_eq!(errors[3], 0, "recovered: errors per window {errors:?}");
    assert_eq!(oks[3], 200, "recovered: 200s per window {oks:?}");
    let refused = summary
        .total
        .errors
        .get(&ErrorKind::ConnectRefused)
        .copied()
        .unwrap_or(0);
    assert!(refused > 0, "{:?}", summary.total.errors);
    assert_eq!(
        summary.total.requests + summary.total.dropped,
        800,
        "every scheduled request is accounted for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_port_counts_refusals_and_the_run_ends_on_time() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = LoadConfig::new(format!("http://127.0.0.1:{port}/"), constant(50.0, 1.0));
    config.connections = 4;
    let started = Instant::now();
    let (summary, _) = run_collecting(config).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(summary.total.requests + summary.total.dropped, 50);
    assert_eq!(summary.total.error_count(), summary.total.requests);
    assert!(
        summary
            .total
            .errors
            .contains_key(&ErrorKind::ConnectRefused)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_achieved_rate_follows_the_schedule() {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&arrivals);
    let server = TestServer::start(sync_handler(move |_| {
        seen.lock().unwrap().push(Instant::now());
        respond(200, "ok")
    }))
    .await;
    let (summary, windows) =
        run_collecting(LoadConfig::new(server.url("/"), constant(200.0, 3.0))).await;

    assert_eq!(summary.total.requests, 600);
    assert_eq!(summary.total.dropped, 0);
    assert!(windows.iter().all(|w| w.stats.requests == 200));
    let arrivals = arrivals.lock().unwrap();
    assert_eq!(arrivals.len(), 600);
    let span = arrivals[arrivals.len() - 1]
        .duration_since(arrivals[0])
        .as_secs_f64();
    let rate = (arrivals.len() - 1) as f64 / span;
    assert!(
        (rate - 200.0).abs() / 200.0 < 0.05,
        "server saw {rate:.1}/s"
    );
}

/// Connections spread over several load threads (more threads than connections is clamped)
/// still send exactly the schedule, each request once, and merge into the same windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_spread_over_load_threads_send_exactly_the_schedule() {
    let server = TestServer::start(sync_handler(|_| respond(200, "ok"))).await;
    for (threads, connections) in [(2, 5), (8, 3)] {
        let mut config = LoadConfig::new(server.url("/"), constant(150.0, 2.0));
        config.threads = threads;
        config.connections = connections;
        let (summary, windows) = run_collecting(config).await;
        assert_eq!(summary.total.requests, 300, "{threads} threads");
        assert_eq!(summary.total.statuses.get(&200), Some(&300));
        assert!(
            summary.total.errors.is_empty(),
            "{:?}",
            summary.total.errors
        );
        assert_eq!(windows.len(), 2);
        assert!(windows.iter().all(|w| w.stats.requests == 150));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_promptly_with_partial_stats() {
    let server = TestServer::start(ok_handler()).await;
    let config = LoadConfig::new(server.url("/"), constant(100.0, 30.0));
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let run = tokio::spawn(load::run(config, cancel.clone(), Some(tx)));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let cancelled_at = Instant::now();
    cancel.cancel();
    let summary = tokio::time::timeout(Duration::from_secs(2), run)
        .await
        .expect("a cancelled run stops promptly")
        .unwrap()
        .unwrap();
    assert!(cancelled_at.elapsed() < Duration::from_millis(500));
    assert!(summary.cancelled);
    assert!(
        (60..=140).contains(&summary.total.requests),
        "{}",
        summary.total.requests
    );
    assert!(summary.duration < Duration::from_secs(2));
    let mut windows = Vec::new();
    while let Ok(window) = rx.try_recv() {
        windows.push(window.second);
    }
    assert_eq!(
        windows,
        [0, 1],
        "windows up to the cancellation are emitted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_mode_and_the_request_cap() {
    let served = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&served);
    let server = TestServer::start(sync_handler(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
        respond(200, "ok")
    }))
    .await;
    let mut config = LoadConfig::new(
        server.url("/"),
        RateProfile::Max {
            duration: Duration::from_millis(800),
        },
    );
    config.connections = 2;
    let (summary, _) = run_collecting(config.clone()).await;
    assert!(summary.total.requests > 50, "{}", summary.total.requests);
    assert_eq!(summary.total.requests, served.load(Ordering::Relaxed));
    assert_eq!(summary.total.corrected.len(), summary.total.service.len());

    config.max_requests = Some(25);
    let (capped, _) = run_collecting(config).await;
    assert_eq!(capped.total.requests, 25);
    assert!(
        capped.duration < Duration::from_millis(800),
        "a capped run ends when the cap is hit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_ramp_then_hold_by_intended_time() {
    let server = TestServer::start(ok_handler()).await;
    let profile = RateProfile::Stages(vec![
        load::Stage {
            duration: Duration::from_secs(1),
            target_per_second: 100.0,
        },
        load::Stage {
            duration: Duration::from_secs(1),
            target_per_second: 100.0,
        },
    ]);
    let (summary, windows) = run_collecting(LoadConfig::new(server.url("/"), profile)).await;
    // Ramp 0→100/s over 1 s is 50 requests, the hold 100.
    let per_window: Vec<u64> = windows.iter().map(|w| w.stats.requests).collect();
    assert_eq!(per_window, [50, 100]);
    assert_eq!(summary.total.status_count(200), 150);
    assert_eq!(summary.duration, Duration::from_secs(2));
}
