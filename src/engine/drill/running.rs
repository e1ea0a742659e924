//! What runs in the background of a drill, as handles the timeline holds: the load, its
//! windows, the sampled Prometheus checks, the guards and the streams. Started by
//! `background.rs`, awaited by the timeline; below both, so neither names the other.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::LoadFailure;
use crate::checks::prometheus::Sample;
use crate::engine::progress::{Progress, ProgressSink};
use crate::engine::windows::WindowStore;
use crate::load::LoadSummary;
use crate::report::model::LoadWorkers;

/// The load, its per-second windows (with the abort guards) and the sampled Prometheus
/// checks, all running from time zero.
pub(super) struct Background {
    pub(super) load: Option<JoinHandle<Result<LoadRun, LoadFailure>>>,
    /// Cancelled once the load is set up and sending; never without a load.
    pub(super) load_started: CancellationToken,
    /// Cancelled when the load is over, however it ended.
    pub(super) load_over: CancellationToken,
    /// Feeds `store` (and the abort guards) until the load ends.
    pub(super) windows: JoinHandle<()>,
    /// The windows so far: the steady-state gate reads the baseline from it.
    pub(super) store: Arc<Mutex<WindowStore>>,
    pub(super) prometheus: JoinHandle<BTreeMap<String, Vec<Sample>>>,
    /// The `prometheus` abort guards; stopped once the load and the timeline are over.
    pub(super) guards: Vec<JoinHandle<()>>,
    /// The named load streams, each with its windows.
    pub(super) streams: Vec<(String, JoinHandle<WindowStore>)>,
}

/// A load as it ended: local, or merged from the cluster's workers.
pub(super) struct LoadRun {
    pub(super) summary: LoadSummary,
    pub(super) workers: Option<LoadWorkers>,
}

impl Background {
    /// Waits for the load to end (or be stopped), then for its windows and the streams'.
    pub(super) async fn finish(&mut self, progress: &ProgressSink) -> LoadEnd {
        let (summary, workers, error) = match self.load.take() {
            Some(task) => match task.await {
                Ok(Ok(run)) => (Some(run.summary), run.workers, None),
                Ok(Err(e)) => (None, None, Some(e.to_string())),
                Err(e) => (
                    None,
                    None,
                    Some(LoadFailure::Panicked(e.to_string()).to_string()),
                ),
            },
            None => (None, None, None),
        };
        let end = Instant::now();
        for guard in &self.guards {
            guard.abort();
        }
        let _ = (&mut self.windows).await;
        let mut streams = BTreeMap::new();
        for (name, task) in std::mem::take(&mut self.streams) {
            streams.insert(name, task.await.unwrap_or_default());
        }
        progress.emit(&Progress::LoadOver);
        let windows = self
            .store
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        LoadEnd {
            summary,
            workers,
            error,
            end,
            windows,
            streams,
        }
    }
}

/// The load as it ended, with the windows it measured.
pub(super) struct LoadEnd {
    pub(super) summary: Option<LoadSummary>,
    pub(super) workers: Option<LoadWorkers>,
    pub(super) error: Option<String>,
    /// When the load was over.
    pub(super) end: Instant,
    pub(super) windows: WindowStore,
    /// The windows of each named stream.
    pub(super) streams: BTreeMap<String, WindowStore>,
}
