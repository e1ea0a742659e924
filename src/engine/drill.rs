//! One drill, start to finish: set up the target, drive the load, run the timeline with undos
//! registered first, watch guards, unwind on every exit path, judge, and report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::local::{Applied, ProcessLog};
use super::observe::{Observations, same_workload};
use super::phases::Marks;
use super::target::Target;
use super::undo::{UndoOutcome, UndoStack};
use super::windows::{GuardState, WindowStore};
use crate::load::{LoadSummary, Window};
use crate::report::model::{EventKind, TimelineEvent};
use crate::scenario::{Action, LoadedScenario, Step, TargetSpec, vars::Vars};
use crate::targets::local::{LocalTarget, ProcessConfig};

/// How long each undo may take before it is reported as failed and the next one runs.
pub const UNDO_TIMEOUT: Duration = Duration::from_secs(120);
/// Delay between target readiness and time zero, so the first windows are not start-up noise.
const START_DELAY: Duration = Duration::from_millis(300);
/// How long to wait after the load for jobs that a `jobs` check looks at.
const JOB_GRACE: Duration = Duration::from_secs(15);

/// Why a drill did not run to a verdict.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Setup(String),
}

/// How a drill ended before its checks were judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Completed,
    Aborted(String),
    Interrupted,
}

/// One step as it ran.
#[derive(Debug, Clone)]
pub struct StepRecord {
    pub name: String,
    pub action: Action,
    pub start: Instant,
    pub end: Option<Instant>,
    /// Identities of the workloads `rolled` checks look at, before and after the step.
    pub before: BTreeMap<String, BTreeSet<String>>,
    pub after: BTreeMap<String, BTreeSet<String>>,
    pub applied: Option<Applied>,
    pub error: Option<String>,
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
    pub observations: Observations,
    pub undo: Vec<UndoOutcome>,
    pub finally: Vec<StepRecord>,
    pub prometheus: BTreeMap<String, Vec<crate::checks::prometheus::Sample>>,
    pub events: Vec<TimelineEvent>,
    pub marks: Marks,
    pub warnings: Vec<String>,
    pub vars: Vars,
    pub preflight: Vec<crate::report::model::PreflightResult>,
    pub run_id: String,
    /// Undos that failed and stay in the journal for `drillbook recover`.
    pub undo_failed: usize,
}

impl Observed {
    pub fn offset(&self, at: Instant) -> f64 {
        offset(self.t0, at)
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

/// Prints progress lines unless `-q` was given (tracing's level decides).
fn progress(line: &str) {
    tracing::info!("{line}");
}

/// Choices made on the command line that the scenario cannot make for itself.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--context`: must be one of the scenario's allowed contexts.
    pub context: Option<String>,
    /// `--allow-production`: accept a context or namespace whose name contains "prod".
    pub allow_production: bool,
    /// `--force`: start even if an unrecovered undo journal exists for the target.
    pub force: bool,
    /// This run's id (report directory, drill-log row, journal).
    pub run_id: String,
    /// `--in-cluster --cluster-name NAME`: connect with the pod's ServiceAccount; the scenario's
    /// context must be NAME.
    pub in_cluster: Option<String>,
}

/// The undo stack for a run: journaled for a Kubernetes target, after making sure no earlier
/// run left undos behind for the same target.
fn undo_stack(
    loaded: &LoadedScenario,
    target: &Target,
    options: &RunOptions,
) -> Result<UndoStack, DrillError> {
    let Target::Kube(run) = target else {
        return Ok(UndoStack::default());
    };
    let journal_target = super::journal::JournalTarget {
        context: run.target.context().to_string(),
        namespace: run.target.namespace().to_string(),
        kubeconfig: match &loaded.scenario.target {
            TargetSpec::Kubernetes(k) => k.kubeconfig.clone(),
            TargetSpec::Local(_) => None,
        },
    };
    let dir = super::journal::state_dir();
    let leftovers = super::journal::list(&dir).map_err(|e| DrillError::Refused(e.to_string()))?;
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
        if super::journal::writer_alive(doc) {
            return Err(DrillError::Refused(format!(
                "{what}, and that drillbook (pid {}) is still running",
                doc.pid
            )));
        }
        if !options.force {
            return Err(DrillError::Refused(format!(
                "{what}: run `drillbook recover` first, or pass --force"
            )));
        }
        tracing::warn!(
            "{what}; starting anyway (--force); `drillbook recover` can still apply them"
        );
    }
    let doc = super::journal::JournalDoc {
        version: super::journal::JOURNAL_VERSION,
        run_id: options.run_id.clone(),
        scenario: loaded.scenario.name.value.clone(),
        started_at: jiff::Timestamp::now(),
        pid: std::process::id(),
        target: journal_target.clone(),
        pending: Vec::new(),
    };
    let path = super::journal::path_for(&dir, &journal_target, &options.run_id);
    Ok(UndoStack::journaled(super::journal::Journal { path, doc }))
}

