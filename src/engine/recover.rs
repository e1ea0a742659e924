//! `drillbook recover`: applies the undos a crashed or SIGKILLed run left in its journal.

use std::path::PathBuf;

use super::journal::{Journal, JournalDoc};
use super::undo::{UndoOutcome, UndoStack};
use crate::targets::kube::{KubeError, KubeTarget, Pinned};

/// What putting one journal's undos back did.
#[derive(Debug)]
pub struct Recovered {
    pub outcomes: Vec<UndoOutcome>,
    /// Undos that failed and stay in the journal.
    pub failed: usize,
}

/// Reconnects to the journal's target and applies its pending undos, newest first. An undo
/// that fails stays in the journal; the file goes when all have run. `kubeconfig` replaces the
/// file the run used (the same cluster reached from another shell or machine).
pub async fn apply_journal(
    path: PathBuf,
    doc: JournalDoc,
    kubeconfig: Option<PathBuf>,
) -> Result<Recovered, KubeError> {
    // The run that wrote the journal passed the safety rules (a production context needed
    // --allow-production then); putting its changes back must not be refused now.
    let pinned = Pinned {
        context: doc.target.context.clone(),
        namespace: doc.target.namespace.clone(),
        allowed_namespaces: vec![doc.target.namespace.clone()],
    };
    let kubeconfig = kubeconfig.or_else(|| doc.target.kubeconfig.as_ref().map(PathBuf::from));
    let target = KubeTarget::connect_pinned(pinned, kubeconfig, 1).await?;
    let stack = UndoStack::journaled(Journal { path, doc });
    let outcomes = stack
        .unwind(super::drill::UNDO_TIMEOUT, |u| u.apply(&target))
        .await;
    Ok(Recovered {
        outcomes,
        failed: stack.failed().len(),
    })
}
