//! Scenario format v1: the types a scenario YAML file deserializes into.
//!
//! Design notes:
//! - Steps and checks are mappings with a few shared keys (`name`, `at`, `phase`) plus exactly one
//!   *kind* key (`kill_pods: {...}`, `http: "rate(401) == 0"`). They deserialize through
//!   [`super::tagged`], so an unknown kind is reported at its own key with a "did you mean".
//! - Every value that semantic validation must point at is wrapped in [`Sp`], which remembers
//!   where it was written.
//! - Durations, rates and selectors are parsed while deserializing (see [`crate::units`]), so a
//!   bad value is reported at its exact position.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::parsed::{
    Comparison, Condition, FieldPath, HttpFormula, Parsed, Search, Share, Status, WholeName,
};
use super::spanned::Sp;
use super::tagged::tagged_kinds;
use crate::units::{AlertMatcher, HumanDuration, LabelSelector, Rate};

/// The only `apiVersion` this build understands.
pub const API_VERSION: &str = "drillbook/v1";

/// A drill: what to run against, the load to drive, the faults to inject and how to judge it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "drillbook scenario v1")]
pub struct Scenario {
    /// Always `drillbook/v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: Sp<String>,
    /// Short identifier used in report paths and the drill log (letters, digits, `-`, `_`).
    pub name: Sp<String>,
    /// What this drill proves, in one or two sentences. Shown in reports.
    #[serde(default)]
    pub description: String,
    /// Markdown runbook whose "Drill log" table receives one row per run (relative to this file).
    #[serde(default)]
    pub runbook: Option<Sp<String>>,
    /// Seed for every random choice (which pods die). Omit it for a fresh seed, printed at start.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Where the faults go.
    pub target: TargetSpec,
    /// HTTP load driven at the service for the whole drill.
    #[serde(default)]
    pub load: Option<LoadSpec>,
    /// Conditions that must hold before any fault is injected.
    #[serde(default)]
    pub preflight: Vec<Sp<PreflightCheck>>,
    /// The fault timeline.
    #[serde(default)]
    pub steps: Vec<Sp<Step>>,
    /// The rollback procedure: steps run in order only when the drill aborts (a guard trips, a
    /// step fails, the load cannot measure), before the registered undos, e.g. `rollout_undo`
    /// then `wait_rollout`. The first failing one ends the procedure; the undos still run.
    #[serde(default)]
    pub on_abort: Vec<Sp<Step>>,
    /// Steps that always run at the end, after registered undos, whatever happened.
    #[serde(default)]
    pub finally: Vec<Sp<Step>>,
    /// Guards checked every second; when one trips the drill is aborted and undone.
    #[serde(default)]
    pub abort_when: Vec<Sp<Guard>>,
    /// Assertions that decide the verdict.
    #[serde(default)]
    pub checks: Vec<Sp<Check>>,
    /// Named windows of the drill. Default: baseline, fault, recovery (see README).
    #[serde(default)]
    pub phases: Option<Vec<Sp<PhaseSpec>>>,
    /// Lift drillbook's sanity limits on callers, connections, replicas, rates and load
    /// workers, for a drill that really means them (see `drillbook validate`'s message).
    #[serde(default)]
    pub allow_large: bool,
    /// An Alertmanager silence kept for the length of the drill, so that the faults it injects
    /// do not page whoever is on call (the alerts `alerts` checks expect to fire stay audible).
    #[serde(default)]
    pub silence: Option<Sp<SilenceSpec>>,
    /// Parameters: `${var.NAME}` anywhere in the file (URLs, selectors, queries, images, helm
    /// values) is replaced by `--var NAME=value` or the declared default before parsing.
    #[serde(default)]
    pub vars: BTreeMap<String, VarDecl>,
    /// Prometheus Pushgateway base URL the run's results are pushed to (`run --pushgateway`
    /// overrides it); see docs/history.md for the metrics.
    #[serde(default)]
    pub pushgateway: Option<Sp<String>>,
}

/// A scenario parameter. Without a `default` it is required on the command line.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VarDecl {
    /// Value used when `--var` does not set one.
    #[serde(default)]
    pub default: Option<String>,
    /// Regular expression the value must match in full, e.g. `[0-9]+\.[0-9]+\.[0-9]+`.
    #[serde(default)]
    pub pattern: Option<String>,
    /// What the value is for (shown by `plan`).
    #[serde(default)]
    pub description: Option<String>,
}

/// Where the drill runs: a Kubernetes cluster or processes on this machine.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetSpec {
    Kubernetes(KubernetesTarget),
    Local(LocalTarget),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesTarget {
    /// kubeconfig context. Every API call and every helm/kubectl command is pinned to it;
    /// the kubeconfig's current-context is never used.
    pub context: Sp<String>,
    /// Namespace every action works in.
    pub namespace: Sp<String>,
    /// Contexts this scenario may ever run against. `context` (and `--context`) must be listed.
    pub allowed_contexts: Vec<Sp<String>>,
    /// Namespaces this scenario may touch. Default: just `namespace`.
    #[serde(default)]
    pub allowed_namespaces: Vec<Sp<String>>,
    /// kubeconfig file. Default: `$KUBECONFIG` or `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// Upper bound on pods any one action may touch.
    #[serde(default = "default_max_pods")]
    pub max_pods: u32,
}

