//! The arguments of the commands whose handlers live in their own files, beside `Cli` and
//! `Command` (mod.rs) but below them: a handler reads its arguments from here, never from
//! mod.rs, which dispatches to it.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files, or directories searched for `*.yaml`/`*.yml`.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// `-n/--namespace` and `--kubeconfig`, the same on every command that talks to a cluster.
#[derive(Debug, Clone, Default, Args)]
pub struct ClusterArgs {
    /// Namespace to use instead of the scenario's (must be in its allowed_namespaces).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// kubeconfig file (default: the scenario's `kubeconfig`, then $KUBECONFIG, then
    /// ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

impl ClusterArgs {
    /// The loaded scenario with these overrides applied to its Kubernetes target.
    pub(crate) fn apply(&self, loaded: &mut crate::scenario::LoadedScenario) {
        if let crate::scenario::TargetSpec::Kubernetes(spec) = &mut loaded.scenario.target {
            *spec = crate::targets::kube::with_overrides(
                spec,
                self.namespace.as_deref(),
                self.kubeconfig.as_deref(),
            );
        }
    }
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    pub scenario: PathBuf,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Do not contact any cluster; show the timeline only.
    #[arg(long)]
    pub offline: bool,
    /// kubeconfig context to resolve targets in (must be in the scenario's allowed_contexts).
    #[arg(long)]
    pub context: Option<String>,
    /// Seed for random choices; the plan then shows exactly which pods a run with it would pick.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Allow a context or namespace whose name contains "prod".
    #[arg(long)]
    pub allow_production: bool,
    /// Reports folder whose history `regression` checks' baselines come from.
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    pub scenario: PathBuf,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// kubeconfig context (must be in the scenario's allowed_contexts).
    #[arg(long)]
    pub context: Option<String>,
    /// Seed for random choices (printed at start; pass it again to replay a drill).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Parent directory of the run's report directory.
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,
    /// Also write the JUnit XML to this fixed path (a CI artefact), atomically.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write report.json to this fixed path (a CI artefact), atomically.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Runbook whose Drill log table gets a row (default: the scenario's `runbook:`).
    #[arg(long)]
    pub drill_log: Option<PathBuf>,
    /// Do not append to any drill log.
    #[arg(long, conflicts_with = "drill_log")]
    pub no_drill_log: bool,
    /// Name in the drill log's operator column (default: $DRILL_OPERATOR, git user.name, $USER).
    #[arg(long, env = "DRILL_OPERATOR")]
    pub operator: Option<String>,
    /// Allow a context or namespace whose name contains "prod".
    #[arg(long)]
    pub allow_production: bool,
    /// Start even if an unrecovered undo journal exists for this target.
    #[arg(long)]
    pub force: bool,
    /// Run inside a pod: use its ServiceAccount instead of a kubeconfig. The scenario's
    /// context must equal --cluster-name.
    #[arg(long, conflicts_with = "context")]
    pub in_cluster: bool,
    /// The name of the cluster this pod runs in (with --in-cluster).
    #[arg(long, env = "DRILLBOOK_CLUSTER_NAME", requires = "in_cluster")]
    pub cluster_name: Option<String>,
    /// Store the report JSON in a ConfigMap of the drill's namespace for `drillbook collect`.
    #[arg(long)]
    pub store_results: bool,
    /// How many stored results to keep per scenario (older ones are deleted).
    #[arg(long, default_value_t = 10, requires = "store_results")]
    pub keep_results: usize,
    /// Push the results to this Prometheus Pushgateway (default: the scenario's `pushgateway:`).
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Show what would be undone without doing it.
    #[arg(long)]
    pub dry_run: bool,
    /// Only the journals of runs in this kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// Only the journals of runs in this namespace.
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// kubeconfig file to reconnect with (default: the one the run used, then $KUBECONFIG,
    /// then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Journal directory (default: $DRILLBOOK_STATE_DIR, $XDG_STATE_HOME/drillbook or ~/.local/state/drillbook).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which document: scenario files, run reports (report.json) or `load --json` output.
    #[arg(long, value_enum, default_value_t = SchemaKind::Scenario)]
    pub kind: SchemaKind,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// The JSON Schemas drillbook publishes (each committed at the repository root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaKind {
    /// scenario.schema.json
    Scenario,
    /// report.schema.json
    Report,
    /// load.schema.json
    Load,
}
