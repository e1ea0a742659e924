//! The wire format of load workers (issue #13): a worker (`drillbook load --worker-output`)
//! writes one NDJSON [`WorkerLine`] per closed 1-second window, then one final line. Windows
//! carry their HDR histograms serialised (V2 + deflate, base64), so the controller rebuilds
//! them exactly and merges the fleet with `Histogram::add`: percentiles are never averaged.
//!
//! Windows are keyed by their index after the fleet's shared time zero (`second`) and by the
//! wall-clock second it starts at (`wall_s`), so windows of different workers line up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use super::stats::{CallerStats, ErrorKind, Stats, Window};

/// Why a worker line could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The line is not a worker line.
    #[error("not a worker line: {0}")]
    Json(#[from] serde_json::Error),
    /// A histogram could not be serialised.
    #[error("cannot serialise a histogram: {0:?}")]
    Serialize(hdrhistogram::serialization::V2DeflateSerializeError),
    /// A histogram field is not base64.
    #[error("histogram field is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// A histogram field does not hold a V2 histogram.
    #[error("cannot read a histogram: {0:?}")]
    Deserialize(hdrhistogram::serialization::DeserializeError),
    /// The histogram was read but cannot be added to the engine's histograms.
    #[error("histogram bounds differ from the engine's: {0:?}")]
    Bounds(hdrhistogram::AdditionError),
}

/// One line of a worker's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerLine {
    /// A closed window.
    Window(WireWindow),
    /// The end of the worker's load (always the last line of a worker that ended normally).
    Final(WireFinal),
}

/// A closed window as a worker sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireWindow {
    /// Which worker of the fleet sent it.
    pub worker: u32,
    /// Window index after the fleet's time zero.
    pub second: u64,
    /// Unix second the window starts at (time zero + `second`).
    pub wall_s: i64,
    /// Requests sent.
    pub requests: u64,
    /// Answered requests by status code, as pairs (the line's tag buffers it, and buffered
    /// JSON maps cannot have number keys).
    pub statuses: Vec<(u16, u64)>,
    /// Requests without an answer, by kind, as pairs.
    pub errors: Vec<(ErrorKind, u64)>,
    /// Requests dropped behind schedule.
    pub dropped: u64,
    /// Whether the worker could not keep up in this window.
    pub saturated: bool,
    /// Largest lag seen, microseconds.
    pub max_lag_us: u64,
    /// Corrected latency histogram: V2 deflate, base64.
    pub corrected: String,
    /// Service latency histogram: V2 deflate, base64.
    pub service: String,
}

/// The last line of a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireFinal {
    /// Which worker of the fleet sent it.
    pub worker: u32,
    /// Windows the worker emitted.
    pub windows: u64,
    /// Requests the worker sent in all.
    pub requests: u64,
    /// Whether the worker's load was cut short.
    pub cancelled: bool,
    /// The worker's callers (their slots are already the fleet's slots).
    pub callers: Vec<CallerStats>,
    /// Token fetches for replacement callers that failed.
    pub token_fetch_failures: u64,
}

impl WorkerLine {
    /// The line of a closed window of `worker`; `zero_unix_s` is the fleet's time zero.
    pub fn window(worker: u32, zero_unix_s: i64, window: &Window) -> Result<Self, WireError> {
        let stats = &window.stats;
        Ok(WorkerLine::Window(WireWindow {
            worker,
            second: window.second,
            wall_s: zero_unix_s.saturating_add(i64::try_from(window.second).unwrap_or(i64::MAX)),
            requests: stats.requests,
            statuses: stats.statuses.iter().map(|(k, n)| (*k, *n)).collect(),
            errors: stats.errors.iter().map(|(k, n)| (*k, *n)).collect(),
            dropped: stats.dropped,
            saturated: stats.saturated_windows > 0,
            max_lag_us: u64::try_from(stats.max_lag.as_micros()).unwrap_or(u64::MAX),
            corrected: encode_histogram(&stats.corrected)?,
            service: encode_histogram(&stats.service)?,
        }))
    }

    /// The line as one JSON text without a newline.
    pub fn to_json(&self) -> Result<String, WireError> {
        Ok(serde_json::to_string(self)?)
    }

    /// Reads one line.
    pub fn parse(line: &str) -> Result<Self, WireError> {
        Ok(serde_json::from_str(line.trim())?)
    }
}