fn default_max_pods() -> u32 {
    5
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalTarget {
    /// Processes drillbook starts, supervises and tears down.
    pub processes: Vec<Sp<ProcessSpec>>,
}

/// A supervised process: a Deployment-like service or a Job-like one-shot.
///
/// Strings in `command`, `env` and `ready` may use `${drillbook}` (this binary) and
/// `${port.NAME}` (a free loopback port picked once per run and shared by the whole scenario).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    pub name: Sp<String>,
    /// argv; no shell is involved.
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Labels for selectors. `app: <name>` is added when missing.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `service` restarts like a Deployment's pod; `job` runs to completion like a Job's.
    #[serde(default)]
    pub kind: ProcessKind,
    /// How many copies run (each one a separate process).
    #[serde(default = "one_placed")]
    pub replicas: Sp<u32>,
    /// URL that answers 2xx when the process is ready (like a readiness probe).
    #[serde(default)]
    pub ready: Option<String>,
    /// Delay before a crashed or killed service is started again.
    #[serde(default = "default_restart_delay")]
    pub restart_delay: HumanDuration,
    /// `immediately` (before the drill) or `on_demand` (by a `start_process` step).
    #[serde(default)]
    pub start: StartPolicy,
    /// How long to wait for readiness at start-up before the drill is refused.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: HumanDuration,
}

fn one() -> u32 {
    1
}

fn one_placed() -> Sp<u32> {
    Sp::unplaced(1)
}

fn default_restart_delay() -> HumanDuration {
    HumanDuration::from_millis(300)
}

fn default_ready_timeout() -> HumanDuration {
    HumanDuration::from_secs(15)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcessKind {
    #[default]
    Service,
    Job,
}

impl std::fmt::Display for ProcessKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Service => "service",
            Self::Job => "job",
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartPolicy {
    #[default]
    Immediately,
    OnDemand,
}

/// The HTTP load driven during the drill (an open model: requests are sent on schedule).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    pub url: Sp<String>,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body, inline.
    #[serde(default)]
    pub body: Option<String>,
    /// Request body from a file (relative to the scenario file).
    #[serde(default)]
    pub body_file: Option<String>,
    /// CA certificates (PEM, relative to the scenario file) trusted for https besides the
    /// system trust store: a staging service with an internal CA (local load only).
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    /// Constant rate for the whole run. Use either `rate` or `stages`.
    #[serde(default)]
    pub rate: Option<Sp<Rate>>,
    /// Rate profile: each stage ramps linearly to `target` over `duration`.
    #[serde(default)]
    pub stages: Vec<Sp<Stage>>,
    /// Length of the load. With `stages`, defaults to their total.
    #[serde(default)]
    pub duration: Option<Sp<HumanDuration>>,
    #[serde(default = "default_connections")]
    pub connections: Sp<u32>,
    /// Close each connection after this many requests and open a new one (default: keep
    /// alive). Behind a Kubernetes Service, kube-proxy balances per connection: use `1` to see
    /// what callers that connect per call see after a pod is replaced.
    #[serde(default)]
    pub requests_per_connection: Option<u64>,
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// A request later than this behind schedule is counted as dropped instead of sent.
    #[serde(default = "default_max_lag")]
    pub max_lag: HumanDuration,
    /// Verify the steady state before the first fault: abort the drill there unless the
    /// baseline had a 2xx and at most half of its requests failed. `false` only for a drill
    /// that injects into a service already broken on purpose.
    #[serde(default = "default_steady_state")]
    pub steady_state: bool,
    /// Where the requests come from: `local` (this process; for `target.local` and services
    /// reachable from the operator) or `cluster` (load worker pods in the target's namespace,
    /// calling the Service from inside the cluster, as the real callers do).
    #[serde(default)]
    pub from: LoadFrom,
    /// The load workers of `from: cluster`.
    #[serde(default)]
    pub cluster: Option<Sp<ClusterLoadSpec>>,
    /// Named extra streams driven like this load (same rate, duration and settings) at other
    /// URLs, e.g. `canary` and `stable`; `compare` checks judge one against another.
    #[serde(default)]
    pub streams: BTreeMap<String, StreamSpec>,
}

/// Where the load's requests come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadFrom {
    /// This drillbook process sends them.
    #[default]
    Local,
    /// Load worker pods in the target's namespace send them (Kubernetes targets).
    Cluster,
}

/// Load workers in the cluster: one Job each, running `drillbook load` from `image`. The rate
/// is split evenly over the workers, callers are spread over them, and their per-second
/// histograms are merged exactly.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterLoadSpec {
    /// Number of worker pods.
    #[serde(default = "default_workers")]
    pub workers: u32,
    /// Image holding the drillbook binary at /usr/local/bin/drillbook (this version's image).
    pub image: String,
    /// CPU of each worker (request = limit), e.g. `500m`.
    #[serde(default)]
    pub cpu: Option<String>,
    /// Memory of each worker (request = limit), e.g. `128Mi`.
    #[serde(default)]
    pub memory: Option<String>,
    /// Node selector of the worker pods.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Time the workers get to be scheduled and started before the load's time zero.
    #[serde(default = "default_start_within")]
    pub start_within: HumanDuration,
}

