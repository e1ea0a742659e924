//! Shared supervisor state and the task that keeps one instance running.
//!
//! An *instance* is the local analogue of a pod: it has a stable number within its group and
//! keeps it across restarts of its process (like container restarts), while a rollout replaces
//! instances with new ones. Each instance is driven by one tokio task ([`supervise`]) that owns
//! the `Child`, probes readiness, records the exit and restarts services after their delay.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal as NixSignal;
use tokio::process::Child;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::child::{self, OutputRing};
use super::config::ProcessConfig;
use super::describe_exit;
use super::probe::ReadyProbe;
use super::{ExitCause, ExitInfo, InstanceStatus, LocalError, ProcessEvent, lock};
use crate::scenario::ProcessKind;

/// Identifies one instance: its group and its number within the group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct InstanceKey {
    pub(super) group: String,
    pub(super) id: u32,
}

/// State shared by the target handle and every supervisor task.
#[derive(Debug)]
pub(super) struct Shared {
    state: Mutex<State>,
    /// Bumped after every state change, so waiters re-check their condition.
    changed: watch::Sender<u64>,
    events: mpsc::UnboundedSender<ProcessEvent>,
}

#[derive(Debug, Default)]
pub(super) struct State {
    /// Set by shutdown and drop: no process may be spawned any more.
    pub(super) closed: bool,
    pub(super) groups: BTreeMap<String, Group>,
    pub(super) tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
pub(super) struct Group {
    /// Current settings; new instances are created from them.
    pub(super) config: Arc<ProcessConfig>,
    /// Bumps on every rollout; instances remember the generation they were created in.
    pub(super) generation: u64,
    pub(super) started: bool,
    next_id: u32,
    pub(super) instances: BTreeMap<u32, Instance>,
}

#[derive(Debug)]
pub(super) struct Instance {
    /// Settings this instance was created with; restarts reuse them, like a pod keeps its spec.
    spec: Arc<ProcessConfig>,
    probe: Option<ReadyProbe>,
    pub(super) generation: u64,
    pub(super) pid: Option<u32>,
    pub(super) ready: bool,
    pub(super) restarts: u32,
    created_at: Instant,
    pub(super) started_at: Option<Instant>,
    ready_at: Option<Instant>,
    exited: Option<ExitInfo>,
    /// drillbook is stopping this instance for good (rollout or shutdown): do not restart it.
    pub(super) stopping: bool,
    /// Stopped by a rollout: gone from the group, like a deleted pod.
    pub(super) retired: bool,
    /// The supervisor task has ended; the instance will never run again.
    pub(super) finished: bool,
    /// Why the running process is expected to exit, set by whoever signalled it.
    pending_cause: Option<ExitCause>,
    output: OutputRing,
}

impl Instance {
    /// Counts toward the group's replicas: not stopped and not replaced.
    pub(super) fn is_current(&self) -> bool {
        !self.stopping && !self.retired && !self.finished
    }

    fn status(&self, group: &str, id: u32) -> InstanceStatus {
        InstanceStatus {
            name: group.to_string(),
            instance: id,
            pid: self.pid,
            generation: self.generation,
            labels: self.spec.labels.clone(),
            kind: self.spec.kind,
            ready: self.ready,
            restarts: self.restarts,
            created_at: self.created_at,
            started_at: self.started_at,
            ready_at: self.ready_at,
            exited: self.exited.clone(),
            stopping: self.stopping,
        }
    }
}

/// Instance names as they appear in logs and output tails: `proxy-0`.
pub(super) fn instance_name(group: &str, id: u32) -> String {
    format!("{group}-{id}")
}

impl Group {
    pub(super) fn new(config: ProcessConfig) -> Self {
        Self {
            config: Arc::new(config),
            generation: 1,
            started: false,
            next_id: 0,
            instances: BTreeMap::new(),
        }
    }
}

impl State {
    pub(super) fn group(&self, name: &str) -> Result<&Group, LocalError> {
        self.groups
            .get(name)
            .ok_or_else(|| LocalError::UnknownGroup(name.to_string()))
    }

    pub(super) fn group_mut(&mut self, name: &str) -> Result<&mut Group, LocalError> {
        self.groups
            .get_mut(name)
            .ok_or_else(|| LocalError::UnknownGroup(name.to_string()))
    }

    fn instance_mut(&mut self, key: &InstanceKey) -> Option<&mut Instance> {
        self.groups.get_mut(&key.group)?.instances.get_mut(&key.id)
    }

