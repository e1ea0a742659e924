//! What the interruption trials and the secret-leak tests share: shortened copies of the shipped
//! lab scenarios, a per-run directory (runbook copy, reports, captured output), running the
//! binary with a per-run environment marker, and the /proc scan that finds processes left
//! behind by that run.

#![allow(dead_code)] // Each test file uses a different subset.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use drillbook::report::model::Report;

/// The crate root (scenarios, docs).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes `dir/<file_name>`: the shipped scenario `shipped` (relative to the crate root) with
/// each `(from, to)` text edit applied. Every `from` must occur exactly once, so a change to the
/// shipped file fails here loudly instead of silently producing a different drill.
pub fn derive_scenario(
    shipped: &str,
    edits: &[(&str, &str)],
    dir: &Path,
    file_name: &str,
) -> PathBuf {
    let mut text = std::fs::read_to_string(root().join(shipped))
        .unwrap_or_else(|e| panic!("read {shipped}: {e}"));
    for (from, to) in edits {
        let found = text.matches(from).count();
        assert_eq!(
            found, 1,
            "`{from}` occurs {found} times in {shipped}; the trial edits need updating"
        );
        text = text.replacen(from, to, 1);
    }
    let path = dir.join(file_name);
    std::fs::write(&path, text).expect("write the derived scenario");
    path
}

/// One run's private directory: a copy of the runbook for the drill-log row, the report
/// parent directory, and files capturing the binary's stdout and stderr.
pub struct RunDir {
    dir: tempfile::TempDir,
    /// Inherited by every process of the run; found again by [`RunDir::survivors`].
    pub marker: String,
}

impl RunDir {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(
            root().join("docs/RUNBOOK.md"),
            dir.path().join("RUNBOOK.md"),
        )
        .expect("copy the runbook");
        let marker = format!("drillbook-test-{}", rand::random::<u64>());
        Self { dir, marker }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn runbook_path(&self) -> PathBuf {
        self.path().join("RUNBOOK.md")
    }

    pub fn reports_path(&self) -> PathBuf {
        self.path().join("reports")
    }

    /// `drillbook <global...> run <scenario> --report-dir .. --drill-log .. --seed ..`, with the
    /// marker in its environment and stdout/stderr going to `stdout.txt`/`stderr.txt` here
    /// (files, not pipes: a signalled run must never block on a full pipe).
    pub fn run_command(&self, global: &[&str], scenario: &Path, seed: u64) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_drillbook"));
        command
            .args(global)
            .arg("run")
            .arg(scenario)
            .arg("--report-dir")
            .arg(self.reports_path())
            .arg("--drill-log")
            .arg(self.runbook_path())
            .args(["--seed", &seed.to_string(), "--operator", "trials-test"]);
        self.prepare(&mut command);
        command
    }

    /// Marker, no `RUST_LOG`, null stdin, stdout/stderr captured to files in this directory.
    pub fn prepare(&self, command: &mut Command) {
        let create = |name: &str| {
            std::fs::File::create(self.path().join(name)).expect("create an output capture file")
        };
        command
            .env("DRILLBOOK_TEST_MARKER", &self.marker)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(create("stdout.txt"))
            .stderr(create("stderr.txt"));
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.path().join("stdout.txt")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.path().join("stderr.txt")).unwrap_or_default()
    }

    /// The one report directory of this run, if the run wrote one.
    pub fn report_dir(&self) -> Result<PathBuf, String> {
        let entries = std::fs::read_dir(self.reports_path())
            .map_err(|e| format!("no report directory: {e}"))?;
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        match dirs.len() {
            1 => Ok(dirs.remove(0)),
            n => Err(format!(
                "expected one report directory, found {n}: {dirs:?}"
            )),
        }
    }

    pub fn report(&self) -> Result<Report, String> {
        let path = self.report_dir()?.join("report.json");
        drillbook::report::load(&path).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn runbook(&self) -> String {
        std::fs::read_to_string(self.runbook_path()).expect("read the runbook copy")
    }

    /// Processes still alive (zombies excluded) that inherited this run's marker.
    pub fn survivors(&self) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let path = entry.path();
            let Some(pid) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // Processes that exited meanwhile, or that are not ours to read, are skipped.
            let Ok(environ) = std::fs::read(path.join("environ")) else {
                continue;
            };
            if !environ
                .windows(self.marker.len())
                .any(|w| w == self.marker.as_bytes())
            {
                continue;
            }
            let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'));
            if zombie {
                continue;
            }
            let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
        found
    }

    /// Waits (bounded) for every marked process to be gone; the survivors otherwise.
    pub fn no_survivors(&self) -> Result<(), String> {
        // Children get a moment to be reaped after drillbook exits.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let survivors = self.survivors();
            if survivors.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                kill_all(&survivors);
                return Err(format!("processes left behind: {survivors:#?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// SIGKILLs the `pid: cmdline` entries found by a scan, so one failed trial does not leave
/// load on the machine for the next ones.
fn kill_all(survivors: &[String]) {
    for line in survivors {
        if let Some(pid) = line.split(':').next().and_then(|p| p.parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Waits for `child` at most `timeout`; SIGKILLs and reaps it after that.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> Result<ExitStatus, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("drillbook did not exit within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last `lines` lines of `text`, for failure messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
