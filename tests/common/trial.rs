//! What the interruption trials and the secret-leak tests share: shortened copies of the shipped
//! lab scenarios, a per-run directory (runbook copy, reports, captured output), running the
//! binary with a per-run environment marker, the /proc scan that finds processes left behind
//! by that run, and the checks every interruption trial makes (exit code against the report's
//! verdict, undos, drill-log row, a signal that came too late).

use super::cli;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use drillbook::exit::Outcome;
use drillbook::report::model::{EventKind, Report, Verdict};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

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
#[derive(Debug)]
pub struct RunDir {
    dir: tempfile::TempDir,
    /// Inherited by every process of the run; found again by [`RunDir::survivors`].
    pub marker: String,
}

impl RunDir {
    /// A fresh temporary directory with a copy of `docs/RUNBOOK.md` and a unique marker.
    // Creating one makes a directory and copies the runbook: not a `Default`.
    #[allow(clippy::new_without_default)]
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

    /// The directory itself.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The runbook copy that gets this run's drill-log row.
    pub fn runbook_path(&self) -> PathBuf {
        self.path().join("RUNBOOK.md")
    }

    /// The parent of the run's report directory (`--report-dir`).
    pub fn reports_path(&self) -> PathBuf {
        self.path().join("reports")
    }

    /// `drillbook <global...> run <scenario> --report-dir .. --drill-log .. --seed ..`, with the
    /// marker in its environment and stdout/stderr going to `stdout.txt`/`stderr.txt` here
    /// (files, not pipes: a signalled run must never block on a full pipe).
    pub fn run_command(&self, global: &[&str], scenario: &Path, seed: u64) -> cli::Drillbook {
        let mut command = cli::drillbook();
        command
            .args(global)
            .arg("run")
            .arg(scenario)
            .arg("--report-dir")
            .arg(self.reports_path())
            .arg("--drill-log")
            .arg(self.runbook_path())
            .args(["--seed", &seed.to_string(), "--operator", "trials-test"]);
        self.prepare(command.command_mut());
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

    /// What the run printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.path().join("stdout.txt")).unwrap_or_default()
    }

