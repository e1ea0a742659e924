//! One drill, start to finish: start the target, start the load, run the timeline with undos
//! registered first, watch guards, and unwind on every exit path. What was observed goes to
//! the judge and the report builder (the caller strings them together).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::fleet::{FleetFailure, FleetReader, FleetRun};
use super::journal::{self, Journal, JournalDoc, JournalError, JournalTarget};
use super::load_config::LoadConfigError;
use super::phases::Marks;
use super::pod_guards::PodGuardState;
use super::signals::Notice;
use super::undo::{RegisterError, UndoOutcome, UndoStack};
use super::windows::{GuardState, WindowStore, unsteady};
use crate::checks::prometheus::Sample;
use crate::load::{LoadError, LoadSummary, Window};
use crate::report::model::{
    EventKind, LoadWorkers, PreflightResult, PreflightStatus, TimelineEvent,
};
use crate::scenario::describe::describe_action;
use crate::scenario::vars::{VarError, Vars};
use crate::scenario::{
    Action, KubernetesTarget, LoadFrom, LoadSpec, LoadedScenario, LocalTarget, Scenario, Step,
    TargetSpec,
};
use crate::targets::kube::{ConnectOptions, KubeError, KubeRun, KubeTarget, KubeUndo};
use crate::targets::local::{LocalError, LocalRun, LocalUndo, ProcessConfig};
use crate::targets::observe::{Observations, same_workload};
use crate::targets::{Applied, Target, TargetError, UndoAction};

/// How long each undo may take before it is reported as failed and the next one runs.
pub const UNDO_TIMEOUT: Duration = Duration::from_secs(120);
/// Delay between target readiness and time zero, so the first windows are not start-up noise.
const START_DELAY: Duration = Duration::from_millis(300);
/// How often pod guards read the target's pods.
const POD_GUARD_INTERVAL: Duration = Duration::from_secs(1);
/// How long to wait after the load for jobs that a `jobs` check looks at.
const JOB_GRACE: Duration = Duration::from_secs(15);

/// Why a drill refused to start. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{what}, and that drillbook (pid {pid}) is still running")]
    JournalInUse { what: String, pid: u32 },
    #[error("{what}: run `drillbook recover` first, or pass --force")]
    JournalPending { what: String },
    #[error("the local target did not start: {0}")]
    LocalStart(LocalError),
    #[error("pre-flight `{name}` failed: {detail}")]
    Preflight { name: String, detail: String },
}

/// Why a drill did not run to a verdict.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Vars(#[from] VarError),
    #[error(transparent)]
    Process(LocalError),
    #[error(transparent)]
    Load(#[from] LoadConfigError),
    #[error(transparent)]
    Guard(#[from] super::prometheus::GuardError),
}

/// How a drill ended before its checks were judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Completed,
    Aborted(String),
    Interrupted,
}

/// Why the load did not measure (the drill aborts before its first fault).
#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    #[error(transparent)]
    Local(#[from] LoadError),
    #[error(transparent)]
    Fleet(#[from] FleetFailure),
    #[error("cannot start the load workers: {0}")]
    WorkersNotStarted(TargetError),
    #[error("not started: the load workers' removal could not be recorded: {0}")]
    UndoNotRecorded(RegisterError),
    #[error("the load task panicked: {0}")]
    Panicked(String),
}

/// Why a step did not do its change.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Without a known way back the step must not run.
    #[error("not applied: its undo could not be prepared: {0}")]
    UndoNotPrepared(TargetError),
    #[error("not applied: its undo could not be recorded: {0}")]
    UndoNotRecorded(RegisterError),
    #[error("interrupted")]
    Interrupted,
    #[error(transparent)]
    Failed(TargetError),
}

/// One step as it ran.
#[derive(Debug)]
pub struct StepRecord {
    pub name: String,
    pub action: Action,
    pub start: Instant,
    pub end: Option<Instant>,
    /// Identities of the workloads `rolled` checks look at, before and after the step.
    pub before: BTreeMap<String, BTreeSet<String>>,
    pub after: BTreeMap<String, BTreeSet<String>>,
    pub applied: Option<Applied>,
    pub error: Option<StepError>,
    pub is_fault: bool,
}

/// Everything observed during a run, handed to the judge and the report builder.
#[derive(Debug)]
pub struct Observed {
    pub t0: Instant,
    pub started: jiff::Timestamp,
    pub ended: jiff::Timestamp,
    pub seed: u64,
    pub ending: Ending,
    pub steps: Vec<StepRecord>,
    pub windows: WindowStore,
    pub load: Option<LoadSummary>,
    pub load_error: Option<String>,
    /// Cluster load: the workers and the coverage of their windows.
    pub load_workers: Option<LoadWorkers>,
    pub observations: Observations,
    pub undo: Vec<UndoOutcome>,
    /// The `on_abort` steps that ran (the rollback procedure), in order.
    pub rolled_back: Vec<StepRecord>,
    pub finally: Vec<StepRecord>,
    pub prometheus: BTreeMap<String, Vec<Sample>>,
    pub events: Vec<TimelineEvent>,
    pub marks: Marks,
    pub warnings: Vec<String>,
    pub vars: Vars,
    pub preflight: Vec<PreflightResult>,
    pub run_id: String,
    /// Undos that failed and stay in the journal for `drillbook recover`.
    pub undo_failed: usize,
    /// The windows of each named load stream (`load.streams`), for `compare` checks.
    pub streams: BTreeMap<String, WindowStore>,
}

impl Observed {
    pub fn offset(&self, at: Instant) -> f64 {
        offset(self.t0, at)
    }

