//! The command-line edge: argument definitions, one handler per command, and everything
//! printed. Only this module uses clap, prints to stdout/stderr directly and returns anyhow
//! errors; each handler calls into its domain module and maps the result to an [`Outcome`];
//! errors are shown as a chain.

mod collect;
mod lab;
mod load;
mod load_args;
mod load_worker;
mod plan;
mod progress;
mod recover;
mod report;
mod run;
mod schedule;
mod value_enums;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::exit::Outcome;
use crate::telemetry::{self, LogFormat};

pub use load_args::LoadArgs;

#[derive(Debug, Parser)]
#[command(
    name = "drillbook",
    version,
    about = "Declarative chaos drills: inject faults, drive measured load, judge each phase.",
    after_help = Outcome::TABLE,
    propagate_version = true
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less logging (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// Scenario parameter `NAME=value` for `${var.NAME}` (repeatable; run, plan, validate, schedule).
    #[arg(long = "var", global = true, value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check scenario files without running anything.
    #[command(
        after_help = "Example:\n  drillbook validate scenarios/\n  drillbook validate scenarios/proxy-restart.yaml scenarios/lab/\n\nExit code 0 when every file is valid, 2 otherwise."
    )]
    Validate(ValidateArgs),
    /// Show what a drill would do, without changing anything.
    #[command(
        after_help = "Examples:\n  drillbook plan scenarios/lab/proxy-restart.yaml --offline\n  drillbook plan scenarios/proxy-restart.yaml --context staging"
    )]
    Plan(PlanArgs),
    /// Run a drill and write its reports.
    #[command(after_help = concat!(
        "Example:\n  drillbook run scenarios/lab/proxy-restart.yaml --report-dir reports/\n",
        "  drillbook run scenarios/proxy-restart.yaml --context staging --drill-log docs/runbook.md\n\n",
        "Exit codes: 0 pass, 1 fail, 2 invalid, 3 inconclusive, 4 aborted, 5 refused, 130 interrupted."
    ))]
    Run(RunArgs),
    /// Apply the undos a crashed or killed run left behind (its undo journal).
    #[command(
        after_help = "Examples:\n  drillbook recover --dry-run\n  drillbook recover\n\nExit code 0 when everything was put back (or nothing was pending), 1 when an undo failed (it stays journaled)."
    )]
    Recover(RecoverArgs),
    /// Print a JSON Schema: the scenario format (default), report.json, or `load --json` output.
    #[command(
        after_help = "Examples:\n  drillbook schema > scenario.schema.json\n  drillbook schema --kind report -o report.schema.json"
    )]
    Schema(SchemaArgs),
    /// Drive measured HTTP load at a URL (open model, HDR latency).
    #[command(
        after_help = "Example:\n  drillbook load http://127.0.0.1:8080/ --rate 500/s --duration 30s --connections 32 --json out.json"
    )]
    Load(Box<LoadArgs>),
    /// Run one part of the embedded lab (the system from the stateless-proxy cutover ticket).
    #[command(
        subcommand,
        after_help = "Example:\n  drillbook lab proxy --listen 127.0.0.1:8080 --stateless-tokens true"
    )]
    Lab(lab::LabCommand),
    /// Render a report.json in another format.
    #[command(
        after_help = "Example:\n  drillbook report reports/2026-11-22-proxy-restart-ab12/report.json --format md"
    )]
    Report(report::ReportArgs),
    /// Render the manifests that run a drill in-cluster on a schedule (CronJob + least-privilege RBAC).
    #[command(
        after_help = "Examples:\n  drillbook schedule scenarios/proxy-restart.yaml --schedule \"0 3 * * 1\" --image registry/drillbook:1 > drill.yaml\n  drillbook schedule scenarios/proxy-restart.yaml --schedule \"0 3 * * 1\" --image registry/drillbook:1 --context staging -o manifests/\n\nWith --context, every object is validated by a server-side dry run (exit 1 if one is rejected)."
    )]
    Schedule(schedule::ScheduleArgs),
    /// Print the namespaced Role a scenario needs (derived from its steps, checks and observers).
    #[command(
        after_help = "Example:\n  drillbook rbac scenarios/proxy-restart.yaml --format json -o role.json"
    )]
    Rbac(schedule::RbacArgs),
    /// Fetch results stored by in-cluster runs: report files plus one drill-log row per run.
    #[command(
        after_help = "Example:\n  drillbook collect --context staging --namespace tracebloc --drill-log docs/RUNBOOK.md\n\nCollecting again appends nothing for runs already in the drill log."
    )]
    Collect(collect::CollectArgs),
}

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

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Outcome::Invalid.into()
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let verbosity = i8::try_from(i16::from(cli.verbose) - i16::from(cli.quiet)).unwrap_or(0);
    // A person at a terminal gets plain lines and a live status line; logs, JSON, `-v` and
    // RUST_LOG get structured lines.
    let human = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && cli.log_format == LogFormat::Text
        && verbosity <= 0
        && std::env::var_os("RUST_LOG").is_none();
    let human_layer = human.then(|| {
        let layer: telemetry::BoxedLayer = Box::new(progress::human_layer(stderr_color()));
        (layer, progress::FILTER)
    });
    telemetry::init(cli.log_format, verbosity, stderr_color(), human_layer);
    telemetry::install_crypto_provider();
    match dispatch(cli.command, &cli.vars) {
        Ok(outcome) => outcome.into(),
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            Outcome::Invalid.into()
        }
    }
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(n, v)| (n.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}

