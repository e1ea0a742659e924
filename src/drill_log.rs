//! Appending one row to a runbook's "Drill log" Markdown table.
//!
//! The runbook belongs to people, so the edit is surgical: the new row is spliced into the
//! original text and every other byte (other tables, line endings, a missing final newline)
//! stays as it was. Appends are atomic (temp file + rename, owner and mode kept) and serialized
//! by an advisory lock on the runbook's directory, so concurrent drills cannot lose each other's
//! rows. Each row carries the run id, which makes a repeated append of the same run a no-op.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use crate::report::model::Report;

/// One row of the drill log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillLogEntry {
    /// The run's id; written into the row and used to recognise it again.
    pub run_id: String,
    /// Date of the run, e.g. `2026-11-22`.
    pub date: String,
    /// Scenario name.
    pub scenario: String,
    /// `pass`, `fail`, `inconclusive`, `interrupted` or `aborted`.
    pub verdict: String,
    /// Who ran the drill (see [`resolve_operator`]).
    pub operator: String,
    /// Free text, e.g. the verdict reason.
    pub notes: String,
    /// Path or URL of the report, written as a Markdown link.
    pub report_link: Option<String>,
}

/// What [`append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// A row was added to the existing drill log table.
    Appended,
    /// A row with this run id is already there; the file was not touched.
    AlreadyPresent,
    /// There was no drill log table: one was created with the row, at the end of the file
    /// (with a `## Drill log` heading) or under an existing drill log heading without a table.
    CreatedSection,
}