fn default_workers() -> u32 {
    2
}

fn default_start_within() -> HumanDuration {
    HumanDuration::from_secs(20)
}

/// One named load stream: the same load as `load:`, sent to another URL.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    pub url: Sp<String>,
}

fn default_steady_state() -> bool {
    true
}

fn default_method() -> String {
    "GET".into()
}

fn default_connections() -> Sp<u32> {
    Sp::unplaced(8)
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(2)
}

fn default_max_lag() -> HumanDuration {
    HumanDuration::from_secs(1)
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub duration: HumanDuration,
    pub target: Rate,
}

/// Bearer tokens for the load. Exactly one source: `bearer_env`, `bearer_file` or `token_url`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// Environment variable holding one token.
    #[serde(default)]
    pub bearer_env: Option<String>,
    /// File holding one token per line; re-read when it changes (token rotation).
    #[serde(default)]
    pub bearer_file: Option<String>,
    /// Endpoint that mints a token per POST (JSON response).
    #[serde(default)]
    pub token_url: Option<String>,
    /// One token held in a Kubernetes Secret of the target's namespace (cluster load): the
    /// workers read it from their environment; it never appears in a spec, log or report.
    #[serde(default)]
    pub bearer_secret: Option<SecretKeyRef>,
    /// JSON field of the token endpoint's response that holds the token.
    #[serde(default = "default_token_field")]
    pub token_field: String,
    /// Number of callers, each with its own token, used round-robin: N callers stand for N jobs.
    #[serde(default = "one_placed")]
    pub callers: Sp<u32>,
    /// A caller is replaced by a new one (a new job, a fresh token) after this long.
    #[serde(default)]
    pub caller_lifetime: Option<HumanDuration>,
}

/// A key of a Secret in the target's namespace.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

fn default_token_field() -> String {
    "token".into()
}

/// One step of the timeline: shared keys plus exactly one action key.
#[derive(Debug, Clone)]
pub struct Step {
    /// Name other parts of the scenario refer to (phases, expected failures).
    pub name: Option<Sp<String>>,
    /// Offset from the start of the load. Without it the step runs after the previous one.
    pub at: Option<Sp<HumanDuration>>,
    /// Where the action key was written.
    pub action_at: super::spanned::Pos,
    pub action: Action,
}

tagged_kinds! {
    /// What a step does.
    pub enum Action {
        /// Delete pods matching a selector (kubernetes).
        KillPods("kill_pods", KillPods),
        /// Evict pods through the policy/v1 Eviction API, honouring PodDisruptionBudgets (kubernetes).
        Evict("evict", Evict),
        /// Signal processes of a supervised group (local).
        KillProcess("kill_process", KillProcess),
        /// Start a supervised process group that has `start: on_demand` (local).
        StartProcess("start_process", ProcessRef),
        /// Restart a Deployment's pods like `kubectl rollout restart` (local: restart the group one by one).
        RolloutRestart("rollout_restart", WorkloadRef),
        /// Set a Deployment's replica count; undo restores the previous count (kubernetes).
        Scale("scale", Scale),
        /// Set container env vars of a Deployment (kubernetes) or process group (local) and roll it.
        PatchEnv("patch_env", PatchEnv),
        /// Set keys of a ConfigMap; undo restores the previous values (kubernetes).
        PatchConfigmap("patch_configmap", PatchConfigmap),
        /// `helm upgrade --reuse-values --set ...`, pinned to the scenario's context and namespace.
        HelmUpgrade("helm_upgrade", HelmUpgrade),
        /// Run a command (argv, no shell), pinned to the scenario's context when it is kubectl or helm.
        Command("command", CommandAction),
        /// Wait for a Deployment rollout to complete, like `kubectl rollout status`.
        WaitRollout("wait_rollout", WaitRollout),
        /// Wait until pods matching a selector (or a local process group) are ready.
        WaitReady("wait_ready", WaitReady),
        /// Do nothing for a while.
        Wait("wait", HumanDuration),
        /// Set a container's image in a Deployment, StatefulSet or DaemonSet, like `kubectl set image`; undo restores the previous image (kubernetes).
        SetImage("set_image", SetImage),
        /// Roll a Deployment back to its previous revision, like `kubectl rollout undo`; undo restores the template that was live (kubernetes).
        RolloutUndo("rollout_undo", RolloutUndo),
        /// A merge or JSON patch on any namespaced resource; undo computed from the live object before applying (kubernetes).
        Patch("patch", PatchResource),
        /// Wait until a field of any resource satisfies a condition, e.g. `status.phase == Healthy` (kubernetes).
        WaitFor("wait_for", WaitFor),
        /// Latency, aborts, resets or a blackhole at a Service (kubernetes) by a fault proxy in between; no privileges, undone on every exit path.
        HttpFault("http_fault", Box<super::http_fault::HttpFault>),
    }
}

/// The two kinds of target a scenario can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Local,
    Kubernetes,
}

