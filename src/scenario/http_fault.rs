//! The `http_fault` step (issue #23): latency, aborts, resets and blackholes at a Service
//! (kubernetes) or a local process's port (local), injected by a fault proxy in between.
//! Its model and its validation live here, so the shared model and validator each gain a
//! line rather than a section.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use super::{Diagnostic, Pos, Scenario, Sp};
use crate::units::HumanDuration;

/// Latencies above this need `allow_large` (a longer delay is a blackhole: use one).
pub const MAX_LATENCY: Duration = Duration::from_secs(10);

/// Inject faults between callers and a Service (or a local process's port) through a fault proxy: no privileges; undone on every exit path.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpFault {
    /// The Service in the drill's namespace whose traffic is faulted (kubernetes).
    #[serde(default)]
    pub service: Option<Sp<String>>,
    /// The `${port.NAME}` whose callers are faulted (local).
    #[serde(default)]
    pub port: Option<Sp<String>>,
    /// `http` (default): faults per request, `match` applies, `abort` possible. `tcp` for TLS or
    /// any other protocol: only latency, reset and blackhole, per connection.
    #[serde(default)]
    pub protocol: FaultProtocol,
    /// How long the fault lasts; afterwards traffic passes untouched until the undo. Default:
    /// until the drill's end.
    #[serde(default, rename = "for")]
    pub duration: Option<Sp<HumanDuration>>,
    /// Added latency: `{fixed: 300ms}`, `{p50: 300ms, p99: 800ms}` or `{min: 100ms, max: 500ms}`.
    #[serde(default)]
    pub latency: Option<Sp<LatencySpec>>,
    /// Answer `status` instead of forwarding, for `share` of the matching requests (http only).
    #[serde(default)]
    pub abort: Option<Sp<AbortSpec>>,
    /// Reset the connection for `share` of the requests (tcp: of the connections).
    #[serde(default)]
    pub reset: Option<Sp<ShareSpec>>,
    /// The partition: `hang` (accept, never answer) or `refuse` (reset at once).
    #[serde(default)]
    pub blackhole: Option<Sp<BlackholeSpec>>,
    /// Which requests the fault applies to (http only); every condition must hold.
    #[serde(default, rename = "match")]
    pub matcher: Option<Sp<FaultMatch>>,
    /// Fault proxy pods (kubernetes). Default 1.
    #[serde(default = "one")]
    pub replicas: u32,
    /// The drillbook image the fault proxy pods run (kubernetes), non-root.
    #[serde(default)]
    pub image: Option<Sp<String>>,
    /// The proxy forwards untouched this long after the drill's planned end, whatever became of
    /// drillbook (fail open). Default 2m.
    #[serde(default = "default_fail_open_margin")]
    pub fail_open_margin: HumanDuration,
    /// Accept a latency above 10s.
    #[serde(default)]
    pub allow_large: bool,
}

fn one() -> u32 {
    1
}

