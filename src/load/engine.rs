//! The run loop: one task per connection takes request indices from a shared counter, waits
//! for each request's intended send time and records into a per-worker accumulator; once a
//! second the accumulator is flushed to the aggregator, which closes windows in order, adds
//! them into the running total and emits them. Nothing per request is kept.

use std::collections::BTreeMap;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::Full;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_util::sync::CancellationToken;

use super::auth::{CallerEvent, CallerPool, CallerView};
use super::conn::{Connection, Target};
use super::exchange::{Exchange, Failure};
use super::h1::RequestTemplate;
use super::profile::Schedule;
use super::stats::{CallerStats, ErrorKind, Stats, Window};
use crate::units::HumanDuration;

/// A window whose worst lag reaches this is flagged saturated (unless `max_lag` is smaller):
/// the timer's own jitter stays well below it, a generator or target that cannot keep up
/// does not.
pub const SATURATION_LAG: Duration = Duration::from_millis(50);

/// First and largest pause between failed connection attempts of one worker, so that a dead
/// port does not spin a core.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(100);

/// What one worker recorded in one window, in a compact form: counters plus only the
/// non-empty histogram buckets. The worker keeps its own two histograms for the whole run and
/// clears them after each flush, so no histogram is allocated per window per worker and the
/// memory in use stays flat however long the run.
#[derive(Debug, Default)]
pub(crate) struct WindowPart {
    requests: u64,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<ErrorKind, u64>,
    dropped: u64,
    max_lag: Duration,
    /// `(value, count)` of each non-empty bucket, microseconds.
    corrected: Vec<(u64, u64)>,
    service: Vec<(u64, u64)>,
}

impl WindowPart {
    /// Moves what `stats` holds into a part and leaves `stats` empty.
    pub(crate) fn drain(stats: &mut Stats) -> Self {
        let part = Self {
            requests: stats.requests,
            statuses: mem::take(&mut stats.statuses),
            errors: mem::take(&mut stats.errors),
            dropped: stats.dropped,
            max_lag: stats.max_lag,
            corrected: buckets(&stats.corrected),
            service: buckets(&stats.service),
        };
        if part.requests > 0 {
            stats.clear();
        } else {
            stats.dropped = 0;
            stats.max_lag = Duration::ZERO;
        }
        part
    }

    fn has_data(&self) -> bool {
        self.requests > 0 || self.dropped > 0
    }

    /// Adds the part into window stats; bucket values map back to the same buckets, so the
    /// result is exactly what recording every request there would have given.
    fn add_to(&self, stats: &mut Stats) {
        stats.requests += self.requests;
        for (code, n) in &self.statuses {
            *stats.statuses.entry(*code).or_insert(0) += n;
        }
        for (kind, n) in &self.errors {
            *stats.errors.entry(*kind).or_insert(0) += n;
        }
        stats.dropped += self.dropped;
        stats.max_lag = stats.max_lag.max(self.max_lag);
        for &(value, count) in &self.corrected {
            stats.corrected.saturating_record_n(value, count);
        }
        for &(value, count) in &self.service {
            stats.service.saturating_record_n(value, count);
        }
    }
}

fn buckets(histogram: &hdrhistogram::Histogram<u64>) -> Vec<(u64, u64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    histogram
        .iter_recorded()
        .map(|bucket| (bucket.value_iterated_to(), bucket.count_at_value()))
        .collect()
}

/// What every worker shares (read-only apart from the request counter).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) target: Target,
    pub(crate) method: Method,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// The same request serialised once, for the lean http path.
    pub(crate) wire: RequestTemplate,
    pub(crate) timeout: Duration,
    pub(crate) max_lag: Duration,
    /// Close a connection after this many requests (`None`: keep it alive).
    pub(crate) requests_per_connection: Option<u64>,
    /// Time zero of the load.
    pub(crate) zero: Instant,
    /// End of the load (zero + profile duration).
    pub(crate) end: Instant,
    /// `None` in closed-loop mode.
    pub(crate) schedule: Option<Schedule>,
    /// Requests to take from the counter (schedule length and/or the safety cap).
    pub(crate) total: u64,
    pub(crate) next: AtomicU64,
    pub(crate) pool: Option<Arc<CallerPool>>,
}

