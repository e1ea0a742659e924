//! What every handler prints with: control characters escaped, `-o FILE`, colour and width
//! of the terminal. Below the handlers and mod.rs alike.

use crate::telemetry;

/// [`telemetry::color_allowed`] for stderr.
pub(crate) fn stderr_color() -> bool {
    telemetry::color_allowed(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// `text` safe to print on a terminal: control characters from scenarios and clusters shown
/// as escapes (see `report::text`).
pub(crate) fn safe(text: &str) -> std::borrow::Cow<'_, str> {
    crate::report::text::escape_controls(text)
}

/// What `-o/--output FILE` means on every command: the text goes to FILE (replaced atomically)
/// instead of stdout. (`schedule -o DIR` writes one file per object into DIR.)
pub(crate) fn write_output(path: Option<&std::path::Path>, text: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    match path {
        Some(path) => crate::support::fs::write_atomically(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display())),
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .context("cannot write to stdout"),
    }
}

/// [`telemetry::color_allowed`] for stdout.
pub(crate) fn stdout_color() -> bool {
    telemetry::color_allowed(
        std::io::IsTerminal::is_terminal(&std::io::stdout()),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// The width tables on stdout should fit: `$COLUMNS`, else the terminal's; `None` when stdout
/// is not a terminal (a file or a pipe gets the full text).
pub(crate) fn stdout_width() -> Option<usize> {
    let stdout = std::io::stdout();
    if !std::io::IsTerminal::is_terminal(&stdout) {
        return None;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .or_else(|| terminal_size::terminal_size_of(&stdout).map(|(w, _)| usize::from(w.0)))
}