/// Connects to (Kubernetes) or starts (local) the scenario's target.
async fn start_target(
    loaded: &LoadedScenario,
    vars: &Vars,
    options: &RunOptions,
) -> Result<(Target, Option<tokio::task::JoinHandle<()>>), DrillError> {
    match &loaded.scenario.target {
        TargetSpec::Kubernetes(spec) => {
            let target = match &options.in_cluster {
                Some(cluster) => {
                    crate::targets::kube::KubeTarget::connect_in_cluster(
                        spec,
                        cluster,
                        options.allow_production,
                    )
                    .await
                }
                None => {
                    crate::targets::kube::KubeTarget::connect(
                        spec,
                        options.context.as_deref(),
                        options.allow_production,
                    )
                    .await
                }
            }
            .map_err(|e| DrillError::Refused(e.to_string()))?;
            progress(&format!(
                "kubernetes target: context `{}`, namespace `{}`",
                target.context(),
                target.namespace()
            ));
            Ok((
                Target::Kube(Box::new(super::kube::KubeRun::start(
                    target,
                    &loaded.scenario,
                ))),
                None,
            ))
        }
        TargetSpec::Local(local_spec) => {
            let configs = local_spec
                .processes
                .iter()
                .map(|p| ProcessConfig::from_spec(&p.value, vars))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| DrillError::Setup(e.to_string()))?;
            let (events_tx, events_rx) = mpsc::unbounded_channel();
            let log = ProcessLog::default();
            let collector = log.collect(events_rx);
            progress(&format!(
                "starting {} local process group(s)…",
                configs.len()
            ));
            let target = LocalTarget::start(configs, events_tx)
                .await
                .map_err(|e| DrillError::Refused(format!("the local target did not start: {e}")))?;
            Ok((Target::Local { target, log }, Some(collector)))
        }
    }
}

/// Runs the drill. Returns what was observed; the caller judges and reports.
pub async fn run(
    loaded: &LoadedScenario,
    seed: u64,
    options: &RunOptions,
) -> Result<Observed, DrillError> {
    // Signals are handled from the very start: a Ctrl-C while the target starts still ends in
    // an unwind, a report and a drill-log row, never in a silent kill.
    let interrupt = CancellationToken::new();
    let done = CancellationToken::new();
    let undo_slot: Arc<Mutex<UndoStack>> = Arc::default();
    super::signals::watch(interrupt.clone(), undo_slot.clone(), done.clone());
    let texts = templated_texts(loaded);
    let result = async {
        let vars = Vars::allocate(texts.iter().map(String::as_str))
            .map_err(|e| DrillError::Setup(e.to_string()))?;
        let (target, collector) = start_target(loaded, &vars, options).await?;
        let result = match undo_stack(loaded, &target, options) {
            Ok(undo) => {
                if let Ok(mut slot) = undo_slot.lock() {
                    *slot = undo.clone();
                }
                drive(
                    loaded,
                    seed,
                    &vars,
                    &target,
                    undo,
                    options,
                    interrupt.clone(),
                )
                .await
            }
            Err(e) => Err(e),
        };
        target.shutdown().await;
        drop(collector);
        result
    }
    .await;
    // Signals after this point find nothing left to undo; stop watching.
    done.cancel();
    result
}

