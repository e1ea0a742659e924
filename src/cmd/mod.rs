//! The command-line edge: argument definitions, one handler per command, and everything
//! printed. Only this module uses clap, prints to stdout/stderr directly and returns anyhow
//! errors; each handler calls into its domain module and maps the result to an [`Outcome`];
//! errors are shown as a chain.

mod args;
mod ci;
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
mod terminal;
mod value_enums;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::Outcome;
use crate::telemetry::{self, LogFormat};

pub use args::*;
use terminal::stderr_color;

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