/// Why a drill log could not be appended to.
#[derive(Debug, thiserror::Error)]
pub enum DrillLogError {
    /// The entry has no run id, so it could never be recognised again.
    #[error("drill log entry has an empty run id")]
    EmptyRunId,
    /// The runbook could not be read (a missing runbook is created, a missing folder is not).
    #[error("cannot read runbook {}", path.display())]
    Read {
        /// The runbook.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The runbook is not UTF-8 text.
    #[error("runbook {} is not UTF-8 text", path.display())]
    NotUtf8 {
        /// The runbook.
        path: PathBuf,
    },
    /// The runbook's directory could not be locked.
    #[error("cannot lock {}", path.display())]
    Lock {
        /// The runbook's directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The runbook has several "Drill log" headings: which table gets the row would be a guess.
    #[error(
        "runbook {} has {} \"Drill log\" headings (lines {}): keep one, so the row has one \
         place to go",
        path.display(),
        lines.len(),
        lines.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
    )]
    Ambiguous {
        /// The runbook.
        path: PathBuf,
        /// The headings' line numbers (1-based).
        lines: Vec<usize>,
    },
    /// The new runbook could not be written.
    #[error("cannot write runbook {}", path.display())]
    Write {
        /// The runbook (or its temporary sibling).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The drill-log row of a run whose report files are in `report_dir`.
pub fn entry(report: &Report, runbook: &Path, report_dir: &Path) -> DrillLogEntry {
    DrillLogEntry {
        run_id: report.run_id.clone(),
        date: report.started_at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        scenario: report.scenario.name.clone(),
        verdict: report.verdict.as_str().to_string(),
        operator: report
            .operator
            .clone()
            .unwrap_or_else(|| resolve_operator(None)),
        notes: report.verdict_reason.clone(),
        report_link: Some(relative_link(runbook, &report_dir.join("report.md"))),
    }
}

/// `target` as a link that works from the runbook's directory (relative when they share a
/// root, absolute otherwise).
fn relative_link(runbook: &Path, target: &Path) -> String {
    use std::path::Component;
    let (Ok(from), Ok(to)) = (std::path::absolute(runbook), std::path::absolute(target)) else {
        return target.display().to_string();
    };
    let from: Vec<Component> = from
        .parent()
        .unwrap_or(Path::new("/"))
        .components()
        .collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut link = PathBuf::new();
    for _ in common..from.len() {
        link.push("..");
    }
    for part in &to[common..] {
        link.push(part);
    }
    link.display().to_string()
}

/// Appends `entry` to the drill log table of `runbook` (see the module docs).
pub fn append(runbook: &Path, entry: &DrillLogEntry) -> Result<AppendOutcome, DrillLogError> {
    if entry.run_id.trim().is_empty() {
        return Err(DrillLogError::EmptyRunId);
    }
    let read_error = |source| DrillLogError::Read {
        path: runbook.to_owned(),
        source,
    };
    // Write through a symlink to its target instead of replacing the link with a file.
    let path = match std::fs::canonicalize(runbook) {
        Ok(path) => path,
        // A runbook that is not there yet is created in its (existing) folder, as `validate`
        // and `plan` announce; a dangling symlink or a missing folder stays an error.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound && runbook.symlink_metadata().is_err() =>
        {
            let folder = match runbook.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let name = runbook.file_name().ok_or_else(|| read_error(e))?;
            std::fs::canonicalize(folder)
                .map_err(read_error)?
                .join(name)
        }
        Err(e) => return Err(read_error(e)),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    // The directory is locked, not a sidecar file: nothing is left next to the runbook, and
    // the lock outlives the rename that replaces the runbook's inode.
    let lock_error = |source| DrillLogError::Lock {
        path: dir.to_owned(),
        source,
    };
    let lock = std::fs::File::open(dir).map_err(lock_error)?;
    lock.lock().map_err(lock_error)?;

    let bytes = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        read => read.map_err(read_error)?,
    };
    let text = String::from_utf8(bytes).map_err(|_| DrillLogError::NotUtf8 {
        path: runbook.to_owned(),
    })?;
    let found = headings(&split_lines(&text))
        .into_iter()
        .filter(is_drill_log_heading)
        .map(|h| h.line + 1)
        .collect::<Vec<_>>();
    if found.len() > 1 {
        return Err(DrillLogError::Ambiguous {
            path: runbook.to_owned(),
            lines: found,
        });
    }
    let (new_text, outcome) = append_to_document(&text, entry);
    if outcome != AppendOutcome::AlreadyPresent {
        replace_atomically(&path, dir, new_text.as_bytes())?;
    }
    drop(lock);
    Ok(outcome)
}

fn replace_atomically(path: &Path, dir: &Path, contents: &[u8]) -> Result<(), DrillLogError> {
    let write_error = |source| DrillLogError::Write {
        path: path.to_owned(),
        source,
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".drillbook-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(write_error)?;
    temp.write_all(contents).map_err(write_error)?;
    // The replacement keeps the runbook's owner and mode (a read-only runbook stays
    // read-only); when the owner cannot be kept, the runbook is left alone.
    // A new runbook is a document like any other: rw-r--r--, not the temp file's 0600.
    match std::fs::metadata(path) {
        Ok(original) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt as _;
                let current = temp.as_file().metadata().map_err(write_error)?;
                if (current.uid(), current.gid()) != (original.uid(), original.gid()) {
                    std::os::unix::fs::fchown(
                        temp.as_file(),
                        Some(original.uid()),
                        Some(original.gid()),
                    )
                    .map_err(write_error)?;
                }
            }
            temp.as_file()
                .set_permissions(original.permissions())
                .map_err(write_error)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                temp.as_file()
                    .set_permissions(std::fs::Permissions::from_mode(0o644))
                    .map_err(write_error)?;
            }
        }
        Err(e) => return Err(write_error(e)),
    }
    temp.as_file().sync_all().map_err(write_error)?;
    temp.persist(path).map_err(|e| write_error(e.error))?;
    // Make the rename durable; not every filesystem supports syncing a directory.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The operator's name: `explicit` (from `--operator`), else `$DRILL_OPERATOR`, else
/// `git config user.name`, else `$USER`, else `unknown`.
pub fn resolve_operator(explicit: Option<&str>) -> String {
    resolve_operator_in(explicit, &Lookup::Process)
}

/// Where [`resolve_operator_in`] looks a name up.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// drillbook's own environment and working directory.
    Process,
    /// Only `vars`, with git run in `dir`: nothing of the caller's environment leaks in (tests
    /// use this instead of changing their own process's environment).
    Isolated {
        vars: std::collections::BTreeMap<String, String>,
        dir: PathBuf,
    },
}