    pub(super) fn instance(&self, key: &InstanceKey) -> Option<&Instance> {
        self.groups.get(&key.group)?.instances.get(&key.id)
    }

    /// Every instance still visible (retired ones are gone), ordered by group and number.
    pub(super) fn statuses(&self) -> Vec<InstanceStatus> {
        self.groups
            .iter()
            .flat_map(|(name, group)| {
                group
                    .instances
                    .iter()
                    .filter(|(_, i)| !i.retired)
                    .map(move |(id, i)| i.status(name, *id))
            })
            .collect()
    }

    /// Output tail of every instance of `group`, each line prefixed with the instance name.
    pub(super) fn output_tail(&self, group: &str) -> Vec<String> {
        let Some(group_state) = self.groups.get(group) else {
            return Vec::new();
        };
        group_state
            .instances
            .iter()
            .flat_map(|(id, instance)| {
                let name = instance_name(group, *id);
                let lines: Vec<String> = lock(&instance.output)
                    .iter()
                    .map(|line| format!("[{name}] {line}"))
                    .collect();
                lines
            })
            .collect()
    }

    /// Live process groups, for signalling on shutdown and drop.
    pub(super) fn live_pids(&self) -> Vec<(InstanceKey, u32)> {
        self.groups
            .iter()
            .flat_map(|(name, group)| {
                group.instances.iter().filter_map(move |(id, i)| {
                    i.pid.map(|pid| {
                        (
                            InstanceKey {
                                group: name.clone(),
                                id: *id,
                            },
                            pid,
                        )
                    })
                })
            })
            .collect()
    }

    /// Marks an instance as being stopped for good by drillbook; returns its pid if running.
    pub(super) fn begin_stop(&mut self, key: &InstanceKey) -> Option<u32> {
        let instance = self.instance_mut(key)?;
        instance.stopping = true;
        if instance.pid.is_some() {
            instance.pending_cause = Some(ExitCause::Stopped);
        }
        instance.pid
    }

    /// Records that the running process of `key` is being signalled by a fault injection.
    pub(super) fn note_killed(&mut self, key: &InstanceKey, cause: ExitCause) {
        if let Some(instance) = self.instance_mut(key) {
            // Not ready from the moment it is signalled: a `wait_ready` right after the kill
            // must wait for the replacement, not see the dying process.
            instance.ready = false;
            instance.pending_cause = Some(cause);
        }
    }