    /// Wall-clock time (Unix seconds) of `offset_s` seconds after time zero, for queries to
    /// systems that keep their own history (Prometheus).
    pub fn unix_s(&self, offset_s: f64) -> f64 {
        self.started.as_millisecond() as f64 / 1000.0 + START_DELAY.as_secs_f64() + offset_s
    }
}

pub fn offset(t0: Instant, at: Instant) -> f64 {
    match at.checked_duration_since(t0) {
        Some(d) => d.as_secs_f64(),
        None => -(t0.duration_since(at).as_secs_f64()),
    }
}

/// Steps that change the system (as opposed to waiting or starting planned work).
pub fn is_fault(action: &Action) -> bool {
    !matches!(
        action,
        Action::Wait(_) | Action::WaitReady(_) | Action::WaitRollout(_) | Action::StartProcess(_)
    )
}

/// Whether a step's undo is registered before it runs. The rollback procedure's are not: it
/// is itself the way back, and undoing a `rollout_undo` would roll the bad release out again.
#[derive(Debug, Clone, Copy)]
enum RegisterUndo {
    Yes,
    No,
}

fn step_name(step: &Step, index: usize, prefix: &str) -> String {
    step.name
        .as_ref()
        .map_or_else(|| format!("{prefix}{}", index + 1), |n| n.value.clone())
}

/// Every string of the scenario that may hold `${...}` variables.
fn templated_texts(loaded: &LoadedScenario) -> Vec<String> {
    let s = &loaded.scenario;
    let mut texts = Vec::new();
    if let TargetSpec::Local(local) = &s.target {
        for p in &local.processes {
            texts.extend(p.command.iter().cloned());
            texts.extend(p.env.values().cloned());
            texts.extend(p.ready.iter().cloned());
        }
    }
    if let Some(load) = &s.load {
        texts.push(load.url.value.clone());
        texts.extend(load.streams.values().map(|s| s.url.value.clone()));
        texts.extend(load.headers.values().cloned());
        if let Some(auth) = &load.auth {
            texts.extend(auth.token_url.iter().cloned());
        }
    }
    for check in &s.checks {
        if let crate::scenario::CheckKind::Prometheus(p) = &check.value.kind {
            texts.push(p.url.clone());
        }
    }
    texts
}

/// The tracing target of progress events. Besides a message for structured logs, each carries
/// a `kind` and plain fields (numbers, names) that the command-line edge renders: on a
/// terminal a live status line and one line per step. The engine itself prints nothing.
pub const PROGRESS: &str = "drillbook::progress";

/// A progress note (no fields), shown unless `-q` was given (tracing's level decides).
fn progress(line: &str) {
    tracing::info!(target: PROGRESS, kind = "note", "{line}");
}

/// When the step after `index` is due (seconds from time zero), if it has an `at:`.
fn next_step_at(steps: &[crate::scenario::Sp<Step>], index: usize) -> Option<f64> {
    steps
        .get(index)
        .and_then(|s| s.value.at.as_ref())
        .map(|at| at.value.0.as_secs_f64())
}

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
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            connect: ConnectOptions::default(),
            force: false,
            run_id: String::new(),
            notice: |_| {},
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
            run_on(loaded, seed, options, async |_: &Vars| {
                start_kube(loaded, spec, options).await
            })
            .await
        }
        TargetSpec::Local(spec) => {
            run_on(loaded, seed, options, async |vars: &Vars| {
                start_local(spec, vars).await
            })
            .await
        }
    }
}

/// The drill on any target that `start` brings up, with its undo stack.
pub async fn run_on<T: Target>(
    loaded: &LoadedScenario,
    seed: u64,
    options: &RunOptions,
    start: impl AsyncFnOnce(&Vars) -> Result<(T, UndoStack<T::Undo>), DrillError>,
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
    let result = run_until(loaded, seed, &options.run_id, start, interrupt, &undo_slot).await;
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
    start: impl AsyncFnOnce(&Vars) -> Result<(T, UndoStack<T::Undo>), DrillError>,
    interrupt: CancellationToken,
    undo_slot: &Mutex<UndoStack<T::Undo>>,
) -> Result<Observed, DrillError> {
    let texts = templated_texts(loaded);
    let vars = Vars::allocate(texts.iter().map(String::as_str))?;
    let (target, undo) = start(&vars).await?;
    if let Ok(mut slot) = undo_slot.lock() {
        *slot = undo.clone();
    }
    let result = match preflight(&target, loaded, &vars).await {
        Ok(preflight) => {
            Drill::new(loaded, &target, undo, &vars, seed, interrupt)
                .run(preflight, run_id)
                .await
        }
        Err(refusal) => Err(refusal.into()),
    };
    target.shutdown().await;
    result
}

/// Connects to the scenario's cluster; the undo stack is journaled, after making sure no
/// earlier run left undos behind for the same target.
async fn start_kube(
    loaded: &LoadedScenario,
    spec: &KubernetesTarget,
    options: &RunOptions,
) -> Result<(KubeRun, UndoStack<KubeUndo>), DrillError> {
    let target = KubeTarget::connect_with(spec, &options.connect)
        .await
        .map_err(Refusal::from)?;
    progress(&format!(
        "kubernetes target: context `{}`, namespace `{}`",
        target.context(),
        target.namespace()
    ));
    let undo = journaled_stack(loaded, spec, &target, options)?;
    Ok((KubeRun::start(target, &loaded.scenario), undo))
}

