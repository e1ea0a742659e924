//! `drillbook recover` through the real binary: a damaged journal is reported by name and
//! does not hide the valid journals beside it.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use crate::common::cli::{self, Ran};
use drillbook::engine::journal::{self, JOURNAL_VERSION, JournalDoc, JournalTarget};
use drillbook::engine::undo::Registered;
use drillbook::targets::kube::KubeUndo;

/// Writes the journal of a run that died with one undo pending (scale `proxy` back to 2).
fn write_orphaned_journal(dir: &std::path::Path, run_id: &str, context: &str, namespace: &str) {
    let target = JournalTarget {
        context: context.into(),
        namespace: namespace.into(),
        kubeconfig: None,
    };
    let doc = JournalDoc {
        version: JOURNAL_VERSION,
        run_id: run_id.into(),
        scenario: "proxy-restart".into(),
        started_at: jiff::Timestamp::UNIX_EPOCH,
        // A pid no process can have: the journal is orphaned.
        pid: u32::MAX,
        target: target.clone(),
        pending: vec![Registered {
            step: "scale-up".into(),
            undo: KubeUndo::Scale {
                deployment: "proxy".into(),
                replicas: 2,
            },
        }],
    };
    journal::write(&journal::path_for(dir, &target, run_id), &doc).unwrap();
}

#[test]
fn a_damaged_journal_is_reported_and_the_others_still_listed() {
    let dir = tempfile::tempdir().unwrap();
    write_orphaned_journal(dir.path(), "cafe0001", "staging", "tracebloc");
    std::fs::write(dir.path().join("aaa.journal.json"), "{ not json").unwrap();

    let out = cli::drillbook()
        .args(["recover", "--dry-run", "--state-dir"])
        .arg(dir.path())
        .output();
    let (stdout, stderr) = (out.stdout_str(), out.stderr_str());
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains("aaa.journal.json"),
        "the damaged file is named: {all}"
    );
    assert!(all.contains("damaged"), "{all}");
    assert!(
        stdout.contains("run cafe0001"),
        "the valid journal is listed: {all}"
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        dir.path().join("aaa.journal.json").exists(),
        "left for a person"
    );
}

/// `--context` and `-n` pick the journals of one target; the others are left alone and counted.
#[test]
fn context_and_namespace_pick_which_journals_are_recovered() {
    let dir = tempfile::tempdir().unwrap();
    for (run_id, context, namespace) in [
        ("cafe0001", "staging", "tracebloc"),
        ("cafe0002", "box", "tracebloc"),
        ("cafe0003", "staging", "shop"),
    ] {
        write_orphaned_journal(dir.path(), run_id, context, namespace);
    }
    let out = cli::drillbook()
        .args([
            "recover",
            "--dry-run",
            "--context",
            "staging",
            "-n",
            "tracebloc",
            "--state-dir",
        ])
        .arg(dir.path())
        .output();
    let stdout = out.stdout_str();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("run cafe0001"), "{stdout}");
    assert!(
        !stdout.contains("cafe0002") && !stdout.contains("cafe0003"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 journal(s) of other contexts or namespaces left alone"),
        "{stdout}"
    );
}
