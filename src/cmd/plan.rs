//! `drillbook validate`, `schema` and `plan`: the read-only commands.

use std::path::{Path, PathBuf};

use super::args::{PlanArgs, SchemaKind};
use super::terminal::safe;
use crate::exit::Outcome;
use crate::plan::{
    SafetyOptions, offline_refusals, render_in_cluster, render_offline, render_refusals,
    scenario_files, schema_json,
};
use crate::scenario::{self, TargetSpec};
use crate::targets::kube::KubeError;

/// `drillbook validate`: prints every problem of every file; 0 when all are valid, 2 otherwise.
/// `vars`: the command line's `--var NAME=VALUE` pairs.
pub fn validate(paths: &[PathBuf], vars: &[(String, String)]) -> Outcome {
    let files = match scenario_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot list scenarios: {e}");
            return Outcome::Invalid;
        }
    };
    if files.is_empty() {
        eprintln!(
            "error: no scenario files (*.yaml, *.yml) under {}",
            display_paths(paths)
        );
        return Outcome::Invalid;
    }
    let mut invalid = 0;
    // Only to read alerting rules, when they can be read (the rest of validate is offline).
    let rules_reader = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok();
    for file in &files {
        match scenario::load_with(file, vars) {
            Ok(loaded) => {
                let (refused, mut items) = safety_diagnostics(&loaded);
                items.extend(loaded.warnings);
                if let Some(runtime) = &rules_reader {
                    let unknown = crate::checks::alerts::unknown_alert_warnings(&loaded.scenario);
                    items.extend(runtime.block_on(unknown));
                }
                let diagnostics = scenario::FileDiagnostics::new(file, Some(loaded.source), items);
                eprint!("{}", safe(&diagnostics.to_string()));
                if refused {
                    invalid += 1;
                    println!("invalid {}", file.display());
                } else {
                    println!("ok      {}", file.display());
                }
            }
            Err(diagnostics) => {
                invalid += 1;
                eprint!("{}", safe(&diagnostics.to_string()));
                println!("invalid {}", file.display());
            }
        }
    }
    println!(
        "{} of {} scenario files valid",
        files.len() - invalid,
        files.len()
    );
    if invalid == 0 {
        Outcome::Pass
    } else {
        Outcome::Invalid
    }
}

/// `run`'s offline safety rules as diagnostics: a refusal is an error, except a
/// production-looking name, which `--allow-production` lifts at run time (a warning here).
/// Returns whether any is an error.
fn safety_diagnostics(loaded: &scenario::LoadedScenario) -> (bool, Vec<scenario::Diagnostic>) {
    let options = SafetyOptions::default();
    let mut refused = false;
    let items = offline_refusals(loaded, options)
        .into_iter()
        .map(|r| {
            let text = format!("run refuses {}: {}", r.what, r.error);
            if matches!(r.error, KubeError::Production { .. }) {
                scenario::Diagnostic::warning(r.pos, text)
                    .with_help("pass --allow-production to run and plan if this is meant")
            } else {
                refused = true;
                scenario::Diagnostic::error(r.pos, text)
            }
        })
        .collect();
    (refused, items)
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `drillbook schema`.
pub fn schema(kind: SchemaKind, output: Option<&Path>) -> anyhow::Result<Outcome> {
    let text = match kind {
        SchemaKind::Scenario => schema_json(),
        SchemaKind::Report => crate::report::schema_json(),
        SchemaKind::Load => crate::load::report::schema_json(),
    };
    super::terminal::write_output(output, &text)?;
    Ok(Outcome::Pass)
}

/// `drillbook plan`.
pub async fn plan(args: &PlanArgs, vars: &[(String, String)]) -> anyhow::Result<Outcome> {
    let mut loaded = match scenario::load_with(&args.scenario, vars) {
        Ok(l) => l,
        Err(diagnostics) => {
            eprint!("{}", safe(&diagnostics.to_string()));
            return Ok(Outcome::Invalid);
        }
    };
    args.cluster.apply(&mut loaded);
    print!("{}", safe(&render_offline(&loaded, args.seed)));
    print!("{}", safe(&baselines(&loaded, &args.report_dir)));
    let refusals = offline_refusals(
        &loaded,
        SafetyOptions {
            context: args.context.as_deref(),
            allow_production: args.allow_production,
        },
    );
    print!("{}", safe(&render_refusals(&refusals)));
    if let Some(runbook) = &loaded.scenario.runbook {
        println!("\n{}", drill_log_line(&loaded.resolve(&runbook.value)));
    }
    if !refusals.is_empty() {
        return Ok(Outcome::Refused);
    }
    let TargetSpec::Kubernetes(spec) = &loaded.scenario.target else {
        return Ok(Outcome::Pass);
    };
    if args.offline {
        println!("\n(--offline: the cluster was not contacted)");
        return Ok(Outcome::Pass);
    }
    match render_in_cluster(
        &loaded,
        spec,
        args.context.as_deref(),
        args.seed,
        args.allow_production,
    )
    .await
    {
        Ok((text, refused)) => {
            print!("{}", safe(&text));
            Ok(if refused {
                Outcome::Refused
            } else {
                Outcome::Pass
            })
        }
        Err(e) => {
            eprintln!("refused: {e}");
            Ok(Outcome::Refused)
        }
    }
}

/// Where `run` would append its drill-log row: the runbook, its heading and table.
fn drill_log_line(runbook: &Path) -> String {
    match std::fs::read_to_string(runbook) {
        Ok(text) => format!(
            "Drill log: {} — {}",
            runbook.display(),
            crate::drill_log::destination(&text)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "Drill log: {} does not exist yet; `run` creates it with a `## Drill log` table",
            runbook.display()
        ),
        Err(e) => format!("Drill log: {} cannot be read: {e}", runbook.display()),
    }
}

/// Which earlier runs each `regression` check's baseline would use if the drill ran now.
fn baselines(loaded: &scenario::LoadedScenario, report_dir: &Path) -> String {
    let mut out = String::new();
    for check in &loaded.scenario.checks {
        let scenario::CheckKind::Regression(r) = &check.value.kind else {
            continue;
        };
        let name = &check.value.name.value;
        let found = crate::history::baseline::for_check(
            loaded,
            r,
            report_dir,
            None,
            jiff::Timestamp::now(),
        );
        let line = match found {
            Ok(b) => {
                let verdict = if b.enough() {
                    String::new()
                } else {
                    format!(
                        " — too few (at least {}): the check would be inconclusive",
                        b.min_runs
                    )
                };
                let over = match b.passed_over() {
                    over if over.is_empty() => String::new(),
                    over => format!("; passed over: {over}"),
                };
                format!(
                    "regression check `{name}`: baseline from {} earlier passing run(s) of the last {} wanted: {}{verdict}{over}",
                    b.runs.len(),
                    b.wanted,
                    b.runs_in_words()
                )
            }
            Err(e) => format!(
                "regression check `{name}`: the history could not be read ({e}); the check would be inconclusive"
            ),
        };
        out.push_str(&format!("\n{line}\n"));
    }
    out
}
