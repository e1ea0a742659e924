//! The history index: `history.ndjson` beside the report folders. One header line, then one
//! `RunRecord` per line, only ever appended.
//!
//! - Concurrent writers (two `run`s finishing together, `collect` beside a `run`) take an
//!   exclusive `flock` on the file and append whole lines with one `write`, then `fsync`.
//! - A crash mid-write leaves at most one torn last line: readers skip it, and the next writer
//!   closes it with a newline before appending, so it never glues onto a good record.
//! - The index is a cache of the reports: a report folder it does not list (written by an
//!   older drillbook, copied in by hand, a line lost to a crash) is read once and appended;
//!   a damaged or foreign `report.json` is named and skipped, the rest still read.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::HistoryError;
use super::record::RunRecord;
use crate::report::model::{Report, SCHEMA_VERSION};

/// The index's file name inside the reports folder.
pub const INDEX_FILE: &str = "history.ndjson";
/// Format of the index written by this build.
pub const INDEX_FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    drillbook_history: u32,
    #[serde(default)]
    written_by: String,
}

/// A report folder that could not be read into the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Skipped {
    pub path: PathBuf,
    pub why: String,
}

/// Every run found under one reports folder, oldest first.
#[derive(Debug)]
pub struct History {
    pub dir: PathBuf,
    pub records: Vec<RunRecord>,
    /// Report folders that could not be read (damaged, foreign, newer), named.
    pub skipped: Vec<Skipped>,
    /// Index lines that did not parse (a torn last line after a crash counts here too).
    pub damaged_lines: usize,
    /// Reports read from their folders and appended to the index by this load.
    pub indexed_now: usize,
    /// Why those could not be appended (the history is still complete, just slower next time).
    pub index_not_written: Option<HistoryError>,
}

/// Appends the run whose report was written to `run_dir` to the index of `report_parent`.
pub fn record_run(
    report_parent: &Path,
    report: &Report,
    run_dir: &Path,
) -> Result<(), HistoryError> {
    let name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    append(
        &report_parent.join(INDEX_FILE),
        &[RunRecord::from_report(report, &name)],
    )
}

/// Appends `records` to the index at `path` (created with its header when missing).
pub fn append(path: &Path, records: &[RunRecord]) -> Result<(), HistoryError> {
    let io = HistoryError::io(path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(HistoryError::io(parent))?;
    }
    let mut out = Vec::new();
    for record in records {
        serde_json::to_writer(&mut out, record)?;
        out.push(b'\n');
    }
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(HistoryError::io(path))?;
    // Released when `file` is dropped; a writer that died holding it released it too.
    file.lock().map_err(HistoryError::io(path))?;
    let prefix = prefix_for(&file, path)?;
    let mut line = prefix;
    line.extend_from_slice(&out);
    file.write_all(&line).map_err(HistoryError::io(path))?;
    file.sync_data().map_err(io)
}

/// What must precede new records in the locked file: the header in an empty (or torn-header)
/// file, a newline after a torn last line, else nothing.
fn prefix_for(file: &File, path: &Path) -> Result<Vec<u8>, HistoryError> {
    let len = file.metadata().map_err(HistoryError::io(path))?.len();
    let header = || -> Result<Vec<u8>, HistoryError> {
        let mut line = serde_json::to_vec(&Header {
            drillbook_history: INDEX_FORMAT,
            written_by: env!("CARGO_PKG_VERSION").to_string(),
        })?;
        line.push(b'\n');
        Ok(line)
    };
    if len == 0 {
        return header();
    }
    let mut head = vec![0u8; len.min(4096) as usize];
    file.read_exact_at(&mut head, 0)
        .map_err(HistoryError::io(path))?;
    match head.iter().position(|b| *b == b'\n') {
        Some(end) => check_header(&head[..end], path)?,
        // A header torn by a crash (no record can follow it): start the file again.
        None if len < 4096 => {
            file.set_len(0).map_err(HistoryError::io(path))?;
            return header();
        }
        None => {
            return Err(HistoryError::NotAnIndex {
                path: path.to_owned(),
            });
        }
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)
        .map_err(HistoryError::io(path))?;
    Ok(if last[0] == b'\n' {
        Vec::new()
    } else {
        vec![b'\n']
    })
}

fn check_header(line: &[u8], path: &Path) -> Result<(), HistoryError> {
    let header: Header = serde_json::from_slice(line).map_err(|_| HistoryError::NotAnIndex {
        path: path.to_owned(),
    })?;
    if header.drillbook_history > INDEX_FORMAT {
        return Err(HistoryError::NewerIndex {
            path: path.to_owned(),
            found: header.drillbook_history,
            supported: INDEX_FORMAT,
        });
    }
    Ok(())
}

/// The records of the index at `path` (none when it does not exist) and how many lines did
/// not parse.
pub fn read_index(path: &Path) -> Result<(Vec<RunRecord>, usize), HistoryError> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => {
            return Err(HistoryError::Io {
                path: path.to_owned(),
                source: e,
            });
        }
    };
    let mut lines = text.split(|b| *b == b'\n');
    let Some(first) = lines.next() else {
        return Ok((Vec::new(), 0));
    };
    // Only a header torn by a crash has no newline: an empty index.
    if !text.contains(&b'\n') {
        return Ok((Vec::new(), 0));
    }
    check_header(first, path)?;
    let mut records = Vec::new();
    let mut damaged = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<RunRecord>(line) {
            Ok(record) => records.push(record),
            Err(_) => damaged += 1,
        }
    }
    Ok((records, damaged))
}

