//! Faults injected by interposition (issue #23): a fault proxy that stands between callers and
//! a Service's real backends, with no privileges (no tc, no iptables, no NET_ADMIN).
//!
//! [`FaultSpec`] is what one proxy does: added latency, aborts with a status, connection
//! resets, a blackhole, each for a share of the requests (HTTP) or connections (TCP), within a
//! window of wall-clock time. Past its fail-open deadline the proxy forwards everything
//! untouched, so a proxy whose drill died leaves a working Service behind until `recover`.
//! The spec crosses into a pod as one JSON argv element of `drillbook fault-proxy`.
//!
//! A leaf module: it names only `units`.

pub mod proxy;

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

/// How far the proxy reads into a request: HTTP heads (method, path, headers) or bytes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Plain HTTP/1.1: faults per request, matched on method, path prefix and headers.
    Http,
    /// Anything else (TLS, gRPC over TLS, databases): faults per connection, latency per chunk.
    Tcp,
}

/// The added latency's distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Latency {
    Fixed {
        ms: f64,
    },
    /// Uniform between the two.
    Uniform {
        min_ms: f64,
        max_ms: f64,
    },
    /// Log-normal with this median and 99th percentile (the shape of real service latency).
    Percentiles {
        p50_ms: f64,
        p99_ms: f64,
    },
}

/// z of the 99th percentile of the standard normal distribution.
const Z_P99: f64 = 2.326_347_874;

impl Latency {
    /// One delay drawn from the distribution.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        let ms = match *self {
            Latency::Fixed { ms } => ms,
            Latency::Uniform { min_ms, max_ms } if max_ms > min_ms => {
                rng.random_range(min_ms..max_ms)
            }
            Latency::Uniform { min_ms, .. } => min_ms,
            Latency::Percentiles { p50_ms, p99_ms } => {
                let sigma = (p99_ms / p50_ms).ln().max(0.0) / Z_P99;
                // Box–Muller: one standard normal from two uniforms.
                let (u1, u2): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                // Capped: a tail draw of minutes would turn a delay into a blackhole.
                (p50_ms * (sigma * z).exp()).min(p99_ms * 4.0)
            }
        };
        Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }
}

/// How a blackhole treats a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlackholeMode {
    /// Accept and never answer (reads are discarded): callers wait for their own timeouts.
    Hang,
    /// Accept and reset at once: callers see "connection reset" immediately.
    Refuse,
}

/// Which requests an HTTP fault applies to; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Matcher {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Header name (any case) → exact value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl Matcher {
    pub fn matches(
        &self,
        method: &str,
        path: &str,
        header: impl Fn(&str) -> Option<String>,
    ) -> bool {
        self.method
            .as_ref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_ref()
                .is_none_or(|p| path.starts_with(p.as_str()))
            && self
                .headers
                .iter()
                .all(|(name, value)| header(name).as_deref() == Some(value.as_str()))
    }
}

/// An abort: answer `status` instead of forwarding, for `share` of the matching requests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Abort {
    pub status: u16,
    /// 0.0–1.0.
    pub share: f64,
}

/// What one fault proxy does, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    pub protocol: Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
    /// Share (0.0–1.0) of requests (HTTP) or connections (TCP) reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blackhole: Option<BlackholeMode>,
    /// Bytes per second this proxy sends back to callers, all connections together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<u64>,
    #[serde(default, rename = "match")]
    pub matcher: Matcher,
    /// The fault ends here (Unix milliseconds); the proxy forwards untouched after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    /// Fail open: past this moment (Unix milliseconds) everything is forwarded untouched,
    /// whatever happened to the drill that started the proxy.
    pub fail_open_at_ms: i64,
}

/// What the proxy does with one request (or connection, for TCP).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Forward { delay: Option<Duration> },
    Abort { status: u16 },
    Reset,
    Blackhole(BlackholeMode),
}

impl FaultSpec {
    /// When faults stop (the earlier of `until` and the fail-open deadline), Unix ms.
    pub fn ends_at_ms(&self) -> i64 {
        self.until_ms
            .map_or(self.fail_open_at_ms, |u| u.min(self.fail_open_at_ms))
    }

    /// Whether faults apply at `now_ms`.
    pub fn active(&self, now_ms: i64) -> bool {
        now_ms < self.ends_at_ms()
    }

