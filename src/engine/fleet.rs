//! Cluster load (issue #13), the engine's half: split the load over worker pods, read their
//! wire lines as the target relays them, merge each second's windows exactly (`load::wire`)
//! and feed the same window store, guards and reports as local load.
//!
//! A second is *settled* when every worker's window for it arrived, or when it is more than
//! [`LATE_AFTER`] old: a late or missing worker window is not waited for forever, and the
//! second is recorded as partial. Checks over a phase with partial seconds cannot pass
//! (see `judge`): the missing requests might have failed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::progress::{Progress, ProgressSink};
use super::windows::WindowStore;
use crate::load::fleet::{FleetError, FleetLayout, WORKER_BEARER_ENV, worker_args};
use crate::load::wire::{FleetMerger, FleetWindow, WireError, WorkerLine};
use crate::load::{CallerStats, LoadConfig, LoadSummary, Stats, Window};
use crate::report::model::{LoadWorkers, PartialSecond};
use crate::scenario::{ClusterLoadSpec, LoadSpec};
use crate::targets::fleet::{FleetEvent, FleetSpec, SecretEnv, WorkerEnd, WorkerResources};
use crate::units::HumanDuration;

/// A second is settled without its missing worker windows once it is this old.
pub const LATE_AFTER: Duration = Duration::from_secs(4);
/// Without a single window this long after time zero, the fleet is not measuring.
const FIRST_WINDOW_WITHIN: Duration = Duration::from_secs(15);
/// Workers end by their Job deadline: the load, the start allowance and this margin.
const DEADLINE_MARGIN: Duration = Duration::from_secs(30);
/// After a stop, how long stragglers' last lines are still read (the target reads the
/// terminating workers for about their grace period).
const DRAIN_AFTER_STOP: Duration = Duration::from_secs(6);

/// Why cluster load did not measure.
#[derive(Debug, thiserror::Error)]
pub enum FleetFailure {
    #[error(transparent)]
    Split(#[from] FleetError),
    #[error(
        "no load worker sent a window within {} of time zero ({states})",
        HumanDuration(*.waited)
    )]
    NoWindows { waited: Duration, states: String },
    #[error("every load worker ended without a window: {0}")]
    AllFailed(String),
}

/// The worker Jobs for `config`, split over `cluster.workers`.
pub fn fleet_spec(
    run_id: &str,
    spec: &LoadSpec,
    cluster: &ClusterLoadSpec,
    config: &LoadConfig,
    zero_unix_ms: i64,
    load_length: Duration,
) -> Result<FleetSpec, FleetError> {
    let layout = FleetLayout {
        workers: cluster.workers,
        zero_unix_ms,
    };
    let workers = (0..cluster.workers)
        .map(|index| worker_args(config, layout, index))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FleetSpec {
        name: format!("drillbook-load-{run_id}"),
        image: cluster.image.clone(),
        workers,
        resources: WorkerResources {
            cpu: cluster.cpu.clone(),
            memory: cluster.memory.clone(),
        },
        node_selector: cluster.node_selector.clone(),
        bearer_secret: spec
            .auth
            .as_ref()
            .and_then(|a| a.bearer_secret.as_ref())
            .map(|s| SecretEnv {
                env: WORKER_BEARER_ENV.into(),
                secret: s.name.clone(),
                key: s.key.clone(),
            }),
        deadline: cluster.start_within.0 + load_length + DEADLINE_MARGIN,
    })
}

/// What the fleet measured: the merged load and how much of it arrived.
#[derive(Debug)]
pub struct FleetRun {
    pub summary: LoadSummary,
    pub coverage: LoadWorkers,
}

/// Reads the fleet's events until every worker ended (or `stop`), settling windows into
/// `windows` as they complete. `started` is cancelled with the first settled window.
#[derive(Debug)]
pub struct FleetReader {
    pub workers: u32,
    pub t0: Instant,
    pub started_wall: jiff::Timestamp,
    pub load_length: Duration,
    pub windows: mpsc::UnboundedSender<Window>,
    pub store: Arc<Mutex<WindowStore>>,
    pub started: CancellationToken,
    pub stop: CancellationToken,
    /// Where worker notes go (waiting, failed).
    pub progress: ProgressSink,
}

/// Where one worker stands, for messages.
#[derive(Debug, Default)]
struct WorkerState {
    lines: u64,
    waiting: Option<String>,
    end: Option<WorkerEnd>,
    /// The last line that was not a wire line (a worker's own error message).
    said: Option<String>,
}

