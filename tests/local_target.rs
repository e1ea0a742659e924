//! The local target against real processes and real signals.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use drillbook::scenario::{PickMode, ProcessKind, Signal, StartPolicy};
use drillbook::targets::local::{
    ExitCause, InstanceStatus, KilledInstance, LocalError, LocalTarget, ProcessConfig,
    ProcessEvent, RolloutStrategy, StopHow,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::Instant;

/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common;

use common::base::free_port;

const WAIT: Duration = Duration::from_secs(10);

fn sleeper(name: &str, replicas: u32) -> ProcessConfig {
    ProcessConfig {
        replicas,
        restart_delay: Duration::from_millis(200),
        ..ProcessConfig::new(name, ["sleep", "100"])
    }
}

fn shell(name: &str, script: &str) -> ProcessConfig {
    ProcessConfig::new(name, ["sh", "-c", script])
}

async fn start(configs: Vec<ProcessConfig>) -> (LocalTarget, UnboundedReceiver<ProcessEvent>) {
    let (events, receiver) = unbounded_channel();
    let target = LocalTarget::start(configs, events)
        .await
        .expect("the target starts");
    (target, receiver)
}

/// Next event matching `wanted`, skipping others; panics after [`WAIT`].
async fn next_event(
    events: &mut UnboundedReceiver<ProcessEvent>,
    wanted: impl Fn(&ProcessEvent) -> bool,
) -> ProcessEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("the events channel stays open");
            if wanted(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the expected event arrives in time")
}

fn pids(statuses: &[InstanceStatus]) -> Vec<u32> {
    statuses.iter().filter_map(|s| s.pid).collect()
}

/// Processes (not zombies) whose process group is `pgid`: the instance and anything it forked.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // Fields after the parenthesised command: state, ppid, pgrp, ...
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields
                .first()
                .is_some_and(|state| *state != "Z" && *state != "X")
                && fields.get(2) == Some(&pgid.to_string().as_str())
        })
        .collect()
}

