//! Where faults go: a Kubernetes cluster (`kube`) or supervised local processes (`local`).
//!
//! This module is the seam between the engine and the targets: the engine drives any
//! [`Target`] and never names a target-specific type; each target translates steps into its
//! own calls, owns its undo type and reports what it saw as [`observe::Observations`].
//! Nothing under `targets` imports the engine.

pub mod fault_spec;
pub mod fleet;
pub mod kube;
pub mod local;
pub mod observe;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use rand::rngs::StdRng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::report::model::PreflightResult;
use crate::scenario::{Action, Scenario, TargetKind};
use crate::support::alertmanager::{AlertmanagerError, SilenceUndo};
use crate::support::command::CommandError;
use crate::units::LabelSelector;
use fleet::{FleetEvent, FleetSpec};
use observe::{Labels, Observations, PodHealth};

/// Why a target could not prepare, apply or undo a step.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Kube(#[from] kube::KubeError),
    #[error(transparent)]
    Local(#[from] local::LocalError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Alertmanager(#[from] AlertmanagerError),
    /// A command ran to its end but did not exit 0.
    #[error("`{argv}` ended with {}: {stderr_tail}", crate::support::command::status_words(.status))]
    Exited {
        argv: String,
        status: Option<i32>,
        stderr_tail: String,
    },
    /// A local undo command did not exit 0 (its argv is already in the undo's description).
    #[error("ended with {}", crate::support::command::status_words(.status))]
    UndoExited { status: Option<i32> },
    /// The action needs the other kind of target (validation refuses this before a run).
    #[error("`{action}` needs a {needs} target")]
    WrongTarget {
        action: &'static str,
        needs: TargetKind,
    },
    /// The step lacks what this target needs to run it (validation refuses this too).
    #[error("{0}")]
    Incomplete(&'static str),
    /// A kill found nothing alive to kill.
    #[error("no running process of `{0}` to kill")]
    NothingToKill(String),
}

impl TargetError {
    /// `action` is not one a target of kind `here` runs: validation refuses this before a
    /// run ([`Action::only_on`] states the rule), so only a bypassed validation gets here.
    pub fn not_runnable(action: &Action, here: TargetKind) -> Self {
        Self::WrongTarget {
            action: action.kind(),
            needs: action.only_on().unwrap_or(here),
        }
    }
}

/// What one applied step did and hit, for the timeline and the phase boundaries.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub description: String,
    /// What the step hit (pods, processes with their pids).
    pub targets: Vec<String>,
    /// Labels of what the step disrupted, to find when that workload was ready again.
    pub disrupted: Vec<Labels>,
}

impl Applied {
    /// A step that hit nothing in particular.
    pub fn described(description: String) -> Self {
        Self {
            description,
            ..Self::default()
        }
    }
}

/// How to revert one applied fault on one kind of target. Serialisable: the Kubernetes
/// target's undos are written to the undo journal.
pub trait UndoAction: Clone + Debug + Serialize + DeserializeOwned + Send + 'static {
    /// One line for the timeline, the journal listing and a second Ctrl-C.
    fn describe(&self) -> String;
}

/// A started target, as the engine drives it. Shut it down with [`Target::shutdown`] on
/// every path.
// A drill runs on one task and never sends these futures elsewhere, so no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait Target {
    /// This target's way back from a step; every target can remove a drill's silence.
    type Undo: UndoAction + From<SilenceUndo>;

    fn kind(&self) -> TargetKind;

    /// The undo of `action`, computed from the current state *before* the action runs.
    async fn undo_for(&self, action: &Action) -> Result<Option<Self::Undo>, TargetError>;

    /// Applies one step; returns what it hit.
    async fn apply(&self, action: &Action, rng: &mut StdRng) -> Result<Applied, TargetError>;

    async fn undo(&self, undo: Self::Undo) -> Result<(), TargetError>;

    /// Identities of a workload's running members (pids, or pod-template hashes): a step
    /// "rolled" the workload when none of the identities before it are left after it.
    async fn identities(&self, workload: &str) -> BTreeSet<String>;

    async fn observations(&self) -> Observations;

    /// Things worth a line on the report's timeline that no step caused directly.
    fn notable(&self) -> Vec<(Instant, String)>;

    /// Whether a job the checks may look at is still running.
    async fn jobs_running(&self) -> bool;

    /// Pre-flight checks for this target (before any fault).
    async fn preflight(&self, scenario: &Scenario) -> Vec<PreflightResult>;

    /// The undo that removes the load workers of `fleet`, registered (and journaled) before
    /// the first worker exists. Only Kubernetes targets run load workers.
    fn fleet_undo(&self, _fleet: &FleetSpec) -> Result<Self::Undo, TargetError> {
        Err(TargetError::WrongTarget {
            action: "load.from: cluster",
            needs: TargetKind::Kubernetes,
        })
    }

    /// Starts the load workers of `fleet`; their output and ends arrive on the receiver until
    /// every worker ended, or `stop` is cancelled (then the workers are removed at once).
    async fn start_fleet(
        &self,
        _fleet: &FleetSpec,
        _stop: CancellationToken,
    ) -> Result<mpsc::UnboundedReceiver<FleetEvent>, TargetError> {
        Err(TargetError::WrongTarget {
            action: "load.from: cluster",
            needs: TargetKind::Kubernetes,
        })
    }

    async fn shutdown(self);

    /// The current health of the pods matching `selector`, for abort guards; `None` when this
    /// target has no pods to ask about.
    fn pod_health(&self, _selector: &LabelSelector) -> Option<PodHealth> {
        None
    }
}

/// `key=value` (or `unset key`) pairs of an env/ConfigMap restore, for undo descriptions.
pub(crate) fn assignments(values: &BTreeMap<String, Option<String>>) -> String {
    values
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => format!("unset {k}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}
