//! A drill's HTML page, assembled from the generic pieces: the header (verdict, scenario,
//! target, seed, the replay command), the per-second charts, then the tables.

use std::fmt::Write as _;

use super::chart::{Band, Chart, Column, Mark, Series, XAxis};
use super::page::Page;
use super::table::{Cell, Row, Table};
use super::{anchor, escape};
use crate::report::model::{
    CheckResult, CheckVerdict, EventKind, PreflightStatus, Report, SeriesPoint,
};
use crate::report::sections::{self, millis, number_text, offset};

/// Whether the page sits in its run's folder beside the other report files (then it links
/// them) or stands alone (`drillbook report FILE --format html`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFiles {
    Beside,
    Alone,
}

/// Callers listed in full at most; a larger pool is summarised by the failing ones.
const MAX_CALLER_ROWS: usize = 500;

/// The report as one self-contained HTML page.
pub fn render(report: &Report, files: RunFiles) -> String {
    let mut page = Page::new(format!(
        "{} - drill {}",
        report.verdict, report.scenario.name
    ));
    page.header(header(report));
    if !report.warnings.is_empty() {
        let mut list = String::from("<ul class=\"warnings\">");
        for w in &report.warnings {
            let _ = write!(list, "<li>{}</li>", escape(w));
        }
        list.push_str("</ul>\n");
        page.section("warnings", "Warnings", &list);
    }
    page.section("charts", "Timeline", &charts(report));
    if !report.phases.is_empty() {
        page.section("phases", "Phases", &phases(report).render());
    }
    if !report.checks.is_empty() {
        page.section("checks", "Checks", &checks(report).render());
    }
    if !report.callers.is_empty() {
        page.section("callers", "Callers", &callers(report));
    }
    if !report.prometheus.is_empty() {
        page.section("prometheus", "Prometheus samples", &prometheus(report));
    }
    if !report.events.is_empty() {
        page.section(
            "events",
            "Events",
            &Table::from_section("events-table", &sections::timeline(report)).render(),
        );
    }
    if !report.preflight.is_empty() {
        page.section("preflight", "Pre-flight", &preflight(report).render());
    }
    page.finish(&footer(report, files))
}

fn header(report: &Report) -> String {
    let verdict = report.verdict.as_str();
    let mut out = format!(
        "<h1><span class=\"verdict {verdict}\" id=\"verdict\">{verdict}</span> Drill \
         <span id=\"scenario-name\">{}</span></h1>\n<p id=\"verdict-reason\">{}</p>\n",
        escape(&report.scenario.name),
        escape(&report.verdict_reason)
    );
    if !report.scenario.description.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", escape(&report.scenario.description));
    }
    out.push_str("<dl class=\"facts\">");
    for (key, value) in sections::overview(report) {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(key), escape(&value));
    }
    let _ = write!(
        out,
        "<dt>Ended</dt><dd>{}</dd></dl>\n<p>Replay the same choices:</p>\
         <pre id=\"replay\" data-copy=\"1\">{}</pre>\n",
        escape(&report.ended_at.to_string()),
        escape(&replay_command(report))
    );
    out
}

/// The replay argv as one shell line (each word quoted when it needs to be).
fn replay_command(report: &Report) -> String {
    let fallback;
    let argv: &[String] = if report.replay.is_empty() {
        fallback = [
            "drillbook".to_owned(),
            "run".to_owned(),
            report.scenario.file.clone(),
            "--seed".to_owned(),
            report.seed.to_string(),
        ];
        &fallback
    } else {
        &report.replay
    };
    argv.iter()
        .map(|word| shell_word(word))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./=:,@%+-".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn second_columns(seconds: impl Iterator<Item = f64>) -> Vec<Column> {
    seconds
        .map(|t| Column {
            from: t,
            to: t + 1.0,
            label: offset(t),
        })
        .collect()
}

/// Phases shaded by verdict, faults and guard trips marked: the same on every time chart.
fn overlays(report: &Report) -> (Vec<Band>, Vec<Mark>) {
    let bands = report
        .phases
        .iter()
        .map(|p| Band {
            from: p.start_s,
            to: p.end_s,
            label: format!("{} ({})", p.name, p.verdict),
            class: p.verdict.as_str(),
        })
        .collect();
    let marks = report
        .events
        .iter()
        .filter_map(|e| {
            let (class, label) = match e.kind {
                EventKind::Fault => (
                    "fault",
                    format!("fault: {}", e.step.as_deref().unwrap_or(&e.description)),
                ),
                EventKind::Guard => (
                    "guard",
                    format!("guard tripped {}: {}", offset(e.at_s), e.description),
                ),
                _ => return None,
            };
            Some(Mark {
                at: e.at_s,
                label,
                class,
            })
        })
        .collect();
    (bands, marks)
}

