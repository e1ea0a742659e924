//! Issue #24 on the box: three runs of a drill stored in the cluster as scheduled runs store
//! theirs (`run --store-results`), the third made slower by its `outage` pause; `collect`
//! fetches them, `history` shows the trend and flags exactly the slow run, and the drill's own
//! `regression` check fails it. The table, Markdown and chart are kept under
//! `reports/box-history/` for the closing note.

use std::path::{Path, PathBuf};

use crate::common;
use common::boxed::{drillbook, kubeconfig as box_kubeconfig, kubectl};
use common::cli::Ran;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const SCENARIO: &str = "box-history-trend";

/// Deletes this test's stored results, before (an earlier failed run's) and on every exit.
struct Results(PathBuf);

impl Results {
    fn delete(&self) {
        let _ = kubectl(
            &self.0,
            &[
                "-n",
                "tracebloc",
                "delete",
                "configmaps",
                "-l",
                &format!("drillbook.dev/scenario={SCENARIO}"),
                "--ignore-not-found",
            ],
        );
    }
}

impl Drop for Results {
    fn drop(&mut self) {
        self.delete();
    }
}

#[test]
fn three_collected_runs_show_the_trend_and_flag_exactly_the_slow_one() {
    let Some(kubeconfig) = box_kubeconfig() else {
        return;
    };
    let results = Results(kubeconfig.clone());
    results.delete();
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let local = dir.path().join("local");
    let run = |outage: &str| {
        drillbook(&kubeconfig, &state)
            .current_dir(REPO)
            .args(["-q", "run", "scenarios/box/history-trend.yaml"])
            .args(["--var", &format!("outage={outage}")])
            .arg("--report-dir")
            .arg(&local)
            .args([
                "--no-drill-log",
                "--store-results",
                "--operator",
                "box-tests",
            ])
            .output()
    };
    // Too few earlier runs: inconclusive (3), twice; then the slow one fails its check (1).
    let first = run("1s");
    first.assert_code(3);
    run("1s").assert_code(3);
    let plan = drillbook(&kubeconfig, &state)
        .current_dir(REPO)
        .args([
            "plan",
            "--offline",
            "scenarios/box/history-trend.yaml",
            "--report-dir",
        ])
        .arg(&local)
        .output();
    assert!(
        plan.stdout_str()
            .contains("`not-slower-than-usual`: baseline from 2 earlier passing run(s)"),
        "{}",
        plan.stdout_str()
    );
    let slow = run("14s");
    slow.assert_code(1);
    assert!(
        slow.stdout_str().contains("not-slower-than-usual"),
        "{}",
        slow.stdout_str()
    );

    let collected = dir.path().join("collected");
    let runbook = dir.path().join("RUNBOOK.md");
    std::fs::copy(Path::new(REPO).join("docs/RUNBOOK.box.md"), &runbook).expect("runbook");
    let collect = drillbook(&kubeconfig, &state)
        .args(["collect", "--context", "box", "--namespace", "tracebloc"])
        .args(["--scenario", SCENARIO, "--drill-log"])
        .arg(&runbook)
        .arg("--report-dir")
        .arg(&collected)
        .output();
    collect.assert_code(0);
    assert!(
        collect
            .stdout_str()
            .contains("collected 3 stored result(s)"),
        "{}",
        collect.stdout_str()
    );

    let history = |args: &[&str]| {
        drillbook(&kubeconfig, &state)
            .arg("history")
            .arg("--report-dir")
            .arg(&collected)
            .args(["--min-runs", "2"])
            .args(args)
            .output()
    };
    let table = history(&[]);
    table.assert_code(0);
    let text = table.stdout_str();
    assert!(
        text.contains("scenario `box-history-trend` on box/tracebloc: 3 run(s)"),
        "{text}"
    );
    let flagged: Vec<&str> = text.lines().filter(|l| l.contains("REGRESSION")).collect();
    assert_eq!(flagged.len(), 1, "{text}");
    let slow_id = std::fs::read_dir(&collected)
        .expect("collected")
        .filter_map(Result::ok)
        .map(|e| e.path().join("report.json"))
        .filter(|p| p.exists())
        .map(|p| drillbook::report::load(&p).expect("report"))
        .max_by_key(|r| r.started_at)
        .expect("runs")
        .run_id;
    assert!(flagged[0].contains(&slow_id), "{text}");
    assert!(
        text.contains("14.0s"),
        "the slow run's time to recover: {text}"
    );
    history(&["--fail-on-regression"]).assert_code(1);

    // Kept for the closing note (reports/ is git-ignored scratch space): the collected runs,
    // and their history rendered from there, so its links and chart stay valid.
    let keep = Path::new(REPO).join("reports/box-history");
    let _ = std::fs::remove_dir_all(&keep);
    for entry in std::fs::read_dir(&collected).expect("collected").flatten() {
        if !entry.path().join("report.json").exists() {
            continue;
        }
        let run = keep.join(entry.file_name());
        std::fs::create_dir_all(&run).expect("mkdir");
        for file in std::fs::read_dir(entry.path())
            .expect("run folder")
            .flatten()
        {
            std::fs::copy(file.path(), run.join(file.file_name())).expect("keep a report file");
        }
    }
    let kept = |format: &str, file: &str| {
        let out = drillbook(&kubeconfig, &state)
            .arg("history")
            .arg("--report-dir")
            .arg(&keep)
            .args(["--min-runs", "2", "--format", format, "-o"])
            .arg(keep.join(file))
            .output();
        out.assert_code(0);
    };
    kept("table", "history.txt");
    kept("md", "history.md");
    assert!(
        keep.join("trends/box-history-trend--box--tracebloc.svg")
            .exists()
    );
}
