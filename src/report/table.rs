//! Terminal rendering: an overview, then one box-drawn table per section. Every text from the
//! report is escaped as it is drawn (see [`super::text`]): a table is meant for a terminal.

use std::fmt::Write as _;

use tabled::builder::Builder;
use tabled::settings::peaker::PriorityMax;
use tabled::settings::{Style, Width};

use super::model::{Report, Verdict};
use super::sections::{self, Section};
use super::text::escape_controls as safe;

/// Renders the report for a terminal. `color` adds ANSI colour to the verdict line only
/// (tables stay uncoloured so their column widths stay right).
pub fn render(report: &Report, color: bool) -> String {
    render_fitted(report, color, None)
}

/// [`render`], with every table fitted to `width` columns when given: the widest columns are
/// cut short with `…` (the full text stays in report.md and report.json).
pub fn render_fitted(report: &Report, color: bool, width: Option<usize>) -> String {
    let mut out = String::new();
    for (key, value) in sections::overview(report) {
        let _ = writeln!(out, "{key:<10} {}", safe(&value));
    }
    let verdict = report.verdict.as_str().to_uppercase();
    let verdict = if color {
        format!("{}{verdict}{}", ansi_color(report.verdict), ANSI_RESET)
    } else {
        verdict
    };
    let _ = writeln!(
        out,
        "{:<10} {verdict} - {}",
        "Verdict",
        safe(&report.verdict_reason)
    );
    for section in sections::all(report) {
        let _ = write!(out, "\n{}\n{}\n", section.title, grid(&section, width));
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "\nwarning: {}", safe(warning));
    }
    out
}

fn grid(section: &Section, width: Option<usize>) -> String {
    let mut builder = Builder::default();
    builder.push_record(section.header.iter().copied());
    for row in &section.rows {
        // Escaped before the table measures its columns, so widths count what is shown.
        builder.push_record(row.iter().map(|cell| safe(cell)));
    }
    let mut table = builder.build();
    table.with(Style::rounded());
    if let Some(width) = width {
        table.with(
            Width::truncate(width)
                .suffix("…")
                .priority(PriorityMax::right()),
        );
    }
    table.to_string()
}

const ANSI_RESET: &str = "\x1b[0m";

fn ansi_color(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "\x1b[1;32m",
        Verdict::Fail | Verdict::Aborted => "\x1b[1;31m",
        Verdict::Inconclusive | Verdict::Interrupted => "\x1b[1;33m",
    }
}
