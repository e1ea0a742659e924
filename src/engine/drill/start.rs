//! Target start-up: connect or start the target, journal its undos, run its pre-flight.

use super::RunOptions;
use super::error::{DrillError, Refusal};
use crate::engine::journal::{self, Journal, JournalDoc, JournalTarget};
use crate::engine::progress::ProgressSink;
use crate::engine::undo::UndoStack;
use crate::report::model::{PreflightResult, PreflightStatus};
use crate::scenario::vars::{VarError, Vars};
use crate::scenario::{Action, KubernetesTarget, LoadedScenario, Scenario};
use crate::targets::Target;
use crate::targets::kube::{KubeRun, KubeTarget, KubeUndo};
use crate::targets::local::{FrontPlan, LocalRun, LocalUndo, ProcessConfig};

/// Connects to the scenario's cluster; the undo stack is journaled, after making sure no
/// earlier run left undos behind for the same target.
pub(super) async fn start_kube(
    loaded: &LoadedScenario,
    spec: &KubernetesTarget,
    options: &RunOptions,
) -> Result<(KubeRun, UndoStack<KubeUndo>), DrillError> {
    let target = KubeTarget::connect_with(spec, &options.connect)
        .await
        .map_err(Refusal::from)?;
    options.progress.note(format!(
        "kubernetes target: context `{}`, namespace `{}`",
        target.context(),
        target.namespace()
    ));
    let undo = journaled_stack(loaded, spec, &target, options)?;
    Ok((KubeRun::start(target, &loaded.scenario), undo))
}

/// Starts the scenario's local process groups; their undos need no journal (the processes
/// die with drillbook).
pub(super) async fn start_local(
    loaded: &LoadedScenario,
    vars: &Vars,
    progress: &ProgressSink,
) -> Result<(LocalRun, UndoStack<LocalUndo>), DrillError> {
    let configs = loaded
        .scenario
        .local_processes()
        .iter()
        .map(|p| ProcessConfig::from_spec(&p.value))
        .collect::<Result<Vec<_>, _>>()
        .map_err(DrillError::Process)?;
    let fronts = fronts(&loaded.scenario, vars)?;
    for front in &fronts {
        progress.note(format!(
            "fault proxy on port `{}`: {} (forwarding untouched until its step)",
            front.port,
            front.words()
        ));
    }
    progress.note(format!(
        "starting {} local process group(s)…",
        configs.len()
    ));
    let planned_end = crate::targets::fault_spec::planned_end(&loaded.scenario);
    let run = LocalRun::start(configs, fronts, planned_end)
        .await
        .map_err(Refusal::LocalStart)?;
    Ok((run, UndoStack::default()))
}

/// Where each local `http_fault` listens (the port callers were given) and forwards (the
/// listener's private port, chosen by the run before expansion).
fn fronts(scenario: &Scenario, vars: &Vars) -> Result<Vec<FrontPlan>, DrillError> {
    let mut plans = Vec::new();
    for (listener, ports) in &vars.private {
        for (port, &private) in ports {
            let Some(&public) = vars.ports.get(port) else {
                return Err(VarError::Unknown {
                    name: format!("port.{port}"),
                }
                .into());
            };
            let protocol = scenario
                .steps
                .iter()
                .find_map(|s| match &s.value.action {
                    Action::HttpFault(f) if f.port.as_ref().is_some_and(|p| &p.value == port) => {
                        Some(f.protocol)
                    }
                    _ => None,
                })
                .unwrap_or_default();
            plans.push(FrontPlan {
                protocol: crate::targets::fault_spec::protocol(protocol),
                port: port.clone(),
                listener: listener.clone(),
                public,
                private,
            });
        }
    }
    Ok(plans)
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
pub(super) async fn preflight<T: Target>(
    target: &T,
    loaded: &LoadedScenario,
    progress: &ProgressSink,
) -> Result<Vec<PreflightResult>, Refusal> {
    let preflight = target.preflight(&loaded.scenario).await;
    for p in &preflight {
        progress.note(format!(
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
