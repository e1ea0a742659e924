//! The local target: a supervisor for named process groups, the local stand-in for
//! Deployments (`service`: kept running, restarted after a delay, rolled one at a time) and
//! Jobs (`job`: run once per replica, exit codes recorded).
//!
//! No orphans on any exit path: every child runs in its own process group, which
//! [`LocalTarget::shutdown`] terminates (SIGTERM, then SIGKILL after a grace period) and
//! dropping the target kills outright (a panic, an early return). Children also carry
//! `PR_SET_PDEATHSIG(SIGKILL)`, so they die with drillbook even when it is SIGKILLed; see
//! `child.rs` for the caveats.
//!
//! Readiness is probed (every 100 ms) from the start of each process until its first 2xx;
//! like a Kubernetes readiness probe that has passed, it is not re-checked afterwards. An
//! instance becomes unready when its process exits.
//!
//! The drill engine must still call [`LocalTarget::shutdown`] (or at least drop the target)
//! before exiting: `std::process::exit` runs no destructors, and then only PDEATHSIG remains,
//! which reaches direct children but not what they forked.

mod child;
mod config;
mod interpose;
mod preflight;
mod probe;
mod steps;
mod supervisor;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::sys::signal::Signal as NixSignal;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

pub use config::{ProcessConfig, RolloutStrategy};
pub use interpose::FrontPlan;
pub use steps::{LocalRun, LocalUndo};

use supervisor::{Group, InstanceKey, Shared, State, instance_name};

use crate::scenario::{PickMode, ProcessKind, Signal, StartPolicy};
use crate::units::HumanDuration;
use crate::units::LabelSelector;

/// How long a stopped instance may take to exit after SIGTERM before it gets SIGKILL.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the exit of a process that was sent SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Errors of the local target.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// No group has this name.
    #[error("no process group named `{0}`")]
    UnknownGroup(String),
    /// Two groups share a name.
    #[error("two process groups are named `{0}`")]
    DuplicateGroup(String),
    /// The command is empty.
    #[error("process group `{group}` has an empty command")]
    EmptyCommand {
        /// Group name.
        group: String,
    },
    /// The ready URL cannot be probed.
    #[error("process group `{group}`: ready URL `{url}`: {reason}")]
    BadReadyUrl {
        /// Group name.
        group: String,
        /// The URL as configured.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The OS refused to start a process.
    #[error("cannot start `{instance}` (`{command}`): {source}")]
    Spawn {
        /// Instance name, e.g. `proxy-0`.
        instance: String,
        /// The command line, for the message.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A group did not become ready in time.
    #[error(
        "process group `{group}`: {ready} of {wanted} instances ready after {}{}",
        HumanDuration(*.timeout),
        format_tail(.output_tail)
    )]
    NotReady {
        /// Group name.
        group: String,
        /// How long was waited.
        timeout: Duration,
        /// Instances that were ready.
        ready: u32,
        /// Instances wanted (replicas).
        wanted: u32,
        /// The group's last output lines, which usually say why.
        output_tail: Vec<String>,
    },
    /// A rollout did not finish in time; new instances that started stay in place.
    #[error(
        "rollout of `{group}` to generation {generation} did not finish within {}",
        HumanDuration(*.timeout)
    )]
    RolloutTimeout {
        /// Group name.
        group: String,
        /// The generation being rolled out.
        generation: u64,
        /// The rollout's time limit.
        timeout: Duration,
    },
    /// The env was changed but the rollout that applies it failed. `previous` is what the
    /// undo must restore (through [`LocalTarget::set_env`]).
    #[error("env of `{group}` was changed, but rolling it out failed: {source}")]
    EnvPatchedNotRolled {
        /// Group name.
        group: String,
        /// Values before the change (`None`: was unset).
        previous: BTreeMap<String, Option<String>>,
        /// Why the rollout failed.
        source: Box<LocalError>,
    },
    /// Job runs did not all finish in time.
    #[error(
        "process group `{group}`: {finished} of {total} runs finished after {}",
        HumanDuration(*.timeout)
    )]
    NotFinished {
        /// Group name.
        group: String,
        /// How long was waited.
        timeout: Duration,
        /// Runs that finished.
        finished: u32,
        /// Runs started.
        total: u32,
    },
    /// The action does not apply to this kind of group.
    #[error("`{action}` does not apply to `{group}`, which is a {kind}")]
    WrongKind {
        /// Group name.
        group: String,
        /// The action attempted.
        action: &'static str,
        /// The group's kind.
        kind: ProcessKind,
    },
    /// `start_group` on a service that is already running.
    #[error("process group `{0}` is already started")]
    AlreadyStarted(String),
    /// The group has not been started (`start: on_demand` and no `start_group` yet).
    #[error("process group `{0}` is not started")]
    NotStarted(String),
    /// `kill` found nothing running.
    #[error("process group `{0}` has no running instance to signal")]
    NoLiveInstance(String),
    /// The target is shutting down; nothing new starts.
    #[error("the local target is shutting down")]
    ShuttingDown,
    /// A faulted port's proxy could not listen.
    #[error("the fault proxy of an `http_fault` did not start")]
    FaultProxy(#[source] crate::fault::proxy::ProxyError),
}