fn per_second(
    report: &Report,
    name: &str,
    color: u8,
    value: impl Fn(&SeriesPoint) -> Option<f64>,
) -> Series {
    Series {
        name: name.to_owned(),
        color,
        dashed: false,
        values: report.series.iter().map(value).collect(),
    }
}

fn dashed(mut series: Series) -> Series {
    series.dashed = true;
    series
}

fn rate(v: f64) -> String {
    format!("{}/s", number_text((v * 100.0).round() / 100.0))
}

fn count(v: f64) -> String {
    number_text((v * 100.0).round() / 100.0)
}

fn charts(report: &Report) -> String {
    let (bands, marks) = overlays(report);
    let mut out = String::new();
    if report.series.is_empty() {
        out.push_str("<p>No load was driven in this drill: no latency or status charts.</p>\n");
    } else {
        let columns = second_columns(report.series.iter().map(|p| p.t_s));
        let latency = Chart {
            id: "chart-latency".into(),
            title: "Latency per second (solid: corrected, from the intended send time; dashed: \
                    service, from the actual send time)"
                .into(),
            format: millis,
            x_axis: XAxis::Seconds,
            columns: columns.clone(),
            series: vec![
                per_second(report, "p50", 0, |p| p.p50_ms),
                per_second(report, "p95", 1, |p| p.p95_ms),
                per_second(report, "p99", 4, |p| p.p99_ms),
                dashed(per_second(report, "service p50", 0, |p| {
                    p.service.map(|s| s.p50_ms)
                })),
                dashed(per_second(report, "service p95", 1, |p| {
                    p.service.map(|s| s.p95_ms)
                })),
                dashed(per_second(report, "service p99", 4, |p| {
                    p.service.map(|s| s.p99_ms)
                })),
            ],
            bands: bands.clone(),
            marks: marks.clone(),
        };
        out.push_str(&latency.render());
        let mut statuses = vec![
            per_second(report, "2xx/3xx", 3, |p| Some(p.ok as f64)),
            per_second(report, "401", 4, |p| Some(p.status_401 as f64)),
            per_second(report, "5xx", 1, |p| Some(p.status_5xx as f64)),
            per_second(report, "connection errors", 2, |p| Some(p.errors as f64)),
        ];
        if report.series.iter().any(|p| p.status_403 > 0) {
            statuses.push(per_second(report, "403", 6, |p| Some(p.status_403 as f64)));
        }
        if report.series.iter().any(|p| p.dropped > 0) {
            statuses.push(per_second(report, "dropped (not sent in time)", 5, |p| {
                Some(p.dropped as f64)
            }));
        }
        let status = Chart {
            id: "chart-status".into(),
            title: "Responses per second by status".into(),
            format: rate,
            x_axis: XAxis::Seconds,
            columns,
            series: statuses,
            bands: bands.clone(),
            marks: marks.clone(),
        };
        out.push_str(&status.render());
    }
    if report.pods.is_empty() {
        out.push_str("<p>The target reported no pods or processes to count.</p>\n");
    } else {
        let pods = Chart {
            id: "chart-pods".into(),
            title: "Pods (processes) every second: existing, ready, restarts since the start"
                .into(),
            format: count,
            x_axis: XAxis::Seconds,
            columns: second_columns(report.pods.iter().map(|p| p.t_s as f64)),
            series: vec![
                Series {
                    name: "pods".into(),
                    color: 5,
                    dashed: true,
                    values: report
                        .pods
                        .iter()
                        .map(|p| Some(f64::from(p.pods)))
                        .collect(),
                },
                Series {
                    name: "ready".into(),
                    color: 3,
                    dashed: false,
                    values: report
                        .pods
                        .iter()
                        .map(|p| Some(f64::from(p.ready)))
                        .collect(),
                },
                Series {
                    name: "restarts".into(),
                    color: 4,
                    dashed: false,
                    values: report
                        .pods
                        .iter()
                        .map(|p| Some(f64::from(p.restarts)))
                        .collect(),
                },
            ],
            bands: bands.clone(),
            marks: marks.clone(),
        };
        out.push_str(&pods.render());
    }
    if !report.tracks.is_empty() {
        out.push_str(&tracks_chart(report, bands, marks).render());
    }
    out
}

