//! What the load engine records: per-window [`Stats`] (counters and two HDR histograms) that
//! merge exactly, and their serialisable [`StatsSummary`] used by reports and checks.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Lowest latency the histograms resolve, in microseconds.
pub const HISTOGRAM_LOW_US: u64 = 1;
/// Highest latency the histograms track, in microseconds (60 s); longer values are clamped.
pub const HISTOGRAM_HIGH_US: u64 = 60_000_000;
/// Significant decimal digits kept by the histograms.
pub const HISTOGRAM_SIGFIG: u8 = 3;

/// A fresh latency histogram with the bounds every histogram of the engine shares, so that any
/// two of them can be added.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants known to be valid (low >= 1, high >= 2 * low, sigfig <= 5).
    Histogram::new_with_bounds(HISTOGRAM_LOW_US, HISTOGRAM_HIGH_US, HISTOGRAM_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// Why a request got no HTTP response.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The TCP connection was refused (nothing listening: the pod is gone).
    ConnectRefused,
    /// The connection was reset or closed mid-request.
    Reset,
    /// No complete response within the request timeout (connect included).
    Timeout,
    /// The TLS handshake failed.
    Tls,
    /// Anything else (DNS, malformed response, ...).
    Other,
}

impl ErrorKind {
    /// The name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Other => "other",
        }
    }
}

/// Which latency a quantile is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyKind {
    /// From the intended send time to completion (coordinated-omission safe).
    Corrected,
    /// From the actual send time to completion.
    Service,
}

