//! SIGINT and SIGTERM at seeded random moments during drills on the real control plane (run
//! through `make e2e`; skips loudly without it).
//!
//! Each trial runs a short drill — scale a Deployment 2 → 3, flip an env var, wait for the
//! rollout, hold 1 s — and signals drillbook once, at a moment drawn uniformly from [0.2 s, end
//! of the drill] (the end is measured by one uninterrupted calibration run). Afterwards the
//! Deployment's replicas and env are back to their initial values (read with the kube client)
//! and it settles there, the exit code matches the report's verdict (130 when interrupted), the
//! report lists one ok undo per step applied, and the drill log has one row saying how the run
//! ended. Trials run four at a time, each lane reusing one namespace.
//!
//! The trial generator's seed is printed; `DRILLBOOK_TRIAL_SEED=<seed>` replays the trials.

/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::e2e::Cluster;
use common::trial::{
    EARLIEST_S, EXIT_TIMEOUT, Landed, RunDir, START_DELAY_S, UndoExpectations, tail, wait_bounded,
};
use drillbook::report::model::{EventKind, Verdict};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};

/// Trials in all (SIGINT and SIGTERM alternate).
const TRIALS: usize = 20;
/// Trials running at once, each in its own namespace.
const LANES: usize = 4;
const DEPLOYMENT: &str = "requests-proxy";
const INITIAL_REPLICAS: i32 = 2;
const SCALED_REPLICAS: i32 = 3;
const ENV_KEY: &str = "STATELESS_TOKENS";
const INITIAL_ENV: &str = "true";
/// How long the drill holds once its flip has rolled out.
const HOLD_S: f64 = 1.0;
/// Bound on the Deployment settling back to its initial ready pods after a trial.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One namespace with the Deployment, and the trial scenario pointed at it.
struct Lane {
    namespace: String,
    scenario: PathBuf,
}

fn scenario_text(cluster: &Cluster, namespace: &str) -> String {
    format!(
        r#"apiVersion: drillbook/v1
name: kube-interrupt-trial
description: Scale up and flip an env var, let it roll out, hold; interrupted at a random moment.
target:
  kubernetes:
    context: {context}
    namespace: {namespace}
    allowed_contexts: [{context}]
    kubeconfig: {kubeconfig}
steps:
  - name: scale-up
    scale: {{deployment: {DEPLOYMENT}, replicas: {SCALED_REPLICAS}}}
  - name: flip
    patch_env: {{deployment: {DEPLOYMENT}, env: {{{ENV_KEY}: "false"}}}}
  - name: rolled-out
    wait_rollout: {{deployment: {DEPLOYMENT}, timeout: 30s}}
  - name: hold
    wait: {HOLD_S}s
checks:
  - name: flip-rolls
    rolled: {{deployment: {DEPLOYMENT}, after: flip}}
"#,
        context = cluster.context,
        kubeconfig = cluster.kubeconfig.display(),
    )
}

fn undo_expectations() -> UndoExpectations {
    UndoExpectations {
        steps: vec!["scale-up".into(), "flip".into()],
        restores: BTreeMap::from([
            (
                "scale-up".into(),
                vec![format!("back to {INITIAL_REPLICAS} replicas")],
            ),
            ("flip".into(), vec![format!("{ENV_KEY}={INITIAL_ENV}")]),
        ]),
    }
}

async fn open_lane(cluster: &Cluster, client: &kube::Client, dir: &Path) -> Lane {
    let namespace = cluster.fresh_namespace(client, "interrupt-trials").await;
    common::e2e::create_deployment(
        client,
        &namespace,
        DEPLOYMENT,
        &[("app", DEPLOYMENT)],
        INITIAL_REPLICAS,
        &[(ENV_KEY, INITIAL_ENV)],
    )
    .await;
    settle(client, &namespace)
        .await
        .unwrap_or_else(|e| panic!("the lane's Deployment never became ready: {e}"));
    let scenario = dir.join(format!("{namespace}.yaml"));
    std::fs::write(&scenario, scenario_text(cluster, &namespace)).expect("write the scenario");
    Lane {
        namespace,
        scenario,
    }
}

