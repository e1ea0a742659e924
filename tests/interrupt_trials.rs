//! SIGINT and SIGTERM at seeded random moments during lab drills, through the real binary.
//!
//! Each trial runs a shortened copy of a shipped lab scenario and signals drillbook once, at a
//! moment drawn uniformly from [0.2 s, end of the drill] (the end is measured by one
//! uninterrupted calibration run per scenario). Afterwards: no process of the run is left, the
//! exit code matches the report's verdict (130 when interrupted), every registered undo ran
//! with outcome ok, and the drill log has exactly one row for the run saying how it ended.
//!
//! The trial generator's seed is printed; `DRILLBOOK_TRIAL_SEED=<seed>` replays the same
//! trials (same scenarios, signals, relative moments and drill seeds).

mod trial_support;

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use drillbook::exit::Outcome;
use drillbook::report::model::{EventKind, Report, Verdict};
use drillbook::scenario::{Action, TargetSpec};
use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use trial_support::{RunDir, tail, wait_bounded};

/// Trials per signal (each signal is tried on both scenarios).
const TRIALS_PER_SIGNAL: usize = 20;
/// Trials running at once: enough to keep the file around a minute, few enough for 2 cores.
const CONCURRENT_TRIALS: usize = 4;
/// The earliest moment a signal is sent, after spawning drillbook.
const EARLIEST_S: f64 = 0.2;
/// A signalled drill has this long to undo, report and exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Slack for "the signal came before the load could have ended, so the drill must say
/// interrupted": signal delivery and the watcher task are asynchronous.
const LATE_SLACK_S: f64 = 1.0;
/// drillbook's delay between target readiness (`started_at`) and the load's time zero.
const START_DELAY_S: f64 = 0.3;

/// A shortened lab scenario and what the trials need to know about it.
struct TrialScenario {
    label: &'static str,
    path: PathBuf,
    /// Length of its load.
    load_s: f64,
    /// Steps whose action registers an undo (patch_env, start_process), by name.
    undoable_steps: Vec<String>,
    /// For each patch_env step: `KEY=VALUE` texts of the initial env its undo must restore.
    restores: BTreeMap<String, Vec<String>>,
    /// Wall time of an uninterrupted run: the end of the range moments are drawn from.
    end_s: f64,
}

fn shortened_scenarios(dir: &Path) -> Vec<TrialScenario> {
    let midflight = trial_support::derive_scenario(
        "scenarios/lab/midflight-rollback.yaml",
        &[
            ("duration: 20s", "duration: 6s"),
            ("caller_lifetime: 4s", "caller_lifetime: 2s"),
            ("at: 5s", "at: 1s"),
            ("to: 15s}", "to: 4s}"),
            ("from: 15s,", "from: 4s,"),
            ("within: 6s", "within: 3s"),
            ("\"--steps\", \"60\"", "\"--steps\", \"30\""),
        ],
        dir,
        "midflight-rollback-short.yaml",
    );
    let proxy_restart = trial_support::derive_scenario(
        "scenarios/lab/proxy-restart.yaml",
        &[
            ("duration: 18s", "duration: 6s"),
            ("at: 6s", "at: 2s"),
            ("\"--steps\", \"200\"", "\"--steps\", \"100\""),
        ],
        dir,
        "proxy-restart-short.yaml",
    );
    vec![
        describe("midflight-rollback", midflight),
        describe("proxy-restart", proxy_restart),
    ]
}

/// Reads the derived scenario with drillbook's own loader (so it is valid) and notes which
/// steps register undos and what their undos must restore.
fn describe(label: &'static str, path: PathBuf) -> TrialScenario {
    let loaded = drillbook::scenario::load(&path)
        .unwrap_or_else(|d| panic!("the derived scenario {label} is invalid:\n{d}"));
    let scenario = &loaded.scenario;
    let TargetSpec::Local(local) = &scenario.target else {
        panic!("{label}: a lab scenario has a local target");
    };
    let initial_env = |group: &str| {
        local
            .processes
            .iter()
            .find(|p| p.value.name.value == group)
            .map(|p| p.value.env.clone())
            .unwrap_or_default()
    };
    let mut undoable_steps = Vec::new();
    let mut restores = BTreeMap::new();
    for (index, step) in scenario.steps.iter().enumerate() {
        let step = &step.value;
        let name = step
            .name
            .as_ref()
            .map_or_else(|| format!("#{}", index + 1), |n| n.value.clone());
        match &step.action {
            Action::PatchEnv(patch) => {
                let initial = initial_env(&patch.deployment.value);
                let texts = patch
                    .env
                    .keys()
                    .filter_map(|key| initial.get(key).map(|value| format!("{key}={value}")))
                    .collect();
                restores.insert(name.clone(), texts);
                undoable_steps.push(name);
            }
            Action::StartProcess(_) => undoable_steps.push(name),
            _ => {}
        }
    }
    let load_s = scenario
        .load
        .as_ref()
        .and_then(|l| l.duration.as_ref())
        .map(|d| d.value.0.as_secs_f64())
        .expect("the trial scenarios have a load duration");
    TrialScenario {
        label,
        path,
        load_s,
        undoable_steps,
        restores,
        end_s: 0.0,
    }
}

