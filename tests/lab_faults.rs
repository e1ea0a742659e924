//! `http_fault` on a local target (issue #23) through the real binary: drillbook's own fault
//! proxy on a process's port, real lab processes, real load. Each drill's fault is counted by
//! the proxy, so the verdict cannot come from a fault that never happened.

use drillbook::report::model::{CheckVerdict, Report, Verdict};

use crate::common::cli::Ran;
use crate::common::lab_drill::{Drill, check};

/// The per-second track of `step`'s faulted requests, summed.
fn faulted_in_tracks(report: &Report, step: &str) -> f64 {
    let name = format!("{step}: faulted");
    report
        .tracks
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no track {name}: {:?}", report.tracks))
        .points
        .iter()
        .map(|p| p[1])
        .sum()
}

#[test]
fn jobs_manager_blackholed_leaves_stateless_callers_verifying() {
    let drill = Drill::new();
    let (output, report) = drill.run("jobs-manager-unreachable.yaml");
    assert_eq!(output.status.code(), Some(0), "{}", output.stderr_str());
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.verdict_reason);
    let load = report.load.as_ref().expect("load");
    assert_eq!(load.status_count(401), 0);
    assert!(load.requests >= 1500, "{} requests", load.requests);
    // New callers' token requests hung at the blackhole: counted, and in the tracks.
    let effect = check(&report, "jobs-manager-unreachable-took-effect");
    assert_eq!(effect.verdict, CheckVerdict::Pass, "{}", effect.detail);
    assert!(effect.detail.contains("blackholed"), "{}", effect.detail);
    let faulted = effect.measured.expect("a count");
    assert!(faulted >= 1.0);
    assert_eq!(
        faulted_in_tracks(&report, "jobs-manager-unreachable"),
        faulted
    );
    // The fault phase lasts the fault's `for: 6s`, from the step on.
    let phase = report
        .phases
        .iter()
        .find(|p| p.name == "fault")
        .expect("fault phase");
    let span = phase.end_s - phase.start_s;
    assert!((5.5..6.6).contains(&span), "fault phase {span} s");
    drill.assert_no_survivors();
}

#[test]
fn a_slow_proxy_trips_the_p95_gate_and_the_load_sees_the_injected_latency() {
    let drill = Drill::new();
    let (output, report) = drill.run("slow-proxy.yaml");
    assert_eq!(output.status.code(), Some(1), "{}", output.stderr_str());
    assert_eq!(report.verdict, Verdict::Fail, "{}", report.verdict_reason);
    assert_eq!(check(&report, "p95-gate").verdict, CheckVerdict::Fail);
    for within in [
        "injected-latency-seen",
        "injected-latency-not-more",
        "nothing-failed",
    ] {
        let c = check(&report, within);
        assert_eq!(c.verdict, CheckVerdict::Pass, "{within}: {}", c.detail);
    }
    // The load's connections were opened before the fault and kept alive: the proxy reads
    // them as HTTP from the start, so every request after the step is delayed.
    let slowed = report
        .phases
        .iter()
        .find(|p| p.name == "slowed")
        .and_then(|p| p.load.as_ref())
        .expect("slowed phase load");
    let effect = check(&report, "slow-took-effect");
    let delayed = effect.measured.expect("a count");
    assert!(
        delayed >= slowed.requests as f64 * 0.95,
        "{delayed} delayed of {} requests in the slowed phase",
        slowed.requests
    );
    assert!(
        report
            .tracks
            .iter()
            .any(|t| t.name == "slow: requests through the fault proxy")
    );
    drill.assert_no_survivors();
}

#[test]
fn a_fault_that_touches_no_request_is_inconclusive_not_a_pass() {
    let drill = Drill::new();
    // The match never holds: every request passes untouched.
    let output = drill.run_variant(
        "slow-proxy.yaml",
        "untouched.yaml",
        &[(
            "latency: {p50: 200ms, p99: 300ms}",
            "latency: {p50: 200ms, p99: 300ms}\n      match: {path_prefix: /never/}",
        )],
    );
    assert_eq!(output.status.code(), Some(1), "{}", output.stderr_str());
    let report = drill.report();
    let effect = check(&report, "slow-took-effect");
    assert_eq!(
        effect.verdict,
        CheckVerdict::Inconclusive,
        "{}",
        effect.detail
    );
    assert!(
        effect.detail.contains("never touched a request"),
        "{}",
        effect.detail
    );
    drill.assert_no_survivors();
    // Without the gate, nothing else fails: the verdict is inconclusive (exit 3), not pass.
    let drill = Drill::new();
    let output = drill.run_variant(
        "slow-proxy.yaml",
        "untouched-no-gate.yaml",
        &[
            (
                "latency: {p50: 200ms, p99: 300ms}",
                "latency: {p50: 200ms, p99: 300ms}\n      match: {path_prefix: /never/}",
            ),
            (
                "    http: \"p(50) >= 180ms\"\n",
                "    http: \"p(50) >= 0ms\"\n",
            ),
            (
                "    http: \"p(95) <= 1.5 * baseline\"\n",
                "    http: \"p(95) <= 100 * baseline\"\n",
            ),
        ],
    );
    assert_eq!(output.status.code(), Some(3), "{}", output.stderr_str());
    assert_eq!(drill.report().verdict, Verdict::Inconclusive);
    drill.assert_no_survivors();
}