impl Shared {
    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.target.path.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Messages to the aggregator.
#[derive(Debug)]
pub(crate) enum AggMsg {
    /// A worker is done with window `second`; its next request is in window `next`
    /// (`u64::MAX` when the worker stopped).
    Flush {
        worker: usize,
        second: u64,
        next: u64,
        part: WindowPart,
        callers: Vec<CallerDelta>,
    },
    /// A caller started or ended.
    Caller(CallerEvent),
}

/// What one worker saw from one caller during one window.
#[derive(Debug)]
pub(crate) struct CallerDelta {
    slot: u32,
    generation: u32,
    requests: u64,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    first_failure: Option<Duration>,
    last_failure: Option<Duration>,
}

impl CallerDelta {
    fn new(slot: u32, generation: u32) -> Self {
        Self {
            slot,
            generation,
            requests: 0,
            statuses: BTreeMap::new(),
            errors: 0,
            first_failure: None,
            last_failure: None,
        }
    }
}

/// A worker's per-caller counters for the current window, indexed by slot.
#[derive(Debug, Default)]
struct CallerAcc {
    by_slot: Vec<Option<CallerDelta>>,
    /// Counters of callers replaced during the window.
    retired: Vec<CallerDelta>,
}

impl CallerAcc {
    fn record(&mut self, slot: u32, generation: u32, status: Option<u16>, intended: Duration) {
        let index = slot as usize;
        if self.by_slot.len() <= index {
            self.by_slot.resize_with(index + 1, || None);
        }
        let entry = &mut self.by_slot[index];
        if entry.as_ref().is_some_and(|d| d.generation != generation)
            && let Some(old) = entry.take()
        {
            self.retired.push(old);
        }
        let delta = entry.get_or_insert_with(|| CallerDelta::new(slot, generation));
        delta.requests += 1;
        match status {
            Some(code) => *delta.statuses.entry(code).or_insert(0) += 1,
            None => delta.errors += 1,
        }
        if !status.is_some_and(|code| (200..300).contains(&code)) {
            delta.first_failure.get_or_insert(intended);
            delta.last_failure = Some(intended);
        }
    }

    fn take(&mut self) -> Vec<CallerDelta> {
        let mut all = mem::take(&mut self.retired);
        all.extend(self.by_slot.iter_mut().filter_map(Option::take));
        all
    }
}

/// A worker's counters for the window it is in.
#[derive(Debug)]
struct Accumulator {
    worker: usize,
    second: u64,
    stats: Stats,
    callers: CallerAcc,
    tx: UnboundedSender<AggMsg>,
}

impl Accumulator {
    fn new(worker: usize, tx: UnboundedSender<AggMsg>) -> Self {
        Self {
            worker,
            second: 0,
            stats: Stats::new(),
            callers: CallerAcc::default(),
            tx,
        }
    }

    /// Moves to window `second`, flushing the previous one.
    fn enter(&mut self, second: u64) {
        if second != self.second {
            self.flush(second);
        }
    }

    fn flush(&mut self, next: u64) {
        let message = AggMsg::Flush {
            worker: self.worker,
            second: self.second,
            next,
            part: WindowPart::drain(&mut self.stats),
            callers: self.callers.take(),
        };
        // The aggregator outlives the workers; a send can only fail if it panicked.
        let _ = self.tx.send(message);
        self.second = next;
    }

    fn finish(mut self) {
        self.flush(u64::MAX);
    }
}

/// Pause between failed connection attempts: doubles from 5 ms to 100 ms, reset on success.
#[derive(Debug)]
struct Backoff {
    delay: Duration,
    not_before: Option<Instant>,
}

impl Backoff {
    fn new() -> Self {
        Self {
            delay: BACKOFF_MIN,
            not_before: None,
        }
    }

