//! Drill log appends against real files: column mapping, byte preservation, idempotence,
//! locking under concurrency, and operator resolution.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use drillbook::drill_log::{
    AppendOutcome, DrillLogEntry, DrillLogError, Lookup, append, append_to_document,
    resolve_operator, resolve_operator_in,
};

fn entry(run_id: &str) -> DrillLogEntry {
    DrillLogEntry {
        run_id: run_id.to_owned(),
        date: "2026-11-22".to_owned(),
        scenario: "proxy-restart".to_owned(),
        verdict: "pass".to_owned(),
        operator: "Dana".to_owned(),
        notes: "All 4 checks passed.".to_owned(),
        report_link: Some("reports/2026-11-22-proxy-restart-ab12cd34/report.md".to_owned()),
    }
}

fn runbook(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("runbook.md");
    std::fs::write(&path, text).unwrap();
    path
}

const RUNBOOK: &str = "\
# Requests proxy runbook

## Contacts

| Team | Channel |
|------|---------|
| platform | #platform |

## Drill log

| Date | Action | Result | Who | Notes |
|------|--------|--------|-----|-------|
| pending | initial migration | | | |

## Rollback

| Step | Command |
| --- | --- |
| 1 | helm rollback |
";

#[test]
fn appends_one_row_mapped_by_header_and_keeps_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = runbook(dir.path(), RUNBOOK);
    assert_eq!(
        append(&path, &entry("ab12cd34")).unwrap(),
        AppendOutcome::Appended
    );
    let expected = RUNBOOK.replace(
        "| pending | initial migration | | | |\n",
        "| pending | initial migration | | | |\n\
         | 2026-11-22 | proxy-restart | pass | Dana | All 4 checks passed.; \
         [report](reports/2026-11-22-proxy-restart-ab12cd34/report.md); run ab12cd34 |\n",
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
}

#[test]
fn same_run_id_twice_is_one_row_and_leaves_the_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = runbook(dir.path(), RUNBOOK);
    assert_eq!(
        append(&path, &entry("ab12cd34")).unwrap(),
        AppendOutcome::Appended
    );
    let after_first = std::fs::read(&path).unwrap();
    let mut again = entry("ab12cd34");
    again.verdict = "fail".to_owned();
    assert_eq!(
        append(&path, &again).unwrap(),
        AppendOutcome::AlreadyPresent
    );
    assert_eq!(std::fs::read(&path).unwrap(), after_first);
    // A run id that merely contains the first one is a different run.
    assert_eq!(
        append(&path, &entry("ab12cd345")).unwrap(),
        AppendOutcome::Appended
    );
}

#[test]
fn crlf_line_endings_are_preserved() {
    let dir = tempfile::tempdir().unwrap();
    let crlf = RUNBOOK.replace('\n', "\r\n");
    let path = runbook(dir.path(), &crlf);
    append(&path, &entry("ab12cd34")).unwrap();
    let out = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        out.matches('\n').count(),
        out.matches("\r\n").count(),
        "bare LF written"
    );
    assert_eq!(out.lines().count(), crlf.lines().count() + 1);
    assert!(out.contains("| pending | initial migration | | | |\r\n| 2026-11-22 |"));
}

#[test]
fn missing_final_newline_stays_missing() {
    let dir = tempfile::tempdir().unwrap();
    let text = "## Drill log\n\n| Date | Drill |\n|---|---|\n| 2026-01-01 | old |";
    let path = runbook(dir.path(), text);
    append(&path, &entry("ab12cd34")).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!(
            "{text}\n| 2026-11-22 | proxy-restart; All 4 checks passed.; [report](reports/2026-11-22-proxy-restart-ab12cd34/report.md); run ab12cd34 |"
        )
    );
}

