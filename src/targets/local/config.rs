//! One process group's settings, with every `${...}` variable already expanded.

use std::collections::BTreeMap;
use std::time::Duration;

use super::LocalError;
use super::probe::ReadyProbe;
use crate::scenario::{ProcessKind, ProcessSpec, StartPolicy};

/// How `rollout_restart` (and `patch_env`) replace a group's instances, one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutStrategy {
    /// Start the new instance, wait until it is ready, then stop the old one (a Deployment's
    /// rolling update with maxSurge 1, maxUnavailable 0). Needs instances that can run side by
    /// side, so it is the default only for groups without a ready URL.
    Surge,
    /// Stop the old instance, then start the new one and wait until it is ready (maxSurge 0,
    /// maxUnavailable 1). Default for groups with a ready URL: that URL names one fixed port,
    /// which two processes cannot both listen on, and a probe could not tell them apart anyway.
    Replace,
}

/// A supervised process group as the local target runs it: a [`ProcessSpec`] after variable
/// expansion, plus the label `app=<name>` when the spec did not set `app`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessConfig {
    /// Group name, unique within a target.
    pub name: String,
    /// argv; no shell is involved. Never empty once validated.
    pub command: Vec<String>,
    /// Variables set on top of drillbook's own environment.
    pub env: BTreeMap<String, String>,
    /// Labels selectors match against.
    pub labels: BTreeMap<String, String>,
    /// `Service` restarts like a Deployment's pod; `Job` runs once per replica.
    pub kind: ProcessKind,
    /// Instances run side by side (for a job: instances per `start_group`).
    pub replicas: u32,
    /// `http://` URL that answers 2xx once an instance is ready.
    pub ready_url: Option<String>,
    /// Pause before a service instance that exited is started again.
    pub restart_delay: Duration,
    /// Whether [`super::LocalTarget::start`] starts the group.
    pub start: StartPolicy,
    /// How long [`super::LocalTarget::start`] waits for the group to be ready.
    pub ready_timeout: Duration,
    /// How rollouts replace instances. [`Self::from_spec`] picks `Replace` when there is a ready
    /// URL and `Surge` otherwise; [`Self::new`] starts with `Surge`.
    pub rollout: RolloutStrategy,
}

impl ProcessConfig {
    /// A one-replica service with the scenario model's defaults.
    pub fn new(
        name: impl Into<String>,
        command: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let name = name.into();
        let labels = BTreeMap::from([("app".to_string(), name.clone())]);
        Self {
            name,
            command: command.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            labels,
            kind: ProcessKind::Service,
            replicas: 1,
            ready_url: None,
            restart_delay: Duration::from_millis(300),
            start: StartPolicy::Immediately,
            ready_timeout: Duration::from_secs(15),
            rollout: RolloutStrategy::Surge,
        }
    }

    /// The process group of `spec` (whose fields the run already expanded), with
    /// `app=<name>` added, validated.
    pub fn from_spec(spec: &ProcessSpec) -> Result<Self, LocalError> {
        let name = spec.name.value.clone();
        let command = spec.command.clone();
        let env = spec.env.clone();
        let ready_url = spec.ready.clone();
        let mut labels = spec.labels.clone();
        labels
            .entry("app".to_string())
            .or_insert_with(|| name.clone());
        let rollout = if ready_url.is_some() {
            RolloutStrategy::Replace
        } else {
            RolloutStrategy::Surge
        };
        let config = Self {
            name,
            command,
            env,
            labels,
            kind: spec.kind,
            replicas: spec.replicas.value,
            ready_url,
            restart_delay: spec.restart_delay.as_duration(),
            start: spec.start,
            ready_timeout: spec.ready_timeout.as_duration(),
            rollout,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what the OS or the probe would otherwise reject later, mid-drill.
    pub fn validate(&self) -> Result<(), LocalError> {
        if self.command.first().is_none_or(String::is_empty) {
            return Err(LocalError::EmptyCommand {
                group: self.name.clone(),
            });
        }
        self.probe()?;
        Ok(())
    }

    /// The readiness probe for `ready_url`, if any.
    pub(super) fn probe(&self) -> Result<Option<ReadyProbe>, LocalError> {
        self.ready_url
            .as_deref()
            .map(|url| {
                ReadyProbe::parse(url).map_err(|reason| LocalError::BadReadyUrl {
                    group: self.name.clone(),
                    url: url.to_string(),
                    reason,
                })
            })
            .transpose()
    }
}