impl Lookup {
    fn var(&self, name: &str) -> Option<String> {
        match self {
            Lookup::Process => std::env::var(name).ok(),
            Lookup::Isolated { vars, .. } => vars.get(name).cloned(),
        }
    }

    fn git_user_name(&self) -> Option<String> {
        let mut command = std::process::Command::new("git");
        command
            .args(["config", "user.name"])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Lookup::Isolated { vars, dir } = self {
            command.env_clear().envs(vars).current_dir(dir);
        }
        let output = command.output().ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// [`resolve_operator`] against `lookup`.
pub fn resolve_operator_in(explicit: Option<&str>, lookup: &Lookup) -> String {
    let non_empty = |s: String| {
        let s = s.trim().to_owned();
        (!s.is_empty()).then_some(s)
    };
    explicit
        .map(str::to_owned)
        .and_then(non_empty)
        .or_else(|| lookup.var("DRILL_OPERATOR").and_then(non_empty))
        .or_else(|| lookup.git_user_name().and_then(non_empty))
        .or_else(|| lookup.var("USER").and_then(non_empty))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The pure part of [`append`]: `document` with the entry's row added, and what was done.
/// For [`AppendOutcome::AlreadyPresent`] the document is returned unchanged.
pub fn append_to_document(document: &str, entry: &DrillLogEntry) -> (String, AppendOutcome) {
    let lines = split_lines(document);
    let eol = line_ending_style(&lines);
    let Some(section) = find_drill_log_section(&lines) else {
        let block = new_table_lines(entry, "## Drill log");
        return (
            insert_block(document, &lines, lines.len(), &block, eol),
            AppendOutcome::CreatedSection,
        );
    };
    let Some(table) = find_table(&lines, section.body_start, section.end) else {
        let block = new_table_lines(entry, "");
        return (
            insert_block(document, &lines, section.end, &block, eol),
            AppendOutcome::CreatedSection,
        );
    };
    if table.body_contains_run(&lines, &entry.run_id) {
        return (document.to_owned(), AppendOutcome::AlreadyPresent);
    }
    let header = &lines[table.header];
    let row = format_row(
        header.content,
        &fill_cells(&split_cells(header.content), entry),
    );
    let last = &lines[table.last];
    let mut out = String::with_capacity(document.len() + row.len() + 2);
    out.push_str(&document[..last.end_with_ending]);
    if last.ending.is_empty() {
        // The table ends the file without a final newline: keep it that way.
        out.push_str(eol);
        out.push_str(&row);
    } else {
        out.push_str(&row);
        out.push_str(last.ending);
        out.push_str(&document[last.end_with_ending..]);
    }
    (out, AppendOutcome::Appended)
}

/// One line of the document: its text without the line ending, and where it ends.
#[derive(Debug)]
struct Line<'a> {
    content: &'a str,
    /// `""` (last line without newline), `"\n"` or `"\r\n"`.
    ending: &'a str,
    /// Byte offset where the line starts.
    start: usize,
    /// Byte offset just after its line ending.
    end_with_ending: usize,
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let rest = &text[start..];
        let (content, ending) = match rest.find('\n') {
            Some(i) if i > 0 && rest.as_bytes()[i - 1] == b'\r' => (&rest[..i - 1], "\r\n"),
            Some(i) => (&rest[..i], "\n"),
            None => (rest, ""),
        };
        let end_with_ending = start + content.len() + ending.len();
        lines.push(Line {
            content,
            ending,
            start,
            end_with_ending,
        });
        start = end_with_ending;
    }
    lines
}

/// The file's own line ending (that of its first line), LF for a one-line or empty file.
fn line_ending_style<'a>(lines: &[Line<'a>]) -> &'a str {
    lines
        .iter()
        .map(|l| l.ending)
        .find(|e| !e.is_empty())
        .unwrap_or("\n")
}