#[test]
fn creates_the_section_at_the_end_when_there_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let text = "# Runbook\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
    let path = runbook(dir.path(), text);
    assert_eq!(
        append(&path, &entry("ab12cd34")).unwrap(),
        AppendOutcome::CreatedSection
    );
    let out = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        out,
        format!(
            "{text}\n## Drill log\n\n| Date | Scenario | Verdict | Operator | Run | Notes |\n\
             | --- | --- | --- | --- | --- | --- |\n\
             | 2026-11-22 | proxy-restart | pass | Dana | ab12cd34 | All 4 checks passed.; \
             [report](reports/2026-11-22-proxy-restart-ab12cd34/report.md) |\n"
        )
    );
    // The next run finds the new table and the Run column.
    assert_eq!(
        append(&path, &entry("ab12cd34")).unwrap(),
        AppendOutcome::AlreadyPresent
    );
    assert_eq!(
        append(&path, &entry("ffff0000")).unwrap(),
        AppendOutcome::Appended
    );
}

#[test]
fn heading_without_table_gets_one_inside_its_section() {
    let text = "# Runbook\n## Drill log\nNothing yet.\n## Rollback\nflip the flag\n";
    let (out, outcome) = append_to_document(text, &entry("ab12cd34"));
    assert_eq!(outcome, AppendOutcome::CreatedSection);
    let table_at = out.find("| Date | Scenario |").unwrap();
    assert!(table_at > out.find("Nothing yet.").unwrap());
    assert!(table_at < out.find("## Rollback").unwrap());
    assert!(out.ends_with("\n\n## Rollback\nflip the flag\n"));
}

#[test]
fn columns_are_matched_by_name_case_insensitively_and_unknown_ones_stay_empty() {
    let text = "### DRILL LOG\n\
                | run id | scenario | VERDICT | Operator | Ticket | Comment | Report link |\n\
                | :--- | --- | :---: | --- | --- | --- | ---: |\n";
    let (out, outcome) = append_to_document(text, &entry("ab12cd34"));
    assert_eq!(outcome, AppendOutcome::Appended);
    assert_eq!(
        out.lines().last().unwrap(),
        "| ab12cd34 | proxy-restart | pass | Dana |  | All 4 checks passed. | \
         [report](reports/2026-11-22-proxy-restart-ab12cd34/report.md) |"
    );
}

#[test]
fn pipes_in_cell_text_are_escaped() {
    let mut e = entry("ab12cd34");
    e.operator = "sam | platform".to_owned();
    e.notes = "401 | 403\nseen".to_owned();
    e.report_link = None;
    let (out, _) = append_to_document(RUNBOOK, &e);
    assert!(
        out.contains("| sam \\| platform | 401 \\| 403 seen; run ab12cd34 |"),
        "{out}"
    );
}

#[test]
fn headings_and_tables_inside_code_fences_are_ignored() {
    let text =
        "# Runbook\n\n```markdown\n## Drill log\n| Date | Result |\n|---|---|\n```\n\nEnd.\n";
    let (out, outcome) = append_to_document(text, &entry("ab12cd34"));
    assert_eq!(outcome, AppendOutcome::CreatedSection);
    assert!(out.starts_with(text));
    assert!(out[text.len()..].starts_with("\n## Drill log\n"));
}

#[test]
fn setext_heading_and_table_without_outer_pipes() {
    let text = "Drill log\n---------\n\nDate | Result\n-----|-------\nx | y\n\nAfter.\n";
    let (out, outcome) = append_to_document(text, &entry("ab12cd34"));
    assert_eq!(outcome, AppendOutcome::Appended);
    // Without a Run, Notes or Link column the run id goes into the last column (idempotence).
    assert_eq!(
        out,
        text.replace(
            "x | y\n",
            "x | y\n2026-11-22 | pass; All 4 checks passed.; \
             [report](reports/2026-11-22-proxy-restart-ab12cd34/report.md); run ab12cd34\n"
        )
    );
}

