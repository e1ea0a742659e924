//! One drill, start to finish: start the target, start the load, run the timeline with undos
//! registered first, watch guards, and unwind on every exit path. What was observed goes to
//! the judge and the report builder (the caller strings them together).
//!
//! - [`observed`]: the observation record, the judge's only input;
//! - [`start`]: target start-up and pre-flight; [`background`]: load, fleet, streams and
//!   guards from time zero; [`timeline`] and [`step`]: the steps; [`unwind`]: the way back;
//! - [`error`]: why it did not run. What the operator is told meanwhile is
//!   [`crate::engine::progress`].

mod background;
mod error;
mod observed;
mod running;
mod silence;
mod start;
mod step;
mod timeline;
mod unwind;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::signals::Notice;
use super::undo::UndoStack;
use crate::scenario::templated;
use crate::scenario::vars::Vars;
use crate::scenario::{LoadedScenario, TargetSpec};
use crate::targets::Target;
use crate::targets::kube::ConnectOptions;

pub use crate::engine::progress::{PROGRESS_TARGET, Progress, ProgressSink, WindowProgress};
pub use error::{DrillError, Ending, LoadFailure, Refusal, StepError};
pub use observed::{Observed, StepRecord, is_fault, offset};
pub use unwind::UNDO_TIMEOUT;

use start::{preflight, start_kube, start_local};
use timeline::Drill;

/// Choices made on the command line that the scenario cannot make for itself.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How to reach a Kubernetes target.
    pub connect: ConnectOptions,
    /// `--force`: start even if an unrecovered undo journal exists for the target.
    pub force: bool,
    /// This run's id (report directory, drill-log row, journal).
    pub run_id: String,
    /// Tells the operator what a SIGINT/SIGTERM did (while logs may be quiet).
    pub notice: Notice,
    /// Where progress events go (the terminal view); they are logged either way.
    pub progress: ProgressSink,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            connect: ConnectOptions::default(),
            force: false,
            run_id: String::new(),
            notice: |_| {},
            progress: ProgressSink::default(),
        }
    }
}

/// Runs the drill. Returns what was observed; the caller judges and reports.
pub async fn run(
    loaded: &LoadedScenario,
    seed: u64,
    options: &RunOptions,
) -> Result<Observed, DrillError> {
    match &loaded.scenario.target {
        TargetSpec::Kubernetes(spec) => {
            run_on(
                loaded,
                seed,
                options,
                async |expanded: &LoadedScenario, _: &Vars| {
                    start_kube(expanded, spec, options).await
                },
            )
            .await
        }
        TargetSpec::Local(_) => {
            run_on(
                loaded,
                seed,
                options,
                async |expanded: &LoadedScenario, vars: &Vars| {
                    start_local(expanded, vars, &options.progress).await
                },
            )
            .await
        }
    }
}

/// The drill on any target that `start` brings up, with its undo stack.
pub async fn run_on<T: Target>(
    loaded: &LoadedScenario,
    seed: u64,
    options: &RunOptions,
    start: impl AsyncFnOnce(&LoadedScenario, &Vars) -> Result<(T, UndoStack<T::Undo>), DrillError>,
) -> Result<Observed, DrillError> {
    // Signals are handled from the very start: a Ctrl-C while the target starts still ends in
    // an unwind, a report and a drill-log row, never in a silent kill.
    let interrupt = CancellationToken::new();
    let done = CancellationToken::new();
    let undo_slot: Arc<Mutex<UndoStack<T::Undo>>> = Arc::default();
    super::signals::watch(
        interrupt.clone(),
        undo_slot.clone(),
        done.clone(),
        options.notice,
    );
    let result = run_until(
        loaded,
        seed,
        &options.run_id,
        &options.progress,
        start,
        interrupt,
        &undo_slot,
    )
    .await;
    // Signals after this point find nothing left to undo; stop watching.
    done.cancel();
    result
}

/// The drill until it is over or `interrupt` is cancelled (what a SIGINT/SIGTERM does); the
/// target is shut down on every path once started.
async fn run_until<T: Target>(
    loaded: &LoadedScenario,
    seed: u64,
    run_id: &str,
    progress: &ProgressSink,
    start: impl AsyncFnOnce(&LoadedScenario, &Vars) -> Result<(T, UndoStack<T::Undo>), DrillError>,
    interrupt: CancellationToken,
    undo_slot: &Mutex<UndoStack<T::Undo>>,
) -> Result<Observed, DrillError> {
    // Every port is chosen here, once, from the one list of templated fields (the list
    // validation checked), before the target starts; every one of those fields is expanded
    // right away, so the target, the load, the guards and the checks read final values.
    // A process behind a local `http_fault` gets a private port of its own.
    let texts = templated::texts(&loaded.scenario);
    let private: Vec<(String, String)> = templated::local_interpositions(&loaded.scenario)?
        .into_iter()
        .map(|i| (i.listener, i.port))
        .collect();
    let vars = Vars::allocate(texts.iter().map(|t| t.text.as_str()), &private)?;
    let expanded = LoadedScenario {
        scenario: templated::expand(&loaded.scenario, &vars)?,
        ..loaded.clone()
    };
    let loaded = &expanded;
    let (target, undo) = start(loaded, &vars).await?;
    if let Ok(mut slot) = undo_slot.lock() {
        *slot = undo.clone();
    }
    let result = match preflight(&target, loaded, progress).await {
        Ok(preflight) => {
            Drill::new(loaded, &target, undo, seed, interrupt, progress.clone())
                .run(preflight, run_id)
                .await
        }
        Err(refusal) => Err(refusal.into()),
    };
    target.shutdown().await;
    result
}

/// Where the report directory of a run goes.
pub fn report_dir(parent: &std::path::Path, report: &crate::report::model::Report) -> PathBuf {
    parent.join(crate::report::run_dir_name(report))
}

#[cfg(test)]
mod tests;