/// Starts the scenario's local process groups; their undos need no journal (the processes
/// die with drillbook).
async fn start_local(
    spec: &LocalTarget,
    vars: &Vars,
) -> Result<(LocalRun, UndoStack<LocalUndo>), DrillError> {
    let configs = spec
        .processes
        .iter()
        .map(|p| ProcessConfig::from_spec(&p.value, vars))
        .collect::<Result<Vec<_>, _>>()
        .map_err(DrillError::Process)?;
    progress(&format!(
        "starting {} local process group(s)…",
        configs.len()
    ));
    let run = LocalRun::start(configs)
        .await
        .map_err(Refusal::LocalStart)?;
    Ok((run, UndoStack::default()))
}

fn journaled_stack(
    loaded: &LoadedScenario,
    spec: &KubernetesTarget,
    target: &KubeTarget,
    options: &RunOptions,
) -> Result<UndoStack<KubeUndo>, Refusal> {
    let journal_target = JournalTarget {
        context: target.context().to_string(),
        namespace: target.namespace().to_string(),
        kubeconfig: spec.kubeconfig.clone(),
    };
    let dir = journal::state_dir();
    let leftovers = journal::list(&dir)?;
    for (path, doc) in leftovers.iter().filter(|(_, d)| {
        d.target.context == journal_target.context && d.target.namespace == journal_target.namespace
    }) {
        let what = format!(
            "run {} of `{}` (started {}) left {} undo(s) pending for context `{}`, namespace `{}` in {}",
            doc.run_id,
            doc.scenario,
            doc.started_at,
            doc.pending.len(),
            doc.target.context,
            doc.target.namespace,
            path.display()
        );
        if journal::writer_alive(doc) {
            return Err(Refusal::JournalInUse { what, pid: doc.pid });
        }
        if !options.force {
            return Err(Refusal::JournalPending { what });
        }
        tracing::warn!(
            "{what}; starting anyway (--force); `drillbook recover` can still apply them"
        );
    }
    let doc = JournalDoc {
        version: journal::JOURNAL_VERSION,
        run_id: options.run_id.clone(),
        scenario: loaded.scenario.name.value.clone(),
        started_at: jiff::Timestamp::now(),
        pid: std::process::id(),
        target: journal_target.clone(),
        pending: Vec::new(),
    };
    let path = journal::path_for(&dir, &journal_target, &options.run_id);
    Ok(UndoStack::journaled(Journal { path, doc }))
}

/// The target's pre-flight, logged; a failed check refuses the drill before any fault.
async fn preflight<T: Target>(
    target: &T,
    loaded: &LoadedScenario,
    vars: &Vars,
) -> Result<Vec<PreflightResult>, Refusal> {
    let preflight = target.preflight(&loaded.scenario, vars).await;
    for p in &preflight {
        progress(&format!(
            "pre-flight {}: {} {}",
            p.status.as_str(),
            p.name,
            p.detail
        ));
    }
    match preflight.iter().find(|p| p.status == PreflightStatus::Fail) {
        Some(failure) => Err(Refusal::Preflight {
            name: failure.name.clone(),
            detail: failure.detail.clone(),
        }),
        None => Ok(preflight),
    }
}

/// The load, its per-second windows (with the abort guards) and the sampled Prometheus
/// checks, all running from time zero.
struct Background {
    load: Option<JoinHandle<Result<LoadRun, LoadFailure>>>,
    /// Cancelled once the load is set up and sending; never without a load.
    load_started: CancellationToken,
    /// Cancelled when the load is over, however it ended.
    load_over: CancellationToken,
    /// Feeds `store` (and the abort guards) until the load ends.
    windows: JoinHandle<()>,
    /// The windows so far: the steady-state gate reads the baseline from it.
    store: Arc<Mutex<WindowStore>>,
    prometheus: JoinHandle<BTreeMap<String, Vec<Sample>>>,
    /// The `prometheus` abort guards; stopped once the load and the timeline are over.
    guards: Vec<JoinHandle<()>>,
    /// The named load streams, each with its windows.
    streams: Vec<(String, JoinHandle<WindowStore>)>,
}

/// A drill on a started target that passed pre-flight: the timeline, then the unwind.
struct Drill<'a, T: Target> {
    loaded: &'a LoadedScenario,
    target: &'a T,
    undo: UndoStack<T::Undo>,
    vars: &'a Vars,
    seed: u64,
    interrupt: CancellationToken,
    /// Ends the drill early (abort guard, failed step, a load that cannot measure).
    abort: Aborter,
    /// Cancelled on interrupt or abort: stops the load and the timeline.
    stop: CancellationToken,
    /// Workloads whose identities `rolled` checks compare before and after each step.
    watched: Vec<String>,
    /// What the report should mention about how the drill ran (e.g. an unverified baseline).
    warnings: Mutex<Vec<String>>,
    started: jiff::Timestamp,
    t0: Instant,
    /// Time zero on the wall clock (cluster load workers start their seconds there).
    zero_wall: jiff::Timestamp,
}

/// A load as it ended: local, or merged from the cluster's workers.
struct LoadRun {
    summary: LoadSummary,
    workers: Option<LoadWorkers>,
}

/// Time from the drill's start to time zero: cluster load gives its workers time to start.
fn start_delay(scenario: &Scenario) -> Duration {
    match &scenario.load {
        Some(LoadSpec {
            from: LoadFrom::Cluster,
            cluster: Some(cluster),
            ..
        }) => START_DELAY.max(cluster.value.start_within.0),
        _ => START_DELAY,
    }
}