    /// What the run printed on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.path().join("stderr.txt")).unwrap_or_default()
    }

    /// The one report directory of this run, if the run wrote one.
    pub fn report_dir(&self) -> Result<PathBuf, String> {
        let entries = std::fs::read_dir(self.reports_path())
            .map_err(|e| format!("no report directory: {e}"))?;
        // Beside the run folders: the history index (`history.ndjson`).
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        match dirs.len() {
            1 => Ok(dirs.remove(0)),
            n => Err(format!(
                "expected one report directory, found {n}: {dirs:?}"
            )),
        }
    }

    /// The run's `report.json`, parsed.
    pub fn report(&self) -> Result<Report, String> {
        let path = self.report_dir()?.join("report.json");
        drillbook::report::load(&path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The runbook copy's text.
    pub fn runbook(&self) -> String {
        std::fs::read_to_string(self.runbook_path()).expect("read the runbook copy")
    }

    /// Processes still alive (zombies excluded) that inherited this run's marker.
    pub fn survivors(&self) -> Vec<String> {
        marked_processes(&self.marker)
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
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
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

/// The earliest moment a trial sends its signal, after spawning drillbook.
pub const EARLIEST_S: f64 = 0.2;
/// A signalled drill has this long to undo, report and exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Slack for "the signal came before the drill's work could have ended, so it must say
/// interrupted": signal delivery and drillbook's watcher task are asynchronous.
pub const LATE_SLACK_S: f64 = 1.0;
/// drillbook's delay between target readiness (`started_at`) and time zero of the timeline.
pub const START_DELAY_S: f64 = 0.3;

/// The trial generator's seed: `DRILLBOOK_TRIAL_SEED` or a random one; printed either way.
pub fn trial_seed(what: &str) -> u64 {
    let seed = std::env::var("DRILLBOOK_TRIAL_SEED")
        .ok()
        .map(|s| s.parse::<u64>().expect("DRILLBOOK_TRIAL_SEED is a u64"))
        .unwrap_or_else(rand::random);
    announce(&format!(
        "{what}: seed {seed} (replay with DRILLBOOK_TRIAL_SEED={seed})"
    ));
    seed
}

/// Printed straight to stderr: libtest captures `eprintln!`, and the seed must be seen even
/// when the test passes (to compare runs) and when it fails.
pub fn announce(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Trial `index` sends SIGINT when even, SIGTERM when odd.
pub fn alternating_signal(index: usize) -> Signal {
    if index.is_multiple_of(2) {
        Signal::SIGINT
    } else {
        Signal::SIGTERM
    }
}

/// Sends `signal` to `child`; returns when it was sent. Until the child is reaped its pid
/// cannot be reused, so this never hits another process; if drillbook already exited, the
/// signal goes to its zombie and changes nothing.
pub fn send_signal(child: &Child, signal: Signal) -> Result<jiff::Timestamp, String> {
    let pid = i32::try_from(child.id()).map_err(|e| format!("pid: {e}"))?;
    let sent = jiff::Timestamp::now();
    nix::sys::signal::kill(Pid::from_raw(pid), signal).map_err(|e| format!("kill: {e}"))?;
    Ok(sent)
}

/// How a trial ended, when all its assertions held.
#[derive(Debug)]
pub enum Landed {
    /// The report says interrupted (and every other check held).
    Interrupted,
    /// The signal came after the drill had finished its work; the normal verdict (and its
    /// reason) stands.
    AfterTheDrill(Verdict, String),
}

/// Returns `Err(what)` unless `condition` holds.
pub fn ensure(condition: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what()) }
}

/// drillbook exited by itself rather than being killed by the trial's signal (which happens
/// when the signal arrives before drillbook handles it: no report, no drill-log row).
pub fn ensure_handled(status: ExitStatus, signal: Signal) -> Result<(), String> {
    ensure(status.signal().is_none(), || {
        format!(
            "drillbook was killed by {signal:?} itself ({status}): the signal arrived before \
             drillbook handled it, so no report and no drill-log row were written"
        )
    })
}

/// The checks every trial shares once drillbook exited by itself: its exit code is its
/// report's verdict's (130 when interrupted), and the undos match. When the report does not
/// say interrupted, the signal must have been sent no earlier than `work_ends_s` after
/// `started_at` (minus slack): a signal during the drill's work that does not interrupt it
/// would be a signal ignored.
pub fn judge_trial(
    status: ExitStatus,
    report: &Report,
    undos: &UndoExpectations,
    signalled_at: jiff::Timestamp,
    work_ends_s: f64,
) -> Result<Landed, String> {
    check_exit_code(status, report)?;
    check_undos(undos, report)?;
    if report.verdict == Verdict::Interrupted {
        return Ok(Landed::Interrupted);
    }
    // Nothing in the trial scenarios may abort a drill: a failed step or a tripped guard would
    // mean the trial did not test what it meant to.
    ensure(report.verdict != Verdict::Aborted, || {
        format!("the drill aborted: {}", report.verdict_reason)
    })?;
    let work_end = seconds(report.started_at) + work_ends_s;
    let sent = seconds(signalled_at);
    ensure(sent >= work_end - LATE_SLACK_S, || {
        format!(
            "the signal was sent {:.1}s before the drill's work could have ended, yet the \
             verdict is {}",
            work_end - sent,
            report.verdict.as_str()
        )
    })?;
    Ok(Landed::AfterTheDrill(
        report.verdict,
        report.verdict_reason.clone(),
    ))
}

fn seconds(at: jiff::Timestamp) -> f64 {
    at.as_duration().as_secs_f64()
}

/// 130 when interrupted; otherwise the code of the report's own verdict.
pub fn check_exit_code(status: ExitStatus, report: &Report) -> Result<(), String> {
    let expected = i32::from(Outcome::from(report.verdict).code());
    ensure(status.code() == Some(expected), || {
        format!(
            "exit {status} but the report's verdict is {} (exit code {expected})",
            report.verdict.as_str()
        )
    })
}

/// What a scenario's undos must look like in its report.
#[derive(Debug, Clone, Default)]
pub struct UndoExpectations {
    /// Names of the steps whose action registers an undo.
    pub steps: Vec<String>,
    /// Texts the undo of a step must mention (`KEY=initial`, `back to 2 replicas`), by step.
    pub restores: BTreeMap<String, Vec<String>>,
}

/// Every undoable step that started has exactly one undo event, with outcome ok and
/// mentioning what it restores; nothing else was undone.
pub fn check_undos(expected: &UndoExpectations, report: &Report) -> Result<(), String> {
    let started: Vec<&str> = report
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Fault | EventKind::Step))
        .filter_map(|e| e.step.as_deref())
        .filter(|step| expected.steps.iter().any(|s| s == step))
        .collect();
    let undos: Vec<_> = report
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Undo)
        .collect();
    let describe = || format!("steps started: {started:?}\nundo events: {undos:#?}");
    ensure(undos.len() == started.len(), || {
        format!(
            "{} undo event(s) for {} undoable step(s)\n{}",
            undos.len(),
            started.len(),
            describe()
        )
    })?;
    for step in &started {
        let matching: Vec<_> = undos
            .iter()
            .filter(|u| u.step.as_deref() == Some(*step))
            .collect();
        ensure(matching.len() == 1, || {
            format!(
                "step `{step}`: {} undo events\n{}",
                matching.len(),
                describe()
            )
        })?;
        let undo = matching[0];
        ensure(undo.outcome.as_deref() == Some("ok"), || {
            format!("the undo of `{step}` did not succeed\n{}", describe())
        })?;
        for restored in expected.restores.get(*step).into_iter().flatten() {
            ensure(undo.description.contains(restored.as_str()), || {
                format!(
                    "the undo of `{step}` does not mention `{restored}`\n{}",
                    describe()
                )
            })?;
        }
    }
    Ok(())
}