impl Scenario {
    /// How long the drill is planned to run: the load's length or the last timed step,
    /// whichever is later (waits, timeouts and undos come on top: a silence's margin covers
    /// them).
    pub fn planned_length(&self) -> HumanDuration {
        let load = self.load.as_ref().map_or(std::time::Duration::ZERO, |l| {
            let stages = l.stages.iter().map(|s| s.value.duration.0).sum();
            let start = l.cluster.as_ref().map(|c| c.value.start_within.0);
            l.duration.as_ref().map_or(stages, |d| d.value.0) + start.unwrap_or_default()
        });
        let steps = self.steps.iter().filter_map(|s| s.value.at.as_ref());
        HumanDuration(
            steps
                .map(|at| at.value.0)
                .fold(load, std::time::Duration::max),
        )
    }

    /// How long the silence lasts from the drill's start: the planned length plus its margin.
    pub fn silence_length(&self) -> Option<HumanDuration> {
        let silence = self.silence.as_ref()?;
        Some(HumanDuration(
            self.planned_length().0 + silence.value.margin.0,
        ))
    }

    /// The silence's matchers as sent: the scenario's, plus `alertname!~"…"` naming every
    /// alert the drill expects to fire, so that the silence can never hide one of them.
    pub fn silence_matchers(&self) -> Vec<AlertMatcher> {
        let Some(silence) = &self.silence else {
            return Vec::new();
        };
        let mut matchers: Vec<AlertMatcher> = silence
            .value
            .matchers
            .iter()
            .map(|m| m.value.clone())
            .collect();
        let expected = self.expected_alerts();
        if !expected.is_empty() {
            let names: Vec<String> = expected.iter().map(|n| regex::escape(n)).collect();
            matchers.push(AlertMatcher {
                name: "alertname".into(),
                value: names.join("|"),
                is_regex: true,
                is_equal: false,
            });
        }
        matchers
    }

    /// The names of the alerts `alerts` checks expect to fire, which a silence must not hide.
    pub fn expected_alerts(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .checks
            .iter()
            .filter_map(|c| match &c.value.kind {
                CheckKind::Alerts(a) => Some(a.fire.iter().map(|n| n.value.as_str())),
                _ => None,
            })
            .flatten()
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The timeline, the rollback procedure and `finally`: every step the drill may run, for
    /// what derives permissions and watches from them.
    pub fn every_step(&self) -> impl Iterator<Item = &Sp<Step>> {
        self.steps.iter().chain(&self.on_abort).chain(&self.finally)
    }

    /// The processes a local target starts; none for a Kubernetes target.
    pub fn local_processes(&self) -> &[Sp<ProcessSpec>] {
        match &self.target {
            TargetSpec::Local(local) => &local.processes,
            TargetSpec::Kubernetes(_) => &[],
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetKind::Local => "local",
            TargetKind::Kubernetes => "kubernetes",
        })
    }
}

impl TargetSpec {
    pub fn kind(&self) -> TargetKind {
        match self {
            TargetSpec::Local(_) => TargetKind::Local,
            TargetSpec::Kubernetes(_) => TargetKind::Kubernetes,
        }
    }

    /// The context and namespace a drill runs in (none for a local target): what tells runs
    /// of one scenario on different targets apart.
    pub fn place(&self) -> (Option<&str>, Option<&str>) {
        match self {
            TargetSpec::Kubernetes(k) => (Some(&k.context.value), Some(&k.namespace.value)),
            TargetSpec::Local(_) => (None, None),
        }
    }
}

impl Action {
    /// Whether the change stays when the drill runs to its end (its undo then does not run).
    pub fn kept_when_completed(&self) -> bool {
        matches!(self, Action::SetImage(set) if set.keep)
    }

    /// The one target kind this action needs, or `None` when both kinds run it. The single
    /// statement of the rule: validation and both targets ask here.
    pub fn only_on(&self) -> Option<TargetKind> {
        match self {
            Action::KillPods(_)
            | Action::Evict(_)
            | Action::Scale(_)
            | Action::PatchConfigmap(_)
            | Action::HelmUpgrade(_)
            | Action::WaitRollout(_)
            | Action::SetImage(_)
            | Action::RolloutUndo(_)
            | Action::Patch(_)
            | Action::WaitFor(_) => Some(TargetKind::Kubernetes),
            Action::KillProcess(_) | Action::StartProcess(_) => Some(TargetKind::Local),
            Action::RolloutRestart(_)
            | Action::PatchEnv(_)
            | Action::Command(_)
            | Action::WaitReady(_)
            | Action::HttpFault(_)
            | Action::Wait(_) => None,
        }
    }

    /// Whether a target of `kind` can run this action.
    pub fn runs_on(&self, kind: TargetKind) -> bool {
        self.only_on().is_none_or(|only| only == kind)
    }
}

/// Which pods an action picks among those matching.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PickMode {
    #[default]
    Random,
    Oldest,
    Newest,
}

impl std::fmt::Display for PickMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Random => "random",
            Self::Oldest => "oldest",
            Self::Newest => "newest",
        })
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KillPods {
    pub selector: Sp<LabelSelector>,
    /// How many pods to kill. Default 1. Exclusive with `percent`.
    #[serde(default)]
    pub count: Option<u32>,
    /// Share of the matching pods to kill (rounded up). Exclusive with `count`.
    #[serde(default)]
    pub percent: Option<Sp<u32>>,
    #[serde(default)]
    pub mode: PickMode,
    /// Grace period for the deletion. Default: the pod's own.
    #[serde(default)]
    pub grace_period: Option<HumanDuration>,
    /// Delete immediately (grace period 0), like `kubectl delete --force`.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Evict {
    pub selector: Sp<LabelSelector>,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub mode: PickMode,
}

