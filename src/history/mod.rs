//! Drill history: the runs of every scenario across time, made of the `report.json` files
//! drillbook already writes (by `run`, and by `collect` for in-cluster runs).
//! - `record`: one run as the history keeps it (a few hundred bytes of a report);
//! - `index`: the append-only index file beside the report folders, and its reconciliation
//!   with the folders (a report the index lacks is read once and appended);
//! - `view`: what `drillbook history` shows (`HistoryView`, serialisable, rendered as a
//!   table, Markdown or JSON by `render`, as an SVG trend by `trend`);
//! - `baseline` and `regression`: the earlier runs a run is compared with, and the limits;
//! - `pushgateway`: a run's results as Prometheus metrics, pushed to a Pushgateway.

pub mod baseline;
pub mod index;
pub mod page;
pub mod pushgateway;
pub mod record;
pub mod regression;
pub mod render;
pub mod trend;
pub mod view;

use std::path::PathBuf;

pub use baseline::{Baseline, BaselineQuery};
pub use index::{History, INDEX_FILE, Skipped, load, record_run};
pub use record::{Measured, PhaseMetrics, RunRecord};
pub use view::{Filter, HistoryView};

/// `sha256:<hex>` of a scenario's text: two runs with the same hash ran the same file.
pub fn content_hash(source: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, source.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Why the history could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} was written by a newer drillbook (history index format {found}; this build \
         reads up to {supported}): upgrade drillbook, or move the file away to rebuild it from \
         the reports"
    )]
    NewerIndex {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path} is not a drillbook history index (its first line is not the index header)")]
    NotAnIndex { path: PathBuf },
    #[error("encoding a history record: {0}")]
    Encode(#[from] serde_json::Error),
}

impl HistoryError {
    fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| HistoryError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_content_hash_is_sha256_of_the_text() {
        // `printf abc | sha256sum`
        assert_eq!(
            super::content_hash("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