/// [`telemetry::color_allowed`] for stderr.
pub(crate) fn stderr_color() -> bool {
    telemetry::color_allowed(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// `text` safe to print on a terminal: control characters from scenarios and clusters shown
/// as escapes (see `report::text`).
pub(crate) fn safe(text: &str) -> std::borrow::Cow<'_, str> {
    crate::report::text::escape_controls(text)
}

/// What `-o/--output FILE` means on every command: the text goes to FILE (replaced atomically)
/// instead of stdout. (`schedule -o DIR` writes one file per object into DIR.)
pub(crate) fn write_output(path: Option<&std::path::Path>, text: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    match path {
        Some(path) => crate::support::fs::write_atomically(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display())),
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .context("cannot write to stdout"),
    }
}

/// [`telemetry::color_allowed`] for stdout.
pub(crate) fn stdout_color() -> bool {
    telemetry::color_allowed(
        std::io::IsTerminal::is_terminal(&std::io::stdout()),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// The width tables on stdout should fit: `$COLUMNS`, else the terminal's; `None` when stdout
/// is not a terminal (a file or a pipe gets the full text).
pub(crate) fn stdout_width() -> Option<usize> {
    let stdout = std::io::stdout();
    if !std::io::IsTerminal::is_terminal(&stdout) {
        return None;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .or_else(|| terminal_size::terminal_size_of(&stdout).map(|(w, _)| usize::from(w.0)))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Format names that `-o` would silently take for a file name (`-o json` meant `--format json`
/// in other tools and in drillbook's `rbac` before 0.3).
const FORMAT_NAMES: [&str; 7] = ["json", "yaml", "yml", "md", "markdown", "junit", "table"];

/// The file `-o/--output` names on a command that also has `--format`.
fn output_file(command: &Command) -> Option<&std::path::Path> {
    match command {
        Command::Report(args) => args.output.as_deref(),
        Command::Rbac(args) => args.output.as_deref(),
        _ => None,
    }
}

fn dispatch(command: Command, vars: &[(String, String)]) -> anyhow::Result<Outcome> {
    if let Some(path) = output_file(&command)
        && let Some(name) = path.to_str().filter(|p| FORMAT_NAMES.contains(p))
        && !path.exists()
    {
        eprintln!(
            "error: `-o {name}` names the file to write to; for the format use `--format {name}` \
             (or `-o ./{name}` for a file of that name)"
        );
        return Ok(Outcome::Invalid);
    }
    match command {
        Command::Validate(args) => Ok(plan::validate(&args.paths, vars)),
        Command::Schema(args) => plan::schema(args.kind, args.output.as_deref()),
        Command::Plan(args) => runtime()?.block_on(plan::plan(&args, vars)),
        Command::Run(args) => runtime()?.block_on(run::run(args, vars)),
        Command::Recover(args) => runtime()?.block_on(recover::recover(&args)),
        Command::Load(args) => runtime()?.block_on(load::run(*args)),
        Command::Lab(command) => runtime()?.block_on(lab::run(command)),
        Command::Report(args) => report::run(&args),
        Command::Schedule(args) => runtime()?.block_on(schedule::schedule(&args, vars)),
        Command::Rbac(args) => schedule::rbac(&args, vars),
        Command::Collect(args) => runtime()?.block_on(collect::collect(&args)),
    }
}