#[test]
fn run_id_lands_in_the_last_column_when_there_is_no_notes_or_run_column() {
    let text = "## Drill log\n| Date | Result |\n|---|---|\n";
    let (out, _) = append_to_document(text, &entry("ab12cd34"));
    assert!(out.ends_with(
        "| 2026-11-22 | pass; All 4 checks passed.; [report](reports/2026-11-22-proxy-restart-ab12cd34/report.md); run ab12cd34 |\n"
    ));
    let (again, outcome) = append_to_document(&out, &entry("ab12cd34"));
    assert_eq!(outcome, AppendOutcome::AlreadyPresent);
    assert_eq!(again, out);
}

#[test]
fn eight_concurrent_appenders_lose_no_row() {
    for start in [RUNBOOK, "# Empty runbook\n"] {
        let dir = tempfile::tempdir().unwrap();
        let path = runbook(dir.path(), start);
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    append(&path, &entry(&format!("cafe000{i}"))).unwrap()
                })
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let out = std::fs::read_to_string(&path).unwrap();
        for i in 0..8 {
            assert_eq!(
                out.matches(&format!("cafe000{i}")).count(),
                1,
                "run {i} in {out}"
            );
        }
        assert_eq!(out.matches("## Drill log").count(), 1);
        let created = outcomes
            .iter()
            .filter(|o| **o == AppendOutcome::CreatedSection)
            .count();
        assert_eq!(created, usize::from(start != RUNBOOK), "{outcomes:?}");
        if start == RUNBOOK {
            assert!(out.starts_with(&RUNBOOK[..RUNBOOK.find("| pending").unwrap()]));
            assert!(out.ends_with(&RUNBOOK[RUNBOOK.find("\n## Rollback").unwrap()..]));
        } else {
            assert!(out.starts_with(start));
        }
        assert!(!dir.path().join(".runbook.md.lock").exists());
    }
}

#[test]
fn same_run_id_from_two_threads_is_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = runbook(dir.path(), RUNBOOK);
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (path, barrier) = (path.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                append(&path, &entry("ab12cd34")).unwrap()
            })
        })
        .collect();
    let mut outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        [AppendOutcome::AlreadyPresent, AppendOutcome::Appended]
    );
    let out = std::fs::read_to_string(&path).unwrap();
    assert_eq!(out.matches("run ab12cd34").count(), 1);
}

#[test]
fn errors_for_missing_file_and_empty_run_id() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-folder").join("nope.md");
    assert!(matches!(
        append(&missing, &entry("ab12cd34")),
        Err(DrillLogError::Read { .. })
    ));
    assert!(!missing.exists(), "a missing folder is not created");
    // A missing runbook in an existing folder is created with its Drill log section.
    let new = dir.path().join("NEW.md");
    assert_eq!(
        append(&new, &entry("ab12cd34")).unwrap(),
        AppendOutcome::CreatedSection
    );
    let created = std::fs::read_to_string(&new).unwrap();
    assert!(created.starts_with("## Drill log\n\n| Date |"), "{created}");
    assert!(created.contains("run ab12cd34") || created.contains("| ab12cd34 |"));
    let path = runbook(dir.path(), RUNBOOK);
    assert!(matches!(
        append(&path, &entry("  ")),
        Err(DrillLogError::EmptyRunId)
    ));
    std::fs::write(&path, b"\xff\xfe not utf-8").unwrap();
    assert!(matches!(
        append(&path, &entry("ab12cd34")),
        Err(DrillLogError::NotUtf8 { .. })
    ));
}

#[cfg(unix)]
#[test]
fn permissions_and_symlinks_survive_the_atomic_rename() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = runbook(dir.path(), RUNBOOK);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.path().join("link.md");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    append(&link, &entry("ab12cd34")).unwrap();
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("run ab12cd34")
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // No temp file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn explicit_operator_wins_and_blank_is_ignored() {
    assert_eq!(resolve_operator(Some("  Dana Ops ")), "Dana Ops");
    assert!(!resolve_operator(Some("   ")).trim().is_empty());
}

