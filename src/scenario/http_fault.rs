//! The `http_fault` step (issue #23): latency, aborts, resets and blackholes at a Service
//! (kubernetes), injected by a fault proxy in between. Its model lives here and its validation
//! in `http_fault_checks.rs`, so the shared model and validator each gain a line rather than a
//! section.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use super::spanned::Sp;
use crate::units::HumanDuration;

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
