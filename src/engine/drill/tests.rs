//! The orchestration against a fake target: undos registered before each apply, and the
//! unwind (undos in reverse, then `finally`, then shutdown) on every exit path.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::engine::undo::UndoStack;
use crate::report::model::PreflightResult;
use crate::scenario::{Action, LoadedScenario, Scenario};
use crate::targets::observe::Observations;
use crate::targets::{Applied, Target, TargetError, UndoAction};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct FakeUndo(String);

impl UndoAction for FakeUndo {
    fn describe(&self) -> String {
        format!("run `{}`", self.0)
    }
}

impl From<crate::support::alertmanager::SilenceUndo> for FakeUndo {
    fn from(silence: crate::support::alertmanager::SilenceUndo) -> Self {
        Self(silence.describe())
    }
}

/// Records every call; steps are `command`s named by their first argv word.
#[derive(Debug, Default)]
struct Fake {
    calls: Arc<Mutex<Vec<String>>>,
    /// The drill's undo stack (shared), to see what is registered when a step is applied.
    undo: UndoStack<FakeUndo>,
    /// The step whose apply fails.
    fail: Option<&'static str>,
    /// The step whose undo cannot be prepared.
    no_undo: Option<&'static str>,
    /// The step during which an interrupt arrives; its apply then never returns by itself.
    interrupt: Option<(&'static str, CancellationToken)>,
    /// What `pod_health` answers (pod guards).
    pods: Option<crate::targets::observe::PodHealth>,
}

impl Fake {
    fn log(&self, call: String) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
    }
}

fn word(action: &Action) -> &str {
    match action {
        Action::Command(c) => c.argv.first().map_or("", String::as_str),
        _ => "",
    }
}

impl Target for Fake {
    type Undo = FakeUndo;

    fn kind(&self) -> crate::scenario::TargetKind {
        crate::scenario::TargetKind::Local
    }

    async fn undo_for(&self, action: &Action) -> Result<Option<FakeUndo>, TargetError> {
        if self.no_undo == Some(word(action)) {
            return Err(TargetError::Incomplete("no way back"));
        }
        Ok(match action {
            Action::Command(c) => c
                .undo
                .as_ref()
                .and_then(|u| u.first())
                .map(|u| FakeUndo(u.clone())),
            _ => None,
        })
    }

    async fn apply(&self, action: &Action, _rng: &mut StdRng) -> Result<Applied, TargetError> {
        let step = word(action);
        let pending: Vec<String> = self.undo.pending().into_iter().map(|r| r.undo.0).collect();
        self.log(format!("apply {step} [{}]", pending.join(" ")));
        if let Some((at, interrupt)) = &self.interrupt
            && *at == step
        {
            interrupt.cancel();
            std::future::pending::<()>().await;
        }
        if self.fail == Some(step) {
            return Err(TargetError::Incomplete("boom"));
        }
        Ok(Applied::described(format!("ran {step}")))
    }

    async fn undo(&self, undo: FakeUndo) -> Result<(), TargetError> {
        self.log(format!("undo {}", undo.0));
        Ok(())
    }

    async fn identities(&self, _workload: &str) -> BTreeSet<String> {
        BTreeSet::new()
    }

    async fn observations(&self) -> Observations {
        Observations::default()
    }

    fn notable(&self) -> Vec<(Instant, String)> {
        Vec::new()
    }

    async fn jobs_running(&self) -> bool {
        false
    }

    async fn preflight(&self, _scenario: &Scenario) -> Vec<PreflightResult> {
        Vec::new()
    }

    async fn shutdown(self) {
        self.log("shutdown".into());
    }

    fn pod_health(
        &self,
        _selector: &crate::units::LabelSelector,
    ) -> Option<crate::targets::observe::PodHealth> {
        self.pods.clone()
    }
}

const STEPS: &str = "steps:
  - name: one
    command: {argv: [a], undo: [undo-a]}
  - name: two
    command: {argv: [b], undo: [undo-b]}
  - name: three
    command: {argv: [c], undo: [undo-c]}
finally:
  - name: fin
    command: {argv: [f]}
";

fn scenario(extra: &str) -> LoadedScenario {
    scenario_with(extra, STEPS)
}

fn scenario_with(extra: &str, steps: &str) -> LoadedScenario {
    let source = format!(
        "apiVersion: drillbook/v1\nname: fake\ntarget:\n  local:\n    processes:\n      \
         - name: svc\n        command: [\"true\"]\n{extra}{steps}"
    );
    match crate::scenario::load_source(Path::new("fake.yaml"), source) {
        Ok(loaded) => loaded,
        Err(diagnostics) => panic!("the test scenario is invalid:\n{diagnostics}"),
    }
}