impl<'a, T: Target> Drill<'a, T> {
    fn new(
        loaded: &'a LoadedScenario,
        target: &'a T,
        undo: UndoStack<T::Undo>,
        vars: &'a Vars,
        seed: u64,
        interrupt: CancellationToken,
    ) -> Self {
        let abort = Aborter::default();
        let stop = CancellationToken::new();
        if interrupt.is_cancelled() {
            // Interrupted while the target was starting: unwind at once.
            stop.cancel();
        }
        {
            let (stop, interrupt, abort) = (stop.clone(), interrupt.clone(), abort.token.clone());
            tokio::spawn(async move {
                tokio::select! { _ = interrupt.cancelled() => {}, _ = abort.cancelled() => {} }
                stop.cancel();
            });
        }
        let watched = loaded
            .scenario
            .checks
            .iter()
            .filter_map(|c| match &c.value.kind {
                crate::scenario::CheckKind::Rolled(r) => Some(r.deployment.value.clone()),
                _ => None,
            })
            .collect();
        let delay = start_delay(&loaded.scenario);
        let (now, started) = (Instant::now(), jiff::Timestamp::now());
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        Self {
            loaded,
            target,
            undo,
            vars,
            seed,
            interrupt,
            abort,
            stop,
            watched,
            warnings: Mutex::default(),
            started,
            t0: now + delay,
            zero_wall: jiff::Timestamp::from_millisecond(
                started.as_millisecond().saturating_add(delay_ms),
            )
            .unwrap_or(started),
        }
    }

