//! `drillbook recover`: lists what crashed runs left in their undo journals and puts it back.

use std::path::PathBuf;

use crate::engine::journal;
use crate::engine::recover::apply_journal;
use crate::exit::Outcome;
use crate::targets::UndoAction as _;

pub async fn recover(state_dir: Option<PathBuf>, dry_run: bool) -> anyhow::Result<Outcome> {
    let dir = state_dir.unwrap_or_else(journal::state_dir);
    let journals = journal::list_each(&dir)?;
    if journals.is_empty() {
        println!("nothing to recover: no undo journal in {}", dir.display());
        return Ok(Outcome::Pass);
    }
    let (mut failed, mut damaged) = (0usize, 0usize);
    for (path, doc) in journals {
        // A damaged journal is named and left in place for a person; the others still run.
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) => {
                println!("{e}; left in place, the other journals are still handled");
                damaged += 1;
                continue;
            }
        };
        println!(
            "run {} of `{}` (started {}), context `{}`, namespace `{}`: {} undo(s) pending",
            doc.run_id,
            doc.scenario,
            doc.started_at,
            doc.target.context,
            doc.target.namespace,
            doc.pending.len()
        );
        if journal::writer_alive(&doc) {
            println!(
                "  skipped: drillbook (pid {}) is still running that drill and will undo it itself",
                doc.pid
            );
            continue;
        }
        for r in doc.pending.iter().rev() {
            println!("  - {} (step `{}`)", r.undo.describe(), r.step);
        }
        if dry_run {
            continue;
        }
        let pending = doc.pending.len();
        let recovered = match apply_journal(path, doc).await {
            Ok(r) => r,
            Err(e) => {
                println!("  cannot connect: {e}; the journal is kept");
                failed += pending;
                continue;
            }
        };
        for o in &recovered.outcomes {
            match &o.result {
                Ok(()) => println!("  undone: {}", o.description),
                Err(e) => println!("  FAILED: {}: {e} (kept in the journal)", o.description),
            }
        }
        failed += recovered.failed;
    }
    if damaged > 0 {
        println!(
            "{damaged} journal(s) could not be read; repair or remove them, then run \
             `drillbook recover` again"
        );
    }
    if failed > 0 {
        println!("{failed} undo(s) failed; fix the cause and run `drillbook recover` again");
    }
    Ok(if failed > 0 || damaged > 0 {
        Outcome::Fail
    } else {
        Outcome::Pass
    })
}
