//! Scenario files: reading them within strict budgets, the v1 model, and validation that
//! points at `file:line:column` with a fix.

pub mod describe;
pub mod diagnostic;
pub mod expr;
pub mod field_condition;
pub mod model;
pub mod parsed;
pub mod spanned;
pub mod substitute;
pub mod tagged;
pub mod templated;
pub mod validate;
pub mod vars;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, FileDiagnostics, Severity};
pub use field_condition::{FieldCondition, PathSegment};
pub use model::*;
pub use parsed::Parsed;
pub use spanned::{Pos, Sp};

/// Largest scenario file read. Real scenarios are a few KiB; this keeps a stray 50 MB file or a
/// device from being slurped into memory.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Deepest nesting accepted. Scenarios are at most ~6 levels deep.
pub const MAX_DEPTH: usize = 32;
/// Aliases accepted in one file, and the events they may replay in total (no billion laughs).
pub const MAX_ALIASES: usize = 256;
pub const MAX_REPLAYED_EVENTS: usize = 20_000;

/// A scenario that parsed and validated, with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    pub path: PathBuf,
    /// Directory relative paths in the scenario resolve against.
    pub base_dir: PathBuf,
    pub source: String,
    pub scenario: Scenario,
    /// Warnings found by validation (errors make loading fail).
    pub warnings: Vec<Diagnostic>,
    /// The scenario parameters as resolved for this load (`--var` or defaults).
    pub vars: std::collections::BTreeMap<String, String>,
    /// The parameters whose value came from `--var` rather than a default.
    pub given: std::collections::BTreeSet<String>,
}

impl LoadedScenario {
    /// Resolves a path written in the scenario relative to the scenario file.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        let p = Path::new(relative);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

/// Reads, parses and validates one scenario file with no `--var` given.
pub fn load(path: &Path) -> Result<LoadedScenario, FileDiagnostics> {
    load_with(path, &[])
}

/// Parses and validates scenario text as if read from `path` (relative paths resolve from it),
/// with no `--var` given (declared defaults apply).
pub fn load_source(path: &Path, source: String) -> Result<LoadedScenario, FileDiagnostics> {
    load_source_with(path, source, &[])
}

/// Reads, parses and validates one scenario file with the parameter values `given`
/// (`NAME`, `value`: the command line's `--var`).
pub fn load_with(
    path: &Path,
    given: &[(String, String)],
) -> Result<LoadedScenario, FileDiagnostics> {
    let source = read_bounded(path).map_err(|d| FileDiagnostics::new(path, None, vec![d]))?;
    load_source_with(path, source, given)
}

/// [`load_source`] with the parameter values `given` (`NAME`, `value`) instead.
pub fn load_source_with(
    path: &Path,
    source: String,
    given: &[(String, String)],
) -> Result<LoadedScenario, FileDiagnostics> {
    let vars = match parameters(&source, given) {
        Ok(values) => values,
        Err(d) => return Err(FileDiagnostics::new(path, Some(source), vec![d])),
    };
    let scenario = match parse_with(&source, &vars) {
        Ok(s) => s,
        Err(items) => return Err(FileDiagnostics::new(path, Some(source), items)),
    };
    let items = validate::validate(&scenario, path, &source);
    if items.iter().any(Diagnostic::is_error) {
        return Err(FileDiagnostics::new(path, Some(source), items));
    }
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(LoadedScenario {
        path: path.to_path_buf(),
        base_dir,
        source,
        scenario,
        warnings: items,
        given: given
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| vars.contains_key(name))
            .collect(),
        vars,
    })
}

/// The scenario's `vars:` declarations, read before the whole file is (an unreadable file is
/// left for the full parse to report). Only the declarations are read here: values go into
/// the parsed scalars of the one full parse ([`substitute`]).
#[derive(serde::Deserialize)]
struct Declared {
    #[serde(default)]
    vars: std::collections::BTreeMap<String, VarDecl>,
}

/// The value of every declared parameter; errors located at the declaration.
fn parameters(
    source: &str,
    given: &[(String, String)],
) -> Result<std::collections::BTreeMap<String, String>, Diagnostic> {
    let declared = serde_saphyr::from_str_with_options::<Declared>(source, parse_options())
        .map(|d| d.vars)
        .unwrap_or_default();
    if declared.is_empty() && given.is_empty() {
        return Ok(Default::default());
    }
    vars::resolve(&declared, given).map_err(|e| {
        let pos = match &e {
            vars::ParamError::Missing { name }
            | vars::ParamError::NoMatch { name, .. }
            | vars::ParamError::BadPattern { name, .. }
            | vars::ParamError::Multiline { name } => declaration_pos(source, name),
            vars::ParamError::Unknown { .. }
            | vars::ParamError::Unclosed
            | vars::ParamError::Undeclared { .. } => Pos::default(),
        };
        Diagnostic::error(pos, e.to_string())
    })
}

