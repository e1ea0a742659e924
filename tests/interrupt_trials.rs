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

/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::trial::{
    EARLIEST_S, EXIT_TIMEOUT, Landed, RunDir, START_DELAY_S, UndoExpectations, ensure, tail,
    wait_bounded,
};
use drillbook::report::model::Verdict;
use drillbook::scenario::{Action, TargetSpec};
use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};

/// Trials per signal (each signal is tried on both scenarios).
const TRIALS_PER_SIGNAL: usize = 20;
/// Trials running at once: enough to keep the file around a minute, few enough for 2 cores.
const CONCURRENT_TRIALS: usize = 4;

/// A shortened lab scenario and what the trials need to know about it.
struct TrialScenario {
    label: &'static str,
    path: PathBuf,
    /// Length of its load.
    load_s: f64,
    /// Steps whose action registers an undo (patch_env, start_process); for env patches, the
    /// `KEY=VALUE` texts of the initial env their undo must restore.
    undos: UndoExpectations,
    /// Wall time of an uninterrupted run: the end of the range moments are drawn from.
    end_s: f64,
}

fn shortened_scenarios(dir: &Path) -> Vec<TrialScenario> {
    let midflight = common::trial::derive_scenario(
        "scenarios/lab/midflight-rollback.yaml",
        &[
            // Each run gets its own runbook copy (`--drill-log`).
            ("runbook: ../../docs/RUNBOOK.md\n", ""),
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
    let proxy_restart = common::trial::derive_scenario(
        "scenarios/lab/proxy-restart.yaml",
        &[
            ("runbook: ../../docs/RUNBOOK.md\n", ""),
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
        undos: UndoExpectations {
            steps: undoable_steps,
            restores,
        },
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
            signal: common::trial::alternating_signal(index),
            scenario: (index / 2) % scenarios,
            fraction: rng.random::<f64>(),
            drill_seed: rng.random(),
        })
        .collect()
}

/// Runs one uninterrupted drill of `scenario`; returns its wall time in seconds.
fn calibrate(scenario: &TrialScenario, drill_seed: u64) -> Result<f64, String> {
    let run = RunDir::new();
    let started = Instant::now();
    let mut child = run
        .run_command(&[], &scenario.path, drill_seed)
        .try_spawn()
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
    ensure(
        !matches!(report.verdict, Verdict::Interrupted | Verdict::Aborted),
        || {
            format!(
                "an unsignalled run says {}: {}\n{}",
                report.verdict.as_str(),
                report.verdict_reason,
                context()
            )
        },
    )?;
    common::trial::check_exit_code(status, &report).map_err(|e| format!("{e}\n{}", context()))?;
    common::trial::check_undos(&scenario.undos, &report)
        .map_err(|e| format!("{e}\n{}", context()))?;
    common::trial::check_drill_log(&run, &report).map_err(|e| format!("{e}\n{}", context()))?;
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
        .try_spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    std::thread::sleep(moment.saturating_sub(spawned.elapsed()));
    let signalled_at = common::trial::send_signal(&child, trial.signal);
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
        let signalled_at = signalled_at?;
        let status = status?;
        survivors?;
        common::trial::ensure_handled(status, trial.signal)?;
        let report = run.report()?;
        common::trial::check_drill_log(&run, &report)?;
        // The drill's work ends with its load (steps are within it): a signal before that must
        // interrupt the drill.
        common::trial::judge_trial(
            status,
            &report,
            &scenario.undos,
            signalled_at,
            START_DELAY_S + scenario.load_s,
        )
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

#[test]
fn sigint_and_sigterm_at_seeded_random_moments_leave_nothing_behind() {
    let seed = common::trial::trial_seed("lab interrupt trials");
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

    let summary = common::trial::summarize(results.iter().map(|(trial, result)| {
        (
            format!("{:?} {}", trial.signal, scenarios[trial.scenario].label),
            result,
        )
    }));
    common::trial::announce(&format!(
        "lab interrupt trials (seed {seed}): drill ends {}; (interrupted, verdicts of signals \
         after the drill) per kind: {summary:?}",
        scenarios
            .iter()
            .map(|s| format!("{} {:.1}s", s.label, s.end_s))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    common::trial::assert_no_failures(seed, results.iter().map(|(_, result)| result));
    common::trial::assert_mostly_interrupted(
        seed,
        results.iter().map(|(trial, result)| (trial.signal, result)),
    );
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
