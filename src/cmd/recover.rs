//! `drillbook recover`: lists what crashed runs left in their undo journals and puts it back.

use super::args::RecoverArgs;
use crate::engine::journal;
use crate::engine::recover::apply_journal;
use crate::exit::Outcome;
use crate::targets::UndoAction as _;

pub async fn recover(args: &RecoverArgs) -> anyhow::Result<Outcome> {
    let dir = args.state_dir.clone().unwrap_or_else(journal::state_dir);
    let journals = journal::list_each(&dir)?;
    if journals.is_empty() {
        println!("nothing to recover: no undo journal in {}", dir.display());
        return Ok(Outcome::Pass);
    }
    let (mut failed, mut damaged, mut other_targets) = (0usize, 0usize, 0usize);
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
        if !args.selects(&doc.target) {
            other_targets += 1;
            continue;
        }
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
        if args.dry_run {
            continue;
        }
        let pending = doc.pending.len();
        let recovered = match apply_journal(path, doc, args.kubeconfig.clone()).await {
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
    if other_targets > 0 {
        println!(
            "{other_targets} journal(s) of other contexts or namespaces left alone \
             (--context/--namespace)"
        );
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

impl RecoverArgs {
    /// Whether `--context`/`--namespace` (when given) pick this journal's target.
    fn selects(&self, target: &journal::JournalTarget) -> bool {
        self.context.as_ref().is_none_or(|c| *c == target.context)
            && self
                .namespace
                .as_ref()
                .is_none_or(|n| *n == target.namespace)
    }
}