    async fn run(
        self,
        preflight: Vec<PreflightResult>,
        run_id: &str,
    ) -> Result<Observed, DrillError> {
        let background = self.start_background(run_id).await?;
        let mut rng = StdRng::seed_from_u64(self.seed);
        let guards_done = CancellationToken::new();
        let timeline = async {
            let timeline = self.run_timeline(&mut rng, &background).await;
            // Pod guards watch as long as the load runs, past the last step.
            if background.load.is_some() {
                tokio::select! {
                    _ = background.load_over.cancelled() => {}
                    _ = self.stop.cancelled() => {}
                }
            }
            guards_done.cancel();
            timeline
        };
        let ((steps, mut events), ()) = tokio::join!(timeline, self.watch_pod_guards(&guards_done));

        // Wait for the load to finish (or be stopped).
        let (load, load_workers, load_error) = match background.load {
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
        let mut warnings: Vec<String> = self
            .warnings
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        warnings.extend(load_error.iter().map(|e| format!("load: {e}")));
        let end = Instant::now();
        for guard in &background.guards {
            guard.abort();
        }
        let _ = background.windows.await;
        let mut streams = BTreeMap::new();
        for (name, task) in background.streams {
            streams.insert(name, task.await.unwrap_or_default());
        }
        tracing::debug!(target: PROGRESS, kind = "load_over", "the load is over");
        let windows = background
            .store
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();

        // Give jobs that checks look at a moment to finish, unless the drill was stopped.
        if !self.stop.is_cancelled() {
            self.wait_for_jobs().await;
        }
        let observations = self.target.observations().await;
        for (at, description) in self.target.notable() {
            events.push(TimelineEvent {
                at_s: offset(self.t0, at),
                kind: EventKind::Observation,
                step: None,
                description,
                targets: Vec::new(),
                undo: None,
                outcome: None,
            });
        }
        if let Ok(mut tripped) = self.abort.guard_events.lock() {
            events.append(&mut tripped);
        }
        let ending = self.ending();
        let rolled_back = match &ending {
            Ending::Aborted(_) => self.roll_back(&mut rng, &mut events, &mut warnings).await,
            Ending::Completed => {
                self.keep_completed_changes(&steps, &mut events, &mut warnings);
                Vec::new()
            }
            Ending::Interrupted => Vec::new(),
        };
        let (undo, finally) = self.unwind(&mut rng, &mut events).await;
        let prometheus = background.prometheus.await.unwrap_or_default();
        let marks = marks_for(self.t0, end, &steps, &observations);
        Ok(Observed {
            t0: self.t0,
            started: self.started,
            ended: jiff::Timestamp::now(),
            seed: self.seed,
            ending,
            steps,
            windows,
            load,
            load_error,
            load_workers,
            observations,
            undo,
            rolled_back,
            finally,
            prometheus,
            events,
            marks,
            warnings,
            vars: self.vars.clone(),
            preflight,
            run_id: run_id.to_string(),
            undo_failed: self.undo.failed().len(),
            streams,
        })
    }

    async fn start_background(&self, run_id: &str) -> Result<Background, DrillError> {
        let scenario = &self.loaded.scenario;
        // Before the load, any guard or step starts: a guard that cannot be watched refuses.
        let prometheus_guards = super::prometheus::prepare_guards(scenario, self.vars)?;
        let (windows_tx, mut windows_rx) = mpsc::unbounded_channel::<Window>();
        let (load_started, load_over) = (CancellationToken::new(), CancellationToken::new());
        let store = Arc::<Mutex<WindowStore>>::default();
        let load = match &scenario.load {
            Some(spec) => {
                let config = super::load_config::build(self.loaded, spec, self.vars, self.t0)?;
                let measuring = match (spec.from, &spec.cluster) {
                    (LoadFrom::Cluster, Some(cluster)) => {
                        let reader = FleetReader {
                            workers: cluster.value.workers,
                            t0: self.t0,
                            started_wall: self.zero_wall,
                            load_length: config.profile.duration(),
                            windows: windows_tx,
                            store: store.clone(),
                            started: load_started.clone(),
                            stop: self.stop.clone(),
                        };
                        let started = self
                            .start_fleet(run_id, spec, &cluster.value, &config)
                            .await;
                        Box::pin(async move {
                            let FleetRun { summary, coverage } = reader.run(started?).await?;
                            Ok(LoadRun {
                                summary,
                                workers: Some(coverage),
                            })
                        })
                            as std::pin::Pin<
                                Box<dyn Future<Output = Result<LoadRun, LoadFailure>> + Send>,
                            >
                    }
                    _ => {
                        let (cancel, started) = (self.stop.clone(), load_started.clone());
                        Box::pin(async move {
                            let summary = crate::load::run_announcing(
                                config,
                                cancel,
                                Some(windows_tx),
                                started,
                            )
                            .await?;
                            Ok(LoadRun {
                                summary,
                                workers: None,
                            })
                        })
                    }
                };
                let (over, abort) = (load_over.clone(), self.abort.clone());
                Some(tokio::spawn(async move {
                    let result = measuring.await;
                    // Faults injected while nothing measures would be judged on no data.
                    if let Err(e) = &result {
                        abort.abort(format!("the load stopped: {e}"));
                    }
                    over.cancel();
                    result
                }))
            }
            None => {
                drop(windows_tx);
                None
            }
        };
        let guards: Vec<GuardState> = scenario
            .abort_when
            .iter()
            .filter_map(|g| {
                let http = g.value.http.as_ref()?;
                GuardState::new(&g.value.label(), &http.value, g.value.for_.0)
            })
            .collect();
        let t0 = self.t0;
        let windows = {
            let (abort, store) = (self.abort.clone(), store.clone());
            tokio::spawn(async move {
                let mut guards = guards;
                while let Some(window) = windows_rx.recv().await {
                    log_window(&window);
                    for guard in &mut guards {
                        if let Some(why) = guard.observe(&window.stats)
                            && !abort.token.is_cancelled()
                        {
                            abort.guard_tripped(why, t0, Instant::now());
                        }
                    }
                    if let Ok(mut store) = store.lock() {
                        store.insert(window);
                    }
                }
            })
        };
        let prometheus =
            super::prometheus::spawn_sampled(scenario, self.vars, self.t0, self.stop.clone());
        let guards = {
            let abort = self.abort.clone();
            super::prometheus::spawn_guards(prometheus_guards, t0, &self.stop, move |trip| {
                if !abort.token.is_cancelled() {
                    abort.guard_tripped(trip.reason, t0, trip.at);
                }
            })
        };
        let streams = self.start_streams()?;
        Ok(Background {
            streams,
            guards,
            load,
            load_started,
            load_over,
            windows,
            store,
            prometheus,
        })
    }

    /// Cluster load: the workers' removal is registered (and journaled) first, then their
    /// Jobs are created; the events of the running fleet come back.
    async fn start_fleet(
        &self,
        run_id: &str,
        spec: &LoadSpec,
        cluster: &crate::scenario::ClusterLoadSpec,
        config: &crate::load::LoadConfig,
    ) -> Result<mpsc::UnboundedReceiver<crate::targets::fleet::FleetEvent>, LoadFailure> {
        let name = if run_id.is_empty() {
            format!("{:08x}", self.seed & 0xffff_ffff)
        } else {
            run_id.to_ascii_lowercase()
        };
        let fleet = super::fleet::fleet_spec(
            &name,
            spec,
            cluster,
            config,
            self.zero_wall.as_millisecond(),
            config.profile.duration(),
        )
        .map_err(FleetFailure::from)?;
        let undo = self
            .target
            .fleet_undo(&fleet)
            .map_err(LoadFailure::WorkersNotStarted)?;
        self.undo
            .register("load workers", undo)
            .map_err(LoadFailure::UndoNotRecorded)?;
        progress(&format!(
            "starting {} load worker(s) ({}), time zero in {:.0}s",
            fleet.workers.len(),
            fleet.image,
            self.t0
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
        ));
        self.target
            .start_fleet(&fleet, self.stop.clone())
            .await
            .map_err(LoadFailure::WorkersNotStarted)
    }

    /// Every `load.streams` entry: the scenario's load sent to the stream's URL from time
    /// zero, its windows kept apart for `compare` checks.
    fn start_streams(&self) -> Result<Vec<(String, JoinHandle<WindowStore>)>, DrillError> {
        let Some(spec) = &self.loaded.scenario.load else {
            return Ok(Vec::new());
        };
        let mut started = Vec::new();
        for (name, stream) in &spec.streams {
            let mut config = super::load_config::build(self.loaded, spec, self.vars, self.t0)?;
            config.url = self.vars.expand(&stream.url.value)?;
            let (tx, mut rx) = mpsc::unbounded_channel::<Window>();
            let (cancel, name_owned) = (self.stop.clone(), name.clone());
            let task = tokio::spawn(async move {
                let load = tokio::spawn(crate::load::run(config, cancel, Some(tx)));
                let mut store = WindowStore::default();
                while let Some(window) = rx.recv().await {
                    store.insert(window);
                }
                if let Ok(Err(e)) = load.await {
                    tracing::warn!("load stream `{name_owned}` stopped: {e}");
                }
                store
            });
            started.push((name.clone(), task));
        }
        Ok(started)
    }

    /// The `not_ready` and `restarts` guards, evaluated every second on the target's pods
    /// until `done` or the drill stops.
    async fn watch_pod_guards(&self, done: &CancellationToken) {
        let mut guards: Vec<PodGuardState> = self
            .loaded
            .scenario
            .abort_when
            .iter()
            .filter_map(|g| PodGuardState::new(&g.value))
            .collect();
        if guards.is_empty() {
            return;
        }
        let mut tick = tokio::time::interval_at(self.t0, POD_GUARD_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = done.cancelled() => return,
                _ = self.stop.cancelled() => return,
            }
            let now = Instant::now();
            for guard in &mut guards {
                let Some(health) = self.target.pod_health(&guard.selector) else {
                    continue;
                };
                if let Some(why) = guard.observe(&health, now, self.t0)
                    && !self.abort.token.is_cancelled()
                {
                    self.abort.abort(why);
                }
            }
        }
    }