    async fn wait(&self) {
        if let Some(at) = self.not_before {
            sleep_until(at).await;
        }
    }

    fn failed(&mut self) {
        self.not_before = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
    }

    fn succeeded(&mut self) {
        self.delay = BACKOFF_MIN;
        self.not_before = None;
    }
}

/// The workers, spread over OS threads that each run a single-threaded runtime: a worker never
/// migrates or is woken from another thread (the multi-threaded scheduler's stealing and
/// cross-thread wake-ups cost a sixth of the engine's user time, `bench/README.md`). Windows
/// still go to the aggregator on the caller's runtime, once a second per worker.
pub(crate) struct WorkerThreads {
    done: Vec<tokio::sync::oneshot::Receiver<()>>,
}

impl WorkerThreads {
    /// Starts `connections` workers on `threads` threads (at least one, at most one per
    /// connection), worker `id` on thread `id % threads`.
    pub(crate) fn spawn(
        threads: usize,
        connections: usize,
        shared: &Arc<Shared>,
        tx: &UnboundedSender<AggMsg>,
        stop: &CancellationToken,
    ) -> std::io::Result<Self> {
        let threads = threads.clamp(1, connections.max(1));
        let mut done = Vec::with_capacity(threads);
        for thread in 0..threads {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let workers: Vec<_> = (thread..connections)
                .step_by(threads)
                .map(|id| worker(id, Arc::clone(shared), tx.clone(), stop.child_token()))
                .collect();
            let (finished, finished_rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name(format!("drillbook-load-{thread}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        let mut set = tokio::task::JoinSet::new();
                        for worker in workers {
                            set.spawn(worker);
                        }
                        while let Some(result) = set.join_next().await {
                            if let Err(error) = result {
                                tracing::error!(%error, "a load worker failed");
                            }
                        }
                    });
                    // The runtime (and its connections) is gone before the run is told.
                    drop(runtime);
                    let _ = finished.send(());
                })?;
            done.push(finished_rx);
        }
        Ok(Self { done })
    }

    /// Waits until every thread's workers have ended (cancel-safe: call again after a timeout).
    pub(crate) async fn join(&mut self) {
        while let Some(done) = self.done.last_mut() {
            // A thread that died without a word has ended too.
            let _ = done.await;
            self.done.pop();
        }
    }
}

/// One connection's worker: runs until the schedule is exhausted, the load ends or `stop`
/// fires, then flushes what it recorded.
pub(crate) async fn worker(
    id: usize,
    shared: Arc<Shared>,
    tx: UnboundedSender<AggMsg>,
    stop: CancellationToken,
) {
    let mut acc = Accumulator::new(id, tx);
    // Cancellation drops the loop mid-request; the accumulator survives it.
    tokio::select! {
        () = stop.cancelled() => {}
        () = worker_loop(&shared, &mut acc) => {}
    }
    acc.finish();
}