fn format_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; last output:\n  {}", lines.join("\n  "))
    }
}

/// Why a process exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCause {
    /// On its own (finished, crashed, or signalled by someone other than drillbook).
    Exited,
    /// Signalled by [`LocalTarget::kill`] (a fault injection).
    Killed {
        /// The signal sent.
        signal: Signal,
    },
    /// Stopped by drillbook for good: a rollout replaced it or the target shut down.
    Stopped,
}

impl std::fmt::Display for ExitCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited => f.write_str("on its own"),
            Self::Killed { signal } => write!(f, "killed by drillbook ({})", signal_name(*signal)),
            Self::Stopped => f.write_str("stopped by drillbook"),
        }
    }
}

/// The name a person knows a scenario signal by.
pub fn signal_name(signal: Signal) -> &'static str {
    match signal {
        Signal::Kill => "SIGKILL",
        Signal::Term => "SIGTERM",
    }
}

/// How a process ended, in words: `code 0`, `signal SIGKILL`.
pub fn describe_exit(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(code), _) => format!("code {code}"),
        (None, Some(number)) => match NixSignal::try_from(number) {
            Ok(signal) => format!("signal {}", signal.as_str()),
            Err(_) => format!("signal {number}"),
        },
        (None, None) => "an unknown status".into(),
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code, when it exited normally.
    pub code: Option<i32>,
    /// Number of the signal that terminated it, if one did.
    pub signal: Option<i32>,
    /// When the exit was observed.
    pub at: Instant,
    /// Why it exited.
    pub cause: ExitCause,
}

impl ExitInfo {
    /// Exited normally with code 0.
    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }
}

/// One instance (the local analogue of a pod) at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    /// Group name.
    pub name: String,
    /// Instance number within the group; kept across restarts, new for rollout replacements.
    pub instance: u32,
    /// Pid (and process-group id) of the running process, if one runs.
    pub pid: Option<u32>,
    /// Group generation this instance was created in.
    pub generation: u64,
    /// Labels selectors match against.
    pub labels: BTreeMap<String, String>,
    /// Service or job.
    pub kind: ProcessKind,
    /// The process runs and its ready URL answered 2xx (or it has no ready URL).
    pub ready: bool,
    /// Times the process was restarted.
    pub restarts: u32,
    /// When the instance was created.
    pub created_at: Instant,
    /// When its current (or last) process started.
    pub started_at: Option<Instant>,
    /// When its current process became ready.
    pub ready_at: Option<Instant>,
    /// How its last process ended; for a running service, how the previous one ended.
    pub exited: Option<ExitInfo>,
    /// drillbook is stopping it for good.
    pub stopping: bool,
}

impl InstanceStatus {
    /// `proxy-0`: the name used in logs and output tails.
    pub fn instance_name(&self) -> String {
        instance_name(&self.name, self.instance)
    }