    /// The bandwidth cap in force at `now_ms` (bytes per second), if any.
    pub fn cap_at(&self, now_ms: i64) -> Option<u64> {
        self.bandwidth.filter(|_| self.active(now_ms))
    }

    /// The decision for one request (`matched`: whether the [`Matcher`] holds; always true
    /// for TCP) at `now_ms`.
    pub fn decide(&self, now_ms: i64, matched: bool, rng: &mut impl Rng) -> Decision {
        if !matched || !self.active(now_ms) {
            return Decision::Forward { delay: None };
        }
        if let Some(mode) = self.blackhole {
            return Decision::Blackhole(mode);
        }
        if self.reset.is_some_and(|share| rng.random::<f64>() < share) {
            return Decision::Reset;
        }
        if let Some(abort) = self.abort
            && self.protocol == Protocol::Http
            && rng.random::<f64>() < abort.share
        {
            return Decision::Abort {
                status: abort.status,
            };
        }
        Decision::Forward {
            delay: self.latency.map(|l| l.sample(rng)),
        }
    }
}

/// Now on the wall clock, Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn spec() -> FaultSpec {
        FaultSpec {
            protocol: Protocol::Http,
            latency: None,
            abort: None,
            reset: None,
            blackhole: None,
            bandwidth: None,
            matcher: Matcher::default(),
            until_ms: None,
            fail_open_at_ms: 10_000,
        }
    }

    #[test]
    fn past_the_fail_open_deadline_everything_is_forwarded_untouched() {
        let s = FaultSpec {
            blackhole: Some(BlackholeMode::Hang),
            ..spec()
        };
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            s.decide(9_999, true, &mut rng),
            Decision::Blackhole(BlackholeMode::Hang)
        );
        assert_eq!(
            s.decide(10_000, true, &mut rng),
            Decision::Forward { delay: None }
        );
        let ended = FaultSpec {
            until_ms: Some(5_000),
            ..s
        };
        assert_eq!(
            ended.decide(5_000, true, &mut rng),
            Decision::Forward { delay: None }
        );
        assert_eq!(
            ended.decide(1, false, &mut rng),
            Decision::Forward { delay: None }
        );
    }

    #[test]
    fn an_abort_share_is_kept_within_sampling_error() {
        let s = FaultSpec {
            abort: Some(Abort {
                status: 503,
                share: 0.05,
            }),
            ..spec()
        };
        let mut rng = StdRng::seed_from_u64(7);
        let aborted = (0..20_000)
            .filter(|_| matches!(s.decide(0, true, &mut rng), Decision::Abort { status: 503 }))
            .count();
        // 5 % of 20 000 = 1000, σ ≈ 31.
        assert!((900..1100).contains(&aborted), "{aborted}");
        // TCP cannot answer with a status: an abort never applies there.
        let tcp = FaultSpec {
            protocol: Protocol::Tcp,
            ..s
        };
        assert!(
            (0..1000).all(|_| !matches!(tcp.decide(0, true, &mut rng), Decision::Abort { .. }))
        );
    }

    #[test]
    fn percentile_latency_has_its_median_and_p99() {
        let l = Latency::Percentiles {
            p50_ms: 300.0,
            p99_ms: 600.0,
        };
        let mut rng = StdRng::seed_from_u64(3);
        let mut draws: Vec<f64> = (0..20_000)
            .map(|_| l.sample(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        draws.sort_by(f64::total_cmp);
        let (p50, p99) = (draws[10_000], draws[19_800]);
        assert!((285.0..315.0).contains(&p50), "p50 {p50}");
        assert!((560.0..640.0).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn matcher_needs_every_condition() {
        let m = Matcher {
            method: Some("POST".into()),
            path_prefix: Some("/v1/".into()),
            headers: [("x-canary".to_string(), "1".to_string())].into(),
        };
        let header = |v: Option<&'static str>| move |_: &str| v.map(String::from);
        assert!(m.matches("post", "/v1/train", header(Some("1"))));
        assert!(!m.matches("GET", "/v1/train", header(Some("1"))));
        assert!(!m.matches("POST", "/v2/train", header(Some("1"))));
        assert!(!m.matches("POST", "/v1/train", header(None)));
    }
}
