//! The report model: everything a finished drill produced, serialized as `report.json`.
//!
//! This is a contract with other tools (CI dashboards, the committed `report.schema.json`):
//! adding an optional field is fine, renaming or removing one needs a new [`SCHEMA_VERSION`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::exit::Outcome;

/// Load statistics are defined by the load engine; reports embed them as they are.
pub use crate::load::{CallerStats, Quantiles, StatsSummary};

/// Version of the `report.json` format written by this build.
pub const SCHEMA_VERSION: u32 = 1;

/// One finished (or interrupted) drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "drillbook report v1")]
pub struct Report {
    /// Always [`SCHEMA_VERSION`] for reports written by this build.
    pub schema_version: u32,
    /// `drillbook` version that ran the drill.
    pub drillbook_version: String,
    /// Short random identifier of this run (8 hex characters), also written to the drill log.
    pub run_id: String,
    /// The scenario that was run.
    pub scenario: ScenarioInfo,
    /// Where it ran. Never contains credentials.
    pub target: TargetInfo,
    /// When the drill started (UTC, RFC 3339).
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub started_at: jiff::Timestamp,
    /// When the drill ended, undos included (UTC, RFC 3339).
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub ended_at: jiff::Timestamp,
    /// Seed of every random choice; pass it again to replay the same choices.
    pub seed: u64,
    /// Who ran the drill, when known.
    #[serde(default)]
    pub operator: Option<String>,
    /// Overall verdict.
    pub verdict: Verdict,
    /// Why the verdict is what it is, in one sentence.
    pub verdict_reason: String,
    /// The drill's named windows, in time order.
    #[serde(default)]
    pub phases: Vec<PhaseReport>,
    /// Everything that happened, in time order.
    #[serde(default)]
    pub events: Vec<TimelineEvent>,
    /// Per-second load measurements.
    #[serde(default)]
    pub series: Vec<SeriesPoint>,
    /// Every check with what was measured.
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// Per-caller statistics from the load engine.
    #[serde(default)]
    pub callers: Vec<CallerStats>,
    /// Load summary over the whole run; absent when no load was driven.
    #[serde(default)]
    pub load: Option<StatsSummary>,
    /// Pre-flight results, in the order they ran.
    #[serde(default)]
    pub preflight: Vec<PreflightResult>,
    /// Things the operator should know that did not change the verdict.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Cluster load: the workers and how much of their data arrived; absent for local load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_workers: Option<LoadWorkers>,
    /// The command that replays this drill's choices (same file, seed, `--var`s, context), as
    /// argv.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replay: Vec<String>,
    /// The target's pods (or local processes) every second: how many, ready, restarts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodSample>,
    /// Each sampled `prometheus` check's readings, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prometheus: Vec<PrometheusSamples>,
    /// Further per-second counts a step or tool measured (a fault proxy's injected faults),
    /// drawn by the HTML report as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<Track>,
    /// The Alertmanager silence the drill kept (scenario `silence:`); absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence: Option<SilenceReport>,
}

/// The drill's Alertmanager silence: what it silenced, what it kept audible, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SilenceReport {
    pub alertmanager: String,
    /// Alertmanager's id of the silence.
    pub id: String,
    /// The matchers as sent, e.g. `namespace="tracebloc"`, `alertname!~"LabProxyDown"`.
    pub silenced: Vec<String>,
    /// The alerts the drill expects to fire, excluded from the silence.
    pub kept_audible: Vec<String>,
    /// When the silence expires by itself if it is not removed (UTC, RFC 3339).
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub expires_at: jiff::Timestamp,
    /// The comment, naming the drill and the run.
    pub comment: String,
}

/// One alert an `alerts` check expected to fire: when it fired and resolved, and whether it
/// reached Alertmanager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertTiming {
    pub alert: String,
    /// Seconds from the check's `after` to the first firing sample (time to detect).
    #[serde(default)]
    pub detect_s: Option<f64>,
    /// Seconds from `recovered` until it stopped firing (time to resolve); 0 when it had
    /// already stopped.
    #[serde(default)]
    pub resolve_s: Option<f64>,
    /// Whether Alertmanager held it during the drill; absent without `alertmanager`.
    #[serde(default)]
    pub reached_alertmanager: Option<bool>,
    /// The receivers Alertmanager routed it to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<String>,
}

/// The target's pods (or local processes) at one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PodSample {
    /// Seconds since the drill started.
    pub t_s: u64,
    /// Pods (processes) that exist and are not being deleted.
    pub pods: u32,
    /// Of those, the ready ones.
    pub ready: u32,
    /// Container (process) restarts since the drill started.
    pub restarts: u32,
}