    /// A process is running.
    pub fn is_live(&self) -> bool {
        self.pid.is_some()
    }
}

/// One process signalled by [`LocalTarget::kill`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KilledInstance {
    /// Group name.
    pub name: String,
    /// Instance number.
    pub instance: u32,
    /// Pid (and process group) signalled.
    pub pid: u32,
    /// Signal sent.
    pub signal: Signal,
    /// When it was sent.
    pub at: Instant,
}

/// Something that happened to a supervised process; sent on the events channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEvent {
    /// A process started (first start or restart).
    Started {
        /// Group name.
        name: String,
        /// Instance number.
        instance: u32,
        /// Its pid.
        pid: u32,
        /// Generation of the instance.
        generation: u64,
        /// Restarts of this instance so far, this start included.
        restarts: u32,
        /// When.
        at: Instant,
    },
    /// A process became ready.
    Ready {
        /// Group name.
        name: String,
        /// Instance number.
        instance: u32,
        /// Its pid.
        pid: u32,
        /// Time from process start to ready.
        since_start: Duration,
        /// When.
        at: Instant,
    },
    /// A process ended.
    Exited {
        /// Group name.
        name: String,
        /// Instance number.
        instance: u32,
        /// Its pid.
        pid: u32,
        /// Exit code, when it exited normally.
        code: Option<i32>,
        /// Terminating signal number, if any.
        signal: Option<i32>,
        /// drillbook stopped it (rollout, shutdown); false for crashes and injected kills.
        expected: bool,
        /// Why it exited.
        cause: ExitCause,
        /// When.
        at: Instant,
    },
    /// A service instance will be started again after `delay`.
    Restarting {
        /// Group name.
        name: String,
        /// Instance number.
        instance: u32,
        /// Restart count once this restart happens.
        restarts: u32,
        /// Pause before the restart.
        delay: Duration,
        /// When the pause began.
        at: Instant,
    },
    /// A process was signalled by [`LocalTarget::kill`].
    Killed(KilledInstance),
    /// A restart failed to spawn; it is retried after the restart delay.
    SpawnFailed {
        /// Group name.
        name: String,
        /// Instance number.
        instance: u32,
        /// The error.
        error: String,
        /// When.
        at: Instant,
    },
    /// Every instance of a group was replaced by one of `generation`.
    RolledOut {
        /// Group name.
        name: String,
        /// The new generation.
        generation: u64,
        /// When the last replacement finished.
        at: Instant,
    },
}

/// How a process was stopped on shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopHow {
    /// Exited within the grace period after SIGTERM.
    Term,
    /// Needed SIGKILL.
    Kill,
}

/// One process stopped by [`LocalTarget::shutdown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedInstance {
    /// Group name.
    pub name: String,
    /// Instance number.
    pub instance: u32,
    /// Its pid.
    pub pid: u32,
    /// TERM or KILL.
    pub how: StopHow,
}

/// What [`LocalTarget::shutdown`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Processes that were running, and how each was stopped.
    pub stopped: Vec<StoppedInstance>,
    /// Pids still running after SIGKILL and a wait (should always be empty).
    pub survivors: Vec<u32>,
    /// How long shutdown took.
    pub elapsed: Duration,
}

impl ShutdownReport {
    /// Everything stopped.
    pub fn is_clean(&self) -> bool {
        self.survivors.is_empty()
    }
}

/// Supervises the process groups of a `target: local` scenario. See the module docs.
#[derive(Debug)]
pub struct LocalTarget {
    shared: Arc<Shared>,
    /// Serialises rollouts and env changes per group.
    rollout_locks: BTreeMap<String, Arc<tokio::sync::Mutex<()>>>,
    stop_grace: Duration,
}

