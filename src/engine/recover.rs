//! `drillbook recover`: applies the undos a crashed or SIGKILLed run left in its journal.

use std::path::PathBuf;

use super::journal::{self, Journal};
use super::undo::UndoStack;
use crate::exit::Outcome;
use crate::scenario::{KubernetesTarget, Sp};
use crate::targets::kube::KubeTarget;

/// `drillbook recover`.
pub async fn recover_cli(state_dir: Option<PathBuf>, dry_run: bool) -> anyhow::Result<Outcome> {
    let dir = state_dir.unwrap_or_else(journal::state_dir);
    let journals = journal::list(&dir)?;
    if journals.is_empty() {
        println!("nothing to recover: no undo journal in {}", dir.display());
        return Ok(Outcome::Pass);
    }
    let mut failed = 0usize;
    for (path, doc) in journals {
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
        let spec = KubernetesTarget {
            context: Sp::unplaced(doc.target.context.clone()),
            namespace: Sp::unplaced(doc.target.namespace.clone()),
            allowed_contexts: vec![Sp::unplaced(doc.target.context.clone())],
            allowed_namespaces: vec![Sp::unplaced(doc.target.namespace.clone())],
            kubeconfig: doc.target.kubeconfig.clone(),
            max_pods: 1,
        };
        // The run that wrote the journal passed the safety rules (a production context needed
        // --allow-production then); putting its changes back must not be refused now.
        let target = match KubeTarget::connect(&spec, None, true).await {
            Ok(t) => t,
            Err(e) => {
                println!("  cannot connect: {e}; the journal is kept");
                failed += doc.pending.len();
                continue;
            }
        };
        let stack = UndoStack::journaled(Journal { path, doc });
        let outcomes = stack
            .unwind(super::drill::UNDO_TIMEOUT, |u| {
                super::kube::apply_undo(&target, u)
            })
            .await;
        for o in &outcomes {
            match &o.result {
                Ok(()) => println!("  undone: {}", o.description),
                Err(e) => println!("  FAILED: {}: {e} (kept in the journal)", o.description),
            }
        }
        failed += stack.failed().len();
    }
    if failed > 0 {
        println!("{failed} undo(s) failed; fix the cause and run `drillbook recover` again");
        return Ok(Outcome::Fail);
    }
    Ok(Outcome::Pass)
}