/// Waits until no process of any of these groups is left; returns the leftovers otherwise.
async fn groups_gone(pgids: &[u32], within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<u32> = pgids.iter().flat_map(|p| group_members(*p)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn from_spec_reads_the_expanded_scenario_and_adds_the_app_label() {
    let yaml = r#"
apiVersion: drillbook/v1
name: spec-test
target:
  local:
    processes:
      - name: proxy
        command: ["${drillbook}", "lab", "proxy", "--listen", "127.0.0.1:${port.proxy}"]
        env: {MODE: "x-${port.proxy}"}
        ready: http://127.0.0.1:${port.proxy}/healthz
      - name: trainer
        kind: job
        replicas: 2
        start: on_demand
        labels: {app: trainers, batch: late}
        command: ["sh", "-c", "exit 0"]
"#;
    let scenario = drillbook::scenario::parse_str(yaml).expect("valid scenario");
    let vars = drillbook::scenario::vars::Vars {
        drillbook: "/bin/drillbook".into(),
        ports: BTreeMap::from([("proxy".into(), 4242)]),
        private: BTreeMap::new(),
    };
    // The run expands the scenario once, with the ports it chose, before the target starts.
    let unexpanded = drillbook::scenario::templated::expand(&scenario, &Default::default());
    assert!(unexpanded.is_err(), "no port for `proxy` is an error");
    let scenario = drillbook::scenario::templated::expand(&scenario, &vars).expect("expands");
    let processes = scenario.local_processes();
    let proxy = ProcessConfig::from_spec(&processes[0]).expect("proxy config");
    assert_eq!(
        proxy.command,
        [
            "/bin/drillbook",
            "lab",
            "proxy",
            "--listen",
            "127.0.0.1:4242"
        ]
    );
    assert_eq!(proxy.env["MODE"], "x-4242");
    assert_eq!(
        proxy.ready_url.as_deref(),
        Some("http://127.0.0.1:4242/healthz")
    );
    assert_eq!(
        proxy.labels,
        BTreeMap::from([("app".into(), "proxy".into())])
    );
    assert_eq!(proxy.rollout, RolloutStrategy::Replace);
    assert_eq!(proxy.restart_delay, Duration::from_millis(300));

    let trainer = ProcessConfig::from_spec(&processes[1]).expect("trainer config");
    assert_eq!(
        (trainer.kind, trainer.replicas, trainer.start),
        (ProcessKind::Job, 2, StartPolicy::OnDemand)
    );
    assert_eq!(
        trainer.labels["app"], "trainers",
        "an explicit app label is kept"
    );
    assert_eq!(trainer.rollout, RolloutStrategy::Surge);
}

/// A service that answers HTTP 200 on `/` once Python's http.server is up.
fn http_service(name: &str, dir: &Path) -> ProcessConfig {
    let port = free_port().to_string();
    let dir = dir.to_string_lossy().to_string();
    ProcessConfig {
        ready_url: Some(format!("http://127.0.0.1:{port}/")),
        rollout: RolloutStrategy::Replace,
        restart_delay: Duration::from_millis(200),
        ready_timeout: WAIT,
        ..ProcessConfig::new(
            name,
            [
                "python3",
                "-m",
                "http.server",
                &port,
                "--bind",
                "127.0.0.1",
                "--directory",
                &dir,
            ],
        )
    }
}

#[tokio::test]
async fn killed_service_restarts_after_its_delay_and_counts_restarts() {
    let (target, mut events) = start(vec![sleeper("svc", 1)]).await;
    let before = target.snapshot();
    let old_pid = before[0].pid.expect("running");
    let mut rng = StdRng::seed_from_u64(1);
    let killed = target
        .kill("svc", 1, Signal::Kill, PickMode::Random, &mut rng)
        .await
        .expect("kill");
    assert_eq!(killed.len(), 1);
    assert_eq!((killed[0].pid, killed[0].instance), (old_pid, 0));

    let exited = next_event(&mut events, |e| matches!(e, ProcessEvent::Exited { .. })).await;
    let ProcessEvent::Exited {
        pid,
        code,
        signal,
        expected,
        cause,
        at: exited_at,
        ..
    } = exited
    else {
        unreachable!()
    };
    assert_eq!((pid, code, signal), (old_pid, None, Some(9)));
    assert!(!expected, "an injected kill is not an expected exit");
    assert_eq!(
        cause,
        ExitCause::Killed {
            signal: Signal::Kill
        }
    );

    let restarting = next_event(&mut events, |e| {
        matches!(e, ProcessEvent::Restarting { .. })
    })
    .await;
    assert!(matches!(
        restarting,
        ProcessEvent::Restarting { restarts: 1, .. }
    ));
    let started = next_event(&mut events, |e| matches!(e, ProcessEvent::Started { .. })).await;
    let ProcessEvent::Started {
        pid: new_pid,
        restarts,
        at: started_at,
        ..
    } = started
    else {
        unreachable!()
    };
    assert_ne!(new_pid, old_pid);
    assert_eq!(restarts, 1);
    assert!(
        started_at.duration_since(exited_at) >= Duration::from_millis(200),
        "restarted only after restart_delay"
    );
    next_event(
        &mut events,
        |e| matches!(e, ProcessEvent::Ready { pid, .. } if *pid == new_pid),
    )
    .await;

    target.wait_ready("svc", WAIT).await.expect("ready again");
    let after = target.snapshot();
    assert_eq!(after.len(), 1);
    assert_eq!(
        (after[0].instance, after[0].restarts, after[0].pid),
        (0, 1, Some(new_pid))
    );
    assert_eq!(after[0].exited.as_ref().and_then(|e| e.signal), Some(9));
    assert!(group_members(old_pid).is_empty());
    assert!(target.shutdown().await.is_clean());
}

#[tokio::test]
async fn records_sigterm_and_sigkill_distinctly() {
    let (target, mut events) = start(vec![sleeper("svc", 2)]).await;
    let mut rng = StdRng::seed_from_u64(2);
    let termed = target
        .kill("svc", 1, Signal::Term, PickMode::Oldest, &mut rng)
        .await
        .expect("kill");
    let exited = next_event(&mut events, |e| matches!(e, ProcessEvent::Exited { .. })).await;
    assert!(
        matches!(exited, ProcessEvent::Exited { pid, signal: Some(15), cause: ExitCause::Killed { signal: Signal::Term }, .. } if pid == termed[0].pid),
        "{exited:?}"
    );
    let killed = target
        .kill("svc", 1, Signal::Kill, PickMode::Newest, &mut rng)
        .await
        .expect("kill");
    let exited = next_event(&mut events, |e| matches!(e, ProcessEvent::Exited { .. })).await;
    assert!(
        matches!(exited, ProcessEvent::Exited { pid, signal: Some(9), cause: ExitCause::Killed { signal: Signal::Kill }, .. } if pid == killed[0].pid),
        "{exited:?}"
    );
    target.shutdown().await;
}

#[tokio::test]
async fn job_exit_codes_are_recorded_and_jobs_never_restart() {
    let ok = ProcessConfig {
        kind: ProcessKind::Job,
        replicas: 2,
        restart_delay: Duration::from_millis(50),
        ..shell("ok", "echo done; exit 0")
    };
    let failing = ProcessConfig {
        kind: ProcessKind::Job,
        restart_delay: Duration::from_millis(50),
        ..shell("failing", "echo oops >&2; exit 3")
    };
    let (target, _events) = start(vec![ok, failing]).await;
    let ok_runs = target.wait_finished("ok", WAIT).await.expect("ok finishes");
    let failing_runs = target
        .wait_finished("failing", WAIT)
        .await
        .expect("failing finishes");
    assert_eq!(ok_runs.len(), 2);
    for run in &ok_runs {
        let exit = run.exited.as_ref().expect("exit recorded");
        assert!(exit.succeeded());
        assert_eq!((exit.signal, exit.cause), (None, ExitCause::Exited));
        assert!(run.started_at.is_some_and(|s| s <= exit.at));
    }
    assert_eq!(
        failing_runs[0].exited.as_ref().and_then(|e| e.code),
        Some(3)
    );

    // Several restart delays later nothing was restarted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for status in target.snapshot() {
        assert_eq!((status.restarts, status.pid), (0, None), "{status:?}");
    }
    assert!(
        target
            .output_tail("ok")
            .contains(&"[ok-0] done".to_string())
    );
    assert_eq!(
        target.output_tail("failing"),
        vec!["[failing-0] oops".to_string()]
    );
    assert!(matches!(
        target.wait_ready("ok", WAIT).await,
        Err(LocalError::WrongKind { .. })
    ));
    target.shutdown().await;
}

#[tokio::test]
async fn on_demand_jobs_start_a_new_batch_per_start_group() {
    let late = ProcessConfig {
        kind: ProcessKind::Job,
        start: StartPolicy::OnDemand,
        labels: BTreeMap::from([
            ("app".into(), "trainer".into()),
            ("batch".into(), "late".into()),
        ]),
        ..shell("trainer-late", "exit 0")
    };
    let (target, _events) = start(vec![late]).await;
    assert!(
        target.snapshot().is_empty(),
        "on_demand groups wait for start_group"
    );
    target
        .start_group("trainer-late")
        .await
        .expect("first batch");
    target
        .start_group("trainer-late")
        .await
        .expect("second batch");
    let runs = target
        .wait_finished("trainer-late", WAIT)
        .await
        .expect("finish");
    assert_eq!(
        runs.iter().map(|r| r.instance).collect::<Vec<_>>(),
        vec![0, 1]
    );
    let selector = "app=trainer,batch=late".parse().expect("selector");
    assert_eq!(target.matching(&selector).len(), 2);
    let other = "app=proxy".parse().expect("selector");
    assert!(target.matching(&other).is_empty());
    target.shutdown().await;
}

#[tokio::test]
async fn seeded_random_picks_repeat_and_oldest_newest_pick_by_start_time() {
    let (target, _events) = start(vec![sleeper("svc", 5)]).await;
    let mut picks = Vec::new();
    for _ in 0..2 {
        let mut rng = StdRng::seed_from_u64(42);
        let killed = target
            .kill("svc", 2, Signal::Kill, PickMode::Random, &mut rng)
            .await
            .expect("kill");
        picks.push(killed.iter().map(|k| k.instance).collect::<Vec<_>>());
        // The next draw must see the same candidates.
        back_up(&target, &killed).await;
    }
    assert_eq!(picks[0].len(), 2);
    assert_eq!(picks[0], picks[1], "same seed, same instances");

    let oldest = target
        .snapshot()
        .into_iter()
        .min_by_key(|s| (s.started_at, s.instance))
        .expect("instances");
    let mut rng = StdRng::seed_from_u64(0);
    let killed = target
        .kill("svc", 1, Signal::Kill, PickMode::Oldest, &mut rng)
        .await
        .expect("kill");
    assert_eq!(killed[0].instance, oldest.instance);
    back_up(&target, &killed).await;
    // The one just restarted is now the newest.
    let killed = target
        .kill("svc", 1, Signal::Kill, PickMode::Newest, &mut rng)
        .await
        .expect("kill");
    assert_eq!(killed[0].instance, oldest.instance);
    target.shutdown().await;
}

#[tokio::test]
async fn patch_env_returns_previous_values_and_new_instances_see_the_new_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = format!(
        "printf '%s|%s' \"$X\" \"${{Y-unset}}\" > '{}'/$$; exec sleep 100",
        dir.path().display()
    );
    let config = ProcessConfig {
        replicas: 2,
        env: BTreeMap::from([("X".into(), "old".into())]),
        ..shell("svc", &script)
    };
    let seen_by = |pid: u32| std::fs::read_to_string(dir.path().join(pid.to_string()));
    let (target, _events) = start(vec![config]).await;
    let old_pids = pids(&target.snapshot());

    let patch = BTreeMap::from([("X".into(), "new".into()), ("Y".into(), "y".into())]);
    let previous = target.patch_env("svc", &patch, WAIT).await.expect("patch");
    assert_eq!(
        previous,
        BTreeMap::from([("X".into(), Some("old".into())), ("Y".into(), None)])
    );
    assert_eq!(target.env_of("svc"), Some(patch.clone()));
    let after = target.snapshot();
    assert_eq!(after.len(), 2);
    for status in &after {
        let pid = status.pid.expect("running");
        assert!(!old_pids.contains(&pid));
        assert_eq!(status.generation, 2);
        // The script writes its file right after starting.
        let content = wait_for_content(|| seen_by(pid).ok()).await;
        assert_eq!(content, "new|y");
    }

    // Patching the same values again changes nothing and rolls nothing.
    let again = target
        .patch_env("svc", &patch, WAIT)
        .await
        .expect("no-op patch");
    assert_eq!(again.get("X"), Some(&Some("new".to_string())));
    assert_eq!(pids(&target.snapshot()), pids(&after));

    // The undo restores X and removes Y.
    target.set_env("svc", &previous, WAIT).await.expect("undo");
    assert_eq!(
        target.env_of("svc"),
        Some(BTreeMap::from([("X".into(), "old".into())]))
    );
    for pid in pids(&target.snapshot()) {
        assert_eq!(wait_for_content(|| seen_by(pid).ok()).await, "old|unset");
    }
    target.shutdown().await;
}

