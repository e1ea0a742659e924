//! The dependency rules of ARCHITECTURE.md, checked on the source: which module may name
//! which (`crate::…` paths), that no two modules depend on each other in a cycle, and that
//! clap, anyhow and printing stay at the command-line edge (`src/cmd/`), and that no files
//! of a module import each other in a cycle. The lab's programs (`src/lab/`) may print (the
//! trainer's progress on stdout is its output); their command line is `cmd/lab.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which top-level modules each module may name. Modules not listed here may name nothing.
const ALLOWED: &[(&str, &[&str])] = &[
    ("main", &["cmd"]),
    ("lib", &[]),
    ("units", &[]),
    ("exit", &[]),
    ("telemetry", &[]),
    ("support", &["units"]),
    ("load", &["units"]),
    ("fault", &[]),
    ("report", &["load", "exit", "support"]),
    ("scenario", &["units"]),
    ("drill_log", &["report"]),
    ("checks", &["scenario", "report", "support", "units"]),
    (
        "history",
        &["checks", "load", "report", "scenario", "support", "units"],
    ),
    (
        "targets",
        &[
            "scenario",
            "report",
            "support",
            "units",
            "telemetry",
            "fault",
        ],
    ),
    (
        "engine",
        &[
            "targets",
            "checks",
            "load",
            "report",
            "scenario",
            "support",
            "drill_log",
            "history",
            "units",
            "fault",
        ],
    ),
    ("plan", &["targets", "scenario", "report"]),
    (
        "schedule",
        &[
            "targets",
            "scenario",
            "report",
            "drill_log",
            "units",
            "telemetry",
        ],
    ),
    ("lab", &["exit", "units"]),
    (
        "cmd",
        &[
            "checks",
            "drill_log",
            "engine",
            "exit",
            "fault",
            "history",
            "lab",
            "load",
            "plan",
            "report",
            "scenario",
            "schedule",
            "support",
            "targets",
            "telemetry",
            "units",
        ],
    ),
];

/// Modules that may print to stdout/stderr; only `cmd` (and `main`) may also use clap or anyhow.
const PRINTS: &[&str] = &["cmd", "lab"];

