//! Load workers run by a target (cluster load, issue #13): what the engine asks for and what
//! the target reports back. The target runs the workers and carries their output lines; it
//! does not read them (the engine merges them with `load::wire`), so targets stay free of the
//! load engine.

use std::collections::BTreeMap;
use std::time::Duration;

/// A fleet of load workers to run in the target's namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSpec {
    /// Name of the fleet; worker `i` runs as Job `{name}-{i}`. Unique per run.
    pub name: String,
    /// Image holding the `drillbook` binary.
    pub image: String,
    /// Command-line arguments (after the binary) of each worker, by worker index.
    pub workers: Vec<Vec<String>>,
    /// CPU and memory of each worker (requests = limits), e.g. `500m` and `128Mi`.
    pub resources: WorkerResources,
    /// Node selector of the worker pods.
    pub node_selector: BTreeMap<String, String>,
    /// A bearer token held in a Secret, given to each worker as an environment variable.
    pub bearer_secret: Option<SecretEnv>,
    /// Workers end by themselves after this long (Job `activeDeadlineSeconds`), even if
    /// drillbook dies.
    pub deadline: Duration,
}

/// CPU and memory of one worker; `None` leaves it to the namespace's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerResources {
    pub cpu: Option<String>,
    pub memory: Option<String>,
}

/// An environment variable of the worker set from a Secret's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEnv {
    pub env: String,
    pub secret: String,
    pub key: String,
}

impl FleetSpec {
    /// Name of worker `index`'s Job.
    pub fn job_name(&self, index: usize) -> String {
        format!("{}-{index}", self.name)
    }

    /// Names of every worker's Job.
    pub fn job_names(&self) -> Vec<String> {
        (0..self.workers.len()).map(|i| self.job_name(i)).collect()
    }
}

/// What a running fleet reports, worker by worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetEvent {
    /// One line of a worker's output. After a reconnect a worker's lines may come again.
    Line { worker: u32, line: String },
    /// A worker's state changed while it is not yet sending (e.g. `ImagePullBackOff`).
    Waiting { worker: u32, why: String },
    /// A worker ended; no more lines come from it.
    Ended { worker: u32, end: WorkerEnd },
}

/// How a worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerEnd {
    /// Its process exited 0.
    Succeeded,
    /// It failed, could not start, or was removed (in words, e.g. `exit code 137 (OOMKilled)`).
    Failed(String),
}

impl std::fmt::Display for WorkerEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerEnd::Succeeded => f.write_str("finished"),
            WorkerEnd::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}
