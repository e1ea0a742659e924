//! SIGINT/SIGTERM: the first one cancels the drill (load stops, undos run, a partial report is
//! written); later ones say what is still being undone instead of abandoning it silently.

use std::sync::{Arc, Mutex};

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::undo::UndoStack;
use crate::targets::UndoAction;

/// How the operator is told what a signal did; the command-line edge writes it to stderr.
pub type Notice = fn(&str);

/// Watches for SIGINT and SIGTERM until `done` is cancelled, telling the operator through
/// `say`. Returns at once if the handlers cannot be installed (the drill then simply cannot
/// be interrupted gracefully).
pub fn watch<U: UndoAction>(
    interrupt: CancellationToken,
    undo: Arc<Mutex<UndoStack<U>>>,
    done: CancellationToken,
    say: Notice,
) {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; Ctrl-C will not undo faults");
        return;
    };
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = done.cancelled() => return,
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            if !interrupt.is_cancelled() {
                say(&format!(
                    "\n{name}: stopping the drill, undoing faults, writing a partial report…"
                ));
                interrupt.cancel();
                continue;
            }
            let undo = undo.lock().map(|u| u.clone()).unwrap_or_default();
            let pending: Vec<String> = undo
                .pending()
                .iter()
                .rev()
                .map(|r| r.undo.describe())
                .collect();
            match undo.in_progress() {
                Some(now) => say(&format!(
                    "{name}: still undoing: {now}; then {} more. Waiting for them to finish.",
                    pending.len()
                )),
                None if pending.is_empty() => {
                    say(&format!("{name}: finishing up (reports, cleanup)…"));
                }
                None => say(&format!("{name}: undos pending: {}", pending.join("; "))),
            }
        }
    });
}