/// Line and column (1-based, in characters) of a byte offset.
fn pos_of(source: &str, offset: usize) -> Pos {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos::new(
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// Where `name` is declared under `vars:` (the `vars:` key when it cannot be told).
fn declaration_pos(source: &str, name: &str) -> Pos {
    let Some(vars_at) = source.find("\nvars:").map(|i| i + 1) else {
        return Pos::default();
    };
    let mut line_start = vars_at;
    for (index, line) in source[vars_at..].split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        let indented = line.starts_with([' ', '\t']) || trimmed.is_empty();
        if index > 0 && !indented && !trimmed.starts_with('#') {
            break;
        }
        let declares = trimmed
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(':'));
        if index > 0 && declares {
            return pos_of(source, line_start + (line.len() - trimmed.len()));
        }
        line_start += line.len();
    }
    pos_of(source, vars_at)
}

fn read_bounded(path: &Path) -> Result<String, Diagnostic> {
    let unplaced = Pos::default();
    // Checked before opening: opening a FIFO blocks until a writer appears, and a device or
    // socket is never a scenario.
    let metadata = std::fs::metadata(path)
        .map_err(|e| Diagnostic::error(unplaced, format!("cannot open the scenario: {e}")))?;
    if !metadata.is_file() {
        return Err(Diagnostic::error(
            unplaced,
            format!(
                "this is a {}, not a regular file",
                special_file_kind(&metadata)
            ),
        )
        .with_help("pass the path of a YAML scenario file"));
    }
    let file = open_nonblocking(path)
        .map_err(|e| Diagnostic::error(unplaced, format!("cannot open the scenario: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Diagnostic::error(unplaced, format!("cannot read the scenario: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            unplaced,
            format!(
                "the file is larger than {} KiB; a scenario is a few KiB of YAML",
                MAX_FILE_BYTES / 1024
            ),
        )
        .with_help("check that this is the scenario you meant to pass"));
    }
    if looks_like_utf16(&bytes) {
        return Err(
            Diagnostic::error(unplaced, "the file is UTF-16 text, not UTF-8")
                .with_help("save the scenario as UTF-8 (most editors offer this in \"Save As\")"),
        );
    }
    if bytes.contains(&0) {
        return Err(Diagnostic::error(
            unplaced,
            "this is a binary file, not a YAML scenario",
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        Diagnostic::error(
            unplaced,
            format!(
                "the file is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Opens without blocking, so a FIFO swapped in after the metadata check cannot hang us.
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

fn special_file_kind(metadata: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "named pipe (FIFO)"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

/// A byte-order mark, or ASCII text with every other byte zero (UTF-16 without a BOM).
fn looks_like_utf16(bytes: &[u8]) -> bool {
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        return true;
    }
    let sample = &bytes[..bytes.len().min(64) & !1];
    let zero_at = |parity: usize| {
        sample.len() >= 4
            && sample
                .iter()
                .enumerate()
                .all(|(i, b)| (i % 2 == parity) == (*b == 0))
    };
    zero_at(0) || zero_at(1)
}

fn parse_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_aliases = MAX_ALIASES;
    budget.max_anchors = MAX_ALIASES;
    budget.max_nodes = 50_000;
    budget.max_events = 200_000;
    budget.max_documents = 1;
    budget.max_total_scalar_bytes = MAX_FILE_BYTES as usize;
    budget.max_recorded_anchor_events = MAX_REPLAYED_EVENTS;
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    options.alias_limits.max_replay_stack_depth = 8;
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    options
}

/// Parses scenario text into the model, with declared parameters at their defaults.
/// Structural errors come back located.
pub fn parse_str(source: &str) -> Result<Scenario, Vec<Diagnostic>> {
    let values = parameters(source, &[]).map_err(|d| vec![d])?;
    parse_with(source, &values)
}

/// Parses scenario text into the model with `${var.NAME}` replaced by `values` in the parsed
/// string scalars (never in the text: see [`substitute`]).
fn parse_with(
    source: &str,
    values: &std::collections::BTreeMap<String, String>,
) -> Result<Scenario, Vec<Diagnostic>> {
    if source
        .trim()
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(vec![
            Diagnostic::error(Pos::new(1, 1), "the file is empty")
                .with_help(format!("a scenario starts with `apiVersion: {API_VERSION}` and `name:`; see `drillbook schema`")),
        ]);
    }
    // Walk the document untyped first so the budgets (depth, aliases, size) are enforced on the
    // whole file before a type error could stop the walk early.
    serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(source, parse_options())
        .map_err(|e| vec![structural(&e)])?;
    let params = substitute::Params::new(values);
    serde_saphyr::with_deserializer_from_str_with_options(source, parse_options(), |de| {
        params.deserialize::<Scenario, _>(de)
    })
    .map_err(|e| vec![structural(&e)])
}

/// Turns a serde-saphyr error into a diagnostic with a position and, where possible, a fix.
fn structural(error: &serde_saphyr::Error) -> Diagnostic {
    let mut pos = error.location().map(Pos::from_location).unwrap_or_default();
    let raw = error.without_snippet().to_string();
    let mut message = strip_location_suffix(&raw);
    if let Some(start) = message.find("@@")
        && let Some((at, text)) = tagged::take_position(&message[start..])
    {
        pos = at;
        message = text.to_string();
    }
    let message = reword(&message);
    let mut diagnostic = Diagnostic::error(pos, message.clone());
    if let Some(help) = hint_for(&message) {
        diagnostic = diagnostic.with_help(help);
    }
    diagnostic
}

/// serde-saphyr appends " at line X, column Y"; the location is shown separately.
fn strip_location_suffix(message: &str) -> String {
    let trimmed = message.trim();
    match trimmed.rfind(" at line ") {
        Some(i) => trimmed[..i].trim_end_matches(':').to_string(),
        None => trimmed.to_string(),
    }
}

/// Parser wording that means little to someone writing a scenario, said plainly.
fn reword(message: &str) -> String {
    if let Some(breach) = message.strip_prefix("budget breached: ") {
        let what = breach.split([' ', '{']).next().unwrap_or(breach);
        return match what {
            "Depth" => format!(
                "the document nests deeper than {MAX_DEPTH} levels; a scenario needs far fewer"
            ),
            "Aliases"
            | "Anchors"
            | "AliasAnchorRatio"
            | "ReplayedEvents"
            | "RecordedAnchorEvents"
            | "RecordedAnchorBytes" => {
                format!(
                    "too many YAML aliases (limit {MAX_ALIASES} aliases, {MAX_REPLAYED_EVENTS} replayed nodes): alias bombs are refused"
                )
            }
            "Documents" => "the file holds more than one YAML document (a `---` line \
                            separates them); a scenario is one document: split it into files"
                .to_string(),
            _ => format!(
                "the document exceeds drillbook's YAML limits ({})",
                what.to_lowercase()
            ),
        };
    }
    if message.contains("untagged enum StringOrNumber") {
        return "expected a value such as `30s`, `50/s` or `80%`, not a list or a mapping".into();
    }
    if let Some(key) = message.strip_prefix("duplicate mapping key: ") {
        let key = key.split(',').next().unwrap_or(key).trim();
        return format!("duplicate key `{key}`: each key may appear only once in a mapping");
    }
    if let Some(kind) = message
        .strip_prefix("invalid ")
        .filter(|k| k.starts_with('u') || k.starts_with('i'))
        && kind.trim_start_matches(['u', 'i']).parse::<u32>().is_ok()
    {
        let range = match kind {
            "u8" => " from 0 to 255",
            "u16" => " from 0 to 65535",
            "u32" => " from 0 to 4294967295",
            "u64" => " of 0 or more",
            _ => "",
        };
        return format!("expected a whole number{range}, found text");
    }
    message.to_string()
}

/// "unknown field `slector`, expected one of selector, count" → "did you mean `selector`?"
fn hint_for(message: &str) -> Option<String> {
    if !(message.starts_with("unknown field") || message.starts_with("unknown variant")) {
        if message.contains("indicator") || message.contains("flow") {
            return Some(
                "check for an unclosed `[`, `{` or quote on this or an earlier line".into(),
            );
        }
        return None;
    }
    let unknown = message.split('`').nth(1)?;
    let (_, list) = message.split_once("expected one of")?;
    let expected: Vec<&str> = list
        .split(',')
        .map(|c| c.trim().trim_matches('`'))
        .filter(|c| !c.is_empty())
        .collect();
    match tagged::did_you_mean(unknown, expected.iter().copied()) {
        Some(best) => Some(format!("did you mean `{best}`?")),
        None => Some(format!("valid keys here: {}", expected.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_gets_a_suggestion() {
        assert_eq!(
            hint_for("unknown field `slector`, expected one of selector, count").as_deref(),
            Some("did you mean `selector`?")
        );
    }
}