/// The Deployment's spec replicas and the container's value of [`ENV_KEY`].
async fn spec_state(
    client: &kube::Client,
    namespace: &str,
) -> Result<(i32, Option<String>), String> {
    let deployment = Api::<Deployment>::namespaced(client.clone(), namespace)
        .get(DEPLOYMENT)
        .await
        .map_err(|e| format!("get deployment: {e}"))?;
    let spec = deployment.spec.unwrap_or_default();
    let env = spec
        .template
        .spec
        .and_then(|pod| pod.containers.into_iter().next())
        .and_then(|container| container.env)
        .unwrap_or_default()
        .into_iter()
        .find(|var| var.name == ENV_KEY)
        .and_then(|var| var.value);
    Ok((spec.replicas.unwrap_or_default(), env))
}

/// Waits until the Deployment runs exactly its initial replicas, all updated and ready: no
/// pod of the scaled or flipped template is left.
async fn settle(client: &kube::Client, namespace: &str) -> Result<(), String> {
    let api = Api::<Deployment>::namespaced(client.clone(), namespace);
    let settled = common::base::wait_until(SETTLE_TIMEOUT, || async {
        let Ok(deployment) = api.get(DEPLOYMENT).await else {
            return false;
        };
        let status = deployment.status.unwrap_or_default();
        let want = Some(INITIAL_REPLICAS);
        status.replicas == want && status.updated_replicas == want && status.ready_replicas == want
    })
    .await;
    if settled {
        Ok(())
    } else {
        let status = api.get(DEPLOYMENT).await.map(|d| d.status);
        Err(format!(
            "not back to {INITIAL_REPLICAS} updated, ready replicas within {SETTLE_TIMEOUT:?}: {status:?}"
        ))
    }
}

/// Checks the cluster after a run: the spec is back to its initial values at once (the undos
/// ran before drillbook exited), and the Deployment settles there.
async fn check_restored(client: &kube::Client, namespace: &str) -> Result<(), String> {
    let (replicas, env) = spec_state(client, namespace).await?;
    common::trial::ensure(replicas == INITIAL_REPLICAS, || {
        format!("replicas are {replicas}, not back to {INITIAL_REPLICAS}")
    })?;
    common::trial::ensure(env.as_deref() == Some(INITIAL_ENV), || {
        format!("{ENV_KEY} is {env:?}, not back to {INITIAL_ENV:?}")
    })?;
    settle(client, namespace).await
}

/// One planned trial: the signal, the moment as a fraction of the range (so a replay lands at
/// the same relative moment on a slower machine).
#[derive(Debug, Clone, Copy)]
struct Trial {
    index: usize,
    signal: Signal,
    fraction: f64,
}

/// What the drill itself left: its exit, report and drill-log row (blocking: run off the
/// async workers).
fn run_drill(lane_scenario: &Path, trial: Trial, end_s: f64) -> Result<Landed, String> {
    let run = RunDir::new();
    let moment = Duration::from_secs_f64(EARLIEST_S + trial.fraction * (end_s - EARLIEST_S));
    let spawned = Instant::now();
    let mut child = run
        .run_command(&[], lane_scenario, 1)
        .env_remove("KUBECONFIG")
        .try_spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    std::thread::sleep(moment.saturating_sub(spawned.elapsed()));
    let signalled_at = common::trial::send_signal(&child, trial.signal);
    let status = wait_bounded(&mut child, EXIT_TIMEOUT);
    let checked: Result<Landed, String> = (|| {
        let signalled_at = signalled_at?;
        let status = status?;
        run.no_survivors()?;
        common::trial::ensure_handled(status, trial.signal)?;
        let report = run.report()?;
        common::trial::check_drill_log(&run, &report)?;
        // The drill's work ends with its hold; a drill that never reached it must have been
        // interrupted (the bound is then unused).
        let hold_end_s = report
            .events
            .iter()
            .find(|e| e.kind == EventKind::Step && e.step.as_deref() == Some("hold"))
            .map_or(f64::INFINITY, |hold| START_DELAY_S + hold.at_s + HOLD_S);
        common::trial::judge_trial(
            status,
            &report,
            &undo_expectations(),
            signalled_at,
            hold_end_s,
        )
    })();
    checked.map_err(|e| {
        format!(
            "{e}\n{:?} at {:.2}s\nstderr:\n{}",
            trial.signal,
            moment.as_secs_f64(),
            tail(&run.stderr(), 30)
        )
    })
}

