//! `HistoryView` as a terminal table and as Markdown (JSON is its serde form).

use std::fmt::Write as _;

use super::record::{PhaseMetrics, RunRecord};
use super::view::{HistoryView, RunRow, ScenarioHistory};
use crate::checks::CheckVerdict;

const HEADERS: [&str; 12] = [
    "run",
    "started (UTC)",
    "verdict",
    "ttr",
    "phase",
    "req",
    "401",
    "5xx",
    "p95 / svc",
    "p99 / svc",
    "load asked→got",
    "vs baseline",
];

/// The history as text: per scenario a summary line and one block of lines per run (one line
/// per phase), then the report links and what was skipped.
pub fn table(view: &HistoryView) -> String {
    let mut out = String::new();
    if view.scenarios.is_empty() {
        let _ = writeln!(out, "no runs in {} match", view.report_dir);
    }
    for scenario in &view.scenarios {
        let _ = writeln!(out, "{}", summary(scenario));
        let mut rows: Vec<Vec<String>> = vec![HEADERS.iter().map(|h| h.to_string()).collect()];
        for row in &scenario.rows {
            rows.extend(run_lines(row));
        }
        out.push_str(&aligned(&rows));
        for row in &scenario.rows {
            let _ = writeln!(out, "  {}  {}", row.run.run_id, row.report);
        }
        if let Some(chart) = &scenario.chart {
            let _ = writeln!(out, "  trend chart: {chart}");
        }
        out.push('\n');
    }
    skipped(view, &mut out);
    out
}

/// The history as Markdown: a section per scenario, a table with a link per run.
pub fn markdown(view: &HistoryView) -> String {
    let mut out = String::from("# Drill history\n\n");
    if view.scenarios.is_empty() {
        let _ = writeln!(out, "No runs in `{}` match.\n", md(&view.report_dir));
    }
    for scenario in &view.scenarios {
        let _ = writeln!(
            out,
            "## {}\n\n{}\n",
            md(&scenario.scenario),
            md(&summary(scenario))
        );
        if let Some(chart) = &scenario.chart {
            let _ = writeln!(
                out,
                "![trend of {}]({})\n",
                md(&scenario.scenario),
                link(chart)
            );
        }
        let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
        let _ = writeln!(out, "|{}|", vec!["---"; HEADERS.len()].join("|"));
        for row in &scenario.rows {
            for (i, line) in run_lines(row).into_iter().enumerate() {
                let mut cells: Vec<String> = line.iter().map(|c| md(c)).collect();
                cells[0] = if i == 0 {
                    format!("[{}]({})", md(&row.run.run_id), link(&row.report))
                } else {
                    String::new()
                };
                let _ = writeln!(out, "| {} |", cells.join(" | "));
            }
        }
        out.push('\n');
        for row in scenario
            .rows
            .iter()
            .filter(|r| r.regression.verdict == CheckVerdict::Fail)
        {
            let _ = writeln!(
                out,
                "- **{}** regressed: {}",
                md(&row.run.run_id),
                md(&row.regression.detail)
            );
        }
        out.push('\n');
    }
    skipped(view, &mut out);
    out
}

fn skipped(view: &HistoryView, out: &mut String) {
    for s in &view.skipped {
        let _ = writeln!(out, "skipped {}: {}", s.path.display(), s.why);
    }
}

/// "`proxy-restart` on box/drill: 5 runs (4 pass, 1 fail); streak 2× pass; 2 versions".
pub fn summary(s: &ScenarioHistory) -> String {
    let place = match (&s.context, &s.namespace) {
        (Some(c), Some(n)) => format!("{c}/{n}"),
        _ => s.target.clone(),
    };
    let verdicts: Vec<String> = s.verdicts.iter().map(|(v, n)| format!("{n} {v}")).collect();
    let versions = if s.versions > 1 {
        format!("; {} versions of the scenario file", s.versions)
    } else {
        String::new()
    };
    format!(
        "scenario `{}` on {place}: {} run(s) ({}); streak {}× {}{versions}",
        s.scenario,
        s.runs,
        verdicts.join(", "),
        s.streak.runs,
        s.streak.verdict
    )
}

/// A run's lines: the first carries the run's own columns, one line per phase.
fn run_lines(row: &RunRow) -> Vec<Vec<String>> {
    let run = &row.run;
    let phases: Vec<Option<&PhaseMetrics>> = if run.measured.phases.is_empty() {
        vec![None]
    } else {
        run.measured.phases.iter().map(Some).collect()
    };
    phases
        .into_iter()
        .enumerate()
        .map(|(i, phase)| {
            let mut line = if i == 0 {
                vec![
                    run.run_id.clone(),
                    run.started_at.strftime("%Y-%m-%d %H:%M").to_string(),
                    format!(
                        "{}{}",
                        run.verdict,
                        if row.edited { " (edited)" } else { "" }
                    ),
                    run.measured
                        .time_to_recover_s
                        .map_or("—".into(), |t| format!("{t:.1}s")),
                ]
            } else {
                vec![String::new(); 4]
            };
            line.extend(phase_cells(phase));
            if i == 0 {
                line.push(load_cell(run));
                line.push(match row.regression.verdict {
                    CheckVerdict::Pass => "ok".into(),
                    CheckVerdict::Fail => "REGRESSION".into(),
                    CheckVerdict::Inconclusive => "inconclusive".into(),
                });
            } else {
                line.extend([String::new(), String::new()]);
            }
            line
        })
        .collect()
}

fn phase_cells(phase: Option<&PhaseMetrics>) -> Vec<String> {
    let Some(p) = phase else {
        return vec!["—".into(); 6];
    };
    let counted = |n: u64| match p.rate(n) {
        Some(rate) => format!("{n} ({:.1}%)", rate * 100.0),
        None => n.to_string(),
    };
    let ms = |a: f64, b: f64| format!("{} / {} ms", number(a), number(b));
    let (p95, p99) = match &p.latency {
        Some(l) => (
            ms(l.p95_ms, l.service_p95_ms),
            ms(l.p99_ms, l.service_p99_ms),
        ),
        None => ("—".into(), "—".into()),
    };
    vec![
        p.name.clone(),
        p.requests.to_string(),
        counted(p.status_401),
        counted(p.status_5xx),
        p95,
        p99,
    ]
}

fn number(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

fn load_cell(run: &RunRecord) -> String {
    match (run.asked_rps, run.achieved_rps) {
        (Some(asked), Some(got)) => format!("{asked:.0}→{got:.1}/s"),
        (None, Some(got)) => format!("—→{got:.1}/s"),
        _ => "—".into(),
    }
}

fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
    }
    out
}

/// Markdown-safe text: table pipes, emphasis and HTML escaped.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' | '*' | '_' | '`' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A path as a Markdown link target: `<…>` so spaces work, angle brackets escaped.
fn link(path: &str) -> String {
    format!("<{}>", path.replace('<', "%3C").replace('>', "%3E"))
}