/// Every further per-second count (a fault proxy's, say) on one chart, over the union of
/// their seconds.
fn tracks_chart(report: &Report, bands: Vec<Band>, marks: Vec<Mark>) -> Chart {
    let mut seconds: Vec<f64> = report
        .tracks
        .iter()
        .flat_map(|t| t.points.iter().map(|p| p[0]))
        .filter(|t| t.is_finite())
        .collect();
    seconds.sort_by(f64::total_cmp);
    seconds.dedup();
    let series = report
        .tracks
        .iter()
        .enumerate()
        .map(|(i, track)| Series {
            name: track.name.clone(),
            color: (i % 8) as u8,
            dashed: false,
            values: seconds
                .iter()
                .map(|t| track.points.iter().find(|p| p[0] == *t).map(|p| p[1]))
                .collect(),
        })
        .collect();
    Chart {
        id: "chart-tracks".into(),
        title: "Other counts per second".into(),
        format: count,
        x_axis: XAxis::Seconds,
        columns: second_columns(seconds.into_iter()),
        series,
        bands,
        marks,
    }
}

fn phases(report: &Report) -> Table {
    let mut table = Table::from_section("phases-table", &sections::phases(&report.phases));
    for (row, phase) in table.rows.iter_mut().zip(&report.phases) {
        row.id = Some(anchor("phase", &phase.name));
        if let Some(cell) = row.cells.get_mut(2) {
            cell.class = Some(phase.verdict.as_str());
        }
        for cell in row.cells.iter_mut().skip(3) {
            cell.class = Some("num");
        }
    }
    table
}

fn checks(report: &Report) -> Table {
    let mut table = Table::new(
        "checks-table",
        &[
            "check",
            "kind",
            "phase",
            "condition",
            "measured",
            "threshold",
            "verdict",
            "detail",
            "evidence",
            "scenario",
        ],
    );
    for (i, check) in report.checks.iter().enumerate() {
        let verdict = check.verdict.as_str();
        let mut verdict_text = sections::check_verdict(check);
        if check.dry_run {
            verdict_text.push_str(" (dry run)");
        }
        let cells = vec![
            Cell::text(&check.name),
            Cell::text(&check.kind),
            Cell::text(check.phase.as_deref().unwrap_or("whole run")),
            Cell::text(&check.expression).code(),
            Cell::text(sections::measured(check)).class("num"),
            Cell::text(sections::threshold(check)).class("num"),
            Cell::text(verdict_text).class(verdict),
            Cell::text(&check.detail).class("detail"),
            evidence(report, check),
            Cell::text(location(report, check)).code(),
        ];
        table.push(Row {
            cells,
            id: Some(format!("check-{i}")),
            class: (check.verdict == CheckVerdict::Inconclusive).then_some("inconclusive"),
        });
    }
    table
}

/// Links to what the check was judged on: its phase, the chart of its data, its samples.
fn evidence(report: &Report, check: &CheckResult) -> Cell {
    let mut cell = Cell::default();
    if let Some(phase) = &check.phase
        && report.phases.iter().any(|p| &p.name == phase)
    {
        cell = cell.link(format!("phase {phase}"), anchor("phase", phase));
    }
    match check.kind.as_str() {
        "http" | "compare" if !report.series.is_empty() => {
            cell = cell
                .link("latency", "chart-latency")
                .link("statuses", "chart-status");
        }
        "prometheus" | "alerts" => {
            if let Some(i) = report.prometheus.iter().position(|p| p.check == check.name) {
                cell = cell.link("samples", format!("prom-{i}"));
            }
        }
        _ => {
            if !report.pods.is_empty() {
                cell = cell.link("pods", "chart-pods");
            }
            if !report.events.is_empty() {
                cell = cell.link("events", "events");
            }
        }
    }
    cell
}

fn location(report: &Report, check: &CheckResult) -> String {
    match check.location {
        Some(at) => format!("{}:{}:{}", report.scenario.file, at.line, at.column),
        None => sections::MISSING.to_owned(),
    }
}

fn callers(report: &Report) -> String {
    let mut out = String::new();
    let failing = sections::caller_failures(&report.callers);
    let _ = writeln!(
        out,
        "<p>{} caller(s); {} saw failures.</p>",
        report.callers.len(),
        failing.rows.len()
    );
    if !failing.rows.is_empty() {
        out.push_str(&Table::from_section("callers-failing", &failing).render());
    }
    let mut all = Table::new(
        "callers-all",
        &[
            "caller", "started", "ended", "requests", "2xx", "401", "5xx", "errors",
        ],
    );
    for c in report.callers.iter().take(MAX_CALLER_ROWS) {
        let class_count = |class: char| -> u64 {
            c.statuses
                .iter()
                .filter(|(code, _)| code.starts_with(class))
                .map(|(_, n)| n)
                .sum()
        };
        all.push(vec![
            Cell::text(&c.label),
            Cell::text(offset(c.started_at_s)),
            Cell::text(c.ended_at_s.map_or_else(|| "running".to_owned(), offset)),
            Cell::text(c.requests.to_string()).class("num"),
            Cell::text(class_count('2').to_string()).class("num"),
            Cell::text(c.statuses.get("401").copied().unwrap_or(0).to_string()).class("num"),
            Cell::text(class_count('5').to_string()).class("num"),
            Cell::text(c.errors.to_string()).class("num"),
        ]);
    }
    let _ = writeln!(
        out,
        "<details><summary>All callers{}</summary>{}</details>",
        if report.callers.len() > MAX_CALLER_ROWS {
            format!(" (first {MAX_CALLER_ROWS} of {})", report.callers.len())
        } else {
            String::new()
        },
        all.render()
    );
    out
}

