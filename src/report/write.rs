//! Writing a run's report directory.

use std::path::{Path, PathBuf};

use super::model::Report;
use super::{ReportError, html, junit, markdown, svg};
use crate::support::fs::write_atomically;

/// Writes `report.json`, `report.md`, `junit.xml`, `timeline.svg` and `report.html` into `dir` (created when
/// missing) and returns the paths written, in that order. Each file is written atomically, so
/// a failure (a full disk, a file where the folder should be) leaves no truncated report.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let files = [
        ("report.json", super::to_json(report)?),
        ("report.md", markdown::render(report)),
        ("junit.xml", junit::render(report)),
        ("timeline.svg", svg::render(report)?),
        ("report.html", html::render(report, html::RunFiles::Beside)),
    ];
    files
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            write_atomically(&path, text.as_bytes()).map_err(|source| ReportError::Write {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        })
        .collect()
}

/// Writes the report in `format` to `path` atomically (for CI artefacts at a fixed path, such
/// as `--junit FILE`), creating its folder when missing.
pub fn write_file(report: &Report, format: super::Format, path: &Path) -> Result<(), ReportError> {
    let error = |source| ReportError::Write {
        path: path.to_owned(),
        source,
    };
    let text = super::render(report, format, false)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(error)?;
    write_atomically(path, text.as_bytes()).map_err(error)
}

/// `<YYYY-MM-DD>-<scenario>-<run_id>` (UTC date of the start). Characters other than letters,
/// digits, `-`, `_` and `.` become `-`, so a hand-edited report cannot escape the parent dir.
pub fn run_dir_name(report: &Report) -> String {
    format!(
        "{}-{}-{}",
        report.started_at.strftime("%Y-%m-%d"),
        path_safe(&report.scenario.name),
        path_safe(&report.run_id)
    )
}

fn path_safe(text: &str) -> String {
    let safe: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    // `..` alone would still name the parent directory.
    safe.replace("..", "--")
}