impl Evict {
    /// The same pick as a kill: evictions choose their pods exactly like `kill_pods`.
    pub fn as_kill(&self) -> KillPods {
        KillPods {
            selector: self.selector.clone(),
            count: self.count,
            percent: None,
            mode: self.mode,
            grace_period: None,
            force: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Signal {
    #[default]
    #[serde(rename = "SIGKILL")]
    Kill,
    #[serde(rename = "SIGTERM")]
    Term,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Kill => "SIGKILL",
            Self::Term => "SIGTERM",
        })
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KillProcess {
    /// Process group name from `target.local.processes`.
    pub name: Sp<String>,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub signal: Signal,
    #[serde(default)]
    pub mode: PickMode,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessRef {
    pub name: Sp<String>,
}

/// A Deployment (kubernetes) or a process group (local).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadRef {
    pub deployment: Sp<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub deployment: Sp<String>,
    pub replicas: u32,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchEnv {
    pub deployment: Sp<String>,
    /// Container name. Default: the first container.
    #[serde(default)]
    pub container: Option<String>,
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchConfigmap {
    pub name: Sp<String>,
    pub data: BTreeMap<String, String>,
}

/// What undoes a helm upgrade when the drill ends or is interrupted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HelmUndo {
    /// `helm rollback <release> <previous revision>`.
    #[default]
    Rollback,
    /// Leave the upgrade in place (the scenario's `finally` takes care of it).
    None,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HelmUpgrade {
    pub release: Sp<String>,
    /// Chart reference. Default: the release's current chart (`helm upgrade --reuse-values`).
    #[serde(default)]
    pub chart: Option<String>,
    /// `--set key=value` pairs.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// `--set` pairs whose values are redacted in logs, plans and reports.
    #[serde(default)]
    pub set_secret: BTreeMap<String, String>,
    #[serde(default = "yes")]
    pub reuse_values: bool,
    #[serde(default)]
    pub wait: bool,
    #[serde(default = "default_helm_timeout")]
    pub timeout: HumanDuration,
    #[serde(default)]
    pub undo: HelmUndo,
}

fn yes() -> bool {
    true
}

fn default_helm_timeout() -> HumanDuration {
    HumanDuration::from_secs(300)
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandAction {
    /// argv, run without a shell. `kubectl` and `helm` get the scenario's context and namespace.
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "default_command_timeout")]
    pub timeout: HumanDuration,
    /// argv that undoes this command; registered before the command runs.
    #[serde(default)]
    pub undo: Option<Vec<String>>,
}

fn default_command_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitRollout {
    pub deployment: Sp<String>,
    #[serde(default = "default_wait_timeout")]
    pub timeout: HumanDuration,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitReady {
    /// Pods matching this selector (kubernetes) or processes with these labels (local).
    #[serde(default)]
    pub selector: Option<Sp<LabelSelector>>,
    /// A local process group by name.
    #[serde(default)]
    pub name: Option<Sp<String>>,
    #[serde(default = "default_wait_timeout")]
    pub timeout: HumanDuration,
}

fn default_wait_timeout() -> HumanDuration {
    HumanDuration::from_secs(120)
}

/// Something that must hold before the first fault.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PreflightCheck {
    /// Jobs still running in the namespace (the helm lessons' item 7).
    ActiveJobs(ActiveJobs),
    /// Each selector must match at least one pod (selectors of kill steps are checked anyway).
    PodsMatch(PodsMatch),
    /// The helm release must exist (implied by `helm_upgrade` steps).
    HelmRelease(HelmReleaseRef),
    /// An HTTP endpoint must answer with the given status.
    HttpOk(HttpOk),
    /// A command must exit 0.
    Command(CommandAction),
}

impl PreflightCheck {
    /// The key this check is written with in a scenario.
    pub fn key(&self) -> &'static str {
        match self {
            Self::ActiveJobs(_) => "active_jobs",
            Self::PodsMatch(_) => "pods_match",
            Self::HelmRelease(_) => "helm_release",
            Self::HttpOk(_) => "http_ok",
            Self::Command(_) => "command",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFound {
    #[default]
    Warn,
    Fail,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveJobs {
    #[serde(default)]
    pub selector: Option<Sp<LabelSelector>>,
    #[serde(default)]
    pub on_found: OnFound,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodsMatch {
    pub selector: Sp<LabelSelector>,
    #[serde(default = "one")]
    pub min: u32,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HelmReleaseRef {
    pub release: Sp<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpOk {
    pub url: String,
    #[serde(default = "default_status")]
    pub status: u16,
}

fn default_status() -> u16 {
    200
}

/// Abort the drill (and undo everything) when a condition holds for long enough. Exactly one
/// condition kind: `http`, `prometheus`, `not_ready` or `restarts`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    /// An http expression over each 1-second window, e.g. `rate(5xx) > 50%`.
    #[serde(default)]
    pub http: Option<Sp<Parsed<HttpFormula>>>,
    /// How long the condition must hold, without a break, before the drill aborts. Default: one
    /// window (http) or the first sample that holds (prometheus).
    #[serde(default, rename = "for")]
    pub for_: HumanDuration,
    /// Name used in the report and the abort reason. Default: the condition itself.
    #[serde(default)]
    pub name: Option<Sp<String>>,
    /// A PromQL query sampled every `interval` during the drill, with a condition on its result.
    #[serde(default)]
    pub prometheus: Option<PrometheusGuard>,
    /// Share of the pods matching a selector that are NotReady (kubernetes).
    #[serde(default)]
    pub not_ready: Option<NotReadyGuard>,
    /// Container restarts since the drill started, or a container in CrashLoopBackOff (kubernetes).
    #[serde(default)]
    pub restarts: Option<RestartsGuard>,
}

/// A rollback trigger read from Prometheus, e.g. an error rate above 10 % for 2 minutes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusGuard {
    /// Prometheus base URL.
    pub url: String,
    /// A query returning one number (a scalar or a one-series vector).
    pub query: Sp<String>,
    /// When the guard holds, e.g. `result > 0.10`. NaN, ±Inf, no series or a query error never
    /// hold, and they break a streak.
    pub condition: Sp<Parsed<Condition>>,
    /// How often the query runs.
    #[serde(default = "default_guard_interval")]
    pub interval: HumanDuration,
    /// Extra request headers (e.g. `Authorization`); values are redacted in every output.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_guard_interval() -> HumanDuration {
    HumanDuration::from_secs(10)
}

impl Guard {
    /// What the report calls this guard: its name, or its condition.
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.value.clone();
        }
        self.condition()
    }

    /// The guard's condition in words.
    pub fn condition(&self) -> String {
        if let Some(http) = &self.http {
            http.value.to_string()
        } else if let Some(p) = &self.prometheus {
            format!("{} → {}", p.query.value, p.condition.value)
        } else if let Some(n) = &self.not_ready {
            format!(
                "NotReady share of `{}` > {}",
                n.selector.value, n.above.value
            )
        } else if let Some(r) = &self.restarts {
            let crash_loop = if r.crash_loop {
                " or a container in CrashLoopBackOff"
            } else {
                ""
            };
            format!(
                "restarts of `{}` > {}{crash_loop}",
                r.selector.value, r.above
            )
        } else {
            "(no condition)".into()
        }
    }
}

/// Trips while more than `above` of the matching pods are NotReady.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotReadyGuard {
    pub selector: Sp<LabelSelector>,
    /// A share such as `50%`: the guard holds while the NotReady share is strictly above it.
    pub above: Sp<Parsed<Share>>,
}

/// Trips while the matching pods' containers restarted more than `above` times since the drill
/// started, or (with `crash_loop`) while any of them waits in CrashLoopBackOff.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartsGuard {
    pub selector: Sp<LabelSelector>,
    /// Restarts tolerated since the drill started. Default 0.
    #[serde(default)]
    pub above: u32,
    /// Also hold while any matching container is in CrashLoopBackOff. Default true.
    #[serde(default = "yes")]
    pub crash_loop: bool,
}

/// A named window of the drill, between two boundaries.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    pub name: Sp<String>,
    /// `start`, `end`, `first_fault`, `recovered`, an offset such as `20s`, or a step name
    /// (`flip` is when step `flip` started, `flip.end` when it finished).
    pub from: Sp<String>,
    pub to: Sp<String>,
}

/// One assertion: shared keys plus exactly one kind key.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: Sp<String>,
    /// Phase the check looks at. Default: depends on the kind (http: the whole run).
    pub phase: Option<Sp<String>>,
    pub description: Option<String>,
    pub kind_at: super::spanned::Pos,
    pub kind: CheckKind,
}

tagged_kinds! {
    /// What a check asserts.
    pub enum CheckKind {
        /// An expression over the load's results: `rate(401) == 0`, `p(95) <= 1.5 * baseline`.
        Http("http", Sp<Parsed<HttpFormula>>),
        /// A PromQL query, once at the end or sampled (Argo Rollouts' analysis model).
        Prometheus("prometheus", PrometheusCheck),
        /// Job (or one-shot process) outcomes.
        Jobs("jobs", JobsCheck),
        /// Restarts of pods or processes.
        Restarts("restarts", RestartsCheck),
        /// Time from each kill until the workload is ready again.
        ReadyWithin("ready_within", ReadyWithinCheck),
        /// Whether a step really rolled the pods (new pod-template-hash / new processes).
        Rolled("rolled", RolledCheck),
        /// A command's exit code and output.
        Command("command", CommandCheck),
        /// A bounded, declared failure: these errors are expected, and only these.
        ExpectedFailure("expected_failure", ExpectedFailure),
        /// No Prometheus alert whose name matches a pattern fired during the phase.
        Alerts("alerts", AlertsCheck),
        /// Two load streams compared over the phase: `canary.rate(5xx) <= stable.rate(5xx) + 1%`.
        Compare("compare", Sp<Parsed<Comparison>>),
        /// Regex matches in the container logs of pods matching a selector, per phase (kubernetes).
        Logs("logs", LogsCheck),
        /// Size in bytes and/or number of keys of a ConfigMap, sampled over the drill (kubernetes).
        Configmap("configmap", ConfigmapCheck),
        /// Every pod of a selector runs an image, or carries a label value, at the end of the drill (kubernetes).
        Version("version", VersionCheck),
        /// This run against the median of earlier passing runs of the same scenario and target.
        Regression("regression", super::regression::RegressionCheck),
    }
}

/// Alerts over a phase, from Prometheus' `ALERTS` series: none matching `pattern` fired ("no
/// canary alerts firing"), and/or each alert of `fire` fired within `within` of `after` (and
/// resolved within `resolve_within` of `recovered`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsCheck {
    /// Prometheus base URL (the server that evaluates the alerting rules).
    pub url: String,
    /// Regular expression an alert name must match in full to count, e.g. `ZaiProxyCanary.*`.
    #[serde(default)]
    pub pattern: Option<Sp<Parsed<WholeName>>>,
    /// Alerts that must fire (alert names, e.g. `LabProxyDown`).
    #[serde(default)]
    pub fire: Vec<Sp<String>>,
    /// How soon after `after` each alert of `fire` must fire. Required with `fire`.
    #[serde(default)]
    pub within: Option<HumanDuration>,
    /// When the clock of `within` starts: a phase boundary (`first_fault`, a step name,
    /// `step.end`, `start`). Default: the start of the check's phase.
    #[serde(default)]
    pub after: Option<Sp<String>>,
    /// How soon after `resolve_after` each alert of `fire` must have stopped firing. Default:
    /// not checked.
    #[serde(default)]
    pub resolve_within: Option<HumanDuration>,
    /// When the clock of `resolve_within` starts: a boundary, e.g. `rolled-back.end` (an
    /// `on_abort` step). Default: `recovered` (the target ready again after the first fault).
    #[serde(default)]
    pub resolve_after: Option<Sp<String>>,
    /// Alertmanager base URL (API v2): whether each alert of `fire` reached it and which
    /// receivers it routes to. Firing in Prometheus but never reaching Alertmanager fails.
    #[serde(default)]
    pub alertmanager: Option<String>,
    /// Extra request headers (e.g. `Authorization`); values are redacted in every output.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// An Alertmanager silence for the drill: created before the first fault (its removal
/// registered first), removed when the drill unwinds, and expiring by itself `margin` after
/// the drill's planned length if drillbook cannot remove it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceSpec {
    /// Alertmanager base URL (API v2).
    pub alertmanager: String,
    /// What to silence, e.g. `namespace="tracebloc"`. drillbook adds `alertname!~"…"` with
    /// the alerts `alerts` checks expect to fire, so the silence never hides them.
    pub matchers: Vec<Sp<AlertMatcher>>,
    /// Words for the silence's comment; the drill's name and run id are always added.
    #[serde(default)]
    pub comment: Option<String>,
    /// How long past the drill's planned length the silence lasts. Default 10m.
    #[serde(default = "default_silence_margin")]
    pub margin: HumanDuration,
    /// Whether an Alertmanager that refuses the silence refuses the drill. Default true.
    #[serde(default = "yes")]
    pub required: bool,
}

