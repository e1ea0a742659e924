//! A lab drill run through the real binary in a scratch folder: its reports, its drill log,
//! and the processes it must not leave behind (each child inherits a per-test marker).

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use drillbook::report::model::Report;

use super::cli;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Drill {
    pub dir: tempfile::TempDir,
    pub marker: String,
}

impl Drill {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(
            root().join("docs/RUNBOOK.md"),
            dir.path().join("RUNBOOK.md"),
        )
        .expect("copy runbook");
        let marker = format!("drillbook-test-{}", rand::random::<u64>());
        Self { dir, marker }
    }

    pub fn command(&self, scenario: &str) -> cli::Drillbook {
        self.command_at(&root().join("scenarios/lab").join(scenario))
    }

    /// `drillbook run` of a scenario file anywhere (a variant written by the test).
    pub fn command_at(&self, scenario: &std::path::Path) -> cli::Drillbook {
        let mut command = cli::drillbook();
        command
            .arg("run")
            .arg(scenario)
            .arg("--report-dir")
            .arg(self.dir.path().join("reports"))
            .arg("--drill-log")
            .arg(self.dir.path().join("RUNBOOK.md"))
            .args(["--operator", "lab-drills-test"])
            .env("DRILLBOOK_TEST_MARKER", &self.marker)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    pub fn run(&self, scenario: &str) -> (Output, Report) {
        let output = self.command(scenario).output();
        (output, self.report())
    }

    pub fn report_dir(&self) -> PathBuf {
        let reports = self.dir.path().join("reports");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&reports)
            .expect("reports dir")
            .map(|e| e.expect("entry").path())
            // Beside the run folders: the history index (`history.ndjson`).
            .filter(|p| p.is_dir())
            .collect();
        assert_eq!(dirs.len(), 1, "one report directory per run: {dirs:?}");
        dirs.remove(0)
    }

    pub fn report(&self) -> Report {
        drillbook::report::load(&self.report_dir().join("report.json")).expect("report.json parses")
    }

    pub fn runbook(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("RUNBOOK.md")).expect("runbook")
    }

    /// Processes still alive that inherited this test's marker (zombies excluded).
    pub fn survivors(&self) -> Vec<String> {
        super::trial::marked_processes(&self.marker)
    }

    /// Runs `scenarios/lab/BASE` with `replace` applied (each must match), written next to
    /// the drill's runbook as `name`; the drill log still goes to `--drill-log`.
    pub fn run_variant(&self, base: &str, name: &str, replace: &[(&str, &str)]) -> Output {
        let mut source = std::fs::read_to_string(root().join("scenarios/lab").join(base))
            .unwrap_or_else(|e| panic!("read {base}: {e}"));
        for (from, to) in replace {
            assert!(source.contains(from), "`{from}` is in {base}");
            source = source.replace(from, to);
        }
        // The runbook path is relative to the original's folder; `--drill-log` names the copy.
        let source = source.replace("runbook: ../../docs/RUNBOOK.md\n", "");
        let path = self.dir.path().join(name);
        std::fs::write(&path, source).expect("write the variant");
        self.command_at(&path).output()
    }

    pub fn assert_no_survivors(&self) {
        // Children get a moment to be reaped after drillbook exits.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let survivors = self.survivors();
            if survivors.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "processes left behind: {survivors:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn check<'a>(report: &'a Report, name: &str) -> &'a drillbook::report::model::CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}"))
}