impl LocalTarget {
    /// Starts every `immediately` group and waits until each service is ready (within its
    /// `ready_timeout`). On any failure everything started is stopped before the error returns.
    ///
    /// Call it (and every other method) from async code on the runtime that will live as long
    /// as the target, never from `spawn_blocking`: see the PDEATHSIG note in `child.rs`.
    pub async fn start(
        configs: Vec<ProcessConfig>,
        events: UnboundedSender<ProcessEvent>,
    ) -> Result<Self, LocalError> {
        let mut groups = BTreeMap::new();
        for config in configs {
            config.validate()?;
            if groups.contains_key(&config.name) {
                return Err(LocalError::DuplicateGroup(config.name));
            }
            groups.insert(config.name.clone(), Group::new(config));
        }
        let rollout_locks = groups
            .keys()
            .map(|name| (name.clone(), Arc::default()))
            .collect();
        let immediate: Vec<(String, ProcessKind, Duration)> = groups
            .values()
            .filter(|g| g.config.start == StartPolicy::Immediately)
            .map(|g| (g.config.name.clone(), g.config.kind, g.config.ready_timeout))
            .collect();
        let target = Self {
            shared: Arc::new(Shared::new(groups, events)),
            rollout_locks,
            stop_grace: DEFAULT_STOP_GRACE,
        };
        match target.start_immediate(&immediate).await {
            Ok(()) => Ok(target),
            Err(error) => {
                let report = target.shutdown().await;
                tracing::debug!(?report, "start failed, stopped what had started");
                Err(error)
            }
        }
    }

    async fn start_immediate(
        &self,
        groups: &[(String, ProcessKind, Duration)],
    ) -> Result<(), LocalError> {
        for (name, _, _) in groups {
            self.start_group(name).await?;
        }
        let services = groups
            .iter()
            .filter(|(_, kind, _)| *kind == ProcessKind::Service)
            .map(|(name, _, timeout)| self.wait_ready(name, *timeout));
        futures::future::try_join_all(services).await?;
        Ok(())
    }

