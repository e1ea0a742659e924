//! Terminal rendering: an overview, then one box-drawn table per section.

use std::fmt::Write as _;

use tabled::builder::Builder;
use tabled::settings::Style;

use super::model::{Report, Verdict};
use super::sections::{self, Section};

/// Renders the report for a terminal. `color` adds ANSI colour to the verdict line only
/// (tables stay uncoloured so their column widths stay right).
pub fn render(report: &Report, color: bool) -> String {
    let mut out = String::new();
    for (key, value) in sections::overview(report) {
        let _ = writeln!(out, "{key:<10} {value}");
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
        "Verdict", report.verdict_reason
    );
    for section in sections::all(report) {
        let _ = write!(out, "\n{}\n{}\n", section.title, grid(&section));
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "\nwarning: {warning}");
    }
    out
}

fn grid(section: &Section) -> String {
    let mut builder = Builder::default();
    builder.push_record(section.header.iter().copied());
    for row in &section.rows {
        builder.push_record(row.iter().map(String::as_str));
    }
    builder.build().with(Style::rounded()).to_string()
}

const ANSI_RESET: &str = "\x1b[0m";

fn ansi_color(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "\x1b[1;32m",
        Verdict::Fail | Verdict::Aborted => "\x1b[1;31m",
        Verdict::Inconclusive | Verdict::Interrupted => "\x1b[1;33m",
    }
}