/// Runs the drill on `fake` until it ends or `interrupt` is cancelled; returns what was
/// observed and every call the target saw.
async fn drill(
    loaded: &LoadedScenario,
    mut fake: Fake,
    interrupt: CancellationToken,
) -> (Observed, Vec<String>) {
    let calls = fake.calls.clone();
    let undo = UndoStack::default();
    fake.undo = undo.clone();
    let slot = Mutex::new(UndoStack::default());
    let observed = run_until(
        loaded,
        1,
        "test",
        &ProgressSink::default(),
        async |_: &LoadedScenario, _: &Vars| Ok((fake, undo)),
        interrupt,
        &slot,
    )
    .await
    .expect("the drill runs");
    let calls = calls.lock().map(|c| c.clone()).unwrap_or_default();
    (observed, calls)
}

fn undone(observed: &Observed) -> Vec<&str> {
    observed
        .undo
        .iter()
        .filter(|u| u.result.is_ok())
        .map(|u| u.step.as_str())
        .collect()
}

#[tokio::test]
async fn a_completed_drill_registers_each_undo_before_its_apply_and_unwinds_in_reverse() {
    let (observed, calls) = drill(&scenario(""), Fake::default(), CancellationToken::new()).await;
    assert_eq!(
        calls,
        [
            "apply a [undo-a]",
            "apply b [undo-a undo-b]",
            "apply c [undo-a undo-b undo-c]",
            "undo undo-c",
            "undo undo-b",
            "undo undo-a",
            "apply f []",
            "shutdown",
        ]
    );
    assert_eq!(observed.ending, Ending::Completed);
    assert_eq!(undone(&observed), ["three", "two", "one"]);
    assert_eq!(observed.finally.len(), 1);
}

/// What the target sees when the drill stops during step `two`: its undo was registered
/// before it ran, so both undos run, newest first, then `finally`.
const STOPPED_AT_TWO: [&str; 6] = [
    "apply a [undo-a]",
    "apply b [undo-a undo-b]",
    "undo undo-b",
    "undo undo-a",
    "apply f []",
    "shutdown",
];

#[tokio::test]
async fn a_failed_step_aborts_the_rest_and_still_undoes_itself() {
    let fake = Fake {
        fail: Some("b"),
        ..Fake::default()
    };
    let (observed, calls) = drill(&scenario(""), fake, CancellationToken::new()).await;
    assert_eq!(calls, STOPPED_AT_TWO);
    assert_eq!(
        observed.ending,
        Ending::Aborted("step `two` failed: boom".into())
    );
    assert_eq!(observed.steps.len(), 2);
}

const WITH_ROLLBACK: &str = "on_abort:
  - name: roll-back
    command: {argv: [r], undo: [undo-r]}
  - name: watch-it
    command: {argv: [w]}
";

#[tokio::test]
async fn an_abort_runs_the_rollback_procedure_before_the_undos_and_does_not_undo_it() {
    let fake = Fake {
        fail: Some("b"),
        ..Fake::default()
    };
    let (observed, calls) = drill(&scenario(WITH_ROLLBACK), fake, CancellationToken::new()).await;
    assert_eq!(
        calls,
        [
            "apply a [undo-a]",
            "apply b [undo-a undo-b]",
            // The rollback runs first, with no undo of its own registered.
            "apply r [undo-a undo-b]",
            "apply w [undo-a undo-b]",
            "undo undo-b",
            "undo undo-a",
            "apply f []",
            "shutdown",
        ]
    );
    let rolled: Vec<&str> = observed
        .rolled_back
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(rolled, ["roll-back", "watch-it"]);
    assert!(
        observed
            .events
            .iter()
            .any(|e| e.step.as_deref() == Some("roll-back")),
        "the rollback is on the timeline"
    );
}

