//! Why a drill refused, failed or ended early.

use crate::engine::fleet::FleetFailure;
use crate::engine::journal::JournalError;
use crate::engine::load_config::LoadConfigError;
use crate::engine::undo::RegisterError;
use crate::load::LoadError;
use crate::scenario::vars::VarError;
use crate::targets::TargetError;
use crate::targets::kube::KubeError;
use crate::targets::local::LocalError;

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
    #[error(
        "the silence was not created: {0} (with `silence.required: false` the drill runs without it)"
    )]
    Silence(crate::support::alertmanager::AlertmanagerError),
    #[error("the silence's removal could not be recorded: {0}")]
    SilenceNotRecorded(RegisterError),
}

/// Why a drill did not run to a verdict.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Vars(#[from] VarError),
    #[error(transparent)]
    Listener(#[from] crate::scenario::templated::ListenerError),
    #[error(transparent)]
    Process(LocalError),
    #[error(transparent)]
    Load(#[from] LoadConfigError),
    #[error(transparent)]
    Guard(#[from] crate::engine::prometheus::GuardError),
    #[error(transparent)]
    PodGuard(#[from] crate::engine::pod_guards::PodGuardError),
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
