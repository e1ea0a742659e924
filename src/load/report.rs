//! Serialised output of `drillbook load`: the `--json` summary (schema committed as
//! `load.schema.json`) and the `--ndjson` window lines.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    AuthConfig, CallerStats, LoadConfig, LoadSummary, RateProfile, StatsSummary, TokenSource,
    Window,
};

/// Version of the `--json` format; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// The `--json` summary of a load run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "drillbook load summary")]
pub struct LoadReport {
    /// Version of this format.
    pub schema_version: u32,
    /// `drillbook <version>`.
    pub tool: String,
    /// Target URL.
    pub url: String,
    /// Request method.
    pub method: String,
    /// Rate profile.
    pub profile: ProfileReport,
    /// Number of connections.
    pub connections: usize,
    /// Request timeout, milliseconds.
    pub timeout_ms: f64,
    /// Lag beyond which requests were dropped, milliseconds.
    pub max_lag_ms: f64,
    /// Bearer authentication, if any (never the token itself).
    pub auth: Option<AuthReport>,
    /// Wall-clock time of the start of the load (RFC 3339).
    pub started: String,
    /// Span covered, seconds.
    pub duration_s: f64,
    /// Number of 1-second windows.
    pub windows: u64,
    /// Whether the run was cancelled before its end.
    pub cancelled: bool,
    /// Everything merged.
    pub total: StatsSummary,
    /// Per caller (token holder), in slot/generation order.
    pub callers: Vec<CallerStats>,
    /// Token fetches for replacement callers that failed.
    pub token_fetch_failures: u64,
}

/// The rate profile of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProfileReport {
    /// A constant rate.
    Constant {
        /// Requests per second.
        per_second: f64,
        /// Seconds.
        duration_s: f64,
    },
    /// Linear ramps.
    Stages {
        /// The stages in order.
        stages: Vec<StageReport>,
    },
    /// Closed loop.
    Max {
        /// Seconds.
        duration_s: f64,
    },
}

/// One stage of a ramp profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StageReport {
    /// Seconds.
    pub duration_s: f64,
    /// Rate reached at the end, per second.
    pub target_per_second: f64,
}

/// How requests were authenticated (names only, never tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuthReport {
    /// `env:<VAR>`, `file:<path>` or `url:<endpoint>`.
    pub source: String,
    /// Caller pool size.
    pub callers: usize,
    /// Caller lifetime, seconds.
    pub caller_lifetime_s: Option<f64>,
}

impl LoadReport {
    /// The report of a finished run.
    pub fn new(config: &LoadConfig, summary: &LoadSummary) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            tool: format!("drillbook {}", env!("CARGO_PKG_VERSION")),
            url: config.url.clone(),
            method: config.method.to_string(),
            profile: ProfileReport::of(&config.profile),
            connections: config.connections,
            timeout_ms: config.timeout.as_secs_f64() * 1000.0,
            max_lag_ms: config.max_lag.as_secs_f64() * 1000.0,
            auth: config.auth.as_ref().map(AuthReport::of),
            started: summary.started.to_string(),
            duration_s: summary.duration.as_secs_f64(),
            windows: summary.windows,
            cancelled: summary.cancelled,
            total: summary.summary(),
            callers: summary.callers.clone(),
            token_fetch_failures: summary.token_fetch_failures,
        }
    }
}

impl ProfileReport {
    fn of(profile: &RateProfile) -> Self {
        match profile {
            RateProfile::Constant {
                per_second,
                duration,
            } => ProfileReport::Constant {
                per_second: *per_second,
                duration_s: duration.as_secs_f64(),
            },
            RateProfile::Stages(stages) => ProfileReport::Stages {
                stages: stages
                    .iter()
                    .map(|s| StageReport {
                        duration_s: s.duration.as_secs_f64(),
                        target_per_second: s.target_per_second,
                    })
                    .collect(),
            },
            RateProfile::Max { duration } => ProfileReport::Max {
                duration_s: duration.as_secs_f64(),
            },
        }
    }
}

impl AuthReport {
    fn of(auth: &AuthConfig) -> Self {
        let source = match &auth.source {
            TokenSource::Env(var) => format!("env:{var}"),
            TokenSource::File(path) => format!("file:{}", path.display()),
            TokenSource::Url { url, .. } => format!("url:{url}"),
        };
        Self {
            source,
            callers: auth.callers,
            caller_lifetime_s: auth.caller_lifetime.map(|d| d.as_secs_f64()),
        }
    }
}

/// One `--ndjson` line: a closed window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WindowLine {
    /// Window index (seconds after the start, by intended send time).
    pub second: u64,
    /// What was recorded in it.
    #[serde(flatten)]
    pub stats: StatsSummary,
}

impl WindowLine {
    /// The line of a window.
    pub fn of(window: &Window) -> Self {
        Self {
            second: window.second,
            stats: window.stats.summary(1.0),
        }
    }
}

/// The JSON Schema of [`LoadReport`], as committed in `load.schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(LoadReport);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
