//! Errors about a scenario file, each pointing at `file:line:column` with the offending line,
//! a caret under the spot, and a hint on how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};

use super::spanned::Pos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub pos: Pos,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            pos,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            pos,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Every problem found in one file, with the source needed to show them.
#[derive(Debug, Clone)]
pub struct FileDiagnostics {
    pub path: PathBuf,
    pub source: Option<String>,
    pub items: Vec<Diagnostic>,
}

impl FileDiagnostics {
    pub fn new(path: &Path, source: Option<String>, mut items: Vec<Diagnostic>) -> Self {
        items.sort_by_key(|d| (d.pos, d.severity));
        Self {
            path: path.to_path_buf(),
            source,
            items,
        }
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.is_error())
    }
}

impl fmt::Display for FileDiagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            let label = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            if d.pos.is_known() {
                writeln!(
                    f,
                    "{}:{}: {label}: {}",
                    self.path.display(),
                    d.pos,
                    d.message
                )?;
            } else {
                writeln!(f, "{}: {label}: {}", self.path.display(), d.message)?;
            }
            if let Some(line) = d
                .pos
                .is_known()
                .then(|| self.source_line(d.pos.line))
                .flatten()
            {
                let number = d.pos.line.to_string();
                let pad = " ".repeat(number.len());
                let shown: String = line.chars().take(160).collect();
                let caret_at = shown
                    .chars()
                    .take(d.pos.column.saturating_sub(1) as usize)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect::<String>();
                writeln!(f, "{pad} |")?;
                writeln!(f, "{number} | {shown}")?;
                writeln!(f, "{pad} | {caret_at}^")?;
            }
            if let Some(help) = &d.help {
                writeln!(f, "  = help: {help}")?;
            }
        }
        Ok(())
    }
}

impl FileDiagnostics {
    fn source_line(&self, line: u32) -> Option<&str> {
        let source = self.source.as_deref()?;
        source
            .lines()
            .nth(line.checked_sub(1)? as usize)
            .map(|l| l.trim_end_matches('\r'))
    }
}