/// A heading's section: where its body starts and where it ends (exclusive line indices).
struct Section {
    body_start: usize,
    end: usize,
}

/// A heading found in the document.
struct Heading {
    /// First line of the heading (the text line of a setext heading).
    line: usize,
    /// First line after it.
    body_start: usize,
    level: usize,
    text: String,
}

fn find_drill_log_section(lines: &[Line<'_>]) -> Option<Section> {
    let headings = headings(lines);
    let index = headings.iter().position(is_drill_log_heading)?;
    let found = &headings[index];
    let end = headings[index + 1..]
        .iter()
        .find(|h| h.level <= found.level)
        .map_or(lines.len(), |h| h.line);
    Some(Section {
        body_start: found.body_start,
        end,
    })
}

fn is_drill_log_heading(heading: &Heading) -> bool {
    heading.text.to_lowercase().contains("drill log")
}

/// ATX (`## x`) and setext (`x` underlined with `===`/`---`) headings outside code fences.
fn headings(lines: &[Line<'_>]) -> Vec<Heading> {
    let mut found = Vec::new();
    let mut fences = FenceTracker::default();
    for (i, line) in lines.iter().enumerate() {
        if fences.in_code(line.content) {
            continue;
        }
        if let Some((level, text)) = atx_heading(line.content) {
            found.push(Heading {
                line: i,
                body_start: i + 1,
                level,
                text,
            });
        } else if let Some(level) = setext_underline(line.content)
            && let Some(previous) = i.checked_sub(1).map(|p| lines[p].content)
            && is_paragraph_text(previous)
        {
            found.push(Heading {
                line: i - 1,
                body_start: i + 1,
                level,
                text: previous.trim().to_owned(),
            });
        }
    }
    found
}

/// Tracks fenced code blocks (``` or ~~~), whose content is never a heading or a table.
#[derive(Default)]
struct FenceTracker {
    open: Option<(char, usize)>,
}

impl FenceTracker {
    /// Whether `line` is part of a fenced code block (fence lines included).
    fn in_code(&mut self, line: &str) -> bool {
        let fence = fence(line);
        match (self.open, fence) {
            (None, Some((c, n, _))) => {
                self.open = Some((c, n));
                true
            }
            (None, None) => false,
            (Some((c, n)), Some((fc, fn_, rest_empty))) if fc == c && fn_ >= n && rest_empty => {
                self.open = None;
                true
            }
            (Some(_), _) => true,
        }
    }
}

/// A fence line: its character, length and whether nothing but spaces follows it.
fn fence(line: &str) -> Option<(char, usize, bool)> {
    let trimmed = strip_indent(line)?;
    let c = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let count = trimmed.chars().take_while(|x| *x == c).count();
    (count >= 3).then(|| (c, count, trimmed[count..].trim().is_empty()))
}

/// The line without up to three leading spaces; `None` when it is indented code.
fn strip_indent(line: &str) -> Option<&str> {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    (spaces <= 3).then(|| &line[spaces..])
}

fn atx_heading(line: &str) -> Option<(usize, String)> {
    let trimmed = strip_indent(line)?;
    let level = trimmed.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &trimmed[level..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let text = rest.trim().trim_end_matches('#').trim_end();
    Some((level, text.to_owned()))
}

fn setext_underline(line: &str) -> Option<usize> {
    let trimmed = strip_indent(line)?.trim_end();
    let first = trimmed.chars().next()?;
    let level = match first {
        '=' => 1,
        '-' => 2,
        _ => return None,
    };
    trimmed.chars().all(|c| c == first).then_some(level)
}

/// A line that can be the text of a setext heading: not blank, not a table row, not a
/// heading, list item, quote or fence.
fn is_paragraph_text(line: &str) -> bool {
    let Some(trimmed) = strip_indent(line) else {
        return false;
    };
    !trimmed.trim().is_empty()
        && !trimmed.contains('|')
        && atx_heading(line).is_none()
        && fence(line).is_none()
        && setext_underline(line).is_none()
        && !trimmed.starts_with(['>', '-', '*', '+'])
}

/// A table: its header line, and its last line (the delimiter row when it has no body).
struct Table {
    header: usize,
    last: usize,
}

impl Table {
    fn body_contains_run(&self, lines: &[Line<'_>], run_id: &str) -> bool {
        let run_id = run_id.trim();
        lines[self.header + 2..=self.last].iter().any(|line| {
            line.content
                .match_indices(run_id)
                .any(|(at, _)| is_word_at(line.content, at, run_id.len()))
        })
    }
}

/// Whether `text[at..at + len]` is not glued to letters or digits on either side.
fn is_word_at(text: &str, at: usize, len: usize) -> bool {
    let before = text[..at].chars().next_back();
    let after = text[at + len..].chars().next();
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
}

static DELIMITER_ROW: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
        .expect("literal regex is valid")
});

/// The first table in lines `from..to`, outside code fences.
fn find_table(lines: &[Line<'_>], from: usize, to: usize) -> Option<Table> {
    let mut fences = FenceTracker::default();
    let mut i = from;
    while i + 1 < to {
        let line = lines[i].content;
        if !fences.in_code(line) && is_table_header(line, lines[i + 1].content) {
            let mut last = i + 1;
            while last + 1 < to && is_table_body_row(lines[last + 1].content) {
                last += 1;
            }
            return Some(Table { header: i, last });
        }
        i += 1;
    }
    None
}

fn is_table_header(header: &str, delimiter: &str) -> bool {
    header.contains('|')
        && delimiter.contains('|')
        && strip_indent(header).is_some()
        && DELIMITER_ROW.is_match(delimiter)
        && split_cells(header).len() == split_cells(delimiter).len()
}

fn is_table_body_row(line: &str) -> bool {
    !line.trim().is_empty()
        && line.contains('|')
        && atx_heading(line).is_none()
        && fence(line).is_none()
}

/// The cells of a table row, trimmed; `\|` does not split.
fn split_cells(row: &str) -> Vec<String> {
    let mut inner = row.trim();
    if let Some(rest) = inner.strip_prefix('|') {
        inner = rest;
    }
    if inner.ends_with('|') && !inner.ends_with("\\|") {
        inner = &inner[..inner.len() - 1];
    }
    let mut cells = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in inner.chars() {
        if c == '|' && !escaped {
            cells.push(current.trim().to_owned());
            current.clear();
        } else {
            current.push(c);
        }
        escaped = c == '\\' && !escaped;
    }
    cells.push(current.trim().to_owned());
    cells
}

/// What a column of the drill log table holds, recognised from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Date,
    Scenario,
    Verdict,
    Operator,
    Notes,
    Link,
    Run,
}

fn field_for_header(header: &str) -> Option<Field> {
    let lower = header.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        ["run"] | ["run", "id"] | ["runid"] => Some(Field::Run),
        [first, ..] => match *first {
            "date" | "when" => Some(Field::Date),
            "action" | "drill" | "scenario" => Some(Field::Scenario),
            "result" | "verdict" | "outcome" | "status" => Some(Field::Verdict),
            "operator" | "who" | "by" => Some(Field::Operator),
            "notes" | "note" | "comment" | "comments" => Some(Field::Notes),
            "report" | "link" | "links" => Some(Field::Link),
            _ => None,
        },
        [] => None,
    }
}

/// The cell texts of the new row, one per header column.
fn fill_cells(headers: &[String], entry: &DrillLogEntry) -> Vec<String> {
    // Only the first column of each kind is filled, so a duplicate column stays empty.
    let mut fields: Vec<Option<Field>> = Vec::with_capacity(headers.len());
    for header in headers {
        let field = field_for_header(header).filter(|f| !fields.contains(&Some(*f)));
        fields.push(field);
    }
    let has = |f: Field| fields.contains(&Some(f));
    let link = entry.report_link.as_deref().map(markdown_link);
    let run_marker = (!has(Field::Run)).then(|| format!("run {}", entry.run_id.trim()));
    let notes = (!entry.notes.trim().is_empty()).then(|| entry.notes.trim().to_owned());
    // The link goes to its own column when there is one; the rest of the details go to Notes,
    // else next to the verdict (they explain it), else with the link, else into the last
    // column when there is no Run column: the run id has to be in the row, or the append would
    // not be idempotent.
    let (link_cell, details) = if has(Field::Link) {
        (join_some([link]), join_some([notes, run_marker]))
    } else {
        (String::new(), join_some([notes, link, run_marker]))
    };
    let home = [Field::Notes, Field::Verdict, Field::Link]
        .into_iter()
        .find(|f| has(*f));
    let with_details = |field: Field, text: String| {
        if home == Some(field) {
            join_some([Some(text), Some(details.clone())])
        } else {
            text
        }
    };
    let mut cells: Vec<String> = fields
        .iter()
        .map(|field| match field {
            Some(Field::Date) => entry.date.clone(),
            Some(Field::Scenario) => entry.scenario.clone(),
            Some(Field::Verdict) => with_details(Field::Verdict, entry.verdict.clone()),
            Some(Field::Operator) => entry.operator.clone(),
            Some(Field::Run) => entry.run_id.trim().to_owned(),
            Some(Field::Notes) => with_details(Field::Notes, String::new()),
            Some(Field::Link) => with_details(Field::Link, link_cell.clone()),
            None => String::new(),
        })
        .collect();
    if home.is_none()
        && !has(Field::Run)
        && let Some(last) = cells.last_mut()
    {
        *last = join_some([(!last.is_empty()).then(|| last.clone()), Some(details)]);
    }
    cells
}

fn join_some<const N: usize>(parts: [Option<String>; N]) -> String {
    parts
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn markdown_link(target: &str) -> String {
    if target.contains(|c: char| c.is_whitespace() || c == '(' || c == ')') {
        format!("[report](<{target}>)")
    } else {
        format!("[report]({target})")
    }
}

/// A row in the style of `header`: same indentation, same outer pipes.
fn format_row(header: &str, cells: &[String]) -> String {
    let indent = &header[..header.len() - header.trim_start().len()];
    let trimmed = header.trim();
    let leading = trimmed.starts_with('|');
    let trailing = trimmed.len() > 1 && trimmed.ends_with('|') && !trimmed.ends_with("\\|");
    let body = cells
        .iter()
        .map(|c| escape_cell(c))
        .collect::<Vec<_>>()
        .join(" | ");
    format!(
        "{indent}{}{body}{}",
        if leading { "| " } else { "" },
        if trailing { " |" } else { "" }
    )
}

/// One line of cell text with pipes escaped.
fn escape_cell(text: &str) -> String {
    text.replace(['\r', '\n'], " ").trim().replace('|', "\\|")
}

/// The header, delimiter and first row of a new drill log table, after `heading` if given.
fn new_table_lines(entry: &DrillLogEntry, heading: &str) -> Vec<String> {
    const COLUMNS: [&str; 6] = ["Date", "Scenario", "Verdict", "Operator", "Run", "Notes"];
    let header = format!("| {} |", COLUMNS.join(" | "));
    let cells = fill_cells(&COLUMNS.map(str::to_owned), entry);
    let mut block = Vec::new();
    if !heading.is_empty() {
        block.push(heading.to_owned());
        block.push(String::new());
    }
    block.push(header.clone());
    block.push(format!("|{}", " --- |".repeat(COLUMNS.len())));
    block.push(format_row(&header, &cells));
    block
}

/// `document` with `block` inserted before line `at` (or at the end), separated from its
/// neighbours by blank lines. At the end of a file without a final newline, none is added.
fn insert_block(
    document: &str,
    lines: &[Line<'_>],
    at: usize,
    block: &[String],
    eol: &str,
) -> String {
    let split = lines.get(at).map_or(document.len(), |l| l.start);
    let (before, after) = document.split_at(split);
    let mut out = String::with_capacity(document.len() + 256);
    out.push_str(before);
    if !before.is_empty() && !before.ends_with('\n') {
        out.push_str(eol);
    }
    let previous_blank = at
        .checked_sub(1)
        .and_then(|p| lines.get(p))
        .is_none_or(|l| l.content.trim().is_empty());
    if !previous_blank {
        out.push_str(eol);
    }
    for line in block {
        out.push_str(line);
        out.push_str(eol);
    }
    if !after.is_empty() {
        out.push_str(eol);
        out.push_str(after);
    } else if !document.is_empty() && !document.ends_with('\n') {
        out.truncate(out.len() - eol.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::relative_link;
    use std::path::Path;

    #[test]
    fn report_links_are_relative_to_the_runbook() {
        assert_eq!(
            relative_link(
                Path::new("/a/reports/RUNBOOK.md"),
                Path::new("/a/reports/x/report.md")
            ),
            "x/report.md"
        );
        assert_eq!(
            relative_link(
                Path::new("/a/docs/RUNBOOK.md"),
                Path::new("/a/reports/x/report.md")
            ),
            "../reports/x/report.md"
        );
    }
}

/// Where a run's row would go in a runbook, as `plan` announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The first table under the Drill log heading.
    Table {
        /// The heading as written (`## Drill log`).
        heading: String,
        /// 1-based line of the table's header row.
        line: usize,
        columns: Vec<String>,
    },
    /// A Drill log heading without a table: a table is created under it.
    NewTable { heading: String },
    /// No Drill log heading: a `## Drill log` section with a table is appended.
    NewSection,
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Table {
                heading,
                line,
                columns,
            } => write!(
                f,
                "the table under `{heading}` (line {line}), columns: {}",
                columns.join(", ")
            ),
            Self::NewTable { heading } => {
                write!(f, "a new table under `{heading}` (it has no table yet)")
            }
            Self::NewSection => f.write_str("a new `## Drill log` section at the end"),
        }
    }
}

/// Where [`append_to_document`] would put a row of `document` (the same heading and table).
pub fn destination(document: &str) -> Destination {
    let lines = split_lines(document);
    let Some(section) = find_drill_log_section(&lines) else {
        return Destination::NewSection;
    };
    let heading = headings(&lines)
        .into_iter()
        .find(|h| h.body_start == section.body_start)
        .map_or_else(
            || "Drill log".to_string(),
            |h| lines[h.line].content.trim().to_string(),
        );
    match find_table(&lines, section.body_start, section.end) {
        Some(table) => Destination::Table {
            heading,
            line: table.header + 1,
            columns: split_cells(lines[table.header].content),
        },
        None => Destination::NewTable { heading },
    }
}

#[cfg(test)]
mod destination_tests {
    use super::*;

    #[test]
    fn names_the_heading_line_and_columns_of_the_table() {
        let runbook = "# Runbook\n\n## Drill log\n\nRows below.\n\n| Date | Scenario | Result |\n|---|---|---|\n| 1 | a | pass |\n\n## Other\n\n| x |\n|---|\n";
        assert_eq!(
            destination(runbook),
            Destination::Table {
                heading: "## Drill log".into(),
                line: 7,
                columns: vec!["Date".into(), "Scenario".into(), "Result".into()],
            }
        );
        assert_eq!(
            destination("# Runbook\n\n## Drill log\n\nnone yet\n"),
            Destination::NewTable {
                heading: "## Drill log".into()
            }
        );
        assert_eq!(destination("# Runbook\n"), Destination::NewSection);
        assert_eq!(
            destination(runbook).to_string(),
            "the table under `## Drill log` (line 7), columns: Date, Scenario, Result"
        );
    }
}