    pub(super) fn retire(&mut self, key: &InstanceKey) {
        if let Some(instance) = self.instance_mut(key)
            && instance.spec.kind == ProcessKind::Service
        {
            instance.retired = true;
        }
    }
}

impl Shared {
    pub(super) fn new(
        groups: BTreeMap<String, Group>,
        events: mpsc::UnboundedSender<ProcessEvent>,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                closed: false,
                groups,
                tasks: Vec::new(),
            }),
            changed: watch::channel(0).0,
            events,
        }
    }

    /// Runs `change` under the state lock, then wakes every waiter.
    pub(super) fn update<R>(&self, change: impl FnOnce(&mut State) -> R) -> R {
        let result = change(&mut lock(&self.state));
        self.changed
            .send_modify(|version| *version = version.wrapping_add(1));
        result
    }

    /// Reads the state under its lock.
    pub(super) fn read<R>(&self, read: impl FnOnce(&State) -> R) -> R {
        read(&lock(&self.state))
    }

    /// The state lock, for drop (which must not wake anyone).
    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(super) fn emit(&self, event: ProcessEvent) {
        // A closed receiver only means nobody is listening any more.
        let _ = self.events.send(event);
    }

    /// Waits until `condition` holds; returns how long that took, or `None` on timeout.
    pub(super) async fn wait_until(
        &self,
        timeout: Duration,
        condition: impl Fn(&State) -> bool,
    ) -> Option<Duration> {
        let started = Instant::now();
        // Subscribing before the first check means no change can slip in between.
        let mut changes = self.changed.subscribe();
        let waiting = async {
            loop {
                if self.read(&condition) {
                    return;
                }
                if changes.changed().await.is_err() {
                    // Unreachable while `self` lives; avoid spinning if it ever happens.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, waiting)
            .await
            .ok()
            .map(|()| started.elapsed())
    }

    /// Creates `count` new instances of `group` from its current config, spawns their
    /// processes and their supervisor tasks. Returns their keys.
    pub(super) fn create_instances(
        self: &Arc<Self>,
        group: &str,
        count: u32,
    ) -> Result<Vec<InstanceKey>, LocalError> {
        let mut created = Vec::new();
        for _ in 0..count {
            let spawned = self.update(|state| -> Result<_, LocalError> {
                if state.closed {
                    return Err(LocalError::ShuttingDown);
                }
                let group_state = state.group_mut(group)?;
                let id = group_state.next_id;
                group_state.next_id += 1;
                let spec = group_state.config.clone();
                let instance = Instance {
                    probe: spec.probe()?,
                    spec,
                    generation: group_state.generation,
                    pid: None,
                    ready: false,
                    restarts: 0,
                    created_at: Instant::now(),
                    started_at: None,
                    ready_at: None,
                    exited: None,
                    stopping: false,
                    retired: false,
                    finished: false,
                    pending_cause: None,
                    output: Arc::new(Mutex::new(VecDeque::new())),
                };
                group_state.instances.insert(id, instance);
                let key = InstanceKey {
                    group: group.to_string(),
                    id,
                };
                match self.spawn_locked(state, &key) {
                    Ok(child) => Ok((key, child)),
                    Err(error) => {
                        if let Ok(g) = state.group_mut(group) {
                            g.instances.remove(&id);
                        }
                        Err(error)
                    }
                }
            })?;
            let (key, child) = spawned;
            let task = tokio::spawn(supervise(self.clone(), key.clone(), child));
            lock(&self.state).tasks.push(task);
            created.push(key);
        }
        Ok(created)
    }

    /// Starts the process of an existing instance. Called with the state locked, so shutdown
    /// and drop (which set `closed` under the same lock) can never miss a fresh child.
    fn spawn_locked(&self, state: &mut State, key: &InstanceKey) -> Result<Child, LocalError> {
        if state.closed {
            return Err(LocalError::ShuttingDown);
        }
        let name = instance_name(&key.group, key.id);
        let instance = state
            .instance_mut(key)
            .ok_or_else(|| LocalError::UnknownGroup(key.group.clone()))?;
        if instance.stopping {
            return Err(LocalError::ShuttingDown);
        }
        if instance.started_at.is_some() {
            push_marker(&instance.output, "restarted");
        }
        let (child, pid) =
            child::spawn(&instance.spec, &name, &instance.output).map_err(|source| {
                LocalError::Spawn {
                    instance: name.clone(),
                    command: instance.spec.command.join(" "),
                    source,
                }
            })?;
        let now = Instant::now();
        instance.pid = Some(pid);
        instance.started_at = Some(now);
        instance.pending_cause = None;
        instance.ready = instance.probe.is_none();
        instance.ready_at = instance.ready.then_some(now);
        tracing::debug!(instance = %name, pid, "started");
        self.emit(ProcessEvent::Started {
            name: key.group.clone(),
            instance: key.id,
            pid,
            generation: instance.generation,
            restarts: instance.restarts,
            at: now,
        });
        if instance.ready {
            self.emit(ProcessEvent::Ready {
                name: key.group.clone(),
                instance: key.id,
                pid,
                since_start: Duration::ZERO,
                at: now,
            });
        }
        Ok(child)
    }

    fn mark_ready(&self, key: &InstanceKey, pid: u32) {
        self.update(|state| {
            let Some(instance) = state.instance_mut(key) else {
                return;
            };
            // The process may have been replaced while the probe was in flight.
            if instance.pid != Some(pid) || instance.ready {
                return;
            }
            let now = Instant::now();
            instance.ready = true;
            instance.ready_at = Some(now);
            let since_start = instance
                .started_at
                .map_or(Duration::ZERO, |s| now.duration_since(s));
            tracing::debug!(instance = %instance_name(&key.group, key.id), pid, ?since_start, "ready");
            self.emit(ProcessEvent::Ready {
                name: key.group.clone(),
                instance: key.id,
                pid,
                since_start,
                at: now,
            });
        });
    }

    /// Records an exit; returns the restart delay when the instance must be started again.
    fn record_exit(
        &self,
        key: &InstanceKey,
        pid: u32,
        code: Option<i32>,
        signal: Option<i32>,
    ) -> Option<Duration> {
        self.update(|state| {
            let closed = state.closed;
            let instance = state.instance_mut(key)?;
            let now = Instant::now();
            let cause = instance.pending_cause.take().unwrap_or(ExitCause::Exited);
            let expected = instance.stopping || closed;
            instance.pid = None;
            instance.ready = false;
            instance.exited = Some(ExitInfo {
                code,
                signal,
                at: now,
                cause,
            });
            let name = instance_name(&key.group, key.id);
            if expected {
                tracing::debug!(instance = %name, pid, exit = %describe_exit(code, signal), "stopped");
            } else {
                tracing::info!(instance = %name, pid, exit = %describe_exit(code, signal), cause = %cause, "exited");
            }
            self.emit(ProcessEvent::Exited {
                name: key.group.clone(),
                instance: key.id,
                pid,
                code,
                signal,
                expected,
                cause,
                at: now,
            });
            let restart = instance.spec.kind == ProcessKind::Service && !expected;
            restart.then_some(instance.spec.restart_delay)
        })
    }

    fn mark_finished(&self, key: &InstanceKey) {
        self.update(|state| {
            if let Some(instance) = state.instance_mut(key) {
                instance.finished = true;
            }
        });
    }

    /// Whether the instance must not run again (stopped, or the target is closing).
    fn must_stop(&self, key: &InstanceKey) -> bool {
        self.read(|state| state.closed || state.instance(key).is_none_or(|i| i.stopping))
    }

    /// Restarts the instance's process after `delay`, retrying on spawn failures. Returns `None`
    /// when the instance was stopped meanwhile.
    async fn restart_after(&self, key: &InstanceKey, delay: Duration) -> Option<Child> {
        loop {
            let restarts = self.read(|state| state.instance(key).map(|i| i.restarts + 1))?;
            self.emit(ProcessEvent::Restarting {
                name: key.group.clone(),
                instance: key.id,
                restarts,
                delay,
                at: Instant::now(),
            });
            let key_for_wait = key.clone();
            let stopped = self
                .wait_until(delay, |state| {
                    state.closed || state.instance(&key_for_wait).is_none_or(|i| i.stopping)
                })
                .await;
            if stopped.is_some() {
                return None;
            }
            let respawned = self.update(|state| {
                // Counted before spawning so the Started event carries the new count.
                let previous = state
                    .instance_mut(key)
                    .map(|i| std::mem::replace(&mut i.restarts, restarts));
                let result = self.spawn_locked(state, key);
                if let (Err(_), Some(previous), Some(instance)) =
                    (&result, previous, state.instance_mut(key))
                {
                    instance.restarts = previous;
                }
                result
            });
            match respawned {
                Ok(child) => return Some(child),
                Err(LocalError::ShuttingDown) => return None,
                Err(error) => {
                    tracing::warn!(instance = %instance_name(&key.group, key.id), %error, "restart failed");
                    self.emit(ProcessEvent::SpawnFailed {
                        name: key.group.clone(),
                        instance: key.id,
                        error: error.to_string(),
                        at: Instant::now(),
                    });
                }
            }
        }
    }

    /// Sends `signal` to the instance's process group if it is running; returns the pid.
    pub(super) fn signal_instance(&self, key: &InstanceKey, signal: NixSignal) -> Option<u32> {
        let pid = self.read(|state| state.instance(key).and_then(|i| i.pid))?;
        let _ = child::signal_group(pid, signal);
        Some(pid)
    }
}

fn push_marker(output: &OutputRing, what: &str) {
    child::push_line(output, format!("--- {what} ---"));
}

/// Keeps one instance running: waits for its process (probing readiness meanwhile), records
/// the exit, and restarts a service after its delay until the instance is stopped.
async fn supervise(shared: Arc<Shared>, key: InstanceKey, mut child: Child) {
    loop {
        let (pid, probe) = shared.read(|state| {
            state
                .instance(&key)
                .map(|i| (i.pid.unwrap_or(0), i.probe.clone()))
                .unwrap_or_default()
        });
        let status = match probe {
            Some(probe) => {
                let exit = child.wait();
                tokio::pin!(exit);
                tokio::select! {
                    status = &mut exit => status,
                    () = probe.wait_until_ready() => {
                        shared.mark_ready(&key, pid);
                        exit.await
                    }
                }
            }
            None => child.wait().await,
        };
        // Whatever the process left behind in its group goes with it, like a container's
        // processes go with the container.
        let _ = child::signal_group(pid, NixSignal::SIGKILL);
        let (code, signal) = match status {
            Ok(status) => (status.code(), status.signal()),
            Err(error) => {
                tracing::warn!(instance = %instance_name(&key.group, key.id), %error, "lost track of the process");
                (None, None)
            }
        };
        let Some(delay) = shared.record_exit(&key, pid, code, signal) else {
            break;
        };
        if shared.must_stop(&key) {
            break;
        }
        match shared.restart_after(&key, delay).await {
            Some(next) => child = next,
            None => break,
        }
    }
    shared.mark_finished(&key);
}
