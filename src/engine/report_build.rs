//! Building the report model from a finished drill.

use super::drill::Observed;
use super::judge::{self, Judged};
use crate::load::LatencyKind;
use crate::report::model::{
    PhaseReport, PointLatency, PrometheusReading, PrometheusSamples, Report, SCHEMA_VERSION,
    ScenarioInfo, SeriesPoint, TargetInfo,
};
use crate::scenario::LoadedScenario;

/// A short random run id (8 hex chars) that names the report directory and the drill-log row.
pub fn new_run_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// The git revision of the scenario file, when it is in a repository.
fn git_revision(loaded: &LoadedScenario) -> Option<String> {
    let dir = if loaded.base_dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        loaded.base_dir.as_path()
    };
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The report of a judged drill.
pub fn build(
    loaded: &LoadedScenario,
    observed: &Observed,
    judged: Judged,
    operator: Option<&str>,
) -> Report {
    let scenario = &loaded.scenario;
    let Judged {
        phases,
        checks,
        verdict,
        verdict_reason,
    } = judged;
    let mut warnings = observed.warnings.clone();
    for u in &phases.unresolved {
        warnings.push(format!("phase `{}` did not happen: {}", u.name, u.why));
    }
    if observed.undo_failed > 0 {
        warnings.push(format!(
            "{} undo(s) failed and stay in the undo journal: run `drillbook recover` once the cause is fixed",
            observed.undo_failed
        ));
    }
    for u in observed.undo.iter().filter(|u| u.result.is_err()) {
        warnings.push(format!(
            "undo of `{}` failed: {} ({})",
            u.step,
            u.description,
            u.result
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default()
        ));
    }
    let phase_reports = phases
        .windows
        .iter()
        .map(|w| PhaseReport {
            name: w.name.clone(),
            start_s: w.start_s,
            end_s: w.end_s,
            verdict: judge::phase_verdict(&w.name, &checks),
            load: observed
                .windows
                .span(|s| w.holds_window(s))
                .map(|span| span.stats.summary(span.seconds)),
        })
        .collect();
    let series = observed
        .windows
        .iter()
        .map(|(second, s)| SeriesPoint {
            t_s: *second as f64,
            requests: s.requests,
            rps: s.requests as f64,
            ok: s.class_count(2),
            status_401: s.status_count(401),
            status_403: s.status_count(403),
            status_5xx: s.class_count(5),
            errors: s.error_count(),
            dropped: s.dropped,
            p50_ms: s.quantile_ms(50.0, LatencyKind::Corrected),
            p99_ms: s.quantile_ms(99.0, LatencyKind::Corrected),
            p95_ms: s.quantile_ms(95.0, LatencyKind::Corrected),
            service: point_latency(s, LatencyKind::Service),
            saturated: s.saturated_windows > 0,
        })
        .collect();
    let (context, namespace) = scenario.target.place();
    let target = TargetInfo {
        kind: scenario.target.kind().to_string(),
        context: context.map(str::to_string),
        namespace: namespace.map(str::to_string),
    };
    if let Some(workers) = &observed.load_workers {
        warnings.extend(coverage_warnings(workers));
    }
    Report {
        schema_version: SCHEMA_VERSION,
        drillbook_version: env!("CARGO_PKG_VERSION").to_string(),
        run_id: observed.run_id.clone(),
        scenario: ScenarioInfo {
            name: scenario.name.value.clone(),
            file: loaded.path.display().to_string(),
            description: scenario.description.trim().to_string(),
            git_revision: git_revision(loaded),
            content_hash: Some(crate::history::content_hash(&loaded.source)),
            asked_rps: scenario
                .load
                .as_ref()
                .and_then(|l| l.rate.as_ref())
                .and_then(|r| r.value.per_second()),
        },
        target,
        started_at: observed.started,
        ended_at: observed.ended,
        seed: observed.seed,
        operator: Some(crate::drill_log::resolve_operator(operator)),
        verdict,
        verdict_reason,
        phases: phase_reports,
        events: {
            let mut events = observed.events.clone();
            events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
            events
        },
        series,
        checks,
        callers: observed
            .load
            .as_ref()
            .map(|l| l.callers.clone())
            .unwrap_or_default(),
        load: observed
            .load
            .as_ref()
            .map(|l| l.total.summary(l.duration.as_secs_f64())),
        preflight: observed.preflight.clone(),
        warnings,
        load_workers: observed.load_workers.clone(),
        silence: observed.silence.clone(),
        replay: replay(loaded, observed.seed),
        pods: observed.pods.clone(),
        prometheus: observed
            .prometheus
            .iter()
            .map(|(check, samples)| PrometheusSamples {
                check: check.clone(),
                samples: samples.iter().map(reading).collect(),
            })
            .collect(),
        tracks: super::fault_effect::tracks(observed),
    }
}

fn point_latency(stats: &crate::load::Stats, kind: LatencyKind) -> Option<PointLatency> {
    Some(PointLatency {
        p50_ms: stats.quantile_ms(50.0, kind)?,
        p95_ms: stats.quantile_ms(95.0, kind)?,
        p99_ms: stats.quantile_ms(99.0, kind)?,
    })
}

/// A reading as the report keeps it: JSON has no NaN or infinity, so those are said in words.
fn reading(sample: &crate::checks::prometheus::Sample) -> PrometheusReading {
    match sample {
        Ok(v) if v.is_finite() => PrometheusReading {
            value: Some(*v),
            error: None,
        },
        Ok(v) => PrometheusReading {
            value: None,
            error: Some(format!("the query returned {v}")),
        },
        Err(e) => PrometheusReading {
            value: None,
            error: Some(e.to_string()),
        },
    }
}

/// `drillbook run FILE --seed N` with the `--var`s given on the command line: the same choices
/// again (the scenario pins its own context).
fn replay(loaded: &LoadedScenario, seed: u64) -> Vec<String> {
    let mut argv = vec![
        "drillbook".to_string(),
        "run".to_string(),
        loaded.path.display().to_string(),
        "--seed".to_string(),
        seed.to_string(),
    ];
    for name in &loaded.given {
        if let Some(value) = loaded.vars.get(name) {
            argv.extend(["--var".to_string(), format!("{name}={value}")]);
        }
    }
    argv
}

/// What the report should say about missing cluster load data: the partial seconds (as
/// ranges) and the workers that failed.
fn coverage_warnings(workers: &crate::report::model::LoadWorkers) -> Vec<String> {
    let mut out = Vec::new();
    let mut ranges: Vec<(u64, u64, u32)> = Vec::new();
    for p in &workers.partial {
        match ranges.last_mut() {
            Some((_, end, reported)) if *end + 1 == p.second && *reported == p.reported => {
                *end = p.second;
            }
            _ => ranges.push((p.second, p.second, p.reported)),
        }
    }
    if !ranges.is_empty() {
        let described: Vec<String> = ranges
            .iter()
            .map(|(from, to, reported)| {
                format!(
                    "t+{from}s..t+{}s ({reported} of {} workers)",
                    to + 1,
                    workers.workers
                )
            })
            .collect();
        out.push(format!(
            "cluster load: {} of {} seconds lack a worker's window ({}); checks over them \
             cannot pass",
            workers.partial.len(),
            workers.seconds,
            described.join(", ")
        ));
    }
    out.extend(workers.problems.iter().map(|p| format!("load {p}")));
    out
}
