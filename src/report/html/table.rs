//! Tables for HTML pages: a header and rows of cells, each cell text (escaped here) with an
//! optional class, link or code styling.

use std::fmt::Write as _;

use super::escape;
use crate::report::sections::Section;

/// One table cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cell {
    /// Shown as is (escaped).
    pub text: String,
    /// CSS class of the cell (`verdict-fail`, `num`).
    pub class: Option<&'static str>,
    /// Further fragments after the text, each a link to an anchor of the page: `(label, id)`.
    pub links: Vec<(String, String)>,
    /// Monospaced (expressions, commands).
    pub code: bool,
}

impl Cell {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    pub fn class(mut self, class: &'static str) -> Self {
        self.class = Some(class);
        self
    }

    pub fn code(mut self) -> Self {
        self.code = true;
        self
    }

    pub fn link(mut self, label: impl Into<String>, id: impl Into<String>) -> Self {
        self.links.push((label.into(), id.into()));
        self
    }
}

/// A table with an id (its anchor) and optional row ids and row classes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub id: String,
    pub header: Vec<String>,
    pub rows: Vec<Row>,
}

/// One row: its cells, and optionally an anchor and a class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub cells: Vec<Cell>,
    pub id: Option<String>,
    pub class: Option<&'static str>,
}

impl From<Vec<Cell>> for Row {
    fn from(cells: Vec<Cell>) -> Self {
        Self {
            cells,
            ..Self::default()
        }
    }
}

impl Table {
    pub fn new(id: impl Into<String>, header: &[&str]) -> Self {
        Self {
            id: id.into(),
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// The shared plain-text section (the same rows as the terminal and Markdown reports).
    pub(crate) fn from_section(id: impl Into<String>, section: &Section) -> Self {
        let mut table = Self::new(id, &section.header);
        table.rows = section
            .rows
            .iter()
            .map(|r| r.iter().map(Cell::text).collect::<Vec<_>>().into())
            .collect();
        table
    }

    pub fn push(&mut self, row: impl Into<Row>) {
        self.rows.push(row.into());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<div class=\"scroll\"><table id=\"{}\"><thead><tr>",
            escape(&self.id)
        );
        for h in &self.header {
            let _ = write!(out, "<th scope=\"col\">{}</th>", escape(h));
        }
        out.push_str("</tr></thead><tbody>");
        for row in &self.rows {
            out.push_str("<tr");
            if let Some(id) = &row.id {
                let _ = write!(out, " id=\"{}\"", escape(id));
            }
            if let Some(class) = row.class {
                let _ = write!(out, " class=\"{class}\"");
            }
            out.push('>');
            for cell in &row.cells {
                render_cell(&mut out, cell);
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>\n");
        out
    }
}

fn render_cell(out: &mut String, cell: &Cell) {
    match cell.class {
        Some(class) => {
            let _ = write!(out, "<td class=\"{class}\">");
        }
        None => out.push_str("<td>"),
    }
    if cell.code {
        let _ = write!(out, "<code>{}</code>", escape(&cell.text));
    } else {
        out.push_str(&escape(&cell.text));
    }
    for (label, id) in &cell.links {
        let _ = write!(
            out,
            " <a class=\"evidence\" href=\"#{}\">{}</a>",
            escape(id),
            escape(label)
        );
    }
    out.push_str("</td>");
}
