//! Cluster load (issue #13) on the box: load workers (`drillbook load --worker-output`) behind
//! the proxy's Service, their per-second windows merged by `load::wire::FleetMerger`.
//!
//! Step one of the issue: the workers run as processes next to the test (the host reaches the
//! Service's ClusterIP through kube-proxy, as a pod does); running them as pods of a Job is the
//! controller's part, still to come. Skips without `DRILLBOOK_BOX_KUBECONFIG`, fails without a
//! box under `DRILLBOOK_REQUIRE_BOX=1`, like `tests/box_drills.rs`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use drillbook::load::wire::{FleetMerger, WorkerLine};

const BIN: &str = env!("CARGO_BIN_EXE_drillbook");
const PROXY: &str = "http://10.252.0.80:8080/v1/train";
const TOKENS: &str = "http://10.252.0.81:8081/token";
const WORKERS: u32 = 2;
const RATE_PER_WORKER: u64 = 25;
const SECONDS: u64 = 10;
const CALLERS_PER_WORKER: u32 = 2;

pub mod common {
    pub mod boxed;
}

fn have_box() -> bool {
    common::boxed::kubeconfig().is_some()
}

#[test]
fn two_workers_through_the_service_merge_to_rate_times_duration() {
    if !have_box() {
        return;
    }
    // A shared time zero a little ahead, so both workers' seconds line up.
    let zero_ms = jiff::Timestamp::now().as_millisecond() + 3000;
    let children: Vec<_> = (0..WORKERS)
        .map(|worker| {
            Command::new(BIN)
                .args(["load", PROXY, "--worker-output"])
                .args(["--rate", &format!("{RATE_PER_WORKER}/s")])
                .args(["--duration", &format!("{SECONDS}s")])
                .args(["--requests-per-connection", "1", "--connections", "4"])
                .args(["--token-url", TOKENS])
                .args(["--callers", &CALLERS_PER_WORKER.to_string()])
                .args(["--worker-index", &worker.to_string()])
                .args([
                    "--caller-slot-offset",
                    &(worker * CALLERS_PER_WORKER).to_string(),
                ])
                .args(["--start-at-unix-ms", &zero_ms.to_string()])
                .args([
                    "--max-requests",
                    &(RATE_PER_WORKER * SECONDS * 2).to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("the worker starts")
        })
        .collect();
    let mut merger = FleetMerger::new(WORKERS);
    for mut child in children {
        let stdout = child.stdout.take().expect("piped stdout");
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("worker output is text");
            merger
                .push(WorkerLine::parse(&line).unwrap_or_else(|e| panic!("{e}: {line}")))
                .expect("a valid window");
        }
        assert!(child.wait().expect("the worker ends").success());
    }
    assert!(
        merger.unfinished().is_empty(),
        "every worker sent its final line"
    );
    let windows = merger.take_all();
    assert_eq!(windows.len() as u64, SECONDS);
    assert!(
        windows.iter().all(|w| w.complete()),
        "every second has both workers"
    );
    let total: u64 = windows.iter().map(|w| w.window.stats.requests).sum();
    let expected = WORKERS as u64 * RATE_PER_WORKER * SECONDS;
    let off = total.abs_diff(expected) as f64 / expected as f64;
    eprintln!(
        "merged {total} requests, expected {expected} ({:.2} % off)",
        off * 100.0
    );
    assert!(off <= 0.01, "{total} requests for {expected} expected");
    let ok: u64 = windows.iter().map(|w| w.window.stats.class_count(2)).sum();
    assert_eq!(ok, total, "stateless tokens: every request answered 2xx");
    let callers: usize = merger.finals().values().map(|f| f.callers.len()).sum();
    assert_eq!(callers, (WORKERS * CALLERS_PER_WORKER) as usize);
}
