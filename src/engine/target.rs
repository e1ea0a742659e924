//! The target a drill runs against, behind one interface for the engine: apply a step, compute
//! its undo before it runs, undo, tell workload identities apart, report observations.

use std::collections::BTreeSet;

use rand::rngs::StdRng;

use super::kube::KubeRun;
use super::local::{self, Applied, ProcessLog};
use super::observe::Observations;
use super::undo::Undo;
use crate::scenario::Action;
use crate::targets::local::LocalTarget;

/// A started target. Shut it down with [`Target::shutdown`] on every path.
#[derive(Debug)]
pub enum Target {
    Local {
        target: LocalTarget,
        log: ProcessLog,
    },
    Kube(Box<KubeRun>),
}

impl Target {
    /// The undo of `action`, computed from the current state *before* the action runs.
    pub async fn undo_for(&self, action: &Action) -> Result<Option<Undo>, String> {
        match self {
            Target::Local { target, .. } => Ok(local::undo_for(target, action)),
            Target::Kube(run) => run.undo_for(action).await,
        }
    }

    pub async fn apply(&self, action: &Action, rng: &mut StdRng) -> Result<Applied, String> {
        match self {
            Target::Local { target, .. } => local::apply(target, action, rng).await,
            Target::Kube(run) => run.apply(action, rng).await,
        }
    }

    pub async fn undo(&self, undo: Undo) -> Result<(), String> {
        match self {
            Target::Local { target, .. } => local::undo(target, undo).await,
            Target::Kube(run) => run.undo(undo).await,
        }
    }

    /// Identities of a workload's running members (pids, or pod-template hashes): a step
    /// "rolled" the workload when none of the identities before it are left after it.
    pub async fn identities(&self, workload: &str) -> BTreeSet<String> {
        match self {
            Target::Local { target, .. } => local::live_pids(&target.snapshot(), workload)
                .into_iter()
                .map(|p| p.to_string())
                .collect(),
            Target::Kube(run) => run.identities(workload).await,
        }
    }

    pub async fn observations(&self) -> Observations {
        match self {
            Target::Local { target, log } => local::observations(target, log),
            Target::Kube(run) => run.observations(),
        }
    }

    /// Things worth a line on the report's timeline that no step caused directly.
    pub fn notable(&self) -> Vec<(tokio::time::Instant, String)> {
        match self {
            Target::Local { .. } => Vec::new(),
            Target::Kube(run) => run.notable(),
        }
    }

    /// Whether a job the checks may look at is still running.
    pub async fn jobs_running(&self) -> bool {
        match self {
            Target::Local { target, .. } => local::jobs(&target.snapshot()).any(|j| j.is_live()),
            Target::Kube(run) => run.jobs_running(),
        }
    }

    /// Pre-flight checks for this target (before any fault).
    pub async fn preflight(
        &self,
        scenario: &crate::scenario::Scenario,
        vars: &crate::scenario::vars::Vars,
    ) -> Vec<crate::report::model::PreflightResult> {
        match self {
            Target::Local { .. } => super::preflight::run_local(scenario, vars).await,
            Target::Kube(run) => run.target.preflight(scenario).await,
        }
    }

    pub async fn shutdown(self) {
        match self {
            Target::Local { target, .. } => {
                let report = target.shutdown().await;
                if !report.is_clean() {
                    tracing::warn!("some processes needed SIGKILL at shutdown: {report:?}");
                }
            }
            Target::Kube(run) => run.observer.stop(),
        }
    }
}
