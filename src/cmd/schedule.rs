//! `drillbook schedule` and `drillbook rbac`: the manifests of a scheduled in-cluster drill.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::exit::Outcome;
use crate::scenario::LoadedScenario;
use crate::schedule::{
    CronJobApi, Manifest, ScheduleError, ScheduleOptions, kubernetes_spec, load_scenario, render,
    render_validated, role_manifest, to_yaml_stream, write_dir,
};
use crate::targets::kube::check_safety;
use crate::units::HumanDuration;

/// Prints a scenario's diagnostics as `validate` does (they carry their own `error:` lines).
fn invalid(diagnostics: &crate::scenario::FileDiagnostics) -> Outcome {
    eprint!("{}", super::terminal::safe(&diagnostics.to_string()));
    Outcome::Invalid
}

/// The `drillbook run` arguments that make the in-cluster Job run what this command rendered:
/// the namespace override and the `--var` values given here (the ConfigMap holds the scenario
/// file as written). The kubeconfig is not passed: in the cluster the ServiceAccount is used.
fn in_cluster_run_args(args: &ScheduleArgs, loaded: &LoadedScenario) -> Vec<String> {
    let mut run_args = Vec::new();
    if let Some(namespace) = &args.cluster.namespace {
        run_args.extend(["--namespace".to_string(), namespace.clone()]);
    }
    for name in &loaded.given {
        if let Some(value) = loaded.vars.get(name) {
            run_args.extend(["--var".to_string(), format!("{name}={value}")]);
        }
    }
    run_args
}

/// Arguments of `drillbook schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// The drill to schedule (Kubernetes target).
    pub scenario: PathBuf,
    #[command(flatten)]
    pub cluster: super::args::ClusterArgs,
    /// Cron expression, e.g. "0 3 * * 1" (Mondays 03:00).
    #[arg(long)]
    pub schedule: String,
    /// Container image with drillbook (see the Dockerfile).
    #[arg(long)]
    pub image: String,
    /// Validate against this context: discovery picks the CronJob API, every object is
    /// dry-run on the server. Must be in the scenario's allowed_contexts.
    #[arg(long)]
    pub context: Option<String>,
    /// Write one file per object into this directory instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Kill the drill Job after this long.
    #[arg(long, default_value = "1h")]
    pub deadline: HumanDuration,
    /// Allow a context or namespace whose name contains "prod".
    #[arg(long)]
    pub allow_production: bool,
}

/// Output format of `drillbook rbac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RbacFormat {
    /// YAML (default).
    Yaml,
    /// JSON.
    Json,
}

/// Arguments of `drillbook rbac`.
#[derive(Debug, Args)]
pub struct RbacArgs {
    /// The drill whose Role to print (Kubernetes target).
    pub scenario: PathBuf,
    /// Namespace to use instead of the scenario's (must be in its allowed_namespaces).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = RbacFormat::Yaml)]
    pub format: RbacFormat,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// `drillbook rbac`: prints the Role the scenario needs.
pub fn rbac(args: &RbacArgs, vars: &[(String, String)]) -> anyhow::Result<Outcome> {
    let mut loaded = match load_scenario(&args.scenario, vars) {
        Ok(loaded) => loaded,
        Err(ScheduleError::Invalid(diagnostics)) => return Ok(invalid(&diagnostics)),
        Err(e) => return Err(e.into()),
    };
    let cluster = super::args::ClusterArgs {
        namespace: args.namespace.clone(),
        kubeconfig: None,
    };
    cluster.apply(&mut loaded);
    if let Err(e) = check_safety(kubernetes_spec(&loaded)?, None, true) {
        eprintln!("refused: {e}");
        return Ok(Outcome::Refused);
    }
    let role = role_manifest(&loaded)?;
    let text = match args.format {
        RbacFormat::Yaml => role.to_yaml()?,
        RbacFormat::Json => role.to_json()?,
    };
    super::terminal::write_output(args.output.as_deref(), &text)?;
    Ok(Outcome::Pass)
}

/// `drillbook schedule`: renders the manifests; with `--context`, validates them on the server.
/// Exit code 0 when rendered (and every dry run passed), 1 when a dry run was rejected; a
/// safety rule or an unreachable cluster refuses, like `run` and `plan` do.
pub async fn schedule(args: &ScheduleArgs, vars: &[(String, String)]) -> anyhow::Result<Outcome> {
    // Offline first: a schedule the CronJob controller would refuse is refused here.
    let cron = match crate::schedule::cron::Cron::parse(&args.schedule) {
        Ok(cron) => cron,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Outcome::Invalid);
        }
    };
    let next: Vec<String> = cron
        .next_runs(jiff::Timestamp::now(), 3)
        .into_iter()
        .map(|at| at.strftime("%a %Y-%m-%d %H:%M").to_string())
        .collect();
    if next.is_empty() {
        eprintln!(
            "warning: schedule `{}` never fires in the next five years",
            args.schedule
        );
    } else {
        eprintln!(
            "schedule `{}`: next runs (UTC, the controller's usual time zone): {}",
            args.schedule,
            next.join(", ")
        );
    }
    match render_and_check(args, vars).await {
        Err(ScheduleError::Kube(e)) => {
            eprintln!("refused: {e}");
            Ok(Outcome::Refused)
        }
        Err(ScheduleError::Invalid(diagnostics)) => Ok(invalid(&diagnostics)),
        other => Ok(other?),
    }
}

async fn render_and_check(
    args: &ScheduleArgs,
    vars: &[(String, String)],
) -> Result<Outcome, ScheduleError> {
    let mut loaded = load_scenario(&args.scenario, vars)?;
    args.cluster.apply(&mut loaded);
    let spec = kubernetes_spec(&loaded)?;
    let options = ScheduleOptions {
        schedule: args.schedule.clone(),
        image: args.image.clone(),
        deadline: args.deadline,
        cluster_name: spec.context.value.clone(),
        run_args: in_cluster_run_args(args, &loaded),
    };
    let Some(context) = &args.context else {
        // Offline, the rules `run` will apply in the cluster are still checked here.
        check_safety(spec, None, args.allow_production)?;
        let manifests = render(&loaded, &options, CronJobApi::BatchV1)?;
        emit(&manifests, args.output.as_deref())?;
        return Ok(Outcome::Pass);
    };
    let validated = render_validated(&loaded, options, context, args.allow_production).await?;
    eprintln!(
        "context `{}`: CronJob served as {}",
        validated.context,
        validated.cron_api.api_version()
    );
    for result in &validated.results {
        let mark = if result.accepted { "ok" } else { "REJECTED" };
        eprintln!(
            "server-side dry run {:<48} {mark}: {}",
            result.object, result.detail
        );
    }
    emit(&validated.manifests, args.output.as_deref())?;
    Ok(if validated.results.iter().all(|r| r.accepted) {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

fn emit(manifests: &[Manifest], dir: Option<&Path>) -> Result<(), ScheduleError> {
    match dir {
        Some(dir) => {
            for file in write_dir(manifests, dir)? {
                println!("wrote {}", file.display());
            }
        }
        None => print!("{}", to_yaml_stream(manifests)?),
    }
    Ok(())
}
