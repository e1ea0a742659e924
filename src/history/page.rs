//! `drillbook history --format html`: the trends of [`HistoryView`] as one self-contained page,
//! built from the run report's pieces (page shell and themes, server-rendered charts, escaped
//! tables), one column per run. Each run links to its own `report.html`.

use std::fmt::Write as _;

use super::record::PhaseMetrics;
use super::view::{HistoryView, RunRow, ScenarioHistory};
use crate::checks::CheckVerdict;
use crate::report::html::chart::{Chart, Column, Mark, Series, XAxis};
use crate::report::html::page::Page;
use crate::report::html::table::{Cell, Table};
use crate::report::html::{anchor, escape};
use crate::report::sections::millis;

/// The page; run links are `link_prefix` + the run's folder + `/report.html` (empty prefix: the
/// page sits in the reports folder itself).
pub fn render(view: &HistoryView, link_prefix: &str) -> String {
    let mut page = Page::new(format!("drillbook history: {}", view.report_dir));
    let regressed = view.regressions().len();
    let badge = if regressed > 0 { "fail" } else { "pass" };
    let mut header = format!(
        "<h1><span class=\"verdict {badge}\" id=\"verdict\">{}</span> Drill history</h1>\n\
         <p>{} scenario(s) from <code>{}</code>.</p>\n",
        if regressed > 0 {
            format!("{regressed} regressed")
        } else {
            "no regression".to_owned()
        },
        view.scenarios.len(),
        escape(&view.report_dir)
    );
    if !view.skipped.is_empty() {
        header.push_str("<ul class=\"warnings\">");
        for s in &view.skipped {
            let _ = write!(
                header,
                "<li>skipped {}: {}</li>",
                escape(&s.path.display().to_string()),
                escape(&s.why)
            );
        }
        header.push_str("</ul>\n");
    }
    page.header(header);
    for scenario in &view.scenarios {
        let id = anchor(
            "scenario",
            &format!(
                "{}-{}-{}",
                scenario.scenario,
                scenario.context.as_deref().unwrap_or(&scenario.target),
                scenario.namespace.as_deref().unwrap_or("")
            ),
        );
        page.section(
            &id,
            &format!("{} on {}", scenario.scenario, place(scenario)),
            &section(scenario, &id, link_prefix),
        );
    }
    page.finish("drillbook history")
}

fn place(s: &ScenarioHistory) -> String {
    match (&s.context, &s.namespace) {
        (Some(c), Some(n)) => format!("{c}/{n}"),
        _ => s.target.clone(),
    }
}

fn section(s: &ScenarioHistory, id: &str, link_prefix: &str) -> String {
    let mut out = format!(
        "<p class=\"summary\">{}</p>\n",
        escape(&super::render::summary(s))
    );
    let columns: Vec<Column> = s
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| Column {
            from: i as f64,
            to: i as f64 + 1.0,
            label: format!(
                "{} {}",
                row.run.started_at.strftime("%m-%d %H:%M"),
                row.run.run_id
            ),
        })
        .collect();
    let marks: Vec<Mark> = s
        .rows
        .iter()
        .enumerate()
        .filter(|(_, row)| row.regression.verdict == CheckVerdict::Fail)
        .map(|(i, row)| Mark {
            at: i as f64 + 0.5,
            label: format!("regression: {}", row.run.run_id),
            class: "guard",
        })
        .collect();
    let chart = |suffix: &str, title: &str, format: fn(f64) -> String, series: Vec<Series>| {
        Chart {
            id: format!("{id}-{suffix}"),
            title: title.to_owned(),
            format,
            x_axis: XAxis::Columns,
            columns: columns.clone(),
            series,
            bands: Vec::new(),
            marks: marks.clone(),
        }
        .render()
    };
    let ttr = per_run(s, "time to recover", 2, |row| {
        row.run.measured.time_to_recover_s
    });
    out.push_str(&chart("ttr", "Time to recover per run", seconds, vec![ttr]));
    let phases = phase_names(s);
    let p95: Vec<Series> = phases
        .iter()
        .enumerate()
        .map(|(i, phase)| {
            per_run(s, &format!("p95 {phase}"), color(i), |row| {
                phase_of(row, phase).and_then(|p| p.latency.as_ref().map(|l| l.p95_ms))
            })
        })
        .collect();
    out.push_str(&chart(
        "p95",
        "p95 latency per phase (corrected)",
        millis,
        p95,
    ));
    let errors: Vec<Series> = phases
        .iter()
        .enumerate()
        .flat_map(|(i, phase)| {
            [
                per_run(s, &format!("401 {phase}"), color(i), |row| {
                    phase_of(row, phase).and_then(|p| p.rate(p.status_401))
                }),
                Series {
                    dashed: true,
                    ..per_run(s, &format!("5xx {phase}"), color(i), |row| {
                        phase_of(row, phase).and_then(|p| p.rate(p.status_5xx))
                    })
                },
            ]
        })
        .collect();
    out.push_str(&chart(
        "errors",
        "401 (solid) and 5xx (dashed) share of requests per phase",
        percent,
        errors,
    ));
    out.push_str(&runs_table(s, id, link_prefix).render());
    out
}