async fn worker_loop(shared: &Shared, acc: &mut Accumulator) {
    let mut connection: Option<Connection> = None;
    let mut sent_on_connection: u64 = 0;
    let mut backoff = Backoff::new();
    let mut callers = shared.pool.clone().map(CallerView::new);
    let mut failing = false;
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= shared.total {
            return;
        }
        let intended = match &shared.schedule {
            Some(schedule) => {
                let intended = shared.zero + schedule.offset(i);
                acc.enter(second_of(intended, shared.zero));
                // Behind schedule there is nothing to wait for: skip the timer.
                if intended > Instant::now() {
                    sleep_until(intended).await;
                }
                intended
            }
            None => {
                if connection.is_none() {
                    backoff.wait().await;
                }
                let now = Instant::now();
                if now >= shared.end {
                    return;
                }
                acc.enter(second_of(now, shared.zero));
                now
            }
        };
        if connection.is_none() {
            backoff.wait().await;
            sent_on_connection = 0;
        }
        let sent = Instant::now();
        let lag = sent.saturating_duration_since(intended);
        if lag > shared.max_lag {
            acc.stats.dropped += 1;
            acc.stats.max_lag = acc.stats.max_lag.max(lag);
            continue;
        }
        acc.stats.max_lag = acc.stats.max_lag.max(lag);

        let caller = callers.as_mut().and_then(|view| view.pick(i));
        let authorization = caller.map(|caller| &caller.authorization);
        let outcome = timeout_at(
            sent + shared.timeout,
            send(&mut connection, shared, authorization, &mut backoff),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Failure::new(
                ErrorKind::Timeout,
                format!("no answer within {}", HumanDuration(shared.timeout)),
            ))
        });
        let done = Instant::now();
        let status = match outcome {
            Ok(status) => {
                acc.stats.record_response(
                    status,
                    done.saturating_duration_since(intended),
                    done.saturating_duration_since(sent),
                );
                failing = false;
                sent_on_connection += 1;
                if shared
                    .requests_per_connection
                    .is_some_and(|limit| sent_on_connection >= limit)
                {
                    connection = None;
                }
                Some(status)
            }
            Err(failure) => {
                // The connection state is unknown after any failure: start afresh.
                connection = None;
                acc.stats.record_error(failure.kind);
                if !failing {
                    tracing::debug!(worker = acc.worker, kind = failure.kind.as_str(), detail = %failure.detail, "request failed");
                    failing = true;
                }
                None
            }
        };
        if let Some(caller) = caller {
            let offset = intended.saturating_duration_since(shared.zero);
            acc.callers
                .record(caller.slot, caller.generation, status, offset);
        }
    }
}

fn second_of(at: Instant, zero: Instant) -> u64 {
    at.saturating_duration_since(zero).as_secs()
}

/// Sends a request on the worker's connection, (re)connecting as needed. A request that a
/// stale keep-alive connection refused before writing it is retried once on a new connection.
async fn send(
    connection: &mut Option<Connection>,
    shared: &Shared,
    authorization: Option<&http::HeaderValue>,
    backoff: &mut Backoff,
) -> Result<u16, Failure> {
    for _attempt in 0..2 {
        let open = match connection {
            Some(open) if !open.is_closed() => open,
            _ => match shared.target.open().await {
                Ok(open) => {
                    backoff.succeeded();
                    connection.insert(open)
                }
                Err(failure) => {
                    backoff.failed();
                    *connection = None;
                    return Err(failure);
                }
            },
        };
        match open
            .exchange(&shared.wire, authorization, || shared.request())
            .await
        {
            Exchange::Answered { status, reusable } => {
                if !reusable {
                    *connection = None;
                }
                return Ok(status);
            }
            Exchange::NotSent => *connection = None,
            Exchange::Failed(failure) => {
                *connection = None;
                return Err(failure);
            }
        }
    }
    Err(Failure::new(
        ErrorKind::Reset,
        "the connection closed before the request could be written".to_string(),
    ))
}

/// Merges worker flushes into windows, closes them in order and keeps the running total and
/// the caller table.
#[derive(Debug)]
pub(crate) struct Aggregator {
    /// Per worker: the lowest window it may still write to.
    watermarks: Vec<u64>,
    open: BTreeMap<u64, Stats>,
    next_window: u64,
    pub(crate) total: Stats,
    pub(crate) callers: BTreeMap<(u32, u32), CallerStats>,
    windows: Option<UnboundedSender<Window>>,
    saturation_lag: Duration,
}

impl Aggregator {
    pub(crate) fn new(
        workers: usize,
        windows: Option<UnboundedSender<Window>>,
        max_lag: Duration,
    ) -> Self {
        Self {
            watermarks: vec![0; workers],
            open: BTreeMap::new(),
            next_window: 0,
            total: Stats::new(),
            callers: BTreeMap::new(),
            windows,
            saturation_lag: SATURATION_LAG.min(max_lag),
        }
    }

