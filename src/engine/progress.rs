//! Progress events: what a running drill tells the operator. The engine prints nothing; each
//! event goes, typed, to the [`ProgressSink`] the caller passed (the terminal view matches on
//! it) and is logged through `tracing` with a message for structured logs.

use std::fmt;
use std::sync::Arc;

use crate::load::{LatencyKind, Window};

/// The tracing target progress events are logged under.
pub const PROGRESS_TARGET: &str = "drillbook::progress";

/// One thing a running drill has to say.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A line for the operator (target start-up, pre-flight, unwinding, load workers).
    Note(String),
    /// A line worth a warning (a load worker failed).
    Warning(String),
    /// Time zero: the load runs and the timeline starts.
    Started {
        seed: u64,
        /// When the first step is due (seconds from time zero), if it has an `at:`.
        next_at_s: Option<f64>,
    },
    /// A step begins.
    Step {
        number: usize,
        total: usize,
        name: String,
        /// The step's action in words.
        what: String,
        at_s: f64,
        /// Whether it changes the system (see [`super::drill::is_fault`]).
        fault: bool,
    },
    /// A step was applied.
    Applied {
        number: usize,
        total: usize,
        /// When the next step is due, if it has an `at:`.
        next_at_s: Option<f64>,
        /// What it hit (pods, processes), in words.
        hit: Vec<String>,
    },
    /// One second of load.
    Window(WindowProgress),
    /// The load is over, however it ended.
    LoadOver,
}

/// The numbers of one second of load that progress shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WindowProgress {
    pub second: u64,
    pub requests: u64,
    pub status_401: u64,
    pub status_5xx: u64,
    pub errors: u64,
    pub dropped: u64,
    pub p99_ms: Option<f64>,
}

impl WindowProgress {
    pub fn of(window: &Window) -> Self {
        let s = &window.stats;
        Self {
            second: window.second,
            requests: s.requests,
            status_401: s.status_count(401),
            status_5xx: s.class_count(5),
            errors: s.error_count(),
            dropped: s.dropped,
            p99_ms: s.quantile_ms(99.0, LatencyKind::Corrected),
        }
    }
}

/// The message of each event in a structured log.
impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Note(line) | Self::Warning(line) => f.write_str(line),
            Self::Started { seed, .. } => write!(f, "t+0s load started; seed {seed}"),
            Self::Step {
                name, what, at_s, ..
            } => write!(f, "t+{at_s:.1}s ▶ {name}: {what}"),
            Self::Applied { hit, .. } => write!(f, "          hit: {}", hit.join(", ")),
            Self::Window(w) => {
                let p99 = w.p99_ms.map_or("-".into(), |v| format!("{v:.0}ms"));
                write!(
                    f,
                    "t+{:>3}s  {} req  401: {}  5xx: {}  errors: {}  p99 {p99}",
                    w.second, w.requests, w.status_401, w.status_5xx, w.errors
                )?;
                if w.dropped > 0 {
                    write!(f, "  dropped: {}", w.dropped)?;
                }
                Ok(())
            }
            Self::LoadOver => f.write_str("the load is over"),
        }
    }
}

impl Progress {
    fn kind(&self) -> &'static str {
        match self {
            Self::Note(_) | Self::Warning(_) => "note",
            Self::Started { .. } => "start",
            Self::Step { .. } => "step",
            Self::Applied { .. } => "applied",
            Self::Window(_) => "window",
            Self::LoadOver => "load_over",
        }
    }

    /// Logs the event. Every second of load is a debug line and every other one an info
    /// line, so logs stay short.
    fn log(&self) {
        let kind = self.kind();
        match self {
            Self::Warning(_) => tracing::warn!(target: PROGRESS_TARGET, kind, "{self}"),
            Self::Window(w) if w.second % 2 == 0 => {
                tracing::debug!(target: PROGRESS_TARGET, kind, "{self}");
            }
            Self::LoadOver => tracing::debug!(target: PROGRESS_TARGET, kind, "{self}"),
            _ => tracing::info!(target: PROGRESS_TARGET, kind, "{self}"),
        }
    }
}

/// Where a drill's progress events go: the terminal view, or nowhere (tests, the lab).
#[derive(Clone)]
pub struct ProgressSink(Arc<dyn Fn(&Progress) + Send + Sync>);

impl ProgressSink {
    pub fn new(deliver: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        Self(Arc::new(deliver))
    }

    /// Logs `event` and hands it to the sink.
    pub fn emit(&self, event: &Progress) {
        event.log();
        (self.0)(event);
    }

    pub fn note(&self, line: String) {
        self.emit(&Progress::Note(line));
    }
}

impl Default for ProgressSink {
    fn default() -> Self {
        Self::new(|_| {})
    }
}

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressSink")
    }
}
