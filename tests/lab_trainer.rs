//! The lab trainer (one training job) as a real process against a proxy that gets killed:
//! stateless jobs ride out the restart, legacy jobs are stranded, and a dead proxy is waited
//! out only until --max-runtime.

/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common;

use std::time::Duration;

use common::base::{block_until, free_port};
use common::lab::{LabProcess, metric, metrics, start_jobs_manager, start_proxy};

/// Starts a trainer for `steps` steps against the given ports, stdout captured.
fn start_trainer(proxy_port: u16, jobs_port: u16, steps: &str, give_up_after: &str) -> LabProcess {
    let proxy_url = format!("http://127.0.0.1:{proxy_port}");
    let jobs_url = format!("http://127.0.0.1:{jobs_port}");
    LabProcess::start_capturing(
        &[
            "trainer",
            "--proxy-url",
            &proxy_url,
            "--jobs-manager-url",
            &jobs_url,
            "--steps",
            steps,
            "--interval",
            "50ms",
            "--give-up-after",
            give_up_after,
            "--max-runtime",
            "60s",
        ],
        &[],
    )
}

/// Waits until the proxy has answered at least `count` requests with 200: the job is mid-way.
fn wait_for_successes(proxy_port: u16, count: f64) {
    block_until(
        "the trainer to make progress",
        Duration::from_secs(20),
        || {
            metric(
                &metrics(proxy_port),
                r#"lab_proxy_requests_total{code="200"}"#,
            ) >= Some(count)
        },
    );
}

#[test]
fn stateless_trainer_finishes_across_a_proxy_kill() {
    let (proxy_port, jobs_port) = (free_port(), free_port());
    let mut proxy = start_proxy(proxy_port, true, &[]);
    let _jobs_manager = start_jobs_manager(jobs_port, proxy_port, true);
    let mut trainer = start_trainer(proxy_port, jobs_port, "40", "3");

    wait_for_successes(proxy_port, 5.0);
    proxy.kill();
    // Down for a moment, then a slow start (503s): neither counts as a 401.
    std::thread::sleep(Duration::from_millis(300));
    proxy = start_proxy(proxy_port, true, &["--startup-delay", "300ms"]);

    let (status, stdout) = trainer.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "trainer output:\n{stdout}");
    assert!(stdout.contains("token acquired"), "{stdout}");
    assert!(
        stdout.contains("proxy unavailable"),
        "the outage went unnoticed:\n{stdout}"
    );
    assert!(stdout.contains("done: "), "{stdout}");
    assert!(
        !stdout.contains("401:") && !stdout.contains("stranded"),
        "{stdout}"
    );
    drop(proxy);
}

#[test]
fn legacy_trainer_is_stranded_by_a_proxy_restart() {
    let (proxy_port, jobs_port) = (free_port(), free_port());
    let mut proxy = start_proxy(proxy_port, false, &[]);
    let _jobs_manager = start_jobs_manager(jobs_port, proxy_port, false);
    let mut trainer = start_trainer(proxy_port, jobs_port, "1000", "3");

    wait_for_successes(proxy_port, 5.0);
    proxy.restart();

    let (status, stdout) = trainer.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(3), "trainer output:\n{stdout}");
    assert!(stdout.contains("first 401"), "{stdout}");
    let stranded = stdout
        .lines()
        .find(|line| line.starts_with("stranded: "))
        .unwrap_or_else(|| panic!("no stranded line in:\n{stdout}"));
    assert!(stranded.contains("3 consecutive 401s"), "{stranded}");
    assert!(stranded.contains("unknown_token"), "{stranded}");
}

#[test]
fn trainer_gives_up_on_an_unreachable_proxy_after_max_runtime() {
    // Nothing listens on this port: every call is a connection error, retried, never a 401.
    let proxy_url = format!("http://127.0.0.1:{}", free_port());
    let mut trainer = LabProcess::start_capturing(
        &[
            "trainer",
            "--proxy-url",
            &proxy_url,
            "--steps",
            "10",
            "--interval",
            "50ms",
            "--give-up-after",
            "1",
            "--max-runtime",
            "1s",
        ],
        &[("LAB_TRAINER_TOKEN", "token-from-env")],
    );
    let (status, stdout) = trainer.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(4), "trainer output:\n{stdout}");
    assert!(stdout.contains("token acquired: job from-env"), "{stdout}");
    assert!(stdout.contains("proxy unavailable"), "{stdout}");
    assert!(stdout.contains("gave up: --max-runtime 1s"), "{stdout}");
    assert!(!stdout.contains("stranded"), "{stdout}");
}