struct Source {
    /// `src/`-relative path.
    path: String,
    /// The top-level module (`engine`, `targets`, …; `main` and `lib` for the crate roots).
    module: String,
    /// The code without comment lines.
    code: String,
    /// The file as written.
    text: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let path = file
                .strip_prefix(&root)
                .expect("under src/")
                .to_string_lossy()
                .into_owned();
            let module = path
                .split('/')
                .next()
                .unwrap_or_default()
                .trim_end_matches(".rs")
                .to_string();
            let text = std::fs::read_to_string(&file).expect("read a source file");
            let code = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            Source {
                path,
                module,
                code,
                text,
            }
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("list src/").flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a piece of code names through `crate::…`.
fn named_modules(code: &str) -> BTreeSet<String> {
    code.match_indices("crate::")
        .filter(|(at, _)| {
            // `drillbook::crate::` does not exist; skip `$crate::` in macros.
            !code[..*at].ends_with('$')
        })
        .map(|(at, m)| {
            code[at + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

/// Module → the modules it names (itself excluded).
fn graph(sources: &[Source]) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in sources {
        let entry = graph.entry(s.module.clone()).or_default();
        entry.extend(
            named_modules(&s.code)
                .into_iter()
                .filter(|m| *m != s.module),
        );
    }
    graph
}

#[test]
fn every_module_names_only_the_modules_below_it() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut broken = Vec::new();
    for s in sources() {
        let Some(may) = allowed.get(s.module.as_str()) else {
            broken.push(format!(
                "{}: module `{}` has no rule in ALLOWED",
                s.path, s.module
            ));
            continue;
        };
        for named in named_modules(&s.code) {
            if named != s.module && !may.contains(&named.as_str()) {
                broken.push(format!(
                    "{}: `{}` may not name crate::{named}",
                    s.path, s.module
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "dependency rules broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_two_targets_do_not_know_each_other() {
    let mut broken = Vec::new();
    for s in sources() {
        for (mine, other) in [("targets/kube/", "local"), ("targets/local/", "kube")] {
            let path = format!("crate::targets::{other}");
            if s.path.starts_with(mine) && s.code.contains(&path) {
                broken.push(format!("{} names {path}", s.path));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn no_two_modules_depend_on_each_other() {
    let graph = graph(&sources());
    // Depth-first search for a back edge; reports the first cycle found.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn clap_anyhow_and_printing_stay_at_the_command_line_edge() {
    let edge_only = [
        "clap::",
        "use clap",
        "anyhow",
        "println!",
        "print!",
        "eprintln!",
        "eprint!",
        "dbg!",
        "io::stdout()",
        "io::stderr()",
    ];
    let mut broken = Vec::new();
    for s in sources() {
        if s.module == "cmd" || s.module == "main" {
            continue;
        }
        let printing_ok = PRINTS.contains(&s.module.as_str());
        for needle in edge_only {
            let is_printing = !needle.contains("clap") && needle != "anyhow";
            if s.code.contains(needle) && !(printing_ok && is_printing) {
                broken.push(format!("{}: `{needle}` outside src/cmd/", s.path));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

// ---- Files: no import cycle between the files of a module ----
//
// A file *uses* another when its code names one of that file's items: `use super::x::Y`,
// `use crate::m::x::Y`, `use self::child::Y`, `use child::Y` in a parent, or such a path in
// code (`super::x::f()`). A path that ends on a parent's `pub use child::Y` is a use of the
// child that defines `Y`, not of the parent. Declaring `mod child;` and re-exporting
// (`pub use child::Y`) are not uses; so a child using its `mod.rs`'s items is the normal
// parent/child relation, and only a parent that also uses the child's items in its own code
// (a re-exported name it uses itself counts) closes a loop.

/// Edges left out of the file graph, each with its reason.
const ALLOWED_FILE_EDGES: &[(&str, &str)] = &[
    // Justified: model declares its `Action`/`CheckKind` enums through tagged's
    // `tagged_kinds!` macro, and tagged's deserializers of `Step`/`Check` build those enums;
    // the macro and the types it declares are one unit, in two files for size.
    ("scenario::tagged", "scenario::model"),
    // Pending (issue #22), each removed by the change that breaks its loop:
    // - scenario/mod.rs calls `validate::validate`, and validate reads `load_source` back
    //   from scenario/mod.rs; gone with the run plan's split of loading and validating.
    ("scenario::validate", "scenario"),
];

/// A path a file names, with the module it is written in (an inline `mod tests` adds one).
struct Named {
    scope: Vec<String>,
    path: Vec<String>,
}

struct FileNode {
    path: String,
    /// Module path: `engine::undo`; the crate root is empty.
    module: Vec<String>,
    named: Vec<Named>,
    /// Top-level `pub use`: bound name (`*` for a glob) → the path it re-exports.
    reexports: Vec<(String, Named)>,
    /// Names the file declares `pub` at its top level (to follow `pub use child::*`).
    pub_names: BTreeSet<String>,
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Comments, strings and char literals replaced by spaces (offsets kept), so that braces and
/// `::` inside them are not read as code.
fn blank(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let find = |from: usize, needle: &str| {
        text.get(from..)
            .and_then(|rest| rest.find(needle))
            .map_or(b.len(), |at| from + at + needle.len())
    };
    let mut i = 0;
    while i < b.len() {
        let prev = |k: usize| i >= k && is_ident(b[i - k]);
        let end = match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => find(i, "\n"),
            b'/' if b.get(i + 1) == Some(&b'*') => find(i + 2, "*/"),
            // r"…", r#"…"#, br"…"
            b'r' if !prev(1) || (b[i - 1] == b'b' && !prev(2)) => {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                find(i + 2 + hashes, &format!("\"{}", "#".repeat(hashes)))
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                j + 1
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => find(i + 3, "'"),
            b'\'' => {
                let len = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                if b.get(i + 1 + len) == Some(&b'\'') {
                    i + 2 + len
                } else {
                    i + 1 // a lifetime
                }
            }
            _ => {
                i += 1;
                continue;
            }
        };
        for c in &mut out[i..end.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        i = end;
    }
    out
}

/// Offsets where the keyword `word` starts (not part of a longer name or a path).
fn keyword_at(code: &[u8], word: &str) -> Vec<usize> {
    let w = word.as_bytes();
    (0..code.len().saturating_sub(w.len()))
        .filter(|&at| {
            code[at..].starts_with(w)
                && (at == 0 || !(is_ident(code[at - 1]) || code[at - 1] == b':'))
                && code
                    .get(at + w.len())
                    .is_some_and(|c| !is_ident(*c) && *c != b':')
        })
        .collect()
}

/// A `use` tree (`super::{a, b::{self, C}}`, whitespace removed, `as` written `@`) as
/// (path, bound name) pairs.
fn use_tree(prefix: &[String], tree: &str, out: &mut Vec<(Vec<String>, String)>) {
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (at, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&tree[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..]);
    for item in items.into_iter().filter(|i| !i.is_empty()) {
        if let Some(open) = item.find('{') {
            let mut path = prefix.to_vec();
            path.extend(
                item[..open]
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            use_tree(&path, &item[open + 1..item.len() - 1], out);
            continue;
        }
        let (item, alias) = item.split_once('@').unwrap_or((item, ""));
        let mut path = prefix.to_vec();
        path.extend(item.split("::").map(str::to_owned));
        if path.last().is_some_and(|l| l == "self") {
            path.pop();
        }
        let bound = match (alias, path.last()) {
            ("", Some(last)) => last.clone(),
            _ => alias.to_owned(),
        };
        out.push((path, bound));
    }
}

fn file_nodes() -> Vec<FileNode> {
    sources()
        .into_iter()
        .filter(|s| s.path != "main.rs")
        .map(|s| {
            let mut module: Vec<String> = s
                .path
                .trim_end_matches(".rs")
                .split('/')
                .map(str::to_owned)
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            let mut code = blank(&s.text);
            // Inline `mod name { … }` blocks give `super::` in them one level more.
            let inline: Vec<(usize, usize, String)> = keyword_at(&code, "mod")
                .into_iter()
                .filter_map(|at| {
                    let text = std::str::from_utf8(&code[at + 3..]).ok()?;
                    let name = text.split_whitespace().next()?.trim_end_matches('{');
                    let open = at + 3 + text.find(['{', ';'])?;
                    let mut depth = 0;
                    let close = code[open..].iter().position(|c| {
                        depth += i32::from(*c == b'{') - i32::from(*c == b'}');
                        depth == 0
                    })?;
                    (code[open] == b'{').then(|| (open, open + close, name.to_owned()))
                })
                .collect();
            let scope_at = |at: usize| {
                let mut scope = module.clone();
                scope.extend(
                    inline
                        .iter()
                        .filter(|(open, close, _)| (*open..*close).contains(&at))
                        .map(|(_, _, name)| name.clone()),
                );
                scope
            };
            let mut trees = Vec::new();
            for at in keyword_at(&code, "use") {
                let end = code[at..]
                    .iter()
                    .position(|c| *c == b';')
                    .map_or(code.len(), |e| at + e);
                let tree = String::from_utf8_lossy(&code[at + 3..end]).replace(" as ", "@");
                let before = String::from_utf8_lossy(&code[at.saturating_sub(16)..at]);
                let before = before.trim_end();
                let public = before.ends_with("pub") || before.ends_with("pub(crate)");
                trees.push((
                    scope_at(at),
                    public,
                    tree.split_whitespace().collect::<String>(),
                ));
                code[at..end].fill(b' ');
            }
            // What is left is the code that uses names: paths in it, and re-exported names.
            let body = String::from_utf8_lossy(&code).into_owned();
            let words: BTreeSet<&str> = body
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .collect();
            let mut named = Vec::new();
            let mut reexports = Vec::new();
            for (scope, public, tree) in trees {
                let mut paths = Vec::new();
                use_tree(&[], &tree, &mut paths);
                for (path, bound) in paths {
                    let is_reexport = public && scope == module;
                    if is_reexport {
                        reexports.push((
                            bound.clone(),
                            Named {
                                scope: scope.clone(),
                                path: path.clone(),
                            },
                        ));
                    }
                    // A re-export used by the file itself is a use too (globs: see below).
                    if !is_reexport || bound == "*" || words.contains(bound.as_str()) {
                        named.push(Named {
                            scope: scope.clone(),
                            path,
                        });
                    }
                }
            }
            let b = body.as_bytes();
            for at in 0..b.len() {
                let starts = is_ident(b[at])
                    && (at == 0 || !(is_ident(b[at - 1]) || matches!(b[at - 1], b':' | b'$')));
                if !starts {
                    continue;
                }
                let path: Vec<String> = body[at..]
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or_default()
                    .split("::")
                    .take_while(|seg| !seg.is_empty())
                    .map(str::to_owned)
                    .collect();
                if path.len() > 1 {
                    named.push(Named {
                        scope: scope_at(at),
                        path,
                    });
                }
            }
            let pub_names = keyword_at(&code, "pub")
                .into_iter()
                .filter(|at| scope_at(*at) == module)
                .filter_map(|at| {
                    let mut rest = body[at + 3..]
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .filter(|w| !w.is_empty() && *w != "crate" && *w != "async");
                    let kind = rest.next()?;
                    let name = rest.next()?;
                    [
                        "struct", "enum", "fn", "const", "static", "type", "trait", "mod",
                    ]
                    .contains(&kind)
                    .then(|| name.to_owned())
                })
                .collect();
            FileNode {
                path: s.path,
                module,
                named,
                reexports,
                pub_names,
            }
        })
        .collect()
}

/// The file a path names an item of, following re-exports to where the item is defined.
fn target_file<'a>(
    named: &Named,
    files: &'a BTreeMap<Vec<String>, FileNode>,
    hops: usize,
) -> Option<&'a FileNode> {
    let (first, rest) = named.path.split_first()?;
    let mut absolute = match first.as_str() {
        "crate" => Vec::new(),
        "self" => named.scope.clone(),
        "super" => {
            let up = 1 + rest.iter().take_while(|s| *s == "super").count();
            named.scope[..named.scope.len().checked_sub(up)?].to_vec()
        }
        // A child module of the scope, written without `self::`.
        child => {
            let mut path = named.scope.clone();
            path.push(child.to_owned());
            files.contains_key(&path).then_some(())?;
            named.scope.clone()
        }
    };
    absolute.extend(
        named.path[usize::from(first != "crate" && first != "self" && first != "super")..]
            .iter()
            .filter(|s| *s != "super" && *s != "crate" && *s != "self")
            .cloned(),
    );
    let (file, remainder) = (1..=absolute.len())
        .rev()
        .find_map(|n| Some((files.get(&absolute[..n])?, &absolute[n..])))?;
    let Some(item) = remainder.first() else {
        return Some(file);
    };
    for (bound, source) in &file.reexports {
        let through = if bound == "*" {
            let glob = Named {
                scope: source.scope.clone(),
                path: source.path[..source.path.len() - 1].to_vec(),
            };
            target_file(&glob, files, hops + 1)
                .filter(|f| f.pub_names.contains(item))
                .map(|_| glob)
        } else {
            (bound == item).then(|| Named {
                scope: source.scope.clone(),
                path: source.path.clone(),
            })
        };
        if let Some(mut through) = through.filter(|_| hops < 8) {
            through.path.extend(remainder[1..].iter().cloned());
            if let Some(found) = target_file(&through, files, hops + 1) {
                return Some(found);
            }
        }
    }
    Some(file)
}

#[test]
fn no_import_cycle_between_files() {
    let files: BTreeMap<Vec<String>, FileNode> = file_nodes()
        .into_iter()
        .map(|f| (f.module.clone(), f))
        .collect();
    // File → (file it uses → one path that shows it).
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files.values() {
        let edges = graph.entry(file.module.join("::")).or_default();
        for named in &file.named {
            let Some(target) = target_file(named, &files, 0) else {
                continue;
            };
            let (from, to) = (file.module.join("::"), target.module.join("::"));
            if to != from && !ALLOWED_FILE_EDGES.contains(&(from.as_str(), to.as_str())) {
                edges
                    .entry(to)
                    .or_insert_with(|| format!("{}: {}", file.path, named.path.join("::")));
            }
        }
    }
    let reach = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.to_owned()];
        while let Some(node) = todo.pop() {
            for next in graph.get(&node).into_iter().flat_map(BTreeMap::keys) {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|node| (node, reach(node))).collect();
    // A file that reaches itself is on a cycle; its cycle is the files it reaches that reach it.
    let mut reported = BTreeSet::new();
    let mut cycles = Vec::new();
    for (node, seen) in &reached {
        if !seen.contains(*node) || reported.contains(*node) {
            continue;
        }
        let members: BTreeSet<&String> = seen
            .iter()
            .filter(|other| reached.get(other).is_some_and(|r| r.contains(*node)))
            .collect();
        let evidence: Vec<String> = members
            .iter()
            .flat_map(|from| {
                graph[*from]
                    .iter()
                    .filter(|(to, _)| members.contains(to))
                    .map(move |(to, why)| format!("    {from} → {to} ({why})"))
            })
            .collect();
        cycles.push(format!(
            "{}:\n{}",
            members
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(" ⇄ "),
            evidence.join("\n")
        ));
        reported.extend(members.into_iter().cloned());
    }
    assert!(
        cycles.is_empty(),
        "import cycles between files:\n{}",
        cycles.join("\n")
    );
}