fn default_fail_open_margin() -> HumanDuration {
    HumanDuration::from_secs(120)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultProtocol {
    #[default]
    Http,
    Tcp,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencySpec {
    #[serde(default)]
    pub fixed: Option<HumanDuration>,
    #[serde(default)]
    pub p50: Option<HumanDuration>,
    #[serde(default)]
    pub p99: Option<HumanDuration>,
    #[serde(default)]
    pub min: Option<HumanDuration>,
    #[serde(default)]
    pub max: Option<HumanDuration>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortSpec {
    /// The HTTP status answered, 100–599.
    pub status: u16,
    pub share: Share,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareSpec {
    pub share: Share,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlackholeMode {
    Hang,
    Refuse,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlackholeSpec {
    pub mode: BlackholeMode,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultMatch {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Header name → exact value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A share of requests as a percentage, `5%` (0–100 %). Kept as the fraction, 0.0–1.0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share(pub f64);

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = text
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok());
        match parsed {
            Some(p) if (0.0..=100.0).contains(&p) => Ok(Share(p / 100.0)),
            _ => Err(serde::de::Error::custom(format!(
                "`{text}` is not a share: write a percentage from 0% to 100%, like `5%`"
            ))),
        }
    }
}

impl JsonSchema for Share {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Share".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*%\\s*$",
            "description": "A percentage of requests, 0% to 100%, e.g. `5%`."
        })
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", (self.0 * 1000.0).round() / 10.0)
    }
}

impl HttpFault {
    /// What the fault does, in words (plan, progress, timeline).
    pub fn faults_in_words(&self) -> String {
        let mut parts = Vec::new();
        if let Some(l) = &self.latency {
            let l = &l.value;
            parts.push(match (l.fixed, l.p50, l.p99, l.min, l.max) {
                (Some(f), ..) => format!("+{f} latency"),
                (None, Some(p50), p99, ..) => format!(
                    "+{p50} p50{} latency",
                    p99.map(|p| format!("/{p} p99")).unwrap_or_default()
                ),
                (.., Some(min), Some(max)) => format!("+{min}–{max} latency"),
                _ => "latency".into(),
            });
        }
        if let Some(a) = &self.abort {
            parts.push(format!(
                "{} to {} of requests",
                a.value.status, a.value.share
            ));
        }
        if let Some(r) = &self.reset {
            parts.push(format!("reset {}", r.value.share));
        }
        if let Some(b) = &self.blackhole {
            parts.push(match b.value.mode {
                BlackholeMode::Hang => "blackhole (accept, never answer)".into(),
                BlackholeMode::Refuse => "blackhole (refuse: reset at once)".into(),
            });
        }
        let mut words = parts.join(", ");
        if let Some(m) = &self.matcher {
            let m = &m.value;
            let mut conditions = Vec::new();
            conditions.extend(m.method.as_ref().map(|x| x.to_string()));
            conditions.extend(m.path_prefix.as_ref().map(|p| format!("{p}*")));
            conditions.extend(m.headers.iter().map(|(k, v)| format!("{k}: {v}")));
            words.push_str(&format!(" on {}", conditions.join(" ")));
        }
        if let Some(d) = &self.duration {
            words.push_str(&format!(" for {}", d.value));
        }
        if self.protocol == FaultProtocol::Tcp {
            words.push_str(" (tcp: per connection; abort and match need http)");
        }
        words
    }

    /// What the fault applies to, in words.
    pub fn at_in_words(&self) -> String {
        match (&self.service, &self.port) {
            (Some(s), _) => format!("service `{}`", s.value),
            (None, Some(p)) => format!("port `{}`", p.value),
            (None, None) => "nothing".into(),
        }
    }
}

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
        let super::Action::HttpFault(f) = &step.value.action else {
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
        if !is_local && f.image.is_none() {
            error(at, "`http_fault` on a kubernetes target needs `image:` (the drillbook image the fault proxy pods run)".into());
        }
        if f.latency.is_none() && f.abort.is_none() && f.reset.is_none() && f.blackhole.is_none() {
            error(
                at,
                "`http_fault` has no fault: give `latency`, `abort`, `reset` or `blackhole`".into(),
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn errors(steps: &str) -> String {
        let source = format!(
            "apiVersion: drillbook/v1\nname: t\ntarget:\n  kubernetes:\n    context: box\n    \
             namespace: ns\n    allowed_contexts: [box]\nload:\n  url: http://127.0.0.1:9/\n  rate: 1/s\n  duration: 10s\nsteps:\n{steps}checks:\n  - name: c\n    http: \"rate(401) == 0\"\n"
        );
        match crate::scenario::load_source(Path::new("t.yaml"), source) {
            Ok(_) => String::new(),
            Err(diagnostics) => diagnostics.to_string(),
        }
    }

    fn fault(fields: &str) -> String {
        errors(&format!(
            "  - http_fault:\n      service: web\n      image: img\n{fields}"
        ))
    }

    #[test]
    fn a_well_formed_fault_validates() {
        assert_eq!(
            fault(
                "      latency: {p50: 300ms, p99: 450ms}\n      abort: {status: 503, share: 5%}\n      match: {method: GET, path_prefix: /v1/}\n"
            ),
            ""
        );
        assert_eq!(
            fault("      protocol: tcp\n      reset: {share: 10%}\n"),
            ""
        );
    }

    #[test]
    fn bad_faults_are_refused_at_their_line() {
        let e = fault("      abort: {status: 503, share: 120%}\n");
        assert!(
            e.contains("t.yaml:16") && e.contains("from 0% to 100%"),
            "{e}"
        );
        let e = fault("      latency: {fixed: 0s}\n");
        assert!(e.contains("t.yaml:16") && e.contains("above 0s"), "{e}");
        let e = fault("      latency: {fixed: 30s}\n");
        assert!(e.contains("allow_large"), "{e}");
        assert_eq!(
            fault("      latency: {fixed: 30s}\n      allow_large: true\n"),
            ""
        );
        let e = fault("      protocol: tcp\n      abort: {status: 503, share: 5%}\n");
        assert!(e.contains("only latency, reset and blackhole apply"), "{e}");
        let e = fault("");
        assert!(e.contains("has no fault"), "{e}");
        let e = errors("  - http_fault: {service: other/web, image: i, reset: {share: 1%}}\n");
        assert!(e.contains("outside the namespace pin"), "{e}");
        let twice = "  - http_fault: {service: web, image: i, reset: {share: 1%}}\n";
        let e = errors(&format!("{twice}{twice}"));
        assert!(e.contains("two faults on `web` at once"), "{e}");
    }
}