#[tokio::test]
async fn a_failing_rollback_step_ends_the_procedure_and_the_undos_still_run() {
    let fake = Fake {
        fail: Some("r"),
        ..Fake::default()
    };
    let steps = format!(
        "{WITH_ROLLBACK}steps:\n  - name: one\n    command: {{argv: [a], undo: [undo-a]}}\n  - name: two\n    command: {{argv: [r]}}\n"
    );
    let (observed, calls) = drill(&scenario_with("", &steps), fake, CancellationToken::new()).await;
    assert_eq!(
        calls,
        [
            "apply a [undo-a]",
            "apply r [undo-a]",
            "apply r [undo-a]",
            "undo undo-a",
            "shutdown"
        ]
    );
    assert_eq!(observed.rolled_back.len(), 1);
    assert!(
        observed
            .warnings
            .iter()
            .any(|w| w.contains("rollback step `roll-back` failed")),
        "{:?}",
        observed.warnings
    );
}

#[tokio::test]
async fn a_completed_drill_never_runs_the_rollback_procedure() {
    let (observed, calls) = drill(
        &scenario(WITH_ROLLBACK),
        Fake::default(),
        CancellationToken::new(),
    )
    .await;
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("apply r") || c.starts_with("apply w")),
        "{calls:?}"
    );
    assert!(observed.rolled_back.is_empty());
}

#[tokio::test]
async fn a_step_without_a_way_back_is_not_applied() {
    let fake = Fake {
        no_undo: Some("b"),
        ..Fake::default()
    };
    let (observed, calls) = drill(&scenario(""), fake, CancellationToken::new()).await;
    assert_eq!(
        calls,
        ["apply a [undo-a]", "undo undo-a", "apply f []", "shutdown"]
    );
    assert_eq!(
        observed.ending,
        Ending::Aborted(
            "step `two` failed: not applied: its undo could not be prepared: no way back".into()
        )
    );
}

#[tokio::test]
async fn an_interrupt_mid_step_stops_it_and_unwinds_what_was_registered() {
    let interrupt = CancellationToken::new();
    let fake = Fake {
        interrupt: Some(("b", interrupt.clone())),
        ..Fake::default()
    };
    let (observed, calls) = drill(&scenario(""), fake, interrupt).await;
    assert_eq!(calls, STOPPED_AT_TWO);
    assert_eq!(observed.ending, Ending::Interrupted);
    assert!(matches!(
        observed.steps[1].error,
        Some(StepError::Interrupted)
    ));
}

#[tokio::test]
async fn an_interrupt_while_the_target_starts_runs_no_step_but_finally() {
    let interrupt = CancellationToken::new();
    interrupt.cancel();
    let (observed, calls) = drill(&scenario(""), Fake::default(), interrupt).await;
    assert_eq!(calls, ["apply f []", "shutdown"]);
    assert_eq!(observed.ending, Ending::Interrupted);
    assert!(observed.steps.is_empty());
}