impl WireWindow {
    /// The window rebuilt, histograms included.
    pub fn to_window(&self) -> Result<Window, WireError> {
        let mut stats = Stats::new();
        stats.requests = self.requests;
        stats.statuses = self.statuses.iter().copied().collect();
        stats.errors = self.errors.iter().copied().collect();
        stats.dropped = self.dropped;
        stats.saturated_windows = u64::from(self.saturated);
        stats.max_lag = Duration::from_micros(self.max_lag_us);
        // Added into the engine's own histograms, so merged windows keep the shared bounds.
        stats
            .corrected
            .add(decode_histogram(&self.corrected)?)
            .map_err(WireError::Bounds)?;
        stats
            .service
            .add(decode_histogram(&self.service)?)
            .map_err(WireError::Bounds)?;
        Ok(Window {
            second: self.second,
            stats,
        })
    }
}

fn encode_histogram(histogram: &Histogram<u64>) -> Result<String, WireError> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .map_err(WireError::Serialize)?;
    Ok(STANDARD.encode(bytes))
}

fn decode_histogram(text: &str) -> Result<Histogram<u64>, WireError> {
    let bytes = STANDARD.decode(text)?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(WireError::Deserialize)
}

/// A window of the fleet: every worker's window of that second added together.
#[derive(Debug, Clone)]
pub struct FleetWindow {
    /// The merged window.
    pub window: Window,
    /// Workers whose window for this second arrived.
    pub reported: BTreeSet<u32>,
    /// Workers in the fleet.
    pub workers: u32,
}

impl FleetWindow {
    /// Whether every worker's window arrived (a partial window must not let a check pass).
    pub fn complete(&self) -> bool {
        self.reported.len() == self.workers as usize
    }
}

/// Rebuilds the fleet's windows from the workers' lines, in any order.
#[derive(Debug)]
pub struct FleetMerger {
    workers: u32,
    pending: BTreeMap<u64, FleetWindow>,
    finals: BTreeMap<u32, WireFinal>,
}

impl FleetMerger {
    /// A merger for `workers` workers (numbered `0..workers`).
    pub fn new(workers: u32) -> Self {
        Self {
            workers,
            pending: BTreeMap::new(),
            finals: BTreeMap::new(),
        }
    }

    /// Takes one line of a worker's output. A second copy of a worker's window (a log
    /// re-read after a reconnect) is ignored, so nothing is counted twice.
    pub fn push(&mut self, line: WorkerLine) -> Result<(), WireError> {
        match line {
            WorkerLine::Window(wire) => {
                let window = wire.to_window()?;
                let workers = self.workers;
                let entry = self
                    .pending
                    .entry(wire.second)
                    .or_insert_with(|| FleetWindow {
                        window: Window {
                            second: wire.second,
                            stats: Stats::new(),
                        },
                        reported: BTreeSet::new(),
                        workers,
                    });
                if entry.reported.insert(wire.worker) {
                    entry.window.stats.merge(&window.stats);
                }
            }
            WorkerLine::Final(last) => {
                self.finals.insert(last.worker, last);
            }
        }
        Ok(())
    }

    /// The windows before `second` (those no on-time worker can add to any more), in order.
    pub fn take_before(&mut self, second: u64) -> Vec<FleetWindow> {
        let later = self.pending.split_off(&second);
        let ready = std::mem::replace(&mut self.pending, later);
        ready.into_values().collect()
    }

