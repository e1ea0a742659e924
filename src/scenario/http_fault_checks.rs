//! Validation of `http_fault` steps (`http_fault.rs` has their model), called once by
//! `validate.rs`: every error located at its line.

use std::collections::BTreeMap;
use std::time::Duration;

use super::diagnostic::Diagnostic;
use super::http_fault::{FaultProtocol, HttpFault, LatencySpec};
use super::model::{Action, Scenario};
use super::spanned::Pos;
use super::templated;
use crate::units::HumanDuration;

/// Bandwidth caps below this (bytes per second) are refused.
pub const MIN_BANDWIDTH: u64 = 1024;
/// Latencies above this need `allow_large` (a longer delay is a blackhole: use one).
pub const MAX_LATENCY: Duration = Duration::from_secs(10);

/// Located errors of every `http_fault` of `scenario` (called once by validation).
pub fn diagnostics(scenario: &Scenario, is_local: bool) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, Pos> = BTreeMap::new();
    let timeline = scenario.steps.iter().map(|s| (s, true));
    let after = scenario
        .on_abort
        .iter()
        .chain(&scenario.finally)
        .map(|s| (s, false));
    for (step, in_timeline) in timeline.chain(after) {
        let Action::HttpFault(f) = &step.value.action else {
            continue;
        };
        let at = step.value.action_at;
        let mut error = |pos: Pos, message: String| {
            out.push(Diagnostic::error(
                if pos.is_known() { pos } else { at },
                message,
            ));
        };
        if !in_timeline {
            error(
                at,
                "`http_fault` belongs in `steps`: `on_abort` and `finally` register no undo, so \
                 the fault would outlive the drill"
                    .into(),
            );
        }
        let place = if is_local { &f.port } else { &f.service };
        match place {
            None if is_local => error(at, "`http_fault` on a local target needs `port:` (a `${port.NAME}` name)".into()),
            None => error(at, "`http_fault` on a kubernetes target needs `service:` (a Service in the drill's namespace)".into()),
            Some(name) => {
                if !is_local && (name.value.contains('/') || !dns_label(&name.value)) {
                    error(name.pos, format!("`{}` is not a Service name in the drill's namespace: Services of other namespaces are outside the namespace pin", name.value));
                }
                if let Some(first) = seen.insert(name.value.clone(), name.pos) {
                    error(name.pos, format!("two faults on `{}` at once (the first at line {}): combine them in one `http_fault`", name.value, first.line));
                }
            }
        }
        if is_local {
            local_errors(scenario, f, &mut error);
        } else if f.port.is_some() || f.process.is_some() {
            error(
                at,
                "`port:` and `process:` are for a local target: on kubernetes, name the `service:`"
                    .into(),
            );
        }
        if !is_local && f.image.is_none() {
            error(at, "`http_fault` on a kubernetes target needs `image:` (the drillbook image the fault proxy pods run)".into());
        }
        if f.latency.is_none()
            && f.abort.is_none()
            && f.reset.is_none()
            && f.blackhole.is_none()
            && f.bandwidth.is_none()
        {
            error(
                at,
                "`http_fault` has no fault: give `latency`, `abort`, `reset`, `blackhole` or `bandwidth`".into(),
            );
        }
        if let Some(rate) = &f.bandwidth
            && rate.value.0 < MIN_BANDWIDTH
        {
            error(
                rate.pos,
                format!(
                    "a bandwidth below 1KiB/s ({}) is a blackhole in disguise: use `blackhole`",
                    rate.value
                ),
            );
        }
        if f.protocol == FaultProtocol::Tcp {
            if let Some(a) = &f.abort {
                error(a.pos, "`abort` answers with an HTTP status: with `protocol: tcp` (TLS or unknown) only latency, reset and blackhole apply".into());
            }
            if let Some(m) = &f.matcher {
                error(m.pos, "`match` reads HTTP requests: with `protocol: tcp` (TLS or unknown) every connection is faulted".into());
            }
        }
        if let Some(a) = &f.abort
            && !(100..=599).contains(&a.value.status)
        {
            error(
                a.pos,
                format!(
                    "abort status {} is not an HTTP status (100–599)",
                    a.value.status
                ),
            );
        }
        if let Some(l) = &f.latency {
            latency_errors(&l.value, f.allow_large, |m| error(l.pos, m));
        }
        if let Some(d) = &f.duration
            && d.value.0.is_zero()
        {
            error(
                d.pos,
                "`for: 0s` would never fault: leave `for` out to fault until the drill ends".into(),
            );
        }
        if f.replicas == 0 || f.replicas > 10 {
            error(at, format!("replicas {} must be 1–10", f.replicas));
        }
    }
    out
}

/// A local fault's port must be one a process is given, and its listener must be known.
fn local_errors(scenario: &Scenario, f: &HttpFault, error: &mut impl FnMut(Pos, String)) {
    let Some(port) = &f.port else { return };
    if f.service.is_some() {
        error(
            port.pos,
            "`service:` is for a kubernetes target: on a local target, name the `port:`".into(),
        );
    }
    if f.replicas != 1 {
        error(
            port.pos,
            "`replicas` counts fault proxy pods (kubernetes): a local port has one proxy, drillbook itself".into(),
        );
    }
    let reference = format!("${{port.{}}}", port.value);
    let given = templated::texts(scenario)
        .iter()
        .any(|t| t.site.gives_port() && t.text.contains(&reference));
    if !given {
        error(
            port.pos,
            format!(
                "no process is given `{reference}` in its command or env, so nothing listens on it to fault"
            ),
        );
        return;
    }
    if let Err(e) = templated::listener(f, scenario.local_processes()) {
        let pos = f.process.as_ref().map_or(port.pos, |p| p.pos);
        error(pos, e.to_string());
    }
}

fn latency_errors(l: &LatencySpec, allow_large: bool, mut error: impl FnMut(String)) {
    let given: Vec<HumanDuration> = [l.fixed, l.p50, l.p99, l.min, l.max]
        .into_iter()
        .flatten()
        .collect();
    let shape = matches!(
        (l.fixed, l.p50, l.p99, l.min, l.max),
        (Some(_), None, None, None, None)
            | (None, Some(_), _, None, None)
            | (None, None, None, Some(_), Some(_))
    );
    if !shape {
        error("latency is one of `{fixed: 300ms}`, `{p50: 300ms, p99: 800ms}` or `{min: 100ms, max: 500ms}`".into());
        return;
    }
    if given.iter().any(|d| d.0.is_zero()) {
        error("a latency must be above 0s".into());
    }
    if let (Some(p50), Some(p99)) = (l.p50, l.p99)
        && p99 < p50
    {
        error(format!("p99 {p99} is below p50 {p50}"));
    }
    if let (Some(min), Some(max)) = (l.min, l.max)
        && max < min
    {
        error(format!("max {max} is below min {min}"));
    }
    if !allow_large && given.iter().any(|d| d.0 > MAX_LATENCY) {
        error(format!(
            "a latency above {} is a blackhole in disguise: use `blackhole`, or set `allow_large: true`",
            HumanDuration(MAX_LATENCY)
        ));
    }
}

fn dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}