    /// Sets how long stopped instances get between SIGTERM and SIGKILL (rollouts, shutdown).
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Starts a group: `replicas` instances. Does not wait for readiness ([`Self::wait_ready`]
    /// does). A service can be started once; each call on a job group starts a new batch of
    /// `replicas` runs, like creating another Job.
    pub async fn start_group(&self, name: &str) -> Result<(), LocalError> {
        let replicas = self.shared.update(|state| {
            let group = state.group_mut(name)?;
            if group.started && group.config.kind == ProcessKind::Service {
                return Err(LocalError::AlreadyStarted(name.to_string()));
            }
            group.started = true;
            Ok(group.config.replicas)
        })?;
        self.shared.create_instances(name, replicas)?;
        Ok(())
    }

    /// Signals `count` running instances of a group (fewer if fewer run), chosen by `mode`:
    /// `Random` draws from the instances ordered by number, so a seeded `rng` picks the same
    /// ones every run; `Oldest`/`Newest` go by the start time of the current process. The whole
    /// process group of each instance is signalled. Services are restarted after their delay.
    pub async fn kill(
        &self,
        name: &str,
        count: u32,
        signal: Signal,
        mode: PickMode,
        rng: &mut impl rand::Rng,
    ) -> Result<Vec<KilledInstance>, LocalError> {
        let picked = self.shared.read(|state| -> Result<Vec<_>, LocalError> {
            let group = state.group(name)?;
            let mut live: Vec<(u32, u32, Option<Instant>)> = group
                .instances
                .iter()
                .filter(|(_, i)| i.is_current())
                .filter_map(|(id, i)| i.pid.map(|pid| (*id, pid, i.started_at)))
                .collect();
            if live.is_empty() {
                return Err(LocalError::NoLiveInstance(name.to_string()));
            }
            let count = usize::try_from(count).unwrap_or(usize::MAX).min(live.len());
            Ok(match mode {
                PickMode::Random => rand::seq::index::sample(rng, live.len(), count)
                    .into_iter()
                    .map(|index| live[index])
                    .collect(),
                PickMode::Oldest | PickMode::Newest => {
                    live.sort_by_key(|(id, _, started_at)| (*started_at, *id));
                    if mode == PickMode::Newest {
                        live.reverse();
                    }
                    live.truncate(count);
                    live
                }
            })
        })?;
        let nix_signal = match signal {
            Signal::Kill => NixSignal::SIGKILL,
            Signal::Term => NixSignal::SIGTERM,
        };
        let mut killed = Vec::with_capacity(picked.len());
        for (id, pid, _) in picked {
            let key = InstanceKey {
                group: name.to_string(),
                id,
            };
            self.shared.update(|state| {
                state.note_killed(&key, ExitCause::Killed { signal });
            });
            // An instance that exited a moment ago may already be gone (ESRCH): it was
            // still picked, and reporting it keeps the pick reproducible.
            let _ = child::signal_group(pid, nix_signal);
            let record = KilledInstance {
                name: name.to_string(),
                instance: id,
                pid,
                signal,
                at: Instant::now(),
            };
            tracing::info!(instance = %instance_name(name, id), pid, signal = signal_name(signal), "killed");
            self.shared.emit(ProcessEvent::Killed(record.clone()));
            killed.push(record);
        }
        Ok(killed)
    }

    /// Replaces every instance of a service group, one at a time, with a new one of a new
    /// generation (see [`RolloutStrategy`]). A group not started yet only gets the new
    /// generation. Fails when the whole rollout takes longer than `timeout`.
    pub async fn rollout_restart(&self, name: &str, timeout: Duration) -> Result<(), LocalError> {
        let _rolling = self.rollout_lock(name)?.lock().await;
        self.roll(name, Instant::now() + timeout, timeout).await
    }

    /// Sets env vars of a group and rolls it so every instance runs with them. Returns the
    /// previous values (`None`: was unset) for the undo, which is [`Self::set_env`] with them.
    /// Setting values a group already has changes nothing and rolls nothing.
    pub async fn patch_env(
        &self,
        name: &str,
        env: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<BTreeMap<String, Option<String>>, LocalError> {
        let changes = env
            .iter()
            .map(|(key, value)| (key.clone(), Some(value.clone())))
            .collect();
        self.set_env(name, &changes, timeout).await
    }

    /// Sets (`Some`) or removes (`None`) env vars of a group and rolls it like
    /// [`Self::patch_env`]; returns the previous values. A job group only records the change
    /// for its next batch. If the rollout fails the env stays changed and the error is
    /// [`LocalError::EnvPatchedNotRolled`], carrying the previous values.
    pub async fn set_env(
        &self,
        name: &str,
        changes: &BTreeMap<String, Option<String>>,
        timeout: Duration,
    ) -> Result<BTreeMap<String, Option<String>>, LocalError> {
        let _rolling = self.rollout_lock(name)?.lock().await;
        let deadline = Instant::now() + timeout;
        let (previous, changed, kind) = self.shared.update(|state| {
            let group = state.group_mut(name)?;
            let previous: BTreeMap<String, Option<String>> = changes
                .keys()
                .map(|key| (key.clone(), group.config.env.get(key).cloned()))
                .collect();
            let mut config = (*group.config).clone();
            for (key, value) in changes {
                match value {
                    Some(value) => config.env.insert(key.clone(), value.clone()),
                    None => config.env.remove(key),
                };
            }
            let changed = config.env != group.config.env;
            if changed {
                tracing::info!(group = name, ?changes, "env changed");
                group.config = Arc::new(config);
            }
            Ok::<_, LocalError>((previous, changed, group.config.kind))
        })?;
        if !changed {
            return Ok(previous);
        }
        if kind == ProcessKind::Job {
            self.shared.update(|state| {
                if let Ok(group) = state.group_mut(name) {
                    group.generation += 1;
                }
            });
            return Ok(previous);
        }
        match self.roll(name, deadline, timeout).await {
            Ok(()) => Ok(previous),
            Err(source) => Err(LocalError::EnvPatchedNotRolled {
                group: name.to_string(),
                previous,
                source: Box::new(source),
            }),
        }
    }

    fn rollout_lock(&self, name: &str) -> Result<&Arc<tokio::sync::Mutex<()>>, LocalError> {
        self.rollout_locks
            .get(name)
            .ok_or_else(|| LocalError::UnknownGroup(name.to_string()))
    }

    /// The rollout itself; the caller holds the group's rollout lock.
    async fn roll(
        &self,
        name: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), LocalError> {
        let (generation, old_ids, strategy, started) = self.shared.update(|state| {
            let group = state.group_mut(name)?;
            if group.config.kind == ProcessKind::Job {
                return Err(LocalError::WrongKind {
                    group: name.to_string(),
                    action: "rollout",
                    kind: ProcessKind::Job,
                });
            }
            group.generation += 1;
            let old_ids: Vec<u32> = group
                .instances
                .iter()
                .filter(|(_, i)| i.is_current())
                .map(|(id, _)| *id)
                .collect();
            Ok((
                group.generation,
                old_ids,
                group.config.rollout,
                group.started,
            ))
        })?;
        if !started {
            return Ok(());
        }
        tracing::info!(group = name, generation, ?strategy, "rolling out");
        let timed_out = || LocalError::RolloutTimeout {
            group: name.to_string(),
            generation,
            timeout,
        };
        for old_id in old_ids {
            let old = InstanceKey {
                group: name.to_string(),
                id: old_id,
            };
            if strategy == RolloutStrategy::Replace {
                self.stop_instance(&old).await;
            }
            let created = self.shared.create_instances(name, 1)?;
            for new in &created {
                if !self.wait_instance_ready(new, deadline).await? {
                    return Err(timed_out());
                }
            }
            if strategy == RolloutStrategy::Surge {
                self.stop_instance(&old).await;
            }
        }
        self.shared.emit(ProcessEvent::RolledOut {
            name: name.to_string(),
            generation,
            at: Instant::now(),
        });
        Ok(())
    }

    /// Waits until the instance is ready (true) or the deadline passes (false).
    async fn wait_instance_ready(
        &self,
        key: &InstanceKey,
        deadline: Instant,
    ) -> Result<bool, LocalError> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let settled = self
            .shared
            .wait_until(timeout, |state| {
                state.closed || state.instance(key).is_none_or(|i| i.ready || i.finished)
            })
            .await;
        if settled.is_none() {
            return Ok(false);
        }
        let ready = self
            .shared
            .read(|state| state.instance(key).is_some_and(|i| i.ready && !i.finished));
        if ready {
            Ok(true)
        } else {
            Err(LocalError::ShuttingDown)
        }
    }

    /// Stops one instance for good: SIGTERM to its group, SIGKILL after the grace period.
    /// Returns how it stopped, or `None` if no process was running.
    async fn stop_instance(&self, key: &InstanceKey) -> Option<StopHow> {
        let pid = self.shared.update(|state| state.begin_stop(key));
        if let Some(pid) = pid {
            let _ = child::signal_group(pid, NixSignal::SIGTERM);
        }
        let how = if self.wait_instance_finished(key, self.stop_grace).await {
            pid.map(|_| StopHow::Term)
        } else {
            self.shared.signal_instance(key, NixSignal::SIGKILL);
            self.wait_instance_finished(key, KILL_WAIT).await;
            Some(StopHow::Kill)
        };
        self.shared.update(|state| state.retire(key));
        how
    }

    async fn wait_instance_finished(&self, key: &InstanceKey, timeout: Duration) -> bool {
        self.shared
            .wait_until(timeout, |state| {
                state.instance(key).is_none_or(|i| i.finished)
            })
            .await
            .is_some()
    }

    /// Waits until every replica of a service group's current generation runs and is ready;
    /// returns how long that took.
    pub async fn wait_ready(&self, name: &str, timeout: Duration) -> Result<Duration, LocalError> {
        let (kind, started, wanted) = self.shared.read(|state| {
            state
                .group(name)
                .map(|g| (g.config.kind, g.started, g.config.replicas))
        })?;
        if kind == ProcessKind::Job {
            return Err(LocalError::WrongKind {
                group: name.to_string(),
                action: "wait_ready",
                kind,
            });
        }
        if !started {
            return Err(LocalError::NotStarted(name.to_string()));
        }
        let ready_count = |state: &State| {
            state.group(name).map_or(0, |group| {
                let ready = group
                    .instances
                    .values()
                    .filter(|i| i.is_current() && i.ready && i.generation == group.generation)
                    .count();
                u32::try_from(ready).unwrap_or(u32::MAX)
            })
        };
        match self
            .shared
            .wait_until(timeout, |state| ready_count(state) >= wanted)
            .await
        {
            Some(elapsed) => Ok(elapsed),
            None => {
                let (ready, output_tail) = self.shared.read(|state| {
                    let tail = state.output_tail(name);
                    let skip = tail.len().saturating_sub(20);
                    (ready_count(state), tail[skip..].to_vec())
                });
                Err(LocalError::NotReady {
                    group: name.to_string(),
                    timeout,
                    ready,
                    wanted,
                    output_tail,
                })
            }
        }
    }

    /// Waits until every instance of a started job group has run to completion; returns their
    /// statuses (exit codes in `exited`).
    pub async fn wait_finished(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Vec<InstanceStatus>, LocalError> {
        let (kind, started) = self
            .shared
            .read(|state| state.group(name).map(|g| (g.config.kind, g.started)))?;
        if kind != ProcessKind::Job {
            return Err(LocalError::WrongKind {
                group: name.to_string(),
                action: "wait_finished",
                kind,
            });
        }
        if !started {
            return Err(LocalError::NotStarted(name.to_string()));
        }
        let all_finished = |state: &State| {
            state
                .group(name)
                .is_ok_and(|g| g.instances.values().all(|i| i.finished))
        };
        if self
            .shared
            .wait_until(timeout, all_finished)
            .await
            .is_none()
        {
            let (finished, total) = self.shared.read(|state| {
                state.group(name).map_or((0, 0), |g| {
                    let done = g.instances.values().filter(|i| i.finished).count();
                    (done, g.instances.len())
                })
            });
            return Err(LocalError::NotFinished {
                group: name.to_string(),
                timeout,
                finished: u32::try_from(finished).unwrap_or(u32::MAX),
                total: u32::try_from(total).unwrap_or(u32::MAX),
            });
        }
        Ok(self.snapshot_of(name))
    }

    /// Every instance of every group (instances replaced by a rollout are gone), ordered by
    /// group name and instance number.
    pub fn snapshot(&self) -> Vec<InstanceStatus> {
        self.shared.read(State::statuses)
    }

    fn snapshot_of(&self, name: &str) -> Vec<InstanceStatus> {
        let mut statuses = self.snapshot();
        statuses.retain(|s| s.name == name);
        statuses
    }

    /// Instances whose labels match `selector`.
    pub fn matching(&self, selector: &LabelSelector) -> Vec<InstanceStatus> {
        let mut statuses = self.snapshot();
        statuses.retain(|s| selector.matches(&s.labels));
        statuses
    }

    /// The env a group's new instances get (on top of drillbook's own environment).
    pub fn env_of(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.shared
            .read(|state| state.group(name).ok().map(|g| g.config.env.clone()))
    }

    /// The group's current settings.
    pub fn config_of(&self, name: &str) -> Option<ProcessConfig> {
        self.shared
            .read(|state| state.group(name).ok().map(|g| (*g.config).clone()))
    }

    /// The last lines (up to 200 per instance) every instance of the group printed, each
    /// prefixed with `[<instance name>] `; a restart is marked by `--- restarted ---`.
    pub fn output_tail(&self, name: &str) -> Vec<String> {
        self.shared.read(|state| state.output_tail(name))
    }

    /// Stops everything with the default grace period; see [`Self::shutdown_with_grace`].
    pub async fn shutdown(self) -> ShutdownReport {
        let grace = self.stop_grace;
        self.shutdown_with_grace(grace).await
    }

    /// Stops every instance of one group for good (SIGTERM, then SIGKILL after the stop grace):
    /// the undo of a step that started it. Services are not restarted afterwards.
    pub async fn stop_group(&self, name: &str) -> Result<(), LocalError> {
        let running = self
            .shared
            .update(|state| -> Result<Vec<u32>, LocalError> {
                let ids: Vec<u32> = state.group(name)?.instances.keys().copied().collect();
                Ok(ids
                    .into_iter()
                    .filter_map(|id| {
                        state.begin_stop(&InstanceKey {
                            group: name.to_string(),
                            id,
                        })
                    })
                    .collect())
            })?;
        for pid in &running {
            let _ = child::signal_group(*pid, NixSignal::SIGTERM);
        }
        let finished = |state: &State| {
            state
                .groups
                .get(name)
                .is_none_or(|g| g.instances.values().all(|i| i.finished || i.pid.is_none()))
        };
        if self
            .shared
            .wait_until(self.stop_grace, finished)
            .await
            .is_none()
        {
            for pid in &running {
                let _ = child::signal_group(*pid, NixSignal::SIGKILL);
            }
            self.shared.wait_until(KILL_WAIT, finished).await;
        }
        Ok(())
    }

    /// Stops everything: no restarts from now on, SIGTERM to every process group, SIGKILL to
    /// those still running after `grace`.
    pub async fn shutdown_with_grace(self, grace: Duration) -> ShutdownReport {
        let started = Instant::now();
        let running = self.shared.update(|state| {
            state.closed = true;
            let running = state.live_pids();
            let every_instance: Vec<InstanceKey> = state
                .groups
                .iter()
                .flat_map(|(name, g)| {
                    g.instances.keys().map(move |id| InstanceKey {
                        group: name.clone(),
                        id: *id,
                    })
                })
                .collect();
            for key in &every_instance {
                state.begin_stop(key);
            }
            running
        });
        for (_, pid) in &running {
            let _ = child::signal_group(*pid, NixSignal::SIGTERM);
        }
        let all_finished = |state: &State| {
            state
                .groups
                .values()
                .all(|g| g.instances.values().all(|i| i.finished))
        };
        let mut stopped = Vec::with_capacity(running.len());
        if self.shared.wait_until(grace, all_finished).await.is_none() {
            let lingering = self.shared.read(State::live_pids);
            for (key, pid) in &lingering {
                tracing::warn!(instance = %instance_name(&key.group, key.id), pid, "still running after SIGTERM, sending SIGKILL");
                let _ = child::signal_group(*pid, NixSignal::SIGKILL);
            }
            self.shared.wait_until(KILL_WAIT, all_finished).await;
            stopped.extend(running.iter().map(|(key, pid)| StoppedInstance {
                name: key.group.clone(),
                instance: key.id,
                pid: *pid,
                how: if lingering.iter().any(|(k, _)| k == key) {
                    StopHow::Kill
                } else {
                    StopHow::Term
                },
            }));
        } else {
            stopped.extend(running.iter().map(|(key, pid)| StoppedInstance {
                name: key.group.clone(),
                instance: key.id,
                pid: *pid,
                how: StopHow::Term,
            }));
        }
        let survivors: Vec<u32> = self
            .shared
            .read(State::live_pids)
            .into_iter()
            .map(|(_, pid)| pid)
            .collect();
        let tasks = std::mem::take(&mut self.shared.state().tasks);
        for task in tasks {
            task.abort();
        }
        let report = ShutdownReport {
            stopped,
            survivors,
            elapsed: started.elapsed(),
        };
        tracing::debug!(?report, "local target shut down");
        report
    }
}

impl Drop for LocalTarget {
    /// The path for panics and early returns: kill every process group synchronously and stop
    /// the supervisors, so nothing is restarted. After [`LocalTarget::shutdown`] this finds
    /// nothing left to do.
    fn drop(&mut self) {
        let mut state = self.shared.state();
        state.closed = true;
        let running = state.live_pids();
        for (_, pid) in &running {
            let _ = child::signal_group(*pid, NixSignal::SIGKILL);
        }
        for task in state.tasks.drain(..) {
            task.abort();
        }
        if !running.is_empty() {
            tracing::warn!(
                count = running.len(),
                "local target dropped without shutdown: killed its processes"
            );
        }
    }
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it: the state stays
/// consistent between statements, and cleanup must still work after a panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