/// Phases in the order the runs first name them.
fn phase_names(s: &ScenarioHistory) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for row in &s.rows {
        for p in &row.run.measured.phases {
            if !names.contains(&p.name) {
                names.push(p.name.clone());
            }
        }
    }
    names
}

fn phase_of<'a>(row: &'a RunRow, name: &str) -> Option<&'a PhaseMetrics> {
    row.run.measured.phases.iter().find(|p| p.name == name)
}

fn per_run(
    s: &ScenarioHistory,
    name: &str,
    color: u8,
    value: impl Fn(&RunRow) -> Option<f64>,
) -> Series {
    Series {
        name: name.to_owned(),
        color,
        dashed: false,
        values: s.rows.iter().map(value).collect(),
    }
}

/// The page has eight palette entries.
fn color(i: usize) -> u8 {
    u8::try_from(i % 8).unwrap_or(0)
}

fn seconds(v: f64) -> String {
    format!("{v:.1}s")
}

fn percent(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn runs_table(s: &ScenarioHistory, id: &str, link_prefix: &str) -> Table {
    let mut table = Table::new(
        format!("{id}-runs"),
        &[
            "run",
            "started (UTC)",
            "verdict",
            "time to recover",
            "load asked → got",
            "vs baseline",
        ],
    );
    for row in s.rows.iter().rev() {
        let run = &row.run;
        let verdict = run.verdict.as_str();
        let regression = match row.regression.verdict {
            CheckVerdict::Pass => Cell::text("ok").class("pass"),
            CheckVerdict::Fail => Cell::text("REGRESSION").class("fail"),
            CheckVerdict::Inconclusive => Cell::text("inconclusive").class("inconclusive"),
        };
        let load = match (run.asked_rps, run.achieved_rps) {
            (Some(asked), Some(got)) => format!("{asked:.0} → {got:.1}/s"),
            (None, Some(got)) => format!("{got:.1}/s"),
            _ => "—".to_owned(),
        };
        let mut verdict_cell = Cell::text(if row.edited {
            format!("{verdict} (edited)")
        } else {
            verdict.to_owned()
        });
        verdict_cell.class = verdict_class(verdict);
        table.push(vec![
            Cell::text(&run.run_id)
                .code()
                .file("report", format!("{link_prefix}{}/report.html", run.dir)),
            Cell::text(run.started_at.strftime("%Y-%m-%d %H:%M:%S").to_string()),
            verdict_cell,
            Cell::text(
                run.measured
                    .time_to_recover_s
                    .map_or("—".to_owned(), seconds),
            ),
            Cell::text(load),
            Cell {
                text: format!("{} {}", regression.text, row.regression.detail),
                ..regression
            },
        ]);
    }
    table
}

fn verdict_class(verdict: &str) -> Option<&'static str> {
    match verdict {
        "pass" => Some("pass"),
        "fail" | "aborted" => Some("fail"),
        _ => Some("inconclusive"),
    }
}