    /// The steps, each at its time; a failed step aborts the rest, and so does a first fault
    /// that nothing would measure.
    async fn run_timeline(
        &self,
        rng: &mut StdRng,
        background: &Background,
    ) -> (Vec<StepRecord>, Vec<TimelineEvent>) {
        let mut steps = Vec::new();
        let mut events = Vec::new();
        let mut before_first_fault = true;
        tokio::time::sleep_until(self.t0).await;
        let all_steps = &self.loaded.scenario.steps;
        let next_at = next_step_at(all_steps, 0);
        tracing::info!(
            target: PROGRESS,
            kind = "start",
            seed = self.seed,
            next_at_s = next_at,
            "t+0s load started; seed {}",
            self.seed
        );
        for (index, step) in all_steps.iter().enumerate() {
            let step = &step.value;
            let position = StepPosition {
                number: index + 1,
                total: all_steps.len(),
                next_at_s: next_step_at(all_steps, index + 1),
            };
            let name = step_name(step, index, "#");
            if let Some(at) = &step.at {
                tokio::select! {
                    _ = tokio::time::sleep_until(self.t0 + at.value.0) => {}
                    _ = self.stop.cancelled() => break,
                }
            }
            if before_first_fault && is_fault(&step.action) {
                before_first_fault = false;
                if let Err(why) = self.gate_first_fault(background, &name).await {
                    self.abort
                        .abort(format!("before the first fault (`{name}`): {why}"));
                    // `stop` follows the abort only once another task sees it.
                    break;
                }
            }
            if self.stop.is_cancelled() {
                break;
            }
            let record = self
                .step(&name, step, rng, &self.stop, &position, RegisterUndo::Yes)
                .await;
            events.push(self.step_event(&record));
            let failed = record.error.as_ref().map(ToString::to_string);
            steps.push(record);
            if let Some(error) = failed {
                self.abort.abort(format!("step `{name}` failed: {error}"));
                break;
            }
        }
        (steps, events)
    }

    /// Whether the first fault may go in: the load must be measuring, and its baseline must be
    /// a steady state (see [`unsteady`]). Returns at once when the drill is already stopping
    /// (the timeline then ends).
    async fn gate_first_fault(&self, background: &Background, step: &str) -> Result<(), String> {
        if background.load.is_none() {
            return Ok(());
        }
        tokio::select! {
            _ = background.load_started.cancelled() => {}
            _ = self.stop.cancelled() => return Ok(()),
        }
        if background.load_over.is_cancelled() && !self.stop.is_cancelled() {
            return Err("the load already ended; nothing would measure the fault".into());
        }
        if !self
            .loaded
            .scenario
            .load
            .as_ref()
            .is_some_and(|l| l.steady_state)
        {
            return Ok(());
        }
        let fault_at = offset(self.t0, Instant::now());
        // Only windows wholly before the fault: the baseline as measured so far.
        let baseline = background
            .store
            .lock()
            .ok()
            .and_then(|s| s.span(|second| (second + 1) as f64 <= fault_at));
        match baseline {
            Some(span) => match unsteady(&span.stats) {
                Some(why) => Err(format!("the steady state does not hold: {why}")),
                None => Ok(()),
            },
            None => {
                let note = format!(
                    "no load window closed before the first fault `{step}` (t+{fault_at:.1}s): \
                     the steady state was not verified"
                );
                tracing::warn!("{note}");
                if let Ok(mut warnings) = self.warnings.lock() {
                    warnings.push(note);
                }
                Ok(())
            }
        }
    }

    /// How the drill ended, before the unwind.
    fn ending(&self) -> Ending {
        if self.interrupt.is_cancelled() {
            Ending::Interrupted
        } else if self.abort.token.is_cancelled() {
            Ending::Aborted(self.abort.reason())
        } else {
            Ending::Completed
        }
    }

    /// A drill that ran to its end keeps the changes of steps marked `keep` (a promotion that
    /// baked cleanly): their undos are dropped from the stack and the journal.
    fn keep_completed_changes(
        &self,
        steps: &[StepRecord],
        events: &mut Vec<TimelineEvent>,
        warnings: &mut Vec<String>,
    ) {
        for record in steps.iter().filter(|r| r.applied.is_some()) {
            if !record.action.kept_when_completed() {
                continue;
            }
            match self.undo.keep(&record.name) {
                Ok(0) => {}
                Ok(_) => events.push(TimelineEvent {
                    at_s: offset(self.t0, Instant::now()),
                    kind: EventKind::Step,
                    step: Some(record.name.clone()),
                    description: format!(
                        "kept: {} (`keep: true`, the drill ran to its end)",
                        describe_action(&record.action)
                    ),
                    targets: Vec::new(),
                    undo: None,
                    outcome: Some("kept".into()),
                }),
                Err(e) => {
                    // The undo stays registered: the change is reverted, which is safe.
                    let note = format!("`{}` could not be kept and is undone: {e}", record.name);
                    tracing::warn!("{note}");
                    warnings.push(note);
                }
            }
        }
    }