/// A run and the cluster check after it, with the lane and trial named on failure.
async fn run_trial(
    client: &kube::Client,
    lane: &Lane,
    trial: Trial,
    end_s: f64,
) -> Result<Landed, String> {
    let scenario = lane.scenario.clone();
    let drill = tokio::task::spawn_blocking(move || run_drill(&scenario, trial, end_s))
        .await
        .map_err(|e| format!("the drill thread panicked: {e}"))
        .and_then(|r| r);
    // The cluster is checked whatever the run said: a fault left behind is the worst outcome.
    let restored = check_restored(client, &lane.namespace).await;
    let outcome = match (drill, restored) {
        (Ok(landed), Ok(())) => Ok(landed),
        (Err(e), Ok(())) | (Ok(_), Err(e)) => Err(e),
        (Err(drill), Err(cluster)) => Err(format!("{cluster}\n{drill}")),
    };
    outcome.map_err(|e| format!("trial {} in {}: {e}", trial.index, lane.namespace))
}

/// Runs one uninterrupted drill; returns its wall time in seconds.
async fn calibrate(client: &kube::Client, lane: &Lane) -> f64 {
    let scenario = lane.scenario.clone();
    let (wall, verdict) = tokio::task::spawn_blocking(move || {
        let run = RunDir::new();
        let started = Instant::now();
        let mut child = run
            .run_command(&[], &scenario, 1)
            .env_remove("KUBECONFIG")
            .spawn();
        let status = wait_bounded(&mut child, EXIT_TIMEOUT).expect("the calibration run ends");
        let wall = started.elapsed().as_secs_f64();
        let report = run
            .report()
            .unwrap_or_else(|e| panic!("{e}\n{}", tail(&run.stderr(), 30)));
        common::trial::check_exit_code(status, &report).expect("exit code");
        common::trial::check_undos(&undo_expectations(), &report).expect("undos");
        common::trial::check_drill_log(&run, &report).expect("drill log");
        common::trial::announce(&format!(
            "kube interrupt trials: calibration run: {} in {wall:.1}s ({}: {})",
            report.verdict.as_str(),
            report.verdict_reason,
            report
                .checks
                .iter()
                .map(|c| format!("{} {}", c.name, c.detail))
                .collect::<Vec<_>>()
                .join("; ")
        ));
        (wall, report.verdict)
    })
    .await
    .expect("calibration thread");
    assert!(
        !matches!(verdict, Verdict::Interrupted | Verdict::Aborted),
        "the calibration run says {}",
        verdict.as_str()
    );
    check_restored(client, &lane.namespace)
        .await
        .expect("the calibration run restored the Deployment");
    wall
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_and_sigterm_at_seeded_random_moments_restore_the_deployment() {
    let Some(cluster) = common::e2e::cluster() else {
        return;
    };
    common::e2e::install_crypto_provider();
    let seed = common::trial::trial_seed("kube interrupt trials");
    let client = cluster.client().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lanes = Vec::new();
    for _ in 0..LANES {
        lanes.push(open_lane(&cluster, &client, dir.path()).await);
    }
    let end_s = calibrate(&client, &lanes[0]).await;

    let mut rng = StdRng::seed_from_u64(seed);
    let trials: VecDeque<Trial> = (0..TRIALS)
        .map(|index| Trial {
            index,
            signal: common::trial::alternating_signal(index),
            fraction: rng.random::<f64>(),
        })
        .collect();
    let queue = Arc::new(Mutex::new(trials));
    let mut workers = tokio::task::JoinSet::new();
    for lane in lanes {
        let (queue, client) = (queue.clone(), client.clone());
        workers.spawn(async move {
            let mut results = Vec::new();
            loop {
                let Some(trial) = queue.lock().expect("queue").pop_front() else {
                    return results;
                };
                results.push((trial, run_trial(&client, &lane, trial, end_s).await));
            }
        });
    }
    let mut results = Vec::new();
    while let Some(lane_results) = workers.join_next().await {
        results.extend(lane_results.expect("a lane panicked"));
    }
    assert_eq!(results.len(), TRIALS, "every trial ran");

    let summary = common::trial::summarize(
        results
            .iter()
            .map(|(trial, result)| (format!("{:?}", trial.signal), result)),
    );
    common::trial::announce(&format!(
        "kube interrupt trials (seed {seed}): drill end {end_s:.1}s; (interrupted, verdicts of \
         signals after the drill): {summary:?}"
    ));
    common::trial::assert_no_failures(seed, results.iter().map(|(_, result)| result));
    common::trial::assert_mostly_interrupted(
        seed,
        results.iter().map(|(trial, result)| (trial.signal, result)),
    );
}
