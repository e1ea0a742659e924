//! The revoke list: a file with one revoked job id per line (the ticket's "revoke ConfigMap"),
//! re-read whenever it changes so a revocation takes effect without restarting the proxy.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

/// What identifies one version of the file; a change of any part triggers a re-read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// Revoked job ids, kept in sync with an optional file.
#[derive(Debug)]
pub struct RevokeList {
    path: Option<PathBuf>,
    jobs: RwLock<HashSet<String>>,
    /// `None` when the file is absent (or was never read).
    stamp: Mutex<Option<FileStamp>>,
}

impl RevokeList {
    /// A list backed by `path`; without a path nothing is ever revoked.
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            jobs: RwLock::new(HashSet::new()),
            stamp: Mutex::new(None),
        }
    }

    /// Whether `job_id` is revoked.
    pub fn contains(&self, job_id: &str) -> bool {
        self.jobs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(job_id)
    }

    /// Number of revoked job ids (the ticket watches the ConfigMap's size).
    pub fn len(&self) -> usize {
        self.jobs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads the file if it changed since the last call. A missing file means an empty list
    /// (a deleted ConfigMap revokes nothing); an unreadable one keeps the previous list.
    pub fn refresh(&self) {
        let Some(path) = &self.path else { return };
        let stamp = match std::fs::metadata(path) {
            Ok(metadata) => Some(stamp_of(&metadata)),
            Err(error) if error.kind() == ErrorKind::NotFound => None,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot stat the revoke file; keeping the previous list");
                return;
            }
        };
        let mut last = self.stamp.lock().unwrap_or_else(PoisonError::into_inner);
        if *last == stamp {
            return;
        }
        let jobs = match stamp {
            None => HashSet::new(),
            Some(_) => match std::fs::read_to_string(path) {
                Ok(text) => parse(&text),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot read the revoke file; keeping the previous list");
                    return;
                }
            },
        };
        tracing::info!(path = %path.display(), revoked = jobs.len(), "revoke list loaded");
        *self.jobs.write().unwrap_or_else(PoisonError::into_inner) = jobs;
        *last = stamp;
    }

    /// Calls [`RevokeList::refresh`] every `period`, forever (spawn it).
    pub async fn watch(self: Arc<Self>, period: Duration) {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let list = Arc::clone(&self);
            // File I/O is blocking; keep it off the request-serving threads.
            if let Err(error) = tokio::task::spawn_blocking(move || list.refresh()).await {
                tracing::warn!(%error, "revoke list refresh failed");
            }
        }
    }
}

fn stamp_of(metadata: &std::fs::Metadata) -> FileStamp {
    use std::os::unix::fs::MetadataExt as _;
    FileStamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        inode: metadata.ino(),
    }
}

/// One job id per line; blank lines and `#` comments are ignored.
fn parse(text: &str) -> HashSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_skips_blanks_and_comments() {
        let jobs = parse("# revoked\njob-1\n\n  job-2  \n#job-3\n");
        assert_eq!(jobs.len(), 2);
        assert!(jobs.contains("job-1") && jobs.contains("job-2"));
    }

    #[test]
    fn refresh_follows_file_changes_and_deletion() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("revoked");
        let list = RevokeList::new(Some(path.clone()));
        list.refresh();
        assert!(list.is_empty());
        std::fs::write(&path, "job-1\n").expect("write revoke file");
        list.refresh();
        assert!(list.contains("job-1"));
        std::fs::write(&path, "job-1\njob-22\n").expect("rewrite revoke file");
        list.refresh();
        assert!(list.contains("job-22"));
        assert_eq!(list.len(), 2);
        std::fs::remove_file(&path).expect("remove revoke file");
        list.refresh();
        assert!(list.is_empty());
    }
}
