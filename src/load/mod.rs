//! Load engine: open-model HTTP load with HDR histograms per 1-second window (issue #3).
//!
//! Request *i* has an intended send time from the [`RateProfile`]; latency is recorded both
//! from that time (corrected, coordinated-omission safe) and from the actual send time
//! (service). A fixed pool of HTTP/1.1 keep-alive connections (one hyper `client::conn` each)
//! sends the requests. Every closed 1-second [`Window`] is emitted to the caller as soon as no
//! connection can add to it any more; the engine itself keeps only the running total and the
//! per-caller table, so memory does not grow with the length of the run.
//!
//! Used by the drill engine (scenario `load:`) and by `drillbook load` ([`cli`]).

mod auth;
mod conn;
mod engine;
mod exchange;
pub mod fleet;
mod h1;
mod profile;
pub mod report;
mod stats;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_util::sync::CancellationToken;

pub use auth::{AuthConfig, AuthError, Secret, TokenSource};
pub use engine::SATURATION_LAG;
pub use profile::{RateProfile, Stage};
pub use stats::{
    CallerStats, ErrorKind, HISTOGRAM_HIGH_US, HISTOGRAM_LOW_US, HISTOGRAM_SIGFIG, LatencyKind,
    Quantiles, Stats, StatsSummary, Window, new_histogram,
};

use auth::TokenManager;
use engine::{AggMsg, Aggregator, Shared};

/// Extra time granted after `duration + timeout` before workers are stopped forcibly.
const END_GRACE: Duration = Duration::from_millis(500);

/// What to load and how. Its `Debug` output names the headers but not their values (an
/// `Authorization` header may hold a token).
#[derive(Clone)]
pub struct LoadConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Request method.
    pub method: Method,
    /// Extra request headers (a bearer token from `auth` replaces any `Authorization`).
    pub headers: Vec<(String, String)>,
    /// Request body (empty for none).
    pub body: Bytes,
    /// Rate over time.
    pub profile: RateProfile,
    /// Number of connections (and workers).
    pub connections: usize,
    /// OS threads the connections are spread over, each with a single-threaded runtime.
    /// One is enough for tens of thousands of requests per second and leaves the other
    /// cores to the target (on a shared machine) and to the drill.
    pub threads: usize,
    /// Requests sent on one connection before it is closed and a new one opened; `None` keeps
    /// connections alive. Behind a Kubernetes Service, kube-proxy balances per connection, so
    /// only fresh connections show what callers that connect per call (training pods) see
    /// after a pod is replaced.
    pub requests_per_connection: Option<u64>,
    /// Time allowed per request, connecting included.
    pub timeout: Duration,
    /// A request later than this behind schedule is counted as dropped instead of sent.
    pub max_lag: Duration,
    /// Bearer tokens and the caller pool.
    pub auth: Option<AuthConfig>,
    /// Time zero of the run (the drill engine aligns its timeline with it). None = now.
    pub start_at: Option<Instant>,
    /// Hard cap on requests (safety bound); None = no cap beyond the profile.
    pub max_requests: Option<u64>,
    /// Extra CA certificates (PEM) trusted for https, besides the system trust store and
    /// the Mozilla roots: a staging service with an internal CA.
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for LoadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("LoadConfig")
            .field("url", &self.url)
            .field("method", &self.method)
            .field("headers", &header_names)
            .field("body_bytes", &self.body.len())
            .field("profile", &self.profile)
            .field("connections", &self.connections)
            .field("threads", &self.threads)
            .field("requests_per_connection", &self.requests_per_connection)
            .field("timeout", &self.timeout)
            .field("max_lag", &self.max_lag)
            .field("auth", &self.auth)
            .field("start_at", &self.start_at)
            .field("max_requests", &self.max_requests)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl LoadConfig {
    /// A GET load with the defaults of the scenario format (8 connections, 2 s timeout, 1 s
    /// max lag, no auth).
    pub fn new(url: impl Into<String>, profile: RateProfile) -> Self {
        Self {
            url: url.into(),
            method: Method::GET,
            headers: Vec::new(),
            body: Bytes::new(),
            profile,
            connections: 8,
            threads: 1,
            requests_per_connection: None,
            timeout: Duration::from_secs(2),
            max_lag: Duration::from_secs(1),
            auth: None,
            start_at: None,
            max_requests: None,
            ca_file: None,
        }
    }
}

/// The result of a run (complete, or partial when cancelled).
#[derive(Debug, Clone)]
pub struct LoadSummary {
    /// Every window merged.
    pub total: Stats,
    /// Span the load covered: the profile's duration, or less if cancelled.
    pub duration: Duration,
    /// Every caller that existed, in slot/generation order (empty without auth).
    pub callers: Vec<CallerStats>,
    /// Wall-clock time of time zero.
    pub started: jiff::Timestamp,
    /// Number of windows emitted.
    pub windows: u64,
    /// Whether the run was cancelled before its end.
    pub cancelled: bool,
    /// Token fetches for replacement callers that failed (the old caller then went on).
    pub token_fetch_failures: u64,
}

