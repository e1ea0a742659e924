//! The report model and its renderers: terminal table, Markdown, JUnit XML, SVG timeline and a
//! changelog paragraph and a self-contained HTML page, plus writing a run's report directory.

pub mod changelog;
pub mod ci;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod model;
pub(crate) mod sections;
pub mod svg;
pub mod table;
pub mod text;
mod write;

use std::path::{Path, PathBuf};

pub use model::*;
/// How every report writes a latency (the browser test compares the page with it).
pub use sections::millis;
pub use svg::SvgError;
pub use write::{path_safe, run_dir_name, write_all, write_file};

/// What can go wrong reading, rendering or writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The report file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The report file is not a valid report.
    #[error("{} is not a drillbook report", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The report was written by a newer drillbook.
    #[error(
        "{} has report schema_version {found}; this drillbook reads up to {SCHEMA_VERSION}",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Its `schema_version`.
        found: u64,
    },
    /// A file of the report directory could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The report could not be serialized (a non-string map key or similar bug).
    #[error("cannot serialize the report")]
    Serialize(#[source] serde_json::Error),
    /// The SVG timeline could not be drawn.
    #[error(transparent)]
    Svg(#[from] SvgError),
}

/// Output formats of `drillbook report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Terminal tables.
    Table,
    /// Markdown for runbooks and pull requests.
    Md,
    /// JUnit XML for CI.
    Junit,
    /// SVG timeline.
    Svg,
    /// A paragraph for a CHANGELOG or post-rollout note.
    Changelog,
    /// The report itself, pretty-printed.
    Json,
    /// One self-contained HTML page (charts, tables), as `report.html`.
    Html,
}

/// Renders `report` in `format`. `color` only affects [`Format::Table`].
pub fn render(report: &Report, format: Format, color: bool) -> Result<String, ReportError> {
    Ok(match format {
        Format::Table => table::render(report, color),
        Format::Md => markdown::render(report),
        Format::Junit => junit::render(report),
        Format::Svg => svg::render(report)?,
        Format::Changelog => changelog::render(report),
        Format::Json => to_json(report)?,
        Format::Html => html::render(report, html::RunFiles::Alone),
    })
}

/// The report as pretty JSON with a final newline (the `report.json` format).
pub fn to_json(report: &Report) -> Result<String, ReportError> {
    let mut text = serde_json::to_string_pretty(report).map_err(ReportError::Serialize)?;
    text.push('\n');
    Ok(text)
}

/// Reads a `report.json`, refusing reports from a newer schema version with a clear message
/// instead of a confusing missing-field error.
pub fn load(path: &Path) -> Result<Report, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parse_error = |source| ReportError::Parse {
        path: path.to_owned(),
        source,
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(parse_error)?;
    if let Some(found) = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
        && found > u64::from(SCHEMA_VERSION)
    {
        return Err(ReportError::UnsupportedVersion {
            path: path.to_owned(),
            found,
        });
    }
    serde_json::from_value(value).map_err(parse_error)
}

/// The JSON Schema of `report.json`, as committed in `report.schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Report);
    // Serializing a `serde_json::Value`-backed schema cannot fail.
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