/// The readings of one sampled `prometheus` check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PrometheusSamples {
    /// The check's name.
    pub check: String,
    /// Each reading in order: its value, or why there was none.
    pub samples: Vec<PrometheusReading>,
}

/// One Prometheus reading: a value or the reason there was none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PrometheusReading {
    /// The value read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Why nothing was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A named per-second count (a fault proxy's injected faults, say).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Track {
    /// What is counted (`http_fault proxy: faults injected`).
    pub name: String,
    /// `[seconds since the start, value]` pairs in time order.
    pub points: Vec<[f64; 2]>,
}

/// Where something was written in the scenario file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SourceLocation {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// The load workers of a cluster load and the coverage of their data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoadWorkers {
    /// Worker pods in the fleet.
    pub workers: u32,
    /// Seconds the load covered.
    pub seconds: u64,
    /// Seconds with every worker's window.
    pub complete_seconds: u64,
    /// Seconds with a worker's window missing: checks over them cannot pass.
    #[serde(default)]
    pub partial: Vec<PartialSecond>,
    /// Workers that failed, never started or went silent, in words.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// A second of cluster load for which not every worker's window arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PartialSecond {
    /// Seconds after time zero.
    pub second: u64,
    /// Workers whose window arrived.
    pub reported: u32,
    /// Workers in the fleet.
    pub workers: u32,
}

/// The scenario a report belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioInfo {
    /// The scenario's `name`.
    pub name: String,
    /// Path of the scenario file as given on the command line.
    pub file: String,
    /// The scenario's `description`.
    #[serde(default)]
    pub description: String,
    /// `git rev-parse HEAD` of the repository holding the file, when it is in one.
    #[serde(default)]
    pub git_revision: Option<String>,
    /// `sha256:<hex>` of the scenario file as read: runs of an edited scenario differ here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// Requests per second the scenario's load asked for (a constant `rate`); absent for
    /// `max`, stages and drills without load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_rps: Option<f64>,
}

/// Where a drill ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TargetInfo {
    /// `kubernetes` or `local`.
    pub kind: String,
    /// kubeconfig context (Kubernetes targets).
    #[serde(default)]
    pub context: Option<String>,
    /// Namespace (Kubernetes targets).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// Overall verdict of a drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check passed.
    Pass,
    /// At least one check failed.
    Fail,
    /// No check failed, but at least one had no data to decide on.
    Inconclusive,
    /// Stopped by SIGINT/SIGTERM; undos ran.
    Interrupted,
    /// An abort guard tripped or the drill hit an error; undos ran.
    Aborted,
}

impl Verdict {
    /// The lowercase word used in JSON, tables and the drill log.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Interrupted => "interrupted",
            Verdict::Aborted => "aborted",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Verdict> for Outcome {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Pass => Outcome::Pass,
            Verdict::Fail => Outcome::Fail,
            Verdict::Inconclusive => Outcome::Inconclusive,
            Verdict::Aborted => Outcome::Aborted,
            Verdict::Interrupted => Outcome::Interrupted,
        }
    }
}

/// Verdict of one check or one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckVerdict {
    /// The condition held.
    Pass,
    /// The condition did not hold.
    Fail,
    /// There was no data to decide on (no requests, query error, server unreachable).
    Inconclusive,
}

impl CheckVerdict {
    /// The lowercase word used in JSON and tables.
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckVerdict::Pass => "pass",
            CheckVerdict::Fail => "fail",
            CheckVerdict::Inconclusive => "inconclusive",
        }
    }
}

impl std::fmt::Display for CheckVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One named window of the drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseReport {
    /// Phase name (`baseline`, `fault`, `recovery`, or the scenario's own).
    pub name: String,
    /// Start, in seconds since the drill started.
    pub start_s: f64,
    /// End, in seconds since the drill started.
    pub end_s: f64,
    /// Verdict of the checks judged in this phase.
    pub verdict: CheckVerdict,
    /// Load measured in this phase; absent when no load was driven.
    #[serde(default)]
    pub load: Option<StatsSummary>,
}

/// What kind of thing happened at a point of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A fault was injected.
    Fault,
    /// An undo ran.
    Undo,
    /// A non-fault step ran (wait, helm upgrade, command).
    Step,
    /// Something drillbook observed (pod ready again, job finished).
    Observation,
    /// An abort guard tripped.
    Guard,
    /// Informational.
    Note,
    /// Something went wrong.
    Error,
}

