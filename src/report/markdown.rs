//! Markdown rendering for runbooks and pull requests: GitHub tables, plain words, no emoji.

use std::fmt::Write as _;

use super::model::Report;
use super::sections::{self, Section};

/// Renders the report as a Markdown document.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Drill `{}`: {}\n",
        report.scenario.name.replace(['`', '\r', '\n'], ""),
        report.verdict
    );
    let _ = writeln!(
        out,
        "**Verdict: {}** - {}\n",
        report.verdict,
        inline(&report.verdict_reason)
    );
    if !report.scenario.description.is_empty() {
        let _ = writeln!(out, "{}\n", inline(&report.scenario.description));
    }
    for (key, value) in sections::overview(report) {
        let _ = writeln!(out, "- **{key}:** {}", inline(&value));
    }
    for section in sections::all(report) {
        let _ = write!(out, "\n## {}\n\n{}", section.title, table(&section));
    }
    if !report.warnings.is_empty() {
        out.push_str("\n## Warnings\n\n");
        for warning in &report.warnings {
            let _ = writeln!(out, "- {}", inline(warning));
        }
    }
    out
}

fn table(section: &Section) -> String {
    let mut out = String::new();
    push_row(&mut out, section.header.iter().copied());
    push_row(&mut out, section.header.iter().map(|_| "---"));
    for row in &section.rows {
        push_row(&mut out, row.iter().map(String::as_str));
    }
    out
}

fn push_row<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>) {
    out.push('|');
    for cell in cells {
        let _ = write!(out, " {} |", cell_text(cell));
    }
    out.push('\n');
}

/// Text safe inside a table cell: one line, pipes escaped.
pub(crate) fn cell_text(text: &str) -> String {
    inline(text).replace('|', "\\|")
}

/// Text safe on one Markdown line; `<` is escaped so `<pod>` is not taken for an HTML tag, and
/// control characters are shown as escapes (a terminal `cat`s this file too).
fn inline(text: &str) -> String {
    super::text::escape_controls(text)
        .split(['\r', '\n'])
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .replace('<', "\\<")
}