impl LoadSummary {
    /// The total as a serialisable summary.
    pub fn summary(&self) -> StatsSummary {
        self.total.summary(self.duration.as_secs_f64())
    }
}

/// Why a load could not run. Messages never contain a token.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The URL cannot be loaded.
    #[error("invalid load URL `{url}`: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A header name or value is not valid HTTP.
    #[error("invalid request header `{name}`")]
    Header {
        /// The header name.
        name: String,
    },
    /// The configuration is inconsistent.
    #[error("invalid load configuration: {0}")]
    Config(String),
    /// Tokens could not be obtained.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A task of the engine failed unexpectedly.
    #[error("load engine failure: {0}")]
    Internal(String),
}

/// Runs a load until its profile ends (or `cancel` fires) and returns what was measured.
/// Each closed 1-second window is also sent to `windows`, in order, as the run goes.
///
/// The run ends by `start + duration + timeout` (plus a short grace) at the latest, whatever
/// the target does; a cancelled run stops promptly and still returns its partial stats.
pub async fn run(
    config: LoadConfig,
    cancel: CancellationToken,
    windows: Option<tokio::sync::mpsc::UnboundedSender<Window>>,
) -> Result<LoadSummary, LoadError> {
    run_announcing(config, cancel, windows, CancellationToken::new()).await
}

/// [`run`], cancelling `started` once the load is set up (configuration checked, tokens
/// fetched) and about to send: a drill must not inject a fault before something measures it.
pub async fn run_announcing(
    config: LoadConfig,
    cancel: CancellationToken,
    windows: Option<tokio::sync::mpsc::UnboundedSender<Window>>,
    started: CancellationToken,
) -> Result<LoadSummary, LoadError> {
    let prepared = prepare(&config)?;
    let mut token_manager = match &config.auth {
        Some(auth) => Some(TokenManager::start(auth, config.timeout).await?),
        None => None,
    };
    started.cancel();
    // Without a given start, time zero comes after the token fetches.
    let zero = config.start_at.unwrap_or_else(Instant::now);
    if let Some(manager) = &mut token_manager {
        manager.begin(zero);
    }
    let started = wall_clock_of(zero);
    let duration = config.profile.duration();
    let schedule = config.profile.schedule();
    let cap = config.max_requests.unwrap_or(u64::MAX);
    let total = schedule.as_ref().map_or(cap, |s| s.total().min(cap));
    let connections = config.connections;
    tracing::debug!(
        url = %config.url,
        connections,
        duration_s = duration.as_secs_f64(),
        scheduled = schedule.as_ref().map(|s| s.total()),
        callers = config.auth.as_ref().map(|a| a.callers),
        "load starting"
    );

    let wire = h1::RequestTemplate::new(
        &config.method,
        &prepared.target.path,
        &prepared.headers,
        config.body.clone(),
        token_manager.is_some(),
    );
    let shared = Arc::new(Shared {
        target: prepared.target,
        method: config.method.clone(),
        headers: prepared.headers,
        body: config.body.clone(),
        wire,
        timeout: config.timeout,
        max_lag: config.max_lag,
        requests_per_connection: config.requests_per_connection,
        zero,
        end: zero + duration,
        schedule,
        total,
        next: AtomicU64::new(0),
        pool: token_manager.as_ref().map(TokenManager::pool),
    });

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let aggregator = tokio::spawn(Aggregator::new(connections, windows, config.max_lag).run(rx));

    let auth_stop = CancellationToken::new();
    let token_task = token_manager.map(|manager| {
        for event in manager.initial_events() {
            let _ = tx.send(AggMsg::Caller(event));
        }
        let events = tx.clone();
        tokio::spawn(manager.run(auth_stop.clone(), move |event| {
            let _ = events.send(AggMsg::Caller(event));
        }))
    });

    let stop = cancel.child_token();
    let mut workers =
        engine::WorkerThreads::spawn(config.threads, connections, &shared, &tx, &stop)
            .map_err(|e| LoadError::Internal(format!("cannot start a load thread: {e}")))?;
    drop(tx);

    let hard_deadline = zero + duration + config.timeout + END_GRACE;
    if timeout_at(hard_deadline, workers.join()).await.is_err() {
        tracing::warn!("load did not end on time; stopping its connections");
        stop.cancel();
        workers.join().await;
    }
    // An exhausted schedule (or a zero rate) still lasts the whole profile; a run that hit
    // its request cap ends now.
    let capped = match &shared.schedule {
        Some(schedule) => cap < schedule.total(),
        None => shared.next.load(std::sync::atomic::Ordering::Relaxed) >= cap,
    };
    if !capped {
        tokio::select! {
            () = cancel.cancelled() => {}
            () = sleep_until(shared.end) => {}
        }
    }
    let ended = Instant::now();
    let cancelled = cancel.is_cancelled() && ended < shared.end;

    auth_stop.cancel();
    let token_fetch_failures = match token_task {
        Some(task) => task
            .await
            .map(|manager| manager.fetch_failures)
            .map_err(|e| LoadError::Internal(format!("token manager: {e}")))?,
        None => 0,
    };
    let mut aggregator = aggregator
        .await
        .map_err(|e| LoadError::Internal(format!("aggregator: {e}")))?;

    let covered = if cancelled || capped {
        ended.saturating_duration_since(zero).min(duration)
    } else {
        duration
    };
    let window_count = covered.as_nanos().div_ceil(1_000_000_000);
    aggregator.finish(u64::try_from(window_count).unwrap_or(u64::MAX));
    let windows = aggregator.windows_emitted();
    tracing::debug!(
        requests = aggregator.total.requests,
        windows,
        cancelled,
        "load finished"
    );
    Ok(LoadSummary {
        total: aggregator.total,
        duration: covered,
        callers: aggregator.callers.into_values().collect(),
        started,
        windows,
        cancelled,
        token_fetch_failures,
    })
}