fn default_silence_margin() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(600))
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusCheck {
    /// Prometheus base URL.
    pub url: String,
    pub query: Sp<String>,
    /// Condition on the query's scalar `result`, e.g. `result < 0.05`.
    #[serde(default)]
    pub success_condition: Option<Sp<Parsed<Condition>>>,
    /// Condition that counts a sample as failed, e.g. `result > 0.10`.
    #[serde(default)]
    pub failure_condition: Option<Sp<Parsed<Condition>>>,
    /// Sample every `interval` for `count` samples; without it the query runs once at the end.
    #[serde(default)]
    pub interval: Option<HumanDuration>,
    #[serde(default = "one")]
    pub count: u32,
    /// How many failed samples are tolerated.
    #[serde(default)]
    pub failure_limit: u32,
    /// Extra request headers (e.g. `Authorization`); values are redacted in every output.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How many inconclusive samples (NaN, ±Inf, neither condition held, empty) are tolerated.
    #[serde(default)]
    pub inconclusive_limit: u32,
    /// How many query errors in a row are tolerated (Argo's default is 4; here 0: a check
    /// that could not measure is not a pass).
    #[serde(default)]
    pub consecutive_error_limit: u32,
    /// Measured and reported, but never decides the verdict (Argo's `dryRun`).
    #[serde(default)]
    pub dry_run: bool,
    /// What a sample without any series counts as.
    #[serde(default)]
    pub on_empty: OnEmpty,
}