/// One planned trial: which scenario, which signal, when (as a fraction of the range, so a
/// replay lands at the same relative moment even if the machine is slower), which drill seed.
#[derive(Debug, Clone, Copy)]
struct Trial {
    index: usize,
    scenario: usize,
    signal: Signal,
    fraction: f64,
    drill_seed: u64,
}

fn plan_trials(seed: u64, scenarios: usize) -> Vec<Trial> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..2 * TRIALS_PER_SIGNAL)
        .map(|index| Trial {
            index,
            // Alternate signals, and scenarios within each signal, so both get every kind.
            signal: if index % 2 == 0 {
                Signal::SIGINT
            } else {
                Signal::SIGTERM
            },
            scenario: (index / 2) % scenarios,
            fraction: rng.random::<f64>(),
            drill_seed: rng.random(),
        })
        .collect()
}

/// How a trial ended, when all its assertions held.
#[derive(Debug)]
enum Landed {
    Interrupted,
    /// The signal came after the drill had finished its work; the normal verdict stands.
    AfterTheDrill(Verdict),
}

/// Returns `Err(what)` unless `condition` holds.
fn ensure(condition: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what()) }
}

/// Runs one uninterrupted drill of `scenario`; returns its wall time in seconds.
fn calibrate(scenario: &TrialScenario, drill_seed: u64) -> Result<f64, String> {
    let run = RunDir::new();
    let started = Instant::now();
    let mut child = run
        .run_command(&[], &scenario.path, drill_seed)
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let status = wait_bounded(&mut child, EXIT_TIMEOUT)?;
    let wall = started.elapsed().as_secs_f64();
    let context = || {
        format!(
            "calibration run of {}:\n{}",
            scenario.label,
            tail(&run.stderr(), 30)
        )
    };
    let report = run.report().map_err(|e| format!("{e}\n{}", context()))?;
    ensure(report.verdict != Verdict::Interrupted, || {
        format!("an unsignalled run says interrupted\n{}", context())
    })?;
    check_exit_code(status, &report).map_err(|e| format!("{e}\n{}", context()))?;
    check_undos(scenario, &report).map_err(|e| format!("{e}\n{}", context()))?;
    check_drill_log(&run, &report).map_err(|e| format!("{e}\n{}", context()))?;
    run.no_survivors()?;
    Ok(wall)
}

fn run_trial(scenario: &TrialScenario, trial: Trial) -> Result<Landed, String> {
    let run = RunDir::new();
    let moment =
        Duration::from_secs_f64(EARLIEST_S + trial.fraction * (scenario.end_s - EARLIEST_S));
    let spawned = Instant::now();
    let mut child = run
        .run_command(&[], &scenario.path, trial.drill_seed)
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    std::thread::sleep(moment.saturating_sub(spawned.elapsed()));
    // Until it is reaped the child's pid cannot be reused, so this never hits another process;
    // if drillbook already exited, the signal goes to its zombie and changes nothing.
    let signalled_at = jiff::Timestamp::now();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits in i32"));
    nix::sys::signal::kill(pid, trial.signal).map_err(|e| format!("kill: {e}"))?;
    let status = wait_bounded(&mut child, EXIT_TIMEOUT);
    let survivors = run.no_survivors();
    let context = || {
        format!(
            "stderr:\n{}\nstdout:\n{}",
            tail(&run.stderr(), 40),
            tail(&run.stdout(), 15)
        )
    };
    let checked: Result<Landed, String> = (|| {
        let status = status?;
        survivors?;
        ensure(status.signal().is_none(), || {
            format!(
                "drillbook was killed by {:?} itself ({status}): the signal arrived before \
                 drillbook handled it, so no report and no drill-log row were written",
                trial.signal
            )
        })?;
        let report = run.report()?;
        check_exit_code(status, &report)?;
        check_undos(scenario, &report)?;
        check_drill_log(&run, &report)?;
        if report.verdict == Verdict::Interrupted {
            return Ok(Landed::Interrupted);
        }
        // A signal sent while the load was surely still running must interrupt the drill.
        let load_end =
            report.started_at.as_duration().as_secs_f64() + START_DELAY_S + scenario.load_s;
        let sent = signalled_at.as_duration().as_secs_f64();
        ensure(sent >= load_end - LATE_SLACK_S, || {
            format!(
                "the signal was sent {:.1}s before the load could have ended, yet the verdict is {}",
                load_end - sent,
                report.verdict.as_str()
            )
        })?;
        Ok(Landed::AfterTheDrill(report.verdict))
    })();
    checked.map_err(|e| {
        format!(
            "trial {} ({}, {:?} at {:.2}s, drill seed {}): {e}\n{}",
            trial.index,
            scenario.label,
            trial.signal,
            moment.as_secs_f64(),
            trial.drill_seed,
            context()
        )
    })
}