/// The parts of a config that can be wrong, checked before anything starts.
struct Prepared {
    target: conn::Target,
    headers: HeaderMap,
}

fn prepare(config: &LoadConfig) -> Result<Prepared, LoadError> {
    if config.requests_per_connection == Some(0) {
        return Err(LoadError::Config(
            "requests per connection must be at least 1".into(),
        ));
    }
    if config.connections == 0 {
        return Err(LoadError::Config("connections must be at least 1".into()));
    }
    if config.timeout.is_zero() {
        return Err(LoadError::Config(
            "the request timeout must be above 0".into(),
        ));
    }
    config.profile.validate().map_err(LoadError::Config)?;
    let target =
        conn::Target::parse_trusting(&config.url, config.ca_file.as_deref()).map_err(|reason| {
            LoadError::Url {
                url: conn::redact_url(&config.url),
                reason,
            }
        })?;
    let mut headers = HeaderMap::with_capacity(config.headers.len() + 1);
    for (name, value) in &config.headers {
        let invalid = || LoadError::Header { name: name.clone() };
        let header_name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| invalid())?;
        let mut header_value = HeaderValue::from_str(value.trim()).map_err(|_| invalid())?;
        // Credentials passed as plain headers get the same protection as bearer tokens.
        header_value.set_sensitive(matches!(
            header_name.as_str(),
            "authorization" | "proxy-authorization" | "cookie" | "x-api-key"
        ));
        headers.append(header_name, header_value);
    }
    headers
        .entry(http::header::HOST)
        .or_insert_with(|| target.host_header.clone());
    Ok(Prepared { target, headers })
}

/// The wall-clock time of a monotonic instant (which may be in the past or future).
fn wall_clock_of(at: Instant) -> jiff::Timestamp {
    let now_wall = jiff::Timestamp::now();
    let now = Instant::now();
    let shifted = if at >= now {
        jiff::SignedDuration::try_from(at - now)
            .ok()
            .and_then(|d| now_wall.checked_add(d).ok())
    } else {
        jiff::SignedDuration::try_from(now - at)
            .ok()
            .and_then(|d| now_wall.checked_sub(d).ok())
    };
    shifted.unwrap_or(now_wall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_header_values() {
        let mut config = LoadConfig::new(
            "http://127.0.0.1:1/",
            RateProfile::Max {
                duration: Duration::from_secs(1),
            },
        );
        config.headers = vec![("Authorization".into(), "Bearer hunter2".into())];
        let printed = format!("{config:?}");
        assert!(printed.contains("Authorization"));
        assert!(!printed.contains("hunter2"));
        let prepared = prepare(&config).unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{:?}", prepared.headers).contains("hunter2"));
    }

    #[test]
    fn invalid_configs_are_refused_before_running() {
        let profile = RateProfile::Constant {
            per_second: 1.0,
            duration: Duration::from_secs(1),
        };
        let mut config = LoadConfig::new("http://127.0.0.1:1/", profile);
        config.connections = 0;
        assert!(matches!(prepare(&config), Err(LoadError::Config(_))));
        config.connections = 1;
        config.headers = vec![("bad header".into(), "x".into())];
        assert!(matches!(prepare(&config), Err(LoadError::Header { .. })));
        config.headers.clear();
        config.url = "gopher://x/".into();
        assert!(matches!(prepare(&config), Err(LoadError::Url { .. })));
    }
}