/// The operator resolved in an isolated environment: only `env`, a HOME and git
/// configuration of the test's own, outside any repository.
fn operator_in(env: &[(&str, &str)], git_config: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let global = dir.path().join("gitconfig");
    std::fs::write(&global, git_config.unwrap_or("")).unwrap();
    let home = dir.path().display().to_string();
    let mut vars: BTreeMap<String, String> = [
        ("HOME", home.as_str()),
        ("GIT_CONFIG_NOSYSTEM", "1"),
        ("GIT_CONFIG_GLOBAL", &global.display().to_string()),
        ("GIT_CEILING_DIRECTORIES", home.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(path) = std::env::var_os("PATH") {
        vars.insert("PATH".into(), path.to_string_lossy().into_owned());
    }
    vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    resolve_operator_in(
        None,
        &Lookup::Isolated {
            vars,
            dir: dir.path().to_path_buf(),
        },
    )
}

#[test]
fn operator_falls_back_from_env_to_git_to_user_to_unknown() {
    let git = Some("[user]\n\tname = Git Person\n");
    assert_eq!(
        operator_in(&[("DRILL_OPERATOR", "Env Person"), ("USER", "u")], git),
        "Env Person"
    );
    assert_eq!(operator_in(&[("USER", "u")], git), "Git Person");
    assert_eq!(operator_in(&[("USER", "login-name")], None), "login-name");
    assert_eq!(operator_in(&[], None), "unknown");
}

/// A read-only runbook owned by someone else keeps its mode and owner, and no lock file is
/// left beside it. (The owner part needs root, as on the machine where the bug was found.)
#[cfg(unix)]
#[test]
fn read_only_runbook_keeps_mode_and_owner_and_no_lock_file_is_left() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let dir = tempfile::tempdir().unwrap();
    let path = runbook(dir.path(), RUNBOOK);
    let as_root = std::fs::metadata(dir.path()).unwrap().uid() == 0;
    if as_root {
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = std::fs::metadata(&path).unwrap();
    append(&path, &entry("ab12cd34")).unwrap();
    let after = std::fs::metadata(&path).unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().contains("ab12cd34"));
    assert_eq!(after.mode() & 0o7777, 0o444);
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["runbook.md"], "only the runbook is left");
}

#[test]
fn two_drill_log_headings_are_refused_as_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    let text = "# R\n\n## Drill log\n\n| Date | Notes |\n|---|---|\n\n## Old drill log\n\n| Date | Notes |\n|---|---|\n";
    let path = runbook(dir.path(), text);
    let err = append(&path, &entry("ab12cd34")).unwrap_err();
    assert!(
        matches!(&err, DrillLogError::Ambiguous { lines, .. } if lines == &[3, 8]),
        "{err}"
    );
    assert!(err.to_string().contains("lines 3, 8"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "untouched");
}

#[test]
fn without_a_notes_column_details_go_to_the_result_cell_not_the_operator() {
    let text = "## Drill log\n\n| Date | Action | Result | Operator |\n|---|---|---|---|\n";
    let (out, _) = append_to_document(text, &entry("ab12cd34"));
    assert!(
        out.ends_with(
            "| 2026-11-22 | proxy-restart | pass; All 4 checks passed.; [report](reports/2026-11-22-proxy-restart-ab12cd34/report.md); run ab12cd34 | Dana |\n"
        ),
        "{out}"
    );
    let (again, outcome) = append_to_document(&out, &entry("ab12cd34"));
    assert_eq!(outcome, AppendOutcome::AlreadyPresent);
    assert_eq!(again, out);
    // With a Report column the link stays there and the rest goes to the Result cell.
    let text = "## Drill log\n\n| Date | Result | Report | Operator |\n|---|---|---|---|\n";
    let (out, _) = append_to_document(text, &entry("ab12cd34"));
    assert!(
        out.ends_with(
            "| 2026-11-22 | pass; All 4 checks passed.; run ab12cd34 | [report](reports/2026-11-22-proxy-restart-ab12cd34/report.md) | Dana |\n"
        ),
        "{out}"
    );
}