/// Everything recorded for a span of requests (one window, a phase, or a whole run).
///
/// `requests` counts every request that was sent: those answered (`statuses`) plus those that
/// failed without an answer (`errors`). Dropped requests were never sent and are only in
/// `dropped`. Latencies are recorded for answered requests only, in microseconds.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Requests sent (answered or failed).
    pub requests: u64,
    /// Answered requests by HTTP status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without an answer, by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Requests not sent because they were more than `max_lag` behind schedule.
    pub dropped: u64,
    /// Number of 1-second windows in which the generator or target could not keep up
    /// (0 or 1 for a single window).
    pub saturated_windows: u64,
    /// Corrected latency (done − intended), microseconds.
    pub corrected: Histogram<u64>,
    /// Service latency (done − sent), microseconds.
    pub service: Histogram<u64>,
    /// Largest lag (sent − intended) seen.
    pub max_lag: Duration,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Empty stats.
    pub fn new() -> Self {
        Self {
            requests: 0,
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            dropped: 0,
            saturated_windows: 0,
            corrected: new_histogram(),
            service: new_histogram(),
            max_lag: Duration::ZERO,
        }
    }

    /// Empties the stats, keeping the histograms' memory for reuse.
    pub fn clear(&mut self) {
        self.requests = 0;
        self.statuses.clear();
        self.errors.clear();
        self.dropped = 0;
        self.saturated_windows = 0;
        self.corrected.reset();
        self.service.reset();
        self.max_lag = Duration::ZERO;
    }

    /// Records an answered request.
    pub fn record_response(&mut self, status: u16, corrected: Duration, service: Duration) {
        self.requests += 1;
        *self.statuses.entry(status).or_insert(0) += 1;
        self.corrected.saturating_record(micros(corrected));
        self.service.saturating_record(micros(service));
    }

    /// Records a request that failed without an answer.
    pub fn record_error(&mut self, kind: ErrorKind) {
        self.requests += 1;
        *self.errors.entry(kind).or_insert(0) += 1;
    }

    /// Adds `other` into `self`. Histograms are added bucket by bucket, so quantiles of the
    /// result are exact (never an average of quantiles).
    pub fn merge(&mut self, other: &Stats) {
        self.requests += other.requests;
        for (code, n) in &other.statuses {
            *self.statuses.entry(*code).or_insert(0) += n;
        }
        for (kind, n) in &other.errors {
            *self.errors.entry(*kind).or_insert(0) += n;
        }
        self.dropped += other.dropped;
        self.saturated_windows += other.saturated_windows;
        // Every histogram comes from `new_histogram`, so the bounds match and `add` cannot fail.
        let added = self
            .corrected
            .add(&other.corrected)
            .and_then(|()| self.service.add(&other.service));
        debug_assert!(added.is_ok(), "histograms with equal bounds always add");
        self.max_lag = self.max_lag.max(other.max_lag);
    }

    /// Answered requests with exactly this status code.
    pub fn status_count(&self, code: u16) -> u64 {
        self.statuses.get(&code).copied().unwrap_or(0)
    }

    /// Answered requests whose status is in the class (`5` for 5xx).
    pub fn class_count(&self, class: u16) -> u64 {
        self.statuses
            .iter()
            .filter(|(code, _)| **code / 100 == class)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests that failed without an answer.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Requests that did not get a 2xx answer (transport errors included).
    pub fn failed_count(&self) -> u64 {
        self.requests - self.class_count(2)
    }

    /// The latency at a percentile (`99.0` for p99, 0..=100, as in the check language) in
    /// milliseconds, or `None` when nothing was answered.
    pub fn quantile_ms(&self, percentile: f64, kind: LatencyKind) -> Option<f64> {
        let histogram = self.histogram(kind);
        if histogram.is_empty() {
            return None;
        }
        let q = (percentile / 100.0).clamp(0.0, 1.0);
        Some(us_to_ms(histogram.value_at_quantile(q)))
    }

    /// The histogram behind a latency kind.
    pub fn histogram(&self, kind: LatencyKind) -> &Histogram<u64> {
        match kind {
            LatencyKind::Corrected => &self.corrected,
            LatencyKind::Service => &self.service,
        }
    }

    /// Serialisable summary; `seconds` is the span the stats cover (for `rps`).
    pub fn summary(&self, seconds: f64) -> StatsSummary {
        let mut classes = BTreeMap::new();
        for (code, n) in &self.statuses {
            *classes.entry(format!("{}xx", code / 100)).or_insert(0) += n;
        }
        StatsSummary {
            requests: self.requests,
            rps: if seconds > 0.0 {
                self.requests as f64 / seconds
            } else {
                0.0
            },
            statuses: self
                .statuses
                .iter()
                .map(|(code, n)| (code.to_string(), *n))
                .collect(),
            classes,
            errors: self
                .errors
                .iter()
                .map(|(kind, n)| (kind.as_str().to_string(), *n))
                .collect(),
            dropped: self.dropped,
            saturated_windows: self.saturated_windows,
            latency_ms: Quantiles::of(&self.corrected),
            service_latency_ms: Quantiles::of(&self.service),
            max_lag_ms: self.max_lag.as_secs_f64() * 1000.0,
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// A serialisable view of [`Stats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatsSummary {
    /// Requests sent (answered or failed without an answer).
    pub requests: u64,
    /// Requests per second over the span.
    pub rps: f64,
    /// Answered requests by status code (`"200"`, `"401"`, ...).
    pub statuses: BTreeMap<String, u64>,
    /// Answered requests by status class (`"2xx"`, `"5xx"`, ...).
    #[serde(default)]
    pub classes: BTreeMap<String, u64>,
    /// Requests without an answer by kind (`connect_refused`, `reset`, `timeout`, `tls`, `other`).
    pub errors: BTreeMap<String, u64>,
    /// Requests not sent because the generator was more than `max_lag` behind schedule.
    pub dropped: u64,
    /// 1-second windows where the generator or target could not keep up.
    pub saturated_windows: u64,
    /// Corrected latency (from the intended send time), milliseconds.
    pub latency_ms: Quantiles,
    /// Service latency (from the actual send time), milliseconds.
    pub service_latency_ms: Quantiles,
    /// Largest lag behind schedule, milliseconds.
    #[serde(default)]
    pub max_lag_ms: f64,
}

impl StatsSummary {
    /// Responses with exactly this status code.
    pub fn status_count(&self, code: u16) -> u64 {
        self.statuses.get(&code.to_string()).copied().unwrap_or(0)
    }

    /// Responses whose status code is in `class` hundreds (5 → 500..=599).
    pub fn status_class_count(&self, class: u8) -> u64 {
        let prefix = char::from(b'0' + class % 10);
        self.statuses
            .iter()
            .filter(|(code, _)| code.len() == 3 && code.starts_with(prefix))
            .map(|(_, count)| count)
            .sum()
    }

    /// Requests that got no response, all kinds together.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Latency quantiles in milliseconds; all zero when nothing was answered.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest value.
    pub max: f64,
}

impl Quantiles {
    /// Quantiles of a microsecond histogram, in milliseconds.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let at = |q: f64| us_to_ms(histogram.value_at_quantile(q));
        if histogram.is_empty() {
            return Self {
                p50: 0.0,
                p90: 0.0,
                p95: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Self {
            p50: at(0.5),
            p90: at(0.9),
            p95: at(0.95),
            p99: at(0.99),
            p999: at(0.999),
            max: us_to_ms(histogram.max()),
        }
    }
}

/// One closed 1-second window, emitted by the engine while the run goes on.
#[derive(Debug, Clone)]
pub struct Window {
    /// Index of the window: requests whose intended send time is in `[second, second + 1)` s
    /// after the start of the load (send time in `max` mode).
    pub second: u64,
    /// What was recorded for those requests.
    pub stats: Stats,
}

/// What one caller (one token holder, standing for one training job) saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallerStats {
    /// `caller-<slot>.<generation>`.
    pub label: String,
    /// Position in the caller pool.
    pub slot: u32,
    /// How many callers held this slot before this one.
    pub generation: u32,
    /// When the caller started, seconds after the start of the load.
    pub started_at_s: f64,
    /// When the caller was retired, if it was before the end of the load.
    pub ended_at_s: Option<f64>,
    /// Requests sent with this caller's token.
    pub requests: u64,
    /// Answered requests by status code.
    pub statuses: BTreeMap<String, u64>,
    /// Requests without an answer.
    pub errors: u64,
    /// Intended send time of the first request that failed (non-2xx or error), seconds.
    pub first_failure_s: Option<f64>,
    /// Intended send time of the last request that failed, seconds.
    pub last_failure_s: Option<f64>,
}

impl CallerStats {
    /// The label of a caller.
    pub fn label_for(slot: u32, generation: u32) -> String {
        format!("caller-{slot}.{generation}")
    }

    /// A caller that has sent nothing yet.
    pub fn new(slot: u32, generation: u32, started_at: Duration) -> Self {
        Self {
            label: Self::label_for(slot, generation),
            slot,
            generation,
            started_at_s: started_at.as_secs_f64(),
            ended_at_s: None,
            requests: 0,
            statuses: BTreeMap::new(),
            errors: 0,
            first_failure_s: None,
            last_failure_s: None,
        }
    }

    /// Whether this caller saw at least one failed request.
    pub fn saw_failures(&self) -> bool {
        self.first_failure_s.is_some() || self.errors > 0 || self.failed_responses() > 0
    }

    /// Responses with a status of 400 or more.
    pub fn failed_responses(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(code, _)| code.parse::<u16>().is_ok_and(|c| c >= 400))
            .map(|(_, count)| count)
            .sum()
    }

    /// Requests answered with a non-2xx status or failed without an answer.
    pub fn failures(&self) -> u64 {
        let ok: u64 = self
            .statuses
            .iter()
            .filter(|(code, _)| code.starts_with('2'))
            .map(|(_, n)| n)
            .sum();
        self.requests - ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_stats_have_no_quantiles() {
        let stats = Stats::new();
        assert_eq!(stats.quantile_ms(99.0, LatencyKind::Corrected), None);
        assert_eq!(stats.summary(1.0).latency_ms.p99, 0.0);
    }

    #[test]
    fn merge_adds_histograms_and_counters() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        for _ in 0..99 {
            a.record_response(200, Duration::from_millis(1), Duration::from_millis(1));
        }
        b.record_response(503, Duration::from_secs(2), Duration::from_millis(5));
        b.record_error(ErrorKind::Reset);
        b.dropped = 3;
        b.max_lag = Duration::from_millis(40);
        a.merge(&b);
        assert_eq!(a.requests, 101);
        assert_eq!(a.status_count(503), 1);
        assert_eq!(a.class_count(2), 99);
        assert_eq!(a.failed_count(), 2);
        assert_eq!(a.error_count(), 1);
        assert_eq!(a.dropped, 3);
        assert_eq!(a.max_lag, Duration::from_millis(40));
        let p50 = a
            .quantile_ms(50.0, LatencyKind::Corrected)
            .unwrap_or_default();
        let max = a
            .quantile_ms(100.0, LatencyKind::Corrected)
            .unwrap_or_default();
        assert!((p50 - 1.0).abs() < 0.01, "{p50}");
        assert!((max - 2000.0).abs() < 2.0, "{max}");
        let summary = a.summary(2.0);
        assert_eq!(summary.rps, 50.5);
        assert_eq!(summary.classes.get("5xx"), Some(&1));
        assert_eq!(summary.errors.get("reset"), Some(&1));
    }

    #[test]
    fn cleared_stats_are_empty() {
        let mut stats = Stats::new();
        stats.record_response(200, Duration::from_millis(3), Duration::from_millis(1));
        stats.record_error(ErrorKind::Timeout);
        stats.dropped = 2;
        stats.clear();
        assert_eq!(stats.requests, 0);
        assert!(stats.statuses.is_empty() && stats.errors.is_empty());
        assert_eq!(stats.dropped, 0);
        assert!(stats.corrected.is_empty() && stats.service.is_empty());
    }

    #[test]
    fn latencies_beyond_the_range_are_clamped_not_lost() {
        let mut stats = Stats::new();
        stats.record_response(200, Duration::from_secs(600), Duration::ZERO);
        assert_eq!(stats.corrected.len(), 1);
        assert_eq!(stats.service.len(), 1);
    }
}