    /// The rollback procedure (`on_abort`), in order, after an abort and before the undos. It
    /// stops at the first failing step: the rest assumes it worked (a `wait_rollout` after a
    /// failed `rollout_undo` would only wait for nothing); the undos run either way.
    async fn roll_back(
        &self,
        rng: &mut StdRng,
        events: &mut Vec<TimelineEvent>,
        warnings: &mut Vec<String>,
    ) -> Vec<StepRecord> {
        let procedure = &self.loaded.scenario.on_abort;
        if procedure.is_empty() {
            return Vec::new();
        }
        progress(&format!(
            "rolling back: {} `on_abort` step(s)…",
            procedure.len()
        ));
        let mut records = Vec::new();
        let never = CancellationToken::new();
        for (index, step) in procedure.iter().enumerate() {
            let name = step_name(&step.value, index, "on_abort #");
            let position = StepPosition {
                number: index + 1,
                total: procedure.len(),
                next_at_s: None,
            };
            let record = self
                .step(&name, &step.value, rng, &never, &position, RegisterUndo::No)
                .await;
            events.push(self.step_event(&record));
            let failed = record.error.as_ref().map(ToString::to_string);
            records.push(record);
            if let Some(error) = failed {
                let note = format!(
                    "the rollback step `{name}` failed: {error}; the rest of `on_abort` was skipped"
                );
                tracing::error!("{note}");
                warnings.push(note);
                break;
            }
        }
        records
    }

    /// Registered undos in reverse, then `finally`, then the undos `finally` registered.
    async fn unwind(
        &self,
        rng: &mut StdRng,
        events: &mut Vec<TimelineEvent>,
    ) -> (Vec<UndoOutcome>, Vec<StepRecord>) {
        let pending = self.undo.pending().len();
        if pending > 0 {
            progress(&format!("undoing {pending} registered fault(s)…"));
        }
        let mut outcomes = self
            .undo
            .unwind(UNDO_TIMEOUT, |u| self.target.undo(u))
            .await;
        for outcome in &outcomes {
            events.push(TimelineEvent {
                at_s: offset(self.t0, Instant::now()),
                kind: EventKind::Undo,
                step: Some(outcome.step.clone()),
                description: outcome.description.clone(),
                targets: Vec::new(),
                undo: None,
                outcome: Some(match &outcome.result {
                    Ok(()) => "ok".into(),
                    Err(e) => format!("error: {e}"),
                }),
            });
        }
        let mut finally = Vec::new();
        let never = CancellationToken::new();
        for (index, step) in self.loaded.scenario.finally.iter().enumerate() {
            let name = step_name(&step.value, index, "finally #");
            let position = StepPosition {
                number: index + 1,
                total: self.loaded.scenario.finally.len(),
                next_at_s: None,
            };
            let record = self
                .step(
                    &name,
                    &step.value,
                    rng,
                    &never,
                    &position,
                    RegisterUndo::Yes,
                )
                .await;
            events.push(self.step_event(&record));
            finally.push(record);
        }
        // `finally` steps may register undos too (e.g. a start_process); they are unwound now.
        outcomes.extend(
            self.undo
                .unwind(UNDO_TIMEOUT, |u| self.target.undo(u))
                .await,
        );
        (outcomes, finally)
    }