/// Waits until every killed instance runs a new, ready process.
async fn back_up(target: &LocalTarget, killed: &[KilledInstance]) {
    tokio::time::timeout(WAIT, async {
        loop {
            let snapshot = target.snapshot();
            let all_back = killed.iter().all(|k| {
                snapshot.iter().any(|s| {
                    s.instance == k.instance && s.ready && s.pid.is_some_and(|p| p != k.pid)
                })
            });
            if all_back {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("killed instances came back");
}

async fn wait_for_content(read: impl Fn() -> Option<String>) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            match read() {
                Some(content) if !content.is_empty() => return content,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("the content appeared")
}

#[tokio::test]
async fn rollout_restart_replaces_every_instance_and_keeps_one_ready() {
    let (target, _events) = start(vec![sleeper("svc", 3)]).await;
    let target = std::sync::Arc::new(target);
    let old_pids = pids(&target.snapshot());

    // Sample readiness throughout the rollout.
    let watcher = {
        let target = target.clone();
        tokio::spawn(async move {
            let mut fewest_ready = usize::MAX;
            loop {
                let ready = target.snapshot().iter().filter(|s| s.ready).count();
                fewest_ready = fewest_ready.min(ready);
                if target
                    .snapshot()
                    .iter()
                    .all(|s| s.generation == 2 && s.ready)
                {
                    return fewest_ready;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    target.rollout_restart("svc", WAIT).await.expect("rollout");
    let fewest_ready = tokio::time::timeout(WAIT, watcher)
        .await
        .expect("watcher ends")
        .expect("watcher ok");
    assert!(fewest_ready >= 1, "at least one instance stayed ready");

    let after = target.snapshot();
    assert_eq!(after.len(), 3);
    assert!(after.iter().all(|s| s.generation == 2 && s.instance >= 3));
    for pid in pids(&after) {
        assert!(!old_pids.contains(&pid), "every pid is new");
    }
    assert!(
        groups_gone(&old_pids, WAIT).await.is_empty(),
        "old instances stopped"
    );
    let target = std::sync::Arc::into_inner(target).expect("sole owner");
    assert!(target.shutdown().await.is_clean());
}

#[tokio::test]
async fn readiness_follows_the_http_probe_through_kill_and_rollout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (target, mut events) = start(vec![http_service("web", dir.path())]).await;
    let first = target.snapshot()[0].clone();
    assert!(first.ready, "start waits for readiness");
    assert!(first.ready_at >= first.started_at);

    let mut rng = StdRng::seed_from_u64(3);
    let killed = target
        .kill("web", 1, Signal::Kill, PickMode::Random, &mut rng)
        .await
        .expect("kill");
    let started = next_event(&mut events, |e| {
        matches!(e, ProcessEvent::Started { restarts: 1, .. })
    })
    .await;
    let ProcessEvent::Started { pid: new_pid, .. } = started else {
        unreachable!()
    };
    // The restarted process is not ready until its probe answers.
    let ready = next_event(
        &mut events,
        |e| matches!(e, ProcessEvent::Ready { pid, .. } if *pid == new_pid),
    )
    .await;
    let ProcessEvent::Ready {
        since_start, at, ..
    } = ready
    else {
        unreachable!()
    };
    assert!(
        since_start > Duration::ZERO,
        "python takes a moment to listen"
    );
    assert!(at.duration_since(killed[0].at) >= Duration::from_millis(200));
    target.wait_ready("web", WAIT).await.expect("ready");

    target.rollout_restart("web", WAIT).await.expect("rollout");
    let rolled = target.snapshot();
    assert_eq!(rolled.len(), 1);
    assert!(rolled[0].ready && rolled[0].generation == 2 && rolled[0].pid != Some(new_pid));
    assert!(group_members(new_pid).is_empty());
    target.shutdown().await;
}

#[tokio::test]
async fn start_fails_cleanly_on_bad_commands_and_unready_services() {
    let (events, mut receiver) = unbounded_channel();
    let missing = ProcessConfig::new("missing", ["/nonexistent/drillbook-test-binary"]);
    let error = LocalTarget::start(vec![sleeper("fine", 1), missing], events.clone())
        .await
        .expect_err("spawn fails");
    assert!(matches!(error, LocalError::Spawn { .. }), "{error}");
    // The group that did start was stopped again.
    let started = next_event(&mut receiver, |e| matches!(e, ProcessEvent::Started { .. })).await;
    let ProcessEvent::Started { name, pid, .. } = started else {
        unreachable!()
    };
    assert_eq!(name, "fine");
    assert!(group_members(pid).is_empty());

    let port = free_port();
    let never_ready = ProcessConfig {
        ready_url: Some(format!("http://127.0.0.1:{port}/healthz")),
        ready_timeout: Duration::from_millis(500),
        ..shell("never", "echo starting up; exec sleep 100")
    };
    let error = LocalTarget::start(vec![never_ready], events)
        .await
        .expect_err("never ready");
    let LocalError::NotReady {
        ready,
        wanted,
        output_tail,
        ..
    } = &error
    else {
        panic!("unexpected error: {error}");
    };
    assert_eq!((*ready, *wanted), (0, 1));
    assert_eq!(output_tail, &vec!["[never-0] starting up".to_string()]);
    assert!(error.to_string().contains("starting up"));
}

#[tokio::test]
async fn shutdown_terminates_every_group_with_sigterm() {
    // The shell forks a background sleep: the group kill must reach it too.
    let forking = shell("forking", "sleep 100 & sleep 100; wait");
    let (target, _events) = start(vec![sleeper("svc", 2), forking]).await;
    let pgids = pids(&target.snapshot());
    assert!(
        pgids.iter().any(|p| group_members(*p).len() >= 2),
        "the shell forked"
    );
    let report = target.shutdown().await;
    assert_eq!(report.stopped.len(), 3);
    assert!(
        report.stopped.iter().all(|s| s.how == StopHow::Term),
        "{report:?}"
    );
    assert!(report.is_clean());
    assert_eq!(
        groups_gone(&pgids, Duration::from_secs(2)).await,
        Vec::<u32>::new()
    );
}

#[tokio::test]
async fn shutdown_kills_a_child_that_ignores_sigterm_after_the_grace_period() {
    let stubborn = shell("stubborn", "trap '' TERM; echo armed; sleep 100");
    let (target, _events) = start(vec![stubborn]).await;
    // A TERM that arrives before the trap is set would simply end the shell.
    wait_for_content(|| target.output_tail("stubborn").first().cloned()).await;
    let pgids = pids(&target.snapshot());
    let report = target.shutdown_with_grace(Duration::from_millis(300)).await;
    assert_eq!(report.stopped.len(), 1);
    assert_eq!(report.stopped[0].how, StopHow::Kill);
    assert!(report.elapsed >= Duration::from_millis(300));
    assert!(report.is_clean());
    assert_eq!(
        groups_gone(&pgids, Duration::from_secs(2)).await,
        Vec::<u32>::new()
    );
}

#[tokio::test]
async fn dropping_the_target_kills_everything_and_restarts_nothing() {
    let forking = shell("forking", "sleep 100 & sleep 100; wait");
    let (target, mut events) = start(vec![sleeper("svc", 2), forking]).await;
    let pgids = pids(&target.snapshot());
    while events.try_recv().is_ok() {}
    // A panic inside the task that owns the target, as on a failed drill.
    let owner = tokio::spawn(async move {
        let _target = target;
        panic!("drill failed");
    });
    assert!(owner.await.is_err());
    assert_eq!(
        groups_gone(&pgids, Duration::from_secs(2)).await,
        Vec::<u32>::new()
    );
    // Nothing is restarted after the restart delay.
    tokio::time::sleep(Duration::from_millis(400)).await;
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, ProcessEvent::Started { .. }),
            "restarted after drop: {event:?}"
        );
    }
}

const HELPER_ENV: &str = "DRILLBOOK_TEST_PDEATHSIG_PIDS";

/// Runs only as the child of `children_die_when_drillbook_is_sigkilled`: starts a group on a
/// multi-thread runtime like drillbook's, has one instance restarted by a worker thread, writes
/// the pids to the file named by the env var, then waits to be SIGKILLed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process for children_die_when_drillbook_is_sigkilled"]
async fn pdeathsig_helper() {
    let Ok(pid_file) = std::env::var(HELPER_ENV) else {
        return;
    };
    let (target, _events) = start(vec![sleeper("svc", 2)]).await;
    let mut rng = StdRng::seed_from_u64(5);
    let killed = target
        .kill("svc", 1, Signal::Kill, PickMode::Random, &mut rng)
        .await
        .expect("kill");
    back_up(&target, &killed).await;
    let pids: Vec<String> = pids(&target.snapshot())
        .iter()
        .map(u32::to_string)
        .collect();
    let partial = format!("{pid_file}.tmp");
    std::fs::write(&partial, pids.join(" ")).expect("write pids");
    std::fs::rename(&partial, &pid_file).expect("publish pids");
    tokio::time::sleep(Duration::from_secs(30)).await;
    drop(target);
}

#[tokio::test]
async fn children_die_when_drillbook_is_sigkilled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pids");
    let mut helper = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "local_target::pdeathsig_helper",
            "--ignored",
            "--nocapture",
        ])
        .env(HELPER_ENV, &pid_file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("helper starts");
    let content = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(content) = std::fs::read_to_string(&pid_file) {
                return content;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let _ = helper.kill(); // SIGKILL: no destructor, no shutdown runs in the helper.
    let _ = helper.wait();
    let grandchildren: Vec<u32> = content
        .expect("helper wrote its pids")
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    assert_eq!(grandchildren.len(), 2);
    assert_eq!(
        groups_gone(&grandchildren, Duration::from_secs(3)).await,
        Vec::<u32>::new()
    );
}