    /// Receives until every sender is gone.
    pub(crate) async fn run(mut self, mut rx: UnboundedReceiver<AggMsg>) -> Self {
        while let Some(message) = rx.recv().await {
            self.handle(message);
        }
        self
    }

    fn handle(&mut self, message: AggMsg) {
        match message {
            AggMsg::Flush {
                worker,
                second,
                next,
                part,
                callers,
            } => {
                if part.has_data() {
                    part.add_to(self.open.entry(second).or_default());
                }
                for delta in callers {
                    self.add_caller_delta(delta);
                }
                if let Some(mark) = self.watermarks.get_mut(worker) {
                    *mark = next;
                }
                let lowest = self.watermarks.iter().copied().min().unwrap_or(u64::MAX);
                if lowest == u64::MAX {
                    // Every worker stopped: close what holds data; `finish` does the rest.
                    self.close_below(self.open.keys().next_back().map_or(0, |k| k + 1));
                } else {
                    self.close_below(lowest);
                }
            }
            AggMsg::Caller(CallerEvent::Started {
                slot,
                generation,
                at,
            }) => {
                self.callers
                    .insert((slot, generation), CallerStats::new(slot, generation, at));
            }
            AggMsg::Caller(CallerEvent::Ended {
                slot,
                generation,
                at,
            }) => {
                if let Some(caller) = self.callers.get_mut(&(slot, generation)) {
                    caller.ended_at_s = Some(at.as_secs_f64());
                }
            }
        }
    }

    fn add_caller_delta(&mut self, delta: CallerDelta) {
        let caller = self
            .callers
            .entry((delta.slot, delta.generation))
            .or_insert_with(|| CallerStats::new(delta.slot, delta.generation, Duration::ZERO));
        caller.requests += delta.requests;
        caller.errors += delta.errors;
        for (code, n) in delta.statuses {
            *caller.statuses.entry(code.to_string()).or_insert(0) += n;
        }
        if let Some(first) = delta.first_failure.map(|d| d.as_secs_f64()) {
            caller.first_failure_s = Some(caller.first_failure_s.map_or(first, |f| f.min(first)));
        }
        if let Some(last) = delta.last_failure.map(|d| d.as_secs_f64()) {
            caller.last_failure_s = Some(caller.last_failure_s.map_or(last, |l| l.max(last)));
        }
    }

    /// Closes and emits every window below `limit`, empty ones included, in order.
    fn close_below(&mut self, limit: u64) {
        while self.next_window < limit {
            let second = self.next_window;
            let mut stats = self.open.remove(&second).unwrap_or_default();
            stats.saturated_windows =
                u64::from(stats.dropped > 0 || stats.max_lag >= self.saturation_lag);
            self.total.merge(&stats);
            if let Some(windows) = &self.windows {
                // A caller that stopped listening still gets its summary.
                let _ = windows.send(Window { second, stats });
            }
            self.next_window += 1;
        }
    }

    /// Number of windows emitted so far.
    pub(crate) fn windows_emitted(&self) -> u64 {
        self.next_window
    }

    /// Closes everything: windows up to `window_count`, and any later one holding data.
    pub(crate) fn finish(&mut self, window_count: u64) {
        let with_data = self.open.keys().next_back().map_or(0, |k| k + 1);
        self.close_below(window_count.max(with_data));
    }
}

#[cfg(test)]
mod tests {
    use super::super::stats::LatencyKind;
    use super::*;

    fn flush(worker: usize, second: u64, next: u64, requests: u64) -> AggMsg {
        let mut stats = Stats::new();
        for _ in 0..requests {
            stats.record_response(200, Duration::from_millis(1), Duration::from_millis(1));
        }
        AggMsg::Flush {
            worker,
            second,
            next,
            part: WindowPart::drain(&mut stats),
            callers: Vec::new(),
        }
    }