    async fn wait_for_jobs(&self) {
        let deadline = Instant::now() + JOB_GRACE;
        loop {
            let running = self.target.jobs_running().await;
            if !running || Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }

    /// Identities of the workloads that `rolled` checks look at.
    async fn identities(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut all = BTreeMap::new();
        for w in &self.watched {
            all.insert(w.clone(), self.target.identities(w).await);
        }
        all
    }

    /// One step: its undo registered (and journaled) first, then applied unless `stop`.
    async fn step(
        &self,
        name: &str,
        step: &Step,
        rng: &mut StdRng,
        stop: &CancellationToken,
        position: &StepPosition,
        undo: RegisterUndo,
    ) -> StepRecord {
        let before = self.identities().await;
        let start = Instant::now();
        let record = |error: Option<StepError>, applied, after| StepRecord {
            name: name.to_string(),
            action: step.action.clone(),
            start,
            end: Some(Instant::now()),
            before: before.clone(),
            after,
            applied,
            error,
            is_fault: is_fault(&step.action),
        };
        let not_applied = |why: StepError| {
            tracing::error!("step `{name}` {why}");
            record(Some(why), None, before.clone())
        };
        let registered = match undo {
            RegisterUndo::No => None,
            RegisterUndo::Yes => match self.target.undo_for(&step.action).await {
                Ok(u) => u,
                Err(e) => return not_applied(StepError::UndoNotPrepared(e)),
            },
        };
        if let Some(u) = registered {
            // Registered (and journaled) before the change is applied: an interruption
            // mid-step, or drillbook's own death, still undoes it.
            if let Err(e) = self.undo.register(name, u) {
                return not_applied(StepError::UndoNotRecorded(e));
            }
        }
        let (at_s, what) = (offset(self.t0, start), describe_action(&step.action));
        tracing::info!(
            target: PROGRESS,
            kind = "step",
            number = position.number,
            total = position.total,
            name,
            what,
            at_s,
            fault = is_fault(&step.action),
            "t+{at_s:.1}s ▶ {name}: {what}"
        );
        let result = tokio::select! {
            r = self.target.apply(&step.action, rng) => r.map_err(StepError::Failed),
            _ = stop.cancelled() => Err(StepError::Interrupted),
        };
        let end = Instant::now();
        let (applied, error) = match result {
            Ok(applied) => {
                let hit = applied.targets.join(", ");
                tracing::info!(
                    target: PROGRESS,
                    kind = "applied",
                    number = position.number,
                    total = position.total,
                    next_at_s = position.next_at_s,
                    hit,
                    "          hit: {hit}"
                );
                (Some(applied), None)
            }
            Err(e) => {
                tracing::error!("step `{name}` failed: {e}");
                (None, Some(e))
            }
        };
        let after = self.identities().await;
        StepRecord {
            end: Some(end),
            ..record(error, applied, after)
        }
    }

    fn step_event(&self, record: &StepRecord) -> TimelineEvent {
        let registered = self
            .undo
            .pending()
            .into_iter()
            .rev()
            .find(|r| r.step == record.name)
            .map(|r| r.undo.describe());
        TimelineEvent {
            at_s: offset(self.t0, record.start),
            kind: if record.is_fault {
                EventKind::Fault
            } else {
                EventKind::Step
            },
            step: Some(record.name.clone()),
            description: record.applied.as_ref().map_or_else(
                || describe_action(&record.action),
                |a| a.description.clone(),
            ),
            targets: record
                .applied
                .as_ref()
                .map(|a| a.targets.clone())
                .unwrap_or_default(),
            undo: registered,
            outcome: Some(match &record.error {
                None => format!(
                    "ok in {:.1}s",
                    record
                        .end
                        .map(|e| e.duration_since(record.start).as_secs_f64())
                        .unwrap_or_default()
                ),
                Some(e) => format!("error: {e}"),
            }),
        }
    }
}

/// Ends a drill early, from any of its tasks; the first reason given is the one reported.
#[derive(Debug, Clone, Default)]
struct Aborter {
    token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
    /// Guards that tripped, as timeline events (when, which, its values).
    guard_events: Arc<Mutex<Vec<TimelineEvent>>>,
}

impl Aborter {
    /// An abort guard tripped at `at`: the abort, and a timeline event saying so.
    fn guard_tripped(&self, reason: String, t0: Instant, at: Instant) {
        if let Ok(mut events) = self.guard_events.lock() {
            events.push(TimelineEvent {
                at_s: offset(t0, at),
                kind: EventKind::Guard,
                step: None,
                description: reason.clone(),
                targets: Vec::new(),
                undo: None,
                outcome: Some("aborted the drill".into()),
            });
        }
        self.abort(reason);
    }

    fn abort(&self, reason: String) {
        tracing::error!("{reason}: aborting the drill");
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert(reason);
        }
        self.token.cancel();
    }

    fn reason(&self) -> String {
        self.reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "aborted".into())
    }
}

/// Where a step stands in its list, for progress events.
struct StepPosition {
    number: usize,
    total: usize,
    /// When the next step is due, if it has an `at:`.
    next_at_s: Option<f64>,
}

/// One second of load as a progress event: every second for a live status line (debug), every
/// other second as a structured log line (info) so logs stay short.
fn log_window(window: &Window) {
    let s = &window.stats;
    let p99_ms = s.quantile_ms(99.0, crate::load::LatencyKind::Corrected);
    let p99 = p99_ms.map_or("-".into(), |v| format!("{v:.0}ms"));
    let dropped = if s.dropped > 0 {
        format!("  dropped: {}", s.dropped)
    } else {
        String::new()
    };
    macro_rules! window_event {
        ($level:expr) => {
            tracing::event!(
                target: PROGRESS,
                $level,
                kind = "window",
                second = window.second,
                requests = s.requests,
                status_401 = s.status_count(401),
                status_5xx = s.class_count(5),
                errors = s.error_count(),
                p99_ms,
                "t+{:>3}s  {} req  401: {}  5xx: {}  errors: {}  p99 {p99}{dropped}",
                window.second,
                s.requests,
                s.status_count(401),
                s.class_count(5),
                s.error_count(),
            )
        };
    }
    if window.second % 2 == 1 {
        window_event!(tracing::Level::INFO);
    } else {
        window_event!(tracing::Level::DEBUG);
    }
}

/// Phase boundaries from what happened: first fault, ready again, step times.
fn marks_for(
    t0: Instant,
    end: Instant,
    steps: &[StepRecord],
    observations: &Observations,
) -> Marks {
    let mut marks = Marks {
        end_s: offset(t0, end).max(0.0),
        ..Marks::default()
    };
    for s in steps {
        marks.steps.insert(
            s.name.clone(),
            (offset(t0, s.start), s.end.map(|e| offset(t0, e))),
        );
    }
    let Some(first) = steps.iter().find(|s| s.is_fault && s.error.is_none()) else {
        return marks;
    };
    marks.first_fault_s = Some(offset(t0, first.start));
    let disrupted = first
        .applied
        .as_ref()
        .map(|a| a.disrupted.clone())
        .unwrap_or_default();
    let recovered = match &first.action {
        // A kill is over when a replacement of the same workload is ready.
        Action::KillProcess(_) | Action::KillPods(_) | Action::Evict(_) => observations
            .ready_after(first.start, |labels| {
                disrupted.iter().any(|d| same_workload(d, labels))
            }),
        // Rolling changes return once the workload is rolled and ready.
        _ => first.end,
    };
    marks.recovered_s = recovered.map(|r| offset(t0, r));
    marks
}

/// Where the report directory of a run goes.
pub fn report_dir(parent: &std::path::Path, report: &crate::report::model::Report) -> PathBuf {
    parent.join(crate::report::run_dir_name(report))
}

#[cfg(test)]
mod tests;