    /// The oldest held windows that are settled, in order: complete (every worker's part
    /// arrived) or older than `late_before` (a late part is not waited for any longer; the
    /// window goes on partial and says so). Stops at the first unsettled window, so windows
    /// leave in second order.
    pub fn take_settled(&mut self, late_before: u64) -> Vec<FleetWindow> {
        let mut settled = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if !(entry.get().complete() || *entry.key() < late_before) {
                break;
            }
            settled.push(entry.remove());
        }
        settled
    }

    /// Every window still held, in order (at the end of the load).
    pub fn take_all(&mut self) -> Vec<FleetWindow> {
        self.take_before(u64::MAX)
    }

    /// The final lines received so far, by worker.
    pub fn finals(&self) -> &BTreeMap<u32, WireFinal> {
        &self.finals
    }

    /// Workers that have not sent their final line.
    pub fn unfinished(&self) -> Vec<u32> {
        (0..self.workers)
            .filter(|w| !self.finals.contains_key(w))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::LatencyKind;

    /// A spread of latencies, some of them far in the tail.
    fn samples() -> Vec<(u16, Duration)> {
        (0..5000u64)
            .map(|i| {
                let us = 200 + (i * 7919) % 50_000 + if i % 97 == 0 { 900_000 } else { 0 };
                let status = if i % 13 == 0 { 503 } else { 200 };
                (status, Duration::from_micros(us))
            })
            .collect()
    }

    fn window_of(second: u64, samples: &[(u16, Duration)]) -> Window {
        let mut stats = Stats::new();
        for (status, latency) in samples {
            stats.record_response(*status, *latency, *latency / 2);
        }
        Window { second, stats }
    }

    fn roundtrip(worker: u32, window: &Window) -> WorkerLine {
        let line = WorkerLine::window(worker, 1_700_000_000, window)
            .and_then(|l| l.to_json())
            .unwrap_or_else(|e| panic!("{e}"));
        WorkerLine::parse(&line).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn merged_percentiles_equal_one_process_on_the_same_samples() {
        let all = samples();
        let single = window_of(3, &all);
        // Split unevenly over three workers, as the fleet's rate split would.
        let parts = [&all[..1000], &all[1000..3500], &all[3500..]];
        let mut merger = FleetMerger::new(3);
        for (worker, part) in parts.iter().enumerate() {
            let worker = u32::try_from(worker).unwrap_or(0);
            merger
                .push(roundtrip(worker, &window_of(3, part)))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let merged = merger.take_all();
        assert_eq!(merged.len(), 1);
        assert!(merged[0].complete());
        let merged = &merged[0].window.stats;
        assert_eq!(merged.requests, single.stats.requests);
        assert_eq!(merged.statuses, single.stats.statuses);
        for kind in [LatencyKind::Corrected, LatencyKind::Service] {
            assert_eq!(merged.histogram(kind), single.stats.histogram(kind));
            for p in [50.0, 90.0, 95.0, 99.0, 99.9, 100.0] {
                assert_eq!(
                    merged.quantile_ms(p, kind),
                    single.stats.quantile_ms(p, kind)
                );
            }
        }
    }

    #[test]
    fn missing_workers_and_duplicates_are_visible_not_counted() {
        let all = samples();
        let mut merger = FleetMerger::new(2);
        let line = roundtrip(0, &window_of(0, &all[..10]));
        merger.push(line.clone()).unwrap_or_else(|e| panic!("{e}"));
        merger.push(line).unwrap_or_else(|e| panic!("{e}"));
        merger
            .push(roundtrip(1, &window_of(1, &all[..5])))
            .unwrap_or_else(|e| panic!("{e}"));
        let first = merger.take_before(1);
        assert_eq!(first.len(), 1);
        assert!(!first[0].complete());
        assert_eq!(first[0].window.stats.requests, 10);
        assert_eq!(merger.unfinished(), vec![0, 1]);
        assert_eq!(merger.take_all().len(), 1);
    }

    #[test]
    fn settled_windows_leave_in_order_and_late_ones_go_partial() {
        let all = samples();
        let mut merger = FleetMerger::new(2);
        for (worker, second) in [(0, 0), (1, 0), (0, 1), (0, 2), (1, 2)] {
            merger
                .push(roundtrip(worker, &window_of(second, &all[..4])))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // Second 1 waits for worker 1, and second 2 (complete) waits behind it.
        let first = merger.take_settled(0);
        assert_eq!(
            first.iter().map(|w| w.window.second).collect::<Vec<_>>(),
            [0]
        );
        assert!(merger.take_settled(1).is_empty());
        let rest = merger.take_settled(2);
        assert_eq!(
            rest.iter()
                .map(|w| (w.window.second, w.complete()))
                .collect::<Vec<_>>(),
            [(1, false), (2, true)]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_window() {
        assert!(WorkerLine::parse("load starting").is_err());
        let mut line = roundtrip(0, &window_of(0, &samples()[..3]));
        if let WorkerLine::Window(w) = &mut line {
            w.corrected = "!!".into();
        }
        assert!(FleetMerger::new(1).push(line).is_err());
    }
}
