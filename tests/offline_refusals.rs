//! `plan`, `validate` and `run` refuse the same things, before anything runs (issue #22): a
//! `command:` argv outside the scenario's pin used to plan as "run …" and be refused only
//! when the drill reached that step.

use crate::common::cli::{self, Ran};

const SCENARIO: &str = "apiVersion: drillbook/v1\nname: r\ntarget:\n  kubernetes:\n    \
    context: staging\n    namespace: shop\n    allowed_contexts: [staging]\n    \
    kubeconfig: /nonexistent/kubeconfig\nsteps:\n  - name: wipe\n    \
    command: {argv: [kubectl, delete, pods, --all, -nkube-system]}\nchecks:\n  - name: ok\n    \
    restarts: {selector: app=x, max: 0}\n";

#[test]
fn plan_validate_and_run_refuse_an_argv_outside_the_pin_at_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("r.yaml");
    std::fs::write(&file, SCENARIO).expect("write");
    let drillbook = |args: &[&str]| {
        let out = cli::drillbook().args(args).arg(&file).output();
        (
            out.status.code(),
            format!("{}{}", out.stdout_str(), out.stderr_str()),
        )
    };
    let reason = "namespace `kube-system` is not in allowed_namespaces (shop)";
    let (code, text) = drillbook(&["plan", "--offline"]);
    assert_eq!(code, Some(5), "{text}");
    assert!(text.contains("refused: step `wipe` (line 10)"), "{text}");
    assert!(text.contains(reason), "{text}");
    let (code, text) = drillbook(&["validate"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("r.yaml:10:5: error: run refuses step `wipe`"),
        "{text}"
    );
    // `run` refuses before it reads the kubeconfig (which does not exist): nothing started.
    let (code, text) = drillbook(&["run", "--report-dir", dir.path().to_str().expect("utf-8")]);
    assert_eq!(code, Some(5), "{text}");
    assert!(text.contains(reason), "{text}");
    assert!(
        !text.contains("kubeconfig"),
        "refused before connecting: {text}"
    );
}