/// 130 when interrupted; otherwise the code of the report's own verdict.
fn check_exit_code(status: std::process::ExitStatus, report: &Report) -> Result<(), String> {
    let expected = i32::from(Outcome::from(report.verdict).code());
    ensure(status.code() == Some(expected), || {
        format!(
            "exit {status} but the report's verdict is {} (exit code {expected})",
            report.verdict.as_str()
        )
    })
}

/// Every step that registers an undo and started has exactly one undo event, with outcome ok
/// (and, for env patches, restoring the initial values); nothing else was undone.
fn check_undos(scenario: &TrialScenario, report: &Report) -> Result<(), String> {
    let started: Vec<&str> = report
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Fault | EventKind::Step))
        .filter_map(|e| e.step.as_deref())
        .filter(|step| scenario.undoable_steps.iter().any(|s| s == step))
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
        for restored in scenario.restores.get(*step).into_iter().flatten() {
            ensure(undo.description.contains(restored.as_str()), || {
                format!(
                    "the undo of `{step}` does not restore {restored}\n{}",
                    describe()
                )
            })?;
        }
    }
    Ok(())
}

/// Exactly one drill-log row names the run, and it says how the run ended.
fn check_drill_log(run: &RunDir, report: &Report) -> Result<(), String> {
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

/// Printed straight to stderr: libtest captures `eprintln!`, and the seed must be seen even
/// when the test passes (to compare runs) and when it fails.
fn announce(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

#[test]
fn sigint_and_sigterm_at_seeded_random_moments_leave_nothing_behind() {
    let seed = std::env::var("DRILLBOOK_TRIAL_SEED")
        .ok()
        .map(|s| s.parse::<u64>().expect("DRILLBOOK_TRIAL_SEED is a u64"))
        .unwrap_or_else(rand::random);
    announce(&format!(
        "interrupt trials: seed {seed} (replay with DRILLBOOK_TRIAL_SEED={seed})"
    ));
    let scenario_dir = tempfile::tempdir().expect("tempdir");
    let mut scenarios = shortened_scenarios(scenario_dir.path());

    // Calibration: the end of each drill, measured, in parallel.
    let ends: Vec<Result<f64, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = scenarios
            .iter()
            .map(|s| scope.spawn(move || calibrate(s, seed)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("calibration thread"))
            .collect()
    });
    for (scenario, end) in scenarios.iter_mut().zip(ends) {
        scenario.end_s = end.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }

    let trials = plan_trials(seed, scenarios.len());
    let queue = Mutex::new(trials.iter().copied().collect::<VecDeque<_>>());
    let results: Mutex<Vec<(Trial, Result<Landed, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..CONCURRENT_TRIALS {
            scope.spawn(|| {
                loop {
                    let Some(trial) = queue.lock().expect("queue").pop_front() else {
                        return;
                    };
                    let result = run_trial(&scenarios[trial.scenario], trial);
                    results.lock().expect("results").push((trial, result));
                }
            });
        }
    });
    let results = results.into_inner().expect("results");
    assert_eq!(results.len(), trials.len(), "every trial ran");

    let failures: Vec<&String> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    let mut summary = BTreeMap::<String, (usize, Vec<&str>)>::new();
    for (trial, result) in &results {
        let key = format!("{:?} {}", trial.signal, scenarios[trial.scenario].label);
        let entry = summary.entry(key).or_default();
        match result {
            Ok(Landed::Interrupted) => entry.0 += 1,
            Ok(Landed::AfterTheDrill(verdict)) => entry.1.push(verdict.as_str()),
            Err(_) => {}
        }
    }
    announce(&format!(
        "interrupt trials (seed {seed}): drill ends {} ; (interrupted, verdicts of signals after the drill) per kind: {summary:?}",
        scenarios
            .iter()
            .map(|s| format!("{} {:.1}s", s.label, s.end_s))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    assert!(
        failures.is_empty(),
        "{} of {} trials failed (replay with DRILLBOOK_TRIAL_SEED={seed}):\n\n{}",
        failures.len(),
        results.len(),
        failures
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    // Moments are drawn up to the measured end, so most trials must really interrupt a drill;
    // otherwise the trials would not be testing interruption at all.
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let interrupted = results
            .iter()
            .filter(|(t, r)| t.signal == signal && matches!(r, Ok(Landed::Interrupted)))
            .count();
        assert!(
            interrupted >= TRIALS_PER_SIGNAL / 2,
            "only {interrupted} of {TRIALS_PER_SIGNAL} {signal:?} trials interrupted a drill (seed {seed})"
        );
    }
}

#[test]
fn the_survivor_scan_sees_a_marked_process() {
    // The orphan check must be able to fail: a process carrying the marker is found.
    let run = RunDir::new();
    let mut sleeper = std::process::Command::new("sleep");
    sleeper.arg("30");
    run.prepare(&mut sleeper);
    let mut child = sleeper.spawn().expect("spawn sleep");
    let deadline = Instant::now() + Duration::from_secs(5);
    while run.survivors().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the scan never saw the marked process"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    run.no_survivors().expect("gone once killed");
}