/// Every run under `report_parent`: the index, plus the report folders it does not list yet
/// (which are appended to it). Records whose folder is gone are left out.
pub fn load(report_parent: &Path) -> Result<History, HistoryError> {
    let index_path = report_parent.join(INDEX_FILE);
    let (indexed, damaged_lines) = read_index(&index_path)?;
    let folders = run_folders(report_parent)?;
    let mut seen = HashSet::new();
    let mut records: Vec<RunRecord> = indexed
        .into_iter()
        .filter(|r| folders.contains(&r.dir) && seen.insert(r.dir.clone()))
        .collect();
    let mut new = Vec::new();
    let mut skipped = Vec::new();
    let mut unindexed: Vec<&String> = folders.iter().filter(|f| !seen.contains(*f)).collect();
    unindexed.sort();
    for name in unindexed {
        let path = report_parent.join(name).join("report.json");
        match read_report(&path) {
            Ok(Some(report)) => new.push(RunRecord::from_report(&report, name)),
            Ok(None) => {}
            Err(why) => skipped.push(Skipped { path, why }),
        }
    }
    let mut index_not_written = None;
    let mut indexed_now = 0;
    if !new.is_empty() {
        match append(&index_path, &new) {
            Ok(()) => indexed_now = new.len(),
            Err(e) => index_not_written = Some(e),
        }
    }
    records.extend(new);
    records.sort_by(|a, b| (a.started_at, &a.run_id).cmp(&(b.started_at, &b.run_id)));
    Ok(History {
        dir: report_parent.to_owned(),
        records,
        skipped,
        damaged_lines,
        indexed_now,
        index_not_written,
    })
}

/// Names of the sub-folders of `parent` (none when it does not exist).
fn run_folders(parent: &Path) -> Result<HashSet<String>, HistoryError> {
    let entries = match fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => {
            return Err(HistoryError::Io {
                path: parent.to_owned(),
                source: e,
            });
        }
    };
    let mut names = HashSet::new();
    for entry in entries {
        let entry = entry.map_err(HistoryError::io(parent))?;
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Ok(name) = entry.file_name().into_string()
        {
            names.insert(name);
        }
    }
    Ok(names)
}

#[derive(Deserialize)]
struct Probe {
    schema_version: Option<u32>,
}

/// The report at `path`; `None` when the folder has none (not a run's folder); the reason
/// when it is damaged, foreign or newer.
fn read_report(path: &Path) -> Result<Option<Report>, String> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let probe: Probe =
        serde_json::from_slice(&bytes).map_err(|e| format!("not valid JSON ({e})"))?;
    match probe.schema_version {
        None => return Err("not a drillbook report (no `schema_version`)".into()),
        Some(v) if v > SCHEMA_VERSION => {
            return Err(format!(
                "written by a newer drillbook (report format {v}; this build reads {SCHEMA_VERSION})"
            ));
        }
        Some(_) => {}
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("not a drillbook report ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::record::fixtures::run;
    use crate::report::model::Verdict;

    #[test]
    fn concurrent_writers_lose_nothing_and_lines_never_interleave() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(INDEX_FILE);
        std::thread::scope(|scope| {
            for writer in 0..8 {
                let path = &path;
                scope.spawn(move || {
                    for n in 0..25 {
                        let record = run(&format!("w{writer}-{n}"), n, Verdict::Pass, "drill", 1.0);
                        append(path, &[record]).expect("append");
                    }
                });
            }
        });
        let (records, damaged) = read_index(&path).expect("read");
        assert_eq!((records.len(), damaged), (200, 0));
        let text = fs::read_to_string(&path).expect("text");
        assert_eq!(text.matches("drillbook_history").count(), 1, "one header");
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_closed_by_the_next_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(INDEX_FILE);
        append(&path, &[run("a", 1, Verdict::Pass, "drill", 1.0)]).expect("append");
        // A crash mid-write: half a record, no newline.
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(br#"{"run_id":"torn","scen"#).expect("tear");
        drop(file);
        let (records, damaged) = read_index(&path).expect("read");
        assert_eq!((records.len(), damaged), (1, 1));
        append(&path, &[run("b", 2, Verdict::Pass, "drill", 1.0)]).expect("append");
        let (records, damaged) = read_index(&path).expect("read");
        let ids: Vec<&str> = records.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!((ids, damaged), (vec!["a", "b"], 1));
        // A header torn before its newline is an empty index, started again.
        fs::write(&path, br#"{"drillbook_hist"#).expect("torn header");
        assert_eq!(read_index(&path).expect("read").0.len(), 0);
        append(&path, &[run("c", 3, Verdict::Pass, "drill", 1.0)]).expect("append");
        assert_eq!(
            read_index(&path).expect("read"),
            (vec![run("c", 3, Verdict::Pass, "drill", 1.0)], 0)
        );
    }

    #[test]
    fn an_index_from_a_newer_drillbook_or_another_tool_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(INDEX_FILE);
        fs::write(&path, "{\"drillbook_history\":7}\n").expect("write");
        let e = read_index(&path).unwrap_err();
        assert!(
            matches!(e, HistoryError::NewerIndex { found: 7, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("newer drillbook"), "{e}");
        let e = append(&path, &[run("a", 1, Verdict::Pass, "drill", 1.0)]).unwrap_err();
        assert!(matches!(e, HistoryError::NewerIndex { .. }), "{e}");
        fs::write(&path, "name,verdict\nx,pass\n").expect("write");
        assert!(matches!(
            read_index(&path),
            Err(HistoryError::NotAnIndex { .. })
        ));
    }
}