impl EventKind {
    /// The lowercase word used in JSON and tables.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Fault => "fault",
            EventKind::Undo => "undo",
            EventKind::Step => "step",
            EventKind::Observation => "observation",
            EventKind::Guard => "guard",
            EventKind::Note => "note",
            EventKind::Error => "error",
        }
    }
}

/// One entry of the drill's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimelineEvent {
    /// Seconds since the drill started.
    pub at_s: f64,
    /// What kind of event this is.
    pub kind: EventKind,
    /// Name of the scenario step that caused it, if any.
    #[serde(default)]
    pub step: Option<String>,
    /// What happened, for humans.
    pub description: String,
    /// What it hit: pod or process names.
    #[serde(default)]
    pub targets: Vec<String>,
    /// The undo registered for it, described for humans.
    #[serde(default)]
    pub undo: Option<String>,
    /// How it ended (`ok`, an error message, ...).
    #[serde(default)]
    pub outcome: Option<String>,
}

/// Load measured during one second of the drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SeriesPoint {
    /// Start of the window, in seconds since the drill started.
    pub t_s: f64,
    /// Requests completed in the window.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Responses with a 2xx or 3xx status.
    pub ok: u64,
    /// Responses with status 401.
    pub status_401: u64,
    /// Responses with status 403.
    pub status_403: u64,
    /// Responses with a 5xx status.
    pub status_5xx: u64,
    /// Requests that got no response (connect error, reset, timeout).
    pub errors: u64,
    /// Requests the open-model scheduler could not send in time.
    pub dropped: u64,
    /// Median latency, when there were responses.
    #[serde(default)]
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, when there were responses.
    #[serde(default)]
    pub p99_ms: Option<f64>,
    /// 95th percentile latency, when there were responses. `p50_ms`, `p95_ms` and `p99_ms`
    /// are measured from the intended send time (coordinated-omission corrected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    /// The same percentiles measured from the actual send time (service time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<PointLatency>,
    /// The load generator could not keep up during this window.
    pub saturated: bool,
}

/// Percentiles of one second's latency, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PointLatency {
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// One check with its measurement and verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckResult {
    /// Check name (the scenario's `name`, or its expression).
    pub name: String,
    /// Kind of check: `http`, `prometheus`, `kubernetes`, `command`, ...
    pub kind: String,
    /// Phase it was judged in; absent for whole-run checks.
    #[serde(default)]
    pub phase: Option<String>,
    /// The condition as written in the scenario.
    pub expression: String,
    /// Measured value, when numeric.
    #[serde(default)]
    pub measured: Option<f64>,
    /// Threshold, when numeric.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Measured value for humans, with its unit (`741 ms`, `0.3 %`).
    #[serde(default)]
    pub measured_text: Option<String>,
    /// Threshold for humans, with its unit.
    #[serde(default)]
    pub threshold_text: Option<String>,
    /// The check's verdict.
    pub verdict: CheckVerdict,
    /// Why, for humans.
    pub detail: String,
    /// Passed or failed within a small margin of the threshold: worth a look.
    #[serde(default)]
    pub near_threshold: bool,
    /// Measured and reported only (`dry_run: true`): it does not decide any verdict.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Where the check is written in the scenario file (CI annotations point there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<SourceLocation>,
    /// An `alerts` check's expected alerts: time to detect, time to resolve, Alertmanager.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertTiming>,
}

/// Result of one pre-flight check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PreflightResult {
    /// What was checked.
    pub name: String,
    /// How it went.
    pub status: PreflightStatus,
    /// Details for humans.
    pub detail: String,
}

/// Status of one pre-flight check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PreflightStatus {
    /// Fine.
    Ok,
    /// Suspicious, but not a reason to refuse.
    Warn,
    /// The drill was refused.
    Fail,
}

impl PreflightStatus {
    /// The lowercase word used in JSON and tables.
    pub const fn as_str(self) -> &'static str {
        match self {
            PreflightStatus::Ok => "ok",
            PreflightStatus::Warn => "warn",
            PreflightStatus::Fail => "fail",
        }
    }
}

impl Report {
    /// Wall-clock duration of the drill in seconds (0 when the clock went backwards).
    pub fn duration_s(&self) -> f64 {
        self.ended_at
            .duration_since(self.started_at)
            .as_secs_f64()
            .max(0.0)
    }

    /// How many checks have the given verdict.
    pub fn count_checks(&self, verdict: CheckVerdict) -> usize {
        self.checks.iter().filter(|c| c.verdict == verdict).count()
    }
}
