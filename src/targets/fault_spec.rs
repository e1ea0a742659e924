//! A scenario's `http_fault` as the fault proxy's [`FaultSpec`]: shared by the targets that
//! interpose one (the Kubernetes target's proxy pods, the local target's in-process proxy).

use std::time::Duration;

use crate::fault::{Abort, BlackholeMode, FaultSpec, Latency, Matcher, Protocol};
use crate::scenario::Scenario;
use crate::scenario::http_fault::{self, FaultProtocol, HttpFault};

fn ms(d: crate::units::HumanDuration) -> f64 {
    d.0.as_secs_f64() * 1000.0
}

fn unix_ms(t: jiff::Timestamp) -> i64 {
    t.as_millisecond()
}

/// The proxy's protocol for a scenario's `protocol:`.
pub fn protocol(protocol: FaultProtocol) -> Protocol {
    match protocol {
        FaultProtocol::Http => Protocol::Http,
        FaultProtocol::Tcp => Protocol::Tcp,
    }
}

/// When a drill on `scenario` started now should be over: its load's end plus the cluster
/// load's start-up (steps after the load are bounded by their own timeouts).
pub fn planned_end(scenario: &Scenario) -> jiff::Timestamp {
    let load = scenario.load.as_ref().map_or(Duration::ZERO, |l| {
        let start = l
            .cluster
            .as_ref()
            .map_or(Duration::ZERO, |c| c.value.start_within.0);
        l.duration.as_ref().map_or(Duration::ZERO, |d| d.value.0) + start
    });
    let now = jiff::Timestamp::now();
    jiff::SignedDuration::try_from(load)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(now)
}

/// The spec of `fault` applied now, on a drill planned to end at `planned_end`, and the
/// moment it fails open.
pub fn applied_now(
    fault: &HttpFault,
    planned_end: jiff::Timestamp,
) -> (FaultSpec, jiff::Timestamp) {
    let now = jiff::Timestamp::now();
    let fail_open = fail_open_at(fault, now, planned_end);
    (fault_spec(fault, now, fail_open), fail_open)
}

/// The proxy's spec for `fault` applied at `now`: faults end after its `for` (if any), and
/// everything is forwarded untouched from `fail_open_at` on.
pub fn fault_spec(
    fault: &HttpFault,
    now: jiff::Timestamp,
    fail_open_at: jiff::Timestamp,
) -> FaultSpec {
    let latency = fault.latency.as_ref().and_then(|l| {
        let l = &l.value;
        match (l.fixed, l.p50, l.p99, l.min, l.max) {
            (Some(f), ..) => Some(Latency::Fixed { ms: ms(f) }),
            (None, Some(p50), p99, ..) => Some(Latency::Percentiles {
                p50_ms: ms(p50),
                p99_ms: p99.map_or(ms(p50), ms),
            }),
            (.., Some(min), Some(max)) => Some(Latency::Uniform {
                min_ms: ms(min),
                max_ms: ms(max),
            }),
            _ => None,
        }
    });
    let until = fault
        .duration
        .as_ref()
        .and_then(|d| jiff::SignedDuration::try_from(d.value.0).ok())
        .and_then(|d| now.checked_add(d).ok());
    FaultSpec {
        protocol: protocol(fault.protocol),
        latency,
        abort: fault.abort.as_ref().map(|a| Abort {
            status: a.value.status,
            share: a.value.share.0,
        }),
        reset: fault.reset.as_ref().map(|r| r.value.share.0),
        blackhole: fault.blackhole.as_ref().map(|b| match b.value.mode {
            http_fault::BlackholeMode::Hang => BlackholeMode::Hang,
            http_fault::BlackholeMode::Refuse => BlackholeMode::Refuse,
        }),
        // Each replica gets its share: callers are spread over the proxies.
        bandwidth: fault
            .bandwidth
            .as_ref()
            .map(|rate| (rate.value.0 / u64::from(fault.replicas.max(1))).max(1)),
        matcher: fault
            .matcher
            .as_ref()
            .map_or_else(Matcher::default, |m| Matcher {
                method: m.value.method.clone(),
                path_prefix: m.value.path_prefix.clone(),
                headers: m.value.headers.clone(),
            }),
        until_ms: until.map(unix_ms),
        fail_open_at_ms: unix_ms(fail_open_at),
    }
}

/// The fail-open deadline of a fault applied at `now`: the later of the drill's planned end
/// and the fault's own end, plus the scenario's margin.
pub fn fail_open_at(
    fault: &HttpFault,
    now: jiff::Timestamp,
    planned_end: jiff::Timestamp,
) -> jiff::Timestamp {
    let own_end = fault
        .duration
        .as_ref()
        .map_or(Duration::ZERO, |d| d.value.0);
    let end = now
        .checked_add(jiff::SignedDuration::try_from(own_end).unwrap_or_default())
        .unwrap_or(now)
        .max(planned_end);
    end.checked_add(jiff::SignedDuration::try_from(fault.fail_open_margin.0).unwrap_or_default())
        .unwrap_or(end)
}
