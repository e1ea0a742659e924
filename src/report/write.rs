//! Writing a run's report directory.

use std::path::{Path, PathBuf};

use super::model::Report;
use super::{ReportError, junit, markdown, svg};

/// Writes `report.json`, `report.md`, `junit.xml` and `timeline.svg` into `dir` (created when
/// missing) and returns the paths written, in that order.
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
    ];
    files
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| ReportError::Write {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        })
        .collect()
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