/// Exactly one drill-log row names the run, and it says how the run ended.
pub fn check_drill_log(run: &RunDir, report: &Report) -> Result<(), String> {
    let runbook = run.runbook();
    let rows: Vec<&str> = runbook
        .lines()
        .filter(|line| line.contains(&report.run_id))
        .collect();
    ensure(rows.len() == 1, || {
        format!(
            "{} drill-log rows for run {}: {rows:#?}",
            rows.len(),
            report.run_id
        )
    })?;
    let verdict = report.verdict.as_str();
    ensure(rows[0].contains(verdict), || {
        format!("the drill-log row does not say `{verdict}`: {}", rows[0])
    })
}

/// `(interrupted, verdicts of signals that came after the drill)` per label, for the summary.
pub fn summarize<'a>(
    results: impl IntoIterator<Item = (String, &'a Result<Landed, String>)>,
) -> BTreeMap<String, (usize, Vec<String>)> {
    let mut summary = BTreeMap::<String, (usize, Vec<String>)>::new();
    for (label, result) in results {
        let entry = summary.entry(label).or_default();
        match result {
            Ok(Landed::Interrupted) => entry.0 += 1,
            Ok(Landed::AfterTheDrill(verdict, reason)) => {
                entry.1.push(format!("{} ({reason})", verdict.as_str()));
            }
            Err(_) => {}
        }
    }
    summary
}

/// Fails with every trial failure (and the seed to replay them), if there is any.
pub fn assert_no_failures<'a>(
    seed: u64,
    results: impl IntoIterator<Item = &'a Result<Landed, String>>,
) {
    let results: Vec<_> = results.into_iter().collect();
    let failures: Vec<&str> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(String::as_str))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} trials failed (replay with DRILLBOOK_TRIAL_SEED={seed}):\n\n{}",
        failures.len(),
        results.len(),
        failures.join("\n\n")
    );
}

/// Moments are drawn up to the measured end of the drill, so most trials of each signal must
/// really interrupt one; otherwise the trials would not be testing interruption at all.
pub fn assert_mostly_interrupted<'a>(
    seed: u64,
    results: impl IntoIterator<Item = (Signal, &'a Result<Landed, String>)>,
) {
    let mut per_signal = BTreeMap::<String, (usize, usize)>::new();
    for (signal, result) in results {
        let entry = per_signal.entry(format!("{signal:?}")).or_default();
        entry.1 += 1;
        if matches!(result, Ok(Landed::Interrupted)) {
            entry.0 += 1;
        }
    }
    for (signal, (interrupted, trials)) in per_signal {
        assert!(
            2 * interrupted >= trials,
            "only {interrupted} of {trials} {signal} trials interrupted a drill (seed {seed})"
        );
    }
}

/// Processes still alive (zombies excluded) whose environment carries `marker`.
pub fn marked_processes(marker: &str) -> Vec<String> {
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
            .windows(marker.len())
            .any(|w| w == marker.as_bytes())
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