    #[test]
    fn windows_close_only_when_every_worker_moved_past_them() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut agg = Aggregator::new(2, Some(tx), Duration::from_secs(1));
        agg.handle(flush(0, 0, 1, 5));
        assert!(rx.try_recv().is_err(), "worker 1 may still write window 0");
        agg.handle(flush(1, 0, 3, 7));
        let first = rx.try_recv().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((first.second, first.stats.requests), (0, 12));
        assert!(rx.try_recv().is_err(), "worker 0 is still in window 1");
        agg.handle(flush(0, 1, u64::MAX, 4));
        let seconds: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|w| (w.second, w.stats.requests))
            .collect();
        // Window 2 is empty but still emitted; window 3 is where worker 1 is.
        assert_eq!(seconds, [(1, 4), (2, 0)]);
        agg.handle(flush(1, 3, u64::MAX, 2));
        agg.finish(4);
        let last = rx.try_recv().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((last.second, last.stats.requests), (3, 2));
        assert_eq!(agg.total.requests, 18);
    }

    #[test]
    fn lag_and_drops_flag_saturation() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut agg = Aggregator::new(1, Some(tx), Duration::from_secs(1));
        let mut late = Stats::new();
        late.record_response(200, Duration::from_millis(300), Duration::from_millis(1));
        late.max_lag = Duration::from_millis(299);
        agg.handle(AggMsg::Flush {
            worker: 0,
            second: 0,
            next: 1,
            part: WindowPart::drain(&mut late),
            callers: Vec::new(),
        });
        agg.handle(flush(0, 1, u64::MAX, 3));
        agg.finish(2);
        let flags: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|w| w.stats.saturated_windows)
            .collect();
        assert_eq!(flags, [1, 0]);
        assert_eq!(agg.total.saturated_windows, 1);
    }

    #[test]
    fn window_parts_carry_histograms_exactly() {
        let mut worker = Stats::new();
        let mut direct = Stats::new();
        for ms in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 1_000, 30_000] {
            let latency = Duration::from_micros(ms * 997);
            worker.record_response(200, latency, latency / 2);
            direct.record_response(200, latency, latency / 2);
        }
        worker.record_error(ErrorKind::Reset);
        direct.record_error(ErrorKind::Reset);
        let part = WindowPart::drain(&mut worker);
        assert_eq!(worker.requests, 0);
        assert!(worker.corrected.is_empty() && worker.statuses.is_empty());
        let mut window = Stats::new();
        part.add_to(&mut window);
        assert_eq!(window.requests, direct.requests);
        assert_eq!(window.errors, direct.errors);
        for q in [0.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
            for kind in [LatencyKind::Corrected, LatencyKind::Service] {
                assert_eq!(
                    window.quantile_ms(q, kind),
                    direct.quantile_ms(q, kind),
                    "{q}"
                );
            }
        }
        assert_eq!(window.corrected.len(), direct.corrected.len());
    }

    #[test]
    fn caller_deltas_accumulate_failures() {
        let mut acc = CallerAcc::default();
        acc.record(1, 0, Some(200), Duration::from_millis(100));
        acc.record(1, 0, Some(401), Duration::from_millis(200));
        acc.record(1, 0, None, Duration::from_millis(300));
        acc.record(1, 1, Some(401), Duration::from_millis(400));
        let mut agg = Aggregator::new(1, None, Duration::from_secs(1));
        for delta in acc.take() {
            agg.add_caller_delta(delta);
        }
        let old = &agg.callers[&(1, 0)];
        assert_eq!((old.requests, old.errors), (3, 1));
        assert_eq!(old.first_failure_s, Some(0.2));
        assert_eq!(old.last_failure_s, Some(0.3));
        assert_eq!(old.failures(), 2);
        assert_eq!(agg.callers[&(1, 1)].statuses.get("401"), Some(&1));
    }
}
