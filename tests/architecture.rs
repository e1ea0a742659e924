//! The dependency rules of ARCHITECTURE.md, checked on the source: which module may name
//! which (`crate::…` paths), that no two modules depend on each other in a cycle, and that
//! clap, anyhow and printing stay at the command-line edge (`src/cmd/`). The lab (`src/lab/`)
//! is a set of standalone programs with an edge of its own and is exempt from the edge rules.

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
    ("report", &["load", "exit", "support"]),
    ("scenario", &["units"]),
    ("drill_log", &["report"]),
    ("checks", &["scenario", "report", "units"]),
    (
        "targets",
        &["scenario", "report", "support", "units", "telemetry"],
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
            "units",
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

/// Modules that may use clap, anyhow and print to stdout/stderr.
const EDGES: &[&str] = &["cmd", "lab"];

struct Source {
    /// `src/`-relative path.
    path: String,
    /// The top-level module (`engine`, `targets`, …; `main` and `lib` for the crate roots).
    module: String,
    /// The code without comment lines.
    code: String,
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
            Source { path, module, code }
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
        if EDGES.contains(&s.module.as_str()) || s.module == "main" {
            continue;
        }
        for needle in edge_only {
            if s.code.contains(needle) {
                broken.push(format!("{}: `{needle}` outside src/cmd/", s.path));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