/// How a Prometheus sample whose query returned no series is judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnEmpty {
    Pass,
    Fail,
    #[default]
    Inconclusive,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobsCheck {
    /// Jobs (kubernetes) or one-shot processes (local) matching this selector.
    pub selector: Sp<LabelSelector>,
    /// Only jobs started after this step (by name).
    #[serde(default)]
    pub started_after: Option<Sp<String>>,
    /// Only jobs started before this step (by name).
    #[serde(default)]
    pub started_before: Option<Sp<String>>,
    /// Maximum number of failed jobs allowed.
    #[serde(default)]
    pub max_failed: Option<u32>,
    /// Minimum number of succeeded jobs required.
    #[serde(default)]
    pub min_succeeded: Option<u32>,
    /// Minimum number of failed jobs required: a declared, expected failure (e.g. Jobs holding
    /// JWTs stranded by a mid-flight rollback).
    #[serde(default)]
    pub min_failed: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartsCheck {
    pub selector: Sp<LabelSelector>,
    /// Maximum restarts (container restarts or process restarts) during the phase.
    pub max: u32,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadyWithinCheck {
    pub selector: Sp<LabelSelector>,
    pub within: HumanDuration,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolledCheck {
    /// The Deployment (or process group) that should have rolled.
    pub deployment: Sp<String>,
    /// The step whose effect is judged.
    pub after: Sp<String>,
    /// `true`: new pods must have replaced the old ones; `false`: nothing may have rolled.
    #[serde(default = "yes")]
    pub expect: bool,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandCheck {
    pub argv: Vec<String>,
    #[serde(default)]
    pub exit_code: i32,
    /// Regular expression stdout must match.
    #[serde(default)]
    pub stdout: Option<Sp<Parsed<Search>>>,
    #[serde(default = "default_command_timeout")]
    pub timeout: HumanDuration,
}

/// Which callers an expected failure may touch.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFailure {
    /// HTTP status (`401`) or class (`5xx`) that is expected.
    pub status: Sp<Parsed<Status>>,
    /// Only callers whose token was minted before this step may see it.
    pub callers_started_before: Sp<String>,
    /// The failures must have stopped this long after the step (e.g. the caller lifetime).
    #[serde(default)]
    pub within: Option<HumanDuration>,
}

/// Which workload a `set_image` step changes: exactly one of the three.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetImage {
    #[serde(default)]
    pub deployment: Option<Sp<String>>,
    #[serde(default)]
    pub statefulset: Option<Sp<String>>,
    #[serde(default)]
    pub daemonset: Option<Sp<String>>,
    /// Container name (`kubectl set image deployment/x CONTAINER=IMAGE`).
    pub container: Sp<String>,
    pub image: Sp<String>,
    /// Keep the new image when the drill runs to its end (a promotion that baked cleanly
    /// stays); an abort or an interrupt still restores the previous image. Default: false, the
    /// previous image is restored on every exit path.
    #[serde(default)]
    pub keep: bool,
}

/// The three kinds of workload whose pod template holds containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    /// The kind as the API names it.
    pub fn kind(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }
}

impl SetImage {
    /// The workload this step names, when exactly one is set (validation makes sure).
    pub fn workload(&self) -> Option<(WorkloadKind, &str)> {
        match (&self.deployment, &self.statefulset, &self.daemonset) {
            (Some(d), None, None) => Some((WorkloadKind::Deployment, d.value.as_str())),
            (None, Some(s), None) => Some((WorkloadKind::StatefulSet, s.value.as_str())),
            (None, None, Some(d)) => Some((WorkloadKind::DaemonSet, d.value.as_str())),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutUndo {
    pub deployment: Sp<String>,
}

/// A patch on any namespaced resource (by apiVersion, kind and name): exactly one of `merge` (RFC 7386) and `json` (RFC 6902).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchResource {
    #[serde(rename = "apiVersion")]
    pub api_version: Sp<String>,
    pub kind: Sp<String>,
    pub name: Sp<String>,
    /// A JSON merge patch, e.g. `{spec: {paused: true}}`.
    #[serde(default)]
    pub merge: Option<serde_json::Value>,
    /// A JSON patch: a list of `{op, path, value}` operations.
    #[serde(default)]
    pub json: Option<Vec<serde_json::Value>>,
    /// Patch the `status` subresource instead of the object.
    #[serde(default)]
    pub subresource_status: bool,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitFor {
    #[serde(rename = "apiVersion")]
    pub api_version: Sp<String>,
    pub kind: Sp<String>,
    pub name: Sp<String>,
    /// `path == value` or `path != value`, the path dotted with `[n]` indices, e.g.
    /// `status.phase == Healthy`. A missing field never equals a value.
    pub condition: Sp<Parsed<FieldPath>>,
    #[serde(default = "default_wait_timeout")]
    pub timeout: HumanDuration,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsCheck {
    /// Pods whose containers' logs are read (all containers, or `container`).
    pub selector: Sp<LabelSelector>,
    #[serde(default)]
    pub container: Option<String>,
    /// Regular expression counted per line.
    pub pattern: Sp<Parsed<Search>>,
    /// At most this many matching lines in the phase.
    #[serde(default)]
    pub max: Option<u32>,
    /// At least this many matching lines in the phase.
    #[serde(default)]
    pub min: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigmapCheck {
    pub name: Sp<String>,
    /// Largest size allowed (sum of keys and values of `data` and `binaryData`, in bytes).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Most keys allowed.
    #[serde(default)]
    pub max_keys: Option<u32>,
    /// How often the ConfigMap is read during the drill. Default 2s.
    #[serde(default = "default_sample_interval")]
    pub interval: HumanDuration,
}

fn default_sample_interval() -> HumanDuration {
    HumanDuration::from_secs(2)
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionCheck {
    pub selector: Sp<LabelSelector>,
    /// Every container (or `container`) of every matching pod runs this image.
    #[serde(default)]
    pub image: Option<Sp<String>>,
    #[serde(default)]
    pub container: Option<String>,
    /// Every matching pod carries this label with this value, e.g. `{version: "2.1"}`.
    #[serde(default)]
    pub label: Option<BTreeMap<String, String>>,
}
