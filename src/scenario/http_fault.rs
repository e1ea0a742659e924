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
    /// The `${port.NAME}` whose callers are faulted (local): drillbook listens on it and
    /// forwards to the process that serves it, which gets a port of its own instead.
    #[serde(default)]
    pub port: Option<Sp<String>>,
    /// The local process that listens on `port`. Default: the one process whose `ready:` URL
    /// names `${port.NAME}`.
    #[serde(default)]
    pub process: Option<Sp<String>>,
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
    /// Cap the bytes sent back to callers, shared by all their connections like a link's:
    /// `64KiB/s`, `1MiB/s`, `500KB/s` (on kubernetes, split evenly between the replicas).
    #[serde(default)]
    pub bandwidth: Option<Sp<ByteRate>>,
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

/// Bytes per second, written with a unit: `100B/s`, `500KB/s`, `64KiB/s`, `1MiB/s`, `2MB/s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteRate(pub u64);

impl ByteRate {
    pub fn parse(text: &str) -> Option<Self> {
        let per = text.trim().strip_suffix("/s")?.trim();
        let split = per.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, unit) = per.split_at(split);
        let factor: f64 = match unit.trim() {
            "B" => 1.0,
            "KB" => 1e3,
            "KiB" => 1024.0,
            "MB" => 1e6,
            "MiB" => 1024.0 * 1024.0,
            "GB" => 1e9,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            _ => return None,
        };
        let bytes = number.parse::<f64>().ok()? * factor;
        (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(Self(bytes as u64))
    }
}

impl<'de> Deserialize<'de> for ByteRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a byte rate: write a number and a unit per second, like `64KiB/s` \
                 (B, KB, KiB, MB, MiB, GB, GiB)"
            ))
        })
    }
}

impl JsonSchema for ByteRate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteRate".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*(B|KB|KiB|MB|MiB|GB|GiB)/s\\s*$",
            "description": "Bytes per second with a unit, e.g. `64KiB/s`."
        })
    }
}

impl fmt::Display for ByteRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0 as f64;
        if b >= 1024.0 * 1024.0 {
            write!(f, "{}MiB/s", (b / (1024.0 * 1024.0) * 10.0).round() / 10.0)
        } else if b >= 1024.0 {
            write!(f, "{}KiB/s", (b / 1024.0 * 10.0).round() / 10.0)
        } else {
            write!(f, "{}B/s", self.0)
        }
    }
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
        if let Some(rate) = &self.bandwidth {
            parts.push(format!("bandwidth capped at {}", rate.value));
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

    /// The Service (kubernetes) or port name (local) the fault applies to.
    pub fn place(&self) -> Option<&str> {
        self.service
            .as_ref()
            .or(self.port.as_ref())
            .map(|p| p.value.as_str())
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

#[cfg(test)]
mod tests {
    use super::ByteRate;

    #[test]
    fn byte_rates_are_read_with_their_unit() {
        assert_eq!(ByteRate::parse("64KiB/s"), Some(ByteRate(65_536)));
        assert_eq!(ByteRate::parse(" 1.5 MB/s "), Some(ByteRate(1_500_000)));
        assert_eq!(ByteRate::parse("100B/s"), Some(ByteRate(100)));
        assert_eq!(ByteRate::parse("64KiB"), None);
        assert_eq!(ByteRate::parse("64kb/s"), None);
        assert_eq!(ByteRate::parse("0B/s"), None);
        assert_eq!(ByteRate(65_536).to_string(), "64KiB/s");
        assert_eq!(ByteRate(1_572_864).to_string(), "1.5MiB/s");
    }
}