/// The part of the run that needs a started target; the caller always shuts it down.
async fn drive(
    loaded: &LoadedScenario,
    seed: u64,
    vars: &Vars,
    target: &Target,
    undo: UndoStack,
    options: &RunOptions,
    interrupt: CancellationToken,
) -> Result<Observed, DrillError> {
    let scenario = &loaded.scenario;
    let mut warnings = Vec::new();
    let preflight = target.preflight(scenario, vars).await;
    for p in &preflight {
        progress(&format!(
            "pre-flight {}: {} {}",
            p.status.as_str(),
            p.name,
            p.detail
        ));
    }
    if let Some(failure) = preflight
        .iter()
        .find(|p| p.status == crate::report::model::PreflightStatus::Fail)
    {
        return Err(DrillError::Refused(format!(
            "pre-flight `{}` failed: {}",
            failure.name, failure.detail
        )));
    }

    let abort = CancellationToken::new();
    let stop = CancellationToken::new(); // cancelled on interrupt or abort: stops load and steps
    if interrupt.is_cancelled() {
        // Interrupted while the target was starting: unwind at once.
        stop.cancel();
    }
    {
        let (stop, interrupt, abort) = (stop.clone(), interrupt.clone(), abort.clone());
        tokio::spawn(async move {
            tokio::select! { _ = interrupt.cancelled() => {}, _ = abort.cancelled() => {} }
            stop.cancel();
        });
    }

    let started = jiff::Timestamp::now();
    let t0 = Instant::now() + START_DELAY;
    let abort_reason: Arc<Mutex<Option<String>>> = Arc::default();

    // Load, windows and guards.
    let (windows_tx, mut windows_rx) = mpsc::unbounded_channel::<Window>();
    let load_task = match &scenario.load {
        Some(spec) => {
            let config =
                super::load_config::build(loaded, spec, vars, t0).map_err(DrillError::Setup)?;
            let cancel = stop.clone();
            Some(tokio::spawn(async move {
                crate::load::run(config, cancel, Some(windows_tx)).await
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
        .filter_map(|g| GuardState::new(&g.value.http.value, g.value.for_.0))
        .collect();
    let window_task = {
        let (abort, abort_reason) = (abort.clone(), abort_reason.clone());
        tokio::spawn(async move {
            let mut store = WindowStore::default();
            let mut guards = guards;
            while let Some(window) = windows_rx.recv().await {
                let s = &window.stats;
                if window.second % 2 == 1 {
                    let p99 = s
                        .quantile_ms(99.0, crate::load::LatencyKind::Corrected)
                        .map_or("-".into(), |v| format!("{v:.0}ms"));
                    progress(&format!(
                        "t+{:>3}s  {} req  401: {}  5xx: {}  errors: {}  p99 {p99}{}",
                        window.second,
                        s.requests,
                        s.status_count(401),
                        s.class_count(5),
                        s.error_count(),
                        if s.dropped > 0 {
                            format!("  dropped: {}", s.dropped)
                        } else {
                            String::new()
                        }
                    ));
                }
                for guard in &mut guards {
                    if let Some(why) = guard.observe(&window.stats)
                        && !abort.is_cancelled()
                    {
                        if let Ok(mut reason) = abort_reason.lock() {
                            *reason = Some(why.clone());
                        }
                        tracing::error!("{why}: aborting the drill");
                        abort.cancel();
                    }
                }
                store.insert(window);
            }
            store
        })
    };

    // Prometheus checks sampled during the drill.
    let prometheus_task = super::prometheus::spawn_sampled(scenario, vars, t0, stop.clone());

    // The timeline.
    let watched: Vec<String> = scenario
        .checks
        .iter()
        .filter_map(|c| match &c.value.kind {
            crate::scenario::CheckKind::Rolled(r) => Some(r.deployment.value.clone()),
            _ => None,
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let mut events = Vec::new();
    tokio::time::sleep_until(t0).await;
    progress(&format!("t+0s load started; seed {seed}"));
    for (index, step) in scenario.steps.iter().enumerate() {
        let step = &step.value;
        let name = step_name(step, index, "#");
        if let Some(at) = &step.at {
            tokio::select! {
                _ = tokio::time::sleep_until(t0 + at.value.0) => {}
                _ = stop.cancelled() => break,
            }
        }
        if stop.is_cancelled() {
            break;
        }
        let record = run_step(target, &name, step, &undo, &mut rng, t0, &stop, &watched).await;
        let failed = record.error.clone();
        events.push(step_event(t0, &record, &undo));
        steps.push(record);
        if let Some(error) = failed {
            if let Ok(mut reason) = abort_reason.lock() {
                reason.get_or_insert_with(|| format!("step `{name}` failed: {error}"));
            }
            abort.cancel();
            break;
        }
    }

    // Wait for the load to finish (or be stopped).
    let (load, load_error) = match load_task {
        Some(task) => match task.await {
            Ok(Ok(summary)) => (Some(summary), None),
            Ok(Err(e)) => (None, Some(e.to_string())),
            Err(e) => (None, Some(format!("the load task panicked: {e}"))),
        },
        None => (None, None),
    };
    if let Some(e) = &load_error {
        warnings.push(format!("load: {e}"));
    }
    let end = Instant::now();
    let windows = window_task.await.unwrap_or_default();

    // Give jobs that checks look at a moment to finish, unless the drill was stopped.
    if !stop.is_cancelled() {
        wait_for_jobs(target, &stop).await;
    }
    let observations = target.observations().await;
    for (at, description) in target.notable() {
        events.push(TimelineEvent {
            at_s: offset(t0, at),
            kind: EventKind::Observation,
            step: None,
            description,
            targets: Vec::new(),
            undo: None,
            outcome: None,
        });
    }

    let ending = if interrupt.is_cancelled() {
        Ending::Interrupted
    } else if abort.is_cancelled() {
        Ending::Aborted(
            abort_reason
                .lock()
                .ok()
                .and_then(|r| r.clone())
                .unwrap_or_else(|| "aborted".into()),
        )
    } else {
        Ending::Completed
    };

    // Unwind: registered undos in reverse, then `finally`.
    let pending = undo.pending().len();
    if pending > 0 {
        progress(&format!("undoing {pending} registered fault(s)…"));
    }
    let undo_outcomes = undo.unwind(UNDO_TIMEOUT, |u| target.undo(u)).await;
    for outcome in &undo_outcomes {
        events.push(TimelineEvent {
            at_s: offset(t0, Instant::now()),
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
    for (index, step) in scenario.finally.iter().enumerate() {
        let name = step_name(&step.value, index, "finally #");
        let record = run_step(
            target,
            &name,
            &step.value,
            &undo,
            &mut rng,
            t0,
            &CancellationToken::new(),
            &watched,
        )
        .await;
        events.push(step_event(t0, &record, &undo));
        finally.push(record);
    }
    // `finally` steps may register undos too (e.g. a start_process); they are unwound now.
    let late = undo.unwind(UNDO_TIMEOUT, |u| target.undo(u)).await;

    let prometheus = prometheus_task.await.unwrap_or_default();
    let marks = marks_for(t0, end, &steps, &observations);
    Ok(Observed {
        t0,
        started,
        ended: jiff::Timestamp::now(),
        seed,
        ending,
        steps,
        windows,
        load,
        load_error,
        observations,
        undo: undo_outcomes.into_iter().chain(late).collect(),
        finally,
        prometheus,
        events,
        marks,
        warnings,
        vars: vars.clone(),
        preflight,
        run_id: options.run_id.clone(),
        undo_failed: undo.failed().len(),
    })
}

async fn wait_for_jobs(target: &Target, stop: &CancellationToken) {
    let deadline = Instant::now() + JOB_GRACE;
    loop {
        let running = target.jobs_running().await;
        if !running || Instant::now() >= deadline {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Identities of the workloads that `rolled` checks look at.
async fn identities(target: &Target, workloads: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    let mut all = BTreeMap::new();
    for w in workloads {
        all.insert(w.clone(), target.identities(w).await);
    }
    all
}

#[allow(clippy::too_many_arguments)]
async fn run_step(
    target: &Target,
    name: &str,
    step: &Step,
    undo: &UndoStack,
    rng: &mut StdRng,
    t0: Instant,
    stop: &CancellationToken,
    watched: &[String],
) -> StepRecord {
    let before = identities(target, watched).await;
    let start = Instant::now();
    let not_applied = |why: String| {
        tracing::error!("step `{name}` not applied: {why}");
        StepRecord {
            name: name.to_string(),
            action: step.action.clone(),
            start,
            end: Some(Instant::now()),
            before: before.clone(),
            after: before.clone(),
            applied: None,
            error: Some(format!("not applied: {why}")),
            is_fault: is_fault(&step.action),
        }
    };
    let registered = match target.undo_for(&step.action).await {
        Ok(u) => u,
        // Without a known way back the step must not run.
        Err(e) => return not_applied(format!("its undo could not be prepared: {e}")),
    };
    if let Some(u) = &registered {
        // Registered (and journaled) before the change is applied: an interruption mid-step,
        // or drillbook's own death, still undoes it.
        if let Err(e) = undo.register(name, u.clone()) {
            return not_applied(format!("its undo could not be recorded: {e}"));
        }
    }
    progress(&format!(
        "t+{:.1}s ▶ {name}: {}",
        offset(t0, start),
        crate::plan::describe_action(&step.action)
    ));
    let result = tokio::select! {
        r = target.apply(&step.action, rng) => r,
        _ = stop.cancelled() => Err("interrupted".to_string()),
    };
    let end = Instant::now();
    let (applied, error) = match result {
        Ok(applied) => {
            if !applied.targets.is_empty() {
                progress(&format!("          hit: {}", applied.targets.join(", ")));
            }
            (Some(applied), None)
        }
        Err(e) => {
            tracing::error!("step `{name}` failed: {e}");
            (None, Some(e))
        }
    };
    StepRecord {
        name: name.to_string(),
        action: step.action.clone(),
        start,
        end: Some(end),
        before,
        after: identities(target, watched).await,
        applied,
        error,
        is_fault: is_fault(&step.action),
    }
}

fn step_event(t0: Instant, record: &StepRecord, undo: &UndoStack) -> TimelineEvent {
    let registered = undo
        .pending()
        .into_iter()
        .rev()
        .find(|r| r.step == record.name)
        .map(|r| r.undo.describe());
    TimelineEvent {
        at_s: offset(t0, record.start),
        kind: if record.is_fault {
            EventKind::Fault
        } else {
            EventKind::Step
        },
        step: Some(record.name.clone()),
        description: record.applied.as_ref().map_or_else(
            || crate::plan::describe_action(&record.action),
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