fn prometheus(report: &Report) -> String {
    let mut out = String::new();
    for (i, samples) in report.prometheus.iter().enumerate() {
        let _ = writeln!(out, "<h3 id=\"prom-{i}\">{}</h3>", escape(&samples.check));
        if samples.samples.iter().filter(|s| s.value.is_some()).count() > 1 {
            let chart = Chart {
                id: format!("chart-prom-{i}"),
                title: format!("`{}`: each reading", samples.check),
                format: count,
                x_axis: XAxis::Columns,
                columns: (0..samples.samples.len())
                    .map(|n| Column {
                        from: n as f64,
                        to: n as f64 + 1.0,
                        label: format!("#{}", n + 1),
                    })
                    .collect(),
                series: vec![Series {
                    name: "value".into(),
                    color: 0,
                    dashed: false,
                    values: samples.samples.iter().map(|s| s.value).collect(),
                }],
                bands: Vec::new(),
                marks: Vec::new(),
            };
            out.push_str(&chart.render());
        }
        let mut table = Table::new(format!("prom-table-{i}"), &["reading", "value", "error"]);
        for (n, s) in samples.samples.iter().enumerate() {
            table.push(vec![
                Cell::text(format!("#{}", n + 1)),
                Cell::text(
                    s.value
                        .map_or_else(|| sections::MISSING.to_owned(), number_text),
                )
                .class("num"),
                Cell::text(s.error.as_deref().unwrap_or(sections::MISSING)),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

fn preflight(report: &Report) -> Table {
    let mut table = Table::new("preflight-table", &["check", "status", "detail"]);
    for p in &report.preflight {
        let class = match p.status {
            PreflightStatus::Ok => "pass",
            PreflightStatus::Warn => "inconclusive",
            PreflightStatus::Fail => "fail",
        };
        table.push(vec![
            Cell::text(&p.name),
            Cell::text(p.status.as_str()).class(class),
            Cell::text(&p.detail),
        ]);
    }
    table
}

fn footer(report: &Report, files: RunFiles) -> String {
    let mut out = format!(
        "drillbook {} · run {} · report schema {}",
        escape(&report.drillbook_version),
        escape(&report.run_id),
        report.schema_version
    );
    if files == RunFiles::Beside {
        out.push_str(" · this run's files: ");
        let links: Vec<String> = ["report.json", "report.md", "junit.xml", "timeline.svg"]
            .iter()
            .map(|f| format!("<a href=\"{f}\">{f}</a>"))
            .collect();
        out.push_str(&links.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{TimelineEvent, Track};

    fn event(at_s: f64, kind: EventKind, description: &str) -> TimelineEvent {
        TimelineEvent {
            at_s,
            kind,
            step: Some("kill".into()),
            description: description.into(),
            targets: Vec::new(),
            undo: None,
            outcome: None,
        }
    }

    #[test]
    fn faults_and_guard_trips_are_marked_with_their_time_and_tracks_are_drawn() {
        let text = include_str!("../../../tests/fixtures/reports/pass-proxy-restart/report.json");
        let mut report: Report = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        report.events = vec![
            event(6.0, EventKind::Fault, "SIGKILL"),
            event(9.5, EventKind::Guard, "rate(5xx) > 90% for 10s"),
            event(12.0, EventKind::Undo, "restart"),
        ];
        report.tracks = vec![Track {
            name: "http_fault: injected 503".into(),
            points: vec![[6.0, 12.0], [7.0, 30.0], [8.0, 0.0]],
        }];
        let page = render(&report, RunFiles::Alone);
        let charts = page.matches("<figure class=\"chart\"").count();
        assert_eq!(page.matches("class=\"mark fault\"").count(), charts);
        assert_eq!(page.matches("class=\"mark guard\"").count(), charts);
        assert!(page.contains("guard tripped t+9.5s: rate(5xx) &gt; 90% for 10s"));
        assert!(!page.contains("class=\"mark undo\""));
        assert!(page.contains("id=\"chart-tracks\""));
        assert!(page.contains(
            "data-series=\"http_fault: injected 503\" data-index=\"0\" data-points=\"3\""
        ));
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("scenarios/a.yaml"), "scenarios/a.yaml");
        assert_eq!(shell_word("name=it's here"), "'name=it'\\''s here'");
        assert_eq!(shell_word(""), "''");
    }
}
