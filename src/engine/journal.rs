//! The undo journal: pending undos of a Kubernetes drill, on disk, so that `drillbook recover`
//! can put things back after drillbook itself was SIGKILLed or its machine died.
//!
//! One JSON file per target (context + namespace) under `$DRILLBOOK_STATE_DIR` (default
//! `$XDG_STATE_HOME/drillbook` or `~/.local/state/drillbook`). It is rewritten atomically and
//! fsync'd *before* every mutation (when an undo is registered) and after every undo that ran;
//! a run that unwound completely deletes it. Local targets are not journaled: their processes
//! die with drillbook (PR_SET_PDEATHSIG), so nothing is left to put back.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::targets::kube::KubeUndo;

pub const JOURNAL_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the undo journal {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the undo journal {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the undo journal {path} is damaged: {message}")]
    Damaged { path: PathBuf, message: String },
}

/// Where the target lives, enough to reconnect without the scenario file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalTarget {
    pub context: String,
    pub namespace: String,
    pub kubeconfig: Option<String>,
}

/// An undo and the step that registered it: the record the undo stack holds and the journal
/// stores (defined here, below the stack, so the journal does not know the stack).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registered<U> {
    pub step: String,
    pub undo: U,
}

/// One run's journal. Only Kubernetes runs are journaled (see above), hence the default.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalDoc<U = KubeUndo> {
    pub version: u32,
    pub run_id: String,
    pub scenario: String,
    pub started_at: jiff::Timestamp,
    /// drillbook's pid, to tell a crashed run from one still going.
    pub pid: u32,
    pub target: JournalTarget,
    /// Registered undos, oldest first; they are applied newest first.
    pub pending: Vec<Registered<U>>,
}

/// The directory journals live in.
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DRILLBOOK_STATE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("drillbook");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/state/drillbook")
}

/// The journal file of one run against a target. One file per run, so a `--force`d run never
/// overwrites the undos an earlier crashed run left behind.
pub fn path_for(dir: &Path, target: &JournalTarget, run_id: &str) -> PathBuf {
    let clean = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    dir.join(format!(
        "{}__{}__{}.journal.json",
        clean(&target.context),
        clean(&target.namespace),
        clean(run_id)
    ))
}

/// A journal file and what reading it gave.
pub type Listed = (PathBuf, Result<JournalDoc, JournalError>);

/// Every journal in `dir`, with its path; the first unreadable one is an error (see
/// [`list_each`] to handle each on its own).
pub fn list(dir: &Path) -> Result<Vec<(PathBuf, JournalDoc)>, JournalError> {
    list_each(dir)?
        .into_iter()
        .map(|(path, doc)| doc.map(|doc| (path, doc)))
        .collect()
}

/// Every journal in `dir`, with its path, each read on its own: one damaged file must not hide
/// the journals beside it from `recover`.
pub fn list_each(dir: &Path) -> Result<Vec<Listed>, JournalError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(JournalError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.to_string_lossy().ends_with(".journal.json") {
            let doc = read(&path);
            found.push((path, doc));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

pub fn read(path: &Path) -> Result<JournalDoc, JournalError> {
    let text = std::fs::read_to_string(path).map_err(|source| JournalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let doc: JournalDoc = serde_json::from_str(&text).map_err(|e| JournalError::Damaged {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if doc.version != JOURNAL_VERSION {
        return Err(JournalError::Damaged {
            path: path.to_path_buf(),
            message: format!("version {} is not {JOURNAL_VERSION}", doc.version),
        });
    }
    Ok(doc)
}

/// Writes `doc` to `path` atomically and durably: temp file, fsync, rename, fsync the directory.
pub fn write<U: Serialize>(path: &Path, doc: &JournalDoc<U>) -> Result<(), JournalError> {
    let err = |source| JournalError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let text = serde_json::to_string_pretty(doc).map_err(|e| err(std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&tmp).map_err(err)?;
        file.write_all(text.as_bytes()).map_err(err)?;
        file.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}

/// Removes a journal whose undos have all run.
pub fn remove(path: &Path) -> Result<(), JournalError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(JournalError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Whether the process that wrote a journal is still running (then it is not abandoned).
pub fn writer_alive<U>(doc: &JournalDoc<U>) -> bool {
    let Ok(pid) = i32::try_from(doc.pid) else {
        return false;
    };
    if doc.pid == std::process::id() {
        return false;
    }
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    // A recycled pid belongs to some other program; only a drillbook counts.
    alive
        && std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.contains("drillbook"))
}

/// A journal being kept for the current run.
#[derive(Debug)]
pub struct Journal<U = KubeUndo> {
    pub path: PathBuf,
    pub doc: JournalDoc<U>,
}

impl<U: Serialize + Clone> Journal<U> {
    /// Persists the current pending undos (called with the stack's lock held).
    pub fn sync(&mut self, pending: &[Registered<U>]) -> Result<(), JournalError> {
        self.doc.pending = pending.to_vec();
        if self.doc.pending.is_empty() {
            remove(&self.path)
        } else {
            write(&self.path, &self.doc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journals_round_trip_and_disappear_when_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = JournalTarget {
            context: "staging".into(),
            namespace: "tracebloc".into(),
            kubeconfig: None,
        };
        let path = path_for(dir.path(), &target, "ab12cd34");
        let mut journal = Journal {
            path,
            doc: JournalDoc {
                version: JOURNAL_VERSION,
                run_id: "ab12cd34".into(),
                scenario: "s".into(),
                started_at: jiff::Timestamp::UNIX_EPOCH,
                pid: std::process::id(),
                target,
                pending: Vec::new(),
            },
        };
        let registered = Registered {
            step: "scale-up".into(),
            undo: KubeUndo::Scale {
                deployment: "proxy".into(),
                replicas: 2,
            },
        };
        journal
            .sync(std::slice::from_ref(&registered))
            .expect("write");
        let listed = list(dir.path()).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1.pending[0].undo, registered.undo);
        assert!(
            !writer_alive(&listed[0].1),
            "our own pid is not a foreign writer"
        );
        journal.sync(&[]).expect("remove");
        assert!(list(dir.path()).expect("list").is_empty());
    }
}