/// Answers every request on loopback with a 500, for the abort guard.
async fn failing_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("local address").port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buffer).await {
                    if n == 0 {
                        return;
                    }
                    let requests = buffer[..n].windows(4).filter(|w| w == b"\r\n\r\n").count();
                    for _ in 0..requests {
                        let answer =
                            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n";
                        if conn.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_tripped_abort_guard_stops_the_timeline_and_unwinds() {
    let port = failing_server().await;
    // The first step runs at once; the others wait long enough for the guard to trip first.
    let loaded = scenario_with(
        &format!(
            "load:\n  url: http://127.0.0.1:{port}/\n  rate: 20/s\n  duration: 20s\n\
             abort_when:\n  - http: \"rate(5xx) > 50%\"\n    for: 1s\n"
        ),
        &STEPS
            .replacen("- name: one", "- at: 0s\n    name: one", 1)
            .replacen("- name: two", "- at: 15s\n    name: two", 1)
            .replacen("- name: three", "- at: 16s\n    name: three", 1),
    );
    let (observed, calls) = drill(&loaded, Fake::default(), CancellationToken::new()).await;
    assert_eq!(
        calls,
        ["apply a [undo-a]", "undo undo-a", "apply f []", "shutdown"]
    );
    assert!(
        matches!(&observed.ending, Ending::Aborted(why) if why.contains("5xx")),
        "{:?}",
        observed.ending
    );
}

/// The drill must stop before its first fault, for a reason containing each of `why`: every
/// step but `finally` is skipped.
async fn assert_aborted_before_the_first_fault(loaded: &LoadedScenario, why: &[&str]) {
    let run = drill(loaded, Fake::default(), CancellationToken::new());
    let (observed, calls) = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the drill ends by itself");
    assert_eq!(calls, ["apply f []", "shutdown"]);
    assert!(
        matches!(&observed.ending,
            Ending::Aborted(reason) if why.iter().all(|w| reason.contains(w))),
        "{:?}",
        observed.ending
    );
    assert!(observed.steps.is_empty());
}

#[tokio::test]
async fn a_load_whose_token_url_refuses_aborts_before_the_first_fault() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once. A load
    // that cannot start leaves nothing to measure the fault.
    assert_aborted_before_the_first_fault(
        &scenario(
            "load:\n  url: http://127.0.0.1:1/\n  rate: 10/s\n  duration: 5s\n  \
             auth:\n    token_url: http://127.0.0.1:1/token\n    callers: 2\n",
        ),
        &["the load stopped"],
    )
    .await;
}

#[tokio::test]
async fn a_load_with_a_zero_timeout_aborts_before_the_first_fault() {
    assert_aborted_before_the_first_fault(
        &scenario(
            "load:\n  url: http://127.0.0.1:1/\n  rate: 10/s\n  duration: 5s\n  timeout: 0s\n",
        ),
        &["timeout"],
    )
    .await;
}

#[tokio::test]
async fn a_baseline_of_errors_is_no_steady_state_and_aborts_before_the_first_fault() {
    // Nothing listens on loopback port 1: every baseline request is refused.
    let loaded = scenario_with(
        "load:\n  url: http://127.0.0.1:1/\n  rate: 20/s\n  duration: 10s\n",
        &STEPS.replacen("- name: one", "- at: 3s\n    name: one", 1),
    );
    assert_aborted_before_the_first_fault(&loaded, &["steady state", "connect_refused"]).await;
}

#[tokio::test]
async fn steady_state_false_lets_a_fault_into_a_broken_baseline() {
    let loaded = scenario_with(
        "load:\n  url: http://127.0.0.1:1/\n  rate: 20/s\n  duration: 4s\n  steady_state: false\n",
        &STEPS.replacen("- name: one", "- at: 2s\n    name: one", 1),
    );
    let run = drill(&loaded, Fake::default(), CancellationToken::new());
    let (observed, calls) = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the drill ends by itself");
    assert_eq!(observed.ending, Ending::Completed);
    assert_eq!(calls.first().map(String::as_str), Some("apply a [undo-a]"));
}

/// A scenario with a `not_ready` guard on `app=svc` (above 50%, for 1s). Validation refuses
/// pod guards on a local target, so the guard is added after loading, as a kube scenario has it.
fn with_not_ready_guard(steps: &str) -> LoadedScenario {
    let mut loaded = scenario_with("", steps);
    let guard = crate::scenario::Guard {
        http: None,
        name: None,
        prometheus: None,
        for_: "1s".parse().unwrap(),
        not_ready: Some(crate::scenario::NotReadyGuard {
            selector: crate::scenario::Sp::unplaced("app=svc".parse().unwrap()),
            above: crate::scenario::Sp::unplaced("50%".into()),
        }),
        restarts: None,
    };
    loaded
        .scenario
        .abort_when
        .push(crate::scenario::Sp::unplaced(guard));
    loaded
}

fn pods(not_ready: u32) -> crate::targets::observe::PodHealth {
    crate::targets::observe::PodHealth {
        pods: 2,
        not_ready,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_tripped_not_ready_guard_aborts_unwinds_and_names_its_values() {
    let loaded = with_not_ready_guard(
        &STEPS
            .replacen("- name: one", "- at: 0s\n    name: one", 1)
            .replacen("- name: two", "- at: 15s\n    name: two", 1),
    );
    let fake = Fake {
        pods: Some(pods(2)),
        ..Fake::default()
    };
    let run = drill(&loaded, fake, CancellationToken::new());
    let (observed, calls) = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the guard ends the drill long before step two");
    assert_eq!(
        calls,
        ["apply a [undo-a]", "undo undo-a", "apply f []", "shutdown"]
    );
    assert!(
        matches!(&observed.ending,
            Ending::Aborted(why) if why.contains("2 of 2 pod(s) NotReady") && why.contains("tripped at t+")),
        "{:?}",
        observed.ending
    );
}

#[tokio::test]
async fn a_healthy_not_ready_guard_lets_every_step_run() {
    let loaded =
        with_not_ready_guard(&STEPS.replacen("- name: three", "- at: 3s\n    name: three", 1));
    let fake = Fake {
        pods: Some(pods(1)),
        ..Fake::default()
    };
    let (observed, calls) = drill(&loaded, fake, CancellationToken::new()).await;
    assert_eq!(observed.ending, Ending::Completed);
    assert!(calls.iter().any(|c| c.starts_with("apply c")), "{calls:?}");
}
