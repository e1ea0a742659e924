//! `drillbook run`: the whole pipeline, top to bottom. Load the scenario, run the drill,
//! gather the end-of-run readings, judge them, build and write the report, store it in the
//! cluster when asked, print the verdict table, append the drill-log row.

use std::io::Write as _;
use std::path::PathBuf;

use super::args::RunArgs;
use crate::drill_log::{self, AppendOutcome};
use crate::engine::drill::{self, DrillError, RunOptions};
use crate::engine::{gather, judge, report_build};
use crate::exit::Outcome;
use crate::scenario::{FileDiagnostics, LoadedScenario};
use crate::targets::kube::ConnectOptions;

pub async fn run(args: RunArgs, vars: &[(String, String)]) -> anyhow::Result<Outcome> {
    let mut loaded = match crate::scenario::load_with(&args.scenario, vars) {
        Ok(l) => l,
        Err(diagnostics) => {
            eprint!("{}", super::terminal::safe(&diagnostics.to_string()));
            return Ok(Outcome::Invalid);
        }
    };
    args.cluster.apply(&mut loaded);
    if !loaded.warnings.is_empty() {
        let warnings = FileDiagnostics::new(
            &loaded.path,
            Some(loaded.source.clone()),
            loaded.warnings.clone(),
        );
        eprint!("{}", super::terminal::safe(&warnings.to_string()));
    }
    let seed = args
        .seed
        .or(loaded.scenario.seed)
        .unwrap_or_else(rand::random);
    eprintln!(
        "drill `{}`: seed {seed} (replay with --seed {seed})",
        loaded.scenario.name.value
    );
    let Some(options) = run_options(&args) else {
        eprintln!(
            "refused: --in-cluster needs the cluster's name (--cluster-name or \
             DRILLBOOK_CLUSTER_NAME) to check the scenario's context against"
        );
        return Ok(Outcome::Refused);
    };

    // The rules `plan` shows, before anything starts: a step that run would refuse half-way
    // (an argv outside the pin, too many pods) refuses the whole drill up front.
    let refusals = crate::plan::offline_refusals(
        &loaded,
        crate::plan::SafetyOptions {
            context: options
                .connect
                .in_cluster
                .as_deref()
                .or(options.connect.context.as_deref()),
            allow_production: options.connect.allow_production,
        },
    );
    if !refusals.is_empty() {
        for r in &refusals {
            eprintln!("refused: {r}");
        }
        return Ok(Outcome::Refused);
    }
    let result = drill::run(&loaded, seed, &options).await;
    super::progress::clear_status();
    let observed = match result {
        Ok(observed) => observed,
        Err(DrillError::Refused(why)) => {
            eprintln!("refused: {why}");
            return Ok(Outcome::Refused);
        }
        // Nothing was injected: the guard was prepared before the drill's background started.
        Err(why @ (DrillError::Guard(_) | DrillError::PodGuard(_))) => {
            eprintln!("refused: {why}");
            return Ok(Outcome::Refused);
        }
        Err(e) => return Err(e.into()),
    };
    // All I/O the checks need happens here; judging itself only reads.
    let mut end = gather::gather(&loaded.scenario, &observed).await;
    gather::baselines(&loaded, &observed, &args.report_dir, &mut end);
    let judged = judge::judge(&loaded.scenario, &observed, &end);
    let report = report_build::build(&loaded, &observed, judged, args.operator.as_deref());

    let dir = drill::report_dir(&args.report_dir, &report);
    // A report that cannot be written in full must not also cost the drill-log row, but the
    // row must not link to it, and a pass nobody can look up is not a pass (exit 6).
    let (mut files, unwritten) = match crate::report::write_all(&report, &dir) {
        Ok(files) => {
            // The index is a cache of the report folders: `history` re-reads a missed one.
            if let Err(e) = crate::history::record_run(&args.report_dir, &report, &dir) {
                eprintln!("warning: the run was not added to the history index: {e}");
            }
            (files, None)
        }
        Err(e) => {
            let why = format!("{:#}", anyhow::Error::from(e));
            eprintln!("error: the report was not written: {why}");
            (Vec::new(), Some(why))
        }
    };
    // CI artefacts at fixed paths, besides the run's folder; a pass whose artefact is missing
    // is not a pass CI can see (exit 6), but the run's folder and its drill-log link stand.
    let mut artefact_missing = false;
    let artefacts = [
        (&args.junit, crate::report::Format::Junit),
        (&args.json, crate::report::Format::Json),
    ];
    for (path, format) in artefacts {
        let Some(path) = path else { continue };
        match crate::report::write_file(&report, format, path) {
            Ok(()) => files.push(path.clone()),
            Err(e) => {
                eprintln!("error: {:#}", anyhow::Error::from(e));
                artefact_missing = true;
            }
        }
    }
    if args.store_results {
        // The verdict stays the run's outcome; a storage failure is loud but does not hide it.
        match crate::schedule::results::store_after_run(
            &loaded,
            &options.connect,
            &report,
            args.keep_results,
        )
        .await
        {
            Ok(stored) => println!("{stored}"),
            Err(e) => eprintln!("warning: could not store the result in the cluster: {e}"),
        }
    }
    let pushgateway = args.pushgateway.clone().or_else(|| {
        loaded
            .scenario
            .pushgateway
            .as_ref()
            .map(|p| p.value.clone())
    });
    let mut unpushed = false;
    if let Some(url) = pushgateway {
        unpushed = !super::collect::push_results(&url, &report, &dir).await;
    }
    println!(
        "{}",
        crate::report::table::render_fitted(
            &report,
            super::terminal::stdout_color(),
            super::terminal::stdout_width()
        )
    );
    if files.is_empty() {
        println!("reports: none written (see the error above)");
    } else {
        println!(
            "reports: {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let html = files.iter().find(|f| f.ends_with("report.html"));
    super::ci::github(&report, html.map(PathBuf::as_path));
    if let Some(runbook) = runbook(&args, &loaded) {
        let mut entry = drill_log::entry(&report, &runbook, &dir);
        if let Some(why) = &unwritten {
            entry.report_link = None;
            entry.notes = format!("{}; report not written: {why}", entry.notes);
        }
        match drill_log::append(&runbook, &entry) {
            Ok(AppendOutcome::AlreadyPresent) => println!(
                "drill log: run {} already in {}",
                report.run_id,
                runbook.display()
            ),
            Ok(_) => println!("drill log: appended a row to {}", runbook.display()),
            // Asked for by name, a lost row is an error: the exit code must not say all is
            // well (a failing verdict keeps its own code). From the scenario, a warning.
            Err(e) if args.drill_log.is_some() => {
                eprintln!(
                    "error: could not append to the drill log {}: {:#}",
                    runbook.display(),
                    anyhow::Error::new(e)
                );
                return Ok(match Outcome::from(report.verdict) {
                    Outcome::Pass => Outcome::Unreported,
                    other => other,
                });
            }
            Err(e) => eprintln!(
                "warning: could not append to the drill log {}: {:#}",
                runbook.display(),
                anyhow::Error::new(e)
            ),
        }
    }
    failed_undos(&observed, &report);
    Ok(match Outcome::from(report.verdict) {
        Outcome::Pass if unwritten.is_some() || artefact_missing || unpushed => Outcome::Unreported,
        outcome => outcome,
    })
}

/// The run's options, or `None` when `--in-cluster` lacks the cluster's name.
fn run_options(args: &RunArgs) -> Option<RunOptions> {
    let in_cluster = match (args.in_cluster, &args.cluster_name) {
        (false, _) => None,
        (true, Some(name)) => Some(name.clone()),
        (true, None) => return None,
    };
    Some(RunOptions {
        connect: ConnectOptions {
            context: args.context.clone(),
            allow_production: args.allow_production,
            in_cluster,
        },
        force: args.force,
        run_id: report_build::new_run_id(),
        notice: say,
        progress: super::progress::sink(),
    })
}

/// Writes a notice to stderr, ignoring a closed pipe: losing a message must never stop the
/// unwinding.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// The runbook whose drill log gets the row: `--drill-log`, else the scenario's `runbook:`.
fn runbook(args: &RunArgs, loaded: &LoadedScenario) -> Option<PathBuf> {
    if args.no_drill_log {
        return None;
    }
    args.drill_log.clone().or_else(|| {
        loaded
            .scenario
            .runbook
            .as_ref()
            .map(|r| loaded.resolve(&r.value))
    })
}

/// The last lines of a run: every undo that failed, by name (a silence with its id and when
/// it expires by itself), and where it is kept for `drillbook recover`.
fn failed_undos(observed: &drill::Observed, report: &crate::report::model::Report) {
    let journaled = report.target.kind == "kubernetes";
    for undo in &observed.undo {
        let Err(why) = &undo.result else { continue };
        let mut line = format!(
            "error: undo of `{}` failed: {}: {why}",
            undo.step, undo.description
        );
        if let Some(silence) = report.silence.as_ref().filter(|_| undo.step == "silence") {
            line.push_str(&format!(
                "; silence {} at {} expires by itself at {}",
                silence.id, silence.alertmanager, silence.expires_at
            ));
        }
        if journaled {
            line.push_str(
                "; it stays in the undo journal: run `drillbook recover` once the cause is fixed",
            );
        }
        eprintln!("{}", super::terminal::safe(&line));
    }
}
