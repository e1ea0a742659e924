//! A lab drill run through the real binary in its own [`RunDir`] (runbook copy, reports,
//! marker), with the binary's output piped back for the test to read.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use drillbook::report::model::Report;

use super::cli;
use super::trial::{RunDir, derive_scenario, root};

pub struct Drill {
    run: RunDir,
}

impl Drill {
    pub fn new() -> Self {
        Self { run: RunDir::new() }
    }

    /// The drill's scratch folder.
    pub fn path(&self) -> &Path {
        self.run.path()
    }

    pub fn command(&self, scenario: &str) -> cli::Drillbook {
        self.command_at(&root().join("scenarios/lab").join(scenario))
    }

    /// `drillbook run` of a scenario file anywhere (a variant written by the test).
    pub fn command_at(&self, scenario: &Path) -> cli::Drillbook {
        let mut command = cli::drillbook();
        command
            .arg("run")
            .arg(scenario)
            .arg("--report-dir")
            .arg(self.run.reports_path())
            .arg("--drill-log")
            .arg(self.run.runbook_path())
            .args(["--operator", "lab-drills-test"])
            .env("DRILLBOOK_TEST_MARKER", &self.run.marker)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    pub fn run(&self, scenario: &str) -> (Output, Report) {
        let output = self.command(scenario).output();
        (output, self.report())
    }

    pub fn report_dir(&self) -> std::path::PathBuf {
        self.run.report_dir().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn report(&self) -> Report {
        self.run.report().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn runbook(&self) -> String {
        self.run.runbook()
    }

    /// Processes still alive that inherited this test's marker (zombies excluded).
    pub fn survivors(&self) -> Vec<String> {
        self.run.survivors()
    }

    /// Runs `scenarios/lab/BASE` with `replace` applied (each must occur once), written in
    /// the drill's folder as `name`; the drill log still goes to `--drill-log`.
    pub fn run_variant(&self, base: &str, name: &str, replace: &[(&str, &str)]) -> Output {
        // The runbook path is relative to the original's folder; `--drill-log` names the copy.
        let mut edits = vec![("runbook: ../../docs/RUNBOOK.md\n", "")];
        edits.extend_from_slice(replace);
        let shipped = format!("scenarios/lab/{base}");
        let path = derive_scenario(&shipped, &edits, self.path(), name);
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