impl FleetReader {
    pub async fn run(
        self,
        mut events: mpsc::UnboundedReceiver<FleetEvent>,
    ) -> Result<FleetRun, FleetFailure> {
        let mut merger = FleetMerger::new(self.workers);
        let mut states: BTreeMap<u32, WorkerState> = (0..self.workers)
            .map(|w| (w, WorkerState::default()))
            .collect();
        let mut settled: BTreeMap<u64, u32> = BTreeMap::new();
        let mut total = Stats::new();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let hard_end = self.t0 + self.load_length + DEADLINE_MARGIN;
        let mut stopped_at: Option<Instant> = None;
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.take(event, &mut merger, &mut states),
                    None => break,
                },
                _ = tick.tick() => {}
                () = self.stop.cancelled(), if stopped_at.is_none() => {
                    stopped_at = Some(Instant::now());
                }
            }
            let now = Instant::now();
            let late_before = now
                .checked_sub(LATE_AFTER)
                .map_or(0, |t| t.saturating_duration_since(self.t0).as_secs());
            self.settle(merger.take_settled(late_before), &mut settled, &mut total);
            let all_ended =
                states.values().all(|s| s.end.is_some()) || merger.unfinished().is_empty();
            if all_ended
                || now >= hard_end
                || stopped_at.is_some_and(|t| now >= t + DRAIN_AFTER_STOP)
            {
                break;
            }
            if settled.is_empty()
                && now >= self.t0 + FIRST_WINDOW_WITHIN
                && !self.stop.is_cancelled()
            {
                return Err(FleetFailure::NoWindows {
                    waited: FIRST_WINDOW_WITHIN,
                    states: describe_states(&states),
                });
            }
        }
        self.settle(merger.take_all(), &mut settled, &mut total);
        if settled.is_empty() && !self.stop.is_cancelled() {
            return Err(FleetFailure::AllFailed(describe_states(&states)));
        }
        Ok(self.finish(&merger, &states, &settled, total))
    }

    fn take(
        &self,
        event: FleetEvent,
        merger: &mut FleetMerger,
        states: &mut BTreeMap<u32, WorkerState>,
    ) {
        match event {
            FleetEvent::Line { worker, line } => {
                let state = states.entry(worker).or_default();
                state.lines += 1;
                match WorkerLine::parse(&line).and_then(|l| merger.push(l)) {
                    Ok(()) => {}
                    Err(WireError::Json(_)) => {
                        // A worker's stderr shares the log: keep its last word for the report.
                        state.said = Some(line.chars().take(300).collect());
                    }
                    Err(e) => {
                        tracing::warn!(worker, error = %e, "unreadable window from load worker");
                    }
                }
            }
            FleetEvent::Waiting { worker, why } => {
                self.progress
                    .emit(&Progress::Note(format!("load worker {worker}: {why}")));
                states.entry(worker).or_default().waiting = Some(why);
            }
            FleetEvent::Ended { worker, end } => {
                if let WorkerEnd::Failed(why) = &end {
                    self.progress.emit(&Progress::Warning(format!(
                        "load worker {worker} failed: {why}"
                    )));
                }
                states.entry(worker).or_default().end = Some(end);
            }
        }
    }

    fn settle(
        &self,
        windows: Vec<FleetWindow>,
        settled: &mut BTreeMap<u64, u32>,
        total: &mut Stats,
    ) {
        for fleet_window in windows {
            let second = fleet_window.window.second;
            let reported = u32::try_from(fleet_window.reported.len()).unwrap_or(u32::MAX);
            settled.insert(second, reported);
            if !fleet_window.complete()
                && let Ok(mut store) = self.store.lock()
            {
                store.mark_partial(second, reported, self.workers);
            }
            total.merge(&fleet_window.window.stats);
            // The receiver is gone only when the drill no longer reads windows.
            let _ = self.windows.send(fleet_window.window);
            self.started.cancel();
        }
    }

    fn finish(
        &self,
        merger: &FleetMerger,
        states: &BTreeMap<u32, WorkerState>,
        settled: &BTreeMap<u64, u32>,
        total: Stats,
    ) -> FleetRun {
        let finals = merger.finals();
        let cancelled = self.stop.is_cancelled() || finals.values().any(|f| f.cancelled);
        // Seconds the load was meant to cover: all of it, or up to the stop.
        let expected = if cancelled {
            settled.keys().next_back().map_or(0, |last| last + 1)
        } else {
            self.load_length.as_secs_f64().ceil() as u64
        };
        let mut partial = Vec::new();
        let mut complete = 0;
        for second in 0..expected.max(settled.len() as u64) {
            match settled.get(&second).copied().unwrap_or(0) {
                reported if reported >= self.workers => complete += 1,
                reported => {
                    partial.push(PartialSecond {
                        second,
                        reported,
                        workers: self.workers,
                    });
                    if reported == 0
                        && let Ok(mut store) = self.store.lock()
                    {
                        store.mark_partial(second, 0, self.workers);
                    }
                }
            }
        }
        let mut callers: Vec<CallerStats> =
            finals.values().flat_map(|f| f.callers.clone()).collect();
        callers.sort_by_key(|c| (c.slot, c.generation));
        let problems = states
            .iter()
            .filter_map(|(worker, state)| {
                worker_problem(*worker, state, finals.contains_key(worker))
            })
            .collect();
        FleetRun {
            summary: LoadSummary {
                total,
                duration: if cancelled {
                    Duration::from_secs(expected)
                } else {
                    self.load_length
                },
                callers,
                started: self.started_wall,
                windows: settled.len() as u64,
                cancelled,
                token_fetch_failures: finals.values().map(|f| f.token_fetch_failures).sum(),
            },
            coverage: LoadWorkers {
                workers: self.workers,
                seconds: expected.max(settled.len() as u64),
                complete_seconds: complete,
                partial,
                problems,
            },
        }
    }
}

/// What went wrong with one worker, in words; `None` when it sent all it had to.
fn worker_problem(worker: u32, state: &WorkerState, sent_final: bool) -> Option<String> {
    if sent_final && matches!(state.end, None | Some(WorkerEnd::Succeeded)) {
        return None;
    }
    let how = match (&state.end, &state.waiting) {
        (Some(end), _) => end.to_string(),
        (None, Some(waiting)) if state.lines == 0 => format!("never started ({waiting})"),
        (None, None) if state.lines == 0 => "has not started".into(),
        (None, _) => "sent no final line".into(),
    };
    let said = state
        .said
        .as_ref()
        .map(|s| format!("; last said: {s}"))
        .unwrap_or_default();
    Some(format!("worker {worker} {how}{said}"))
}

fn describe_states(states: &BTreeMap<u32, WorkerState>) -> String {
    let described: BTreeSet<String> = states
        .iter()
        .map(|(worker, state)| {
            worker_problem(*worker, state, false)
                .unwrap_or_else(|| format!("worker {worker} finished"))
        })
        .collect();
    described.into_iter().collect::<Vec<_>>().join("; ")
}
