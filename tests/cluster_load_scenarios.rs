//! `load.from: cluster` in the scenario format: what validation refuses (with the reason a
//! user can act on), what it warns about, and what `plan` shows before anything is created.

use crate::common::cli::{self, Ran};
use std::path::Path;

use drillbook::scenario::load_source;

const KUBE_TARGET: &str = "target:\n  kubernetes:\n    context: staging\n    namespace: tracebloc\n    \
                           allowed_contexts: [staging]\n";

fn scenario(target: &str, load: &str) -> String {
    format!(
        "apiVersion: drillbook/v1\nname: cluster-load\n{target}load:\n{load}steps:\n  - at: 5s\n    \
         wait: 1s\nchecks:\n  - name: no-401\n    http: \"rate(401) == 0\"\n"
    )
}

fn errors_of(source: String) -> String {
    match load_source(Path::new("s.yaml"), source) {
        Ok(_) => String::new(),
        Err(diagnostics) => diagnostics.to_string(),
    }
}

const CLUSTER_LOAD: &str = "  url: http://requests-proxy.tracebloc.svc:8080/v1/train\n  rate: 20/s\n  \
                            duration: 30s\n  from: cluster\n  cluster: {workers: 2, image: \"reg/drillbook:1\"}\n";

#[test]
fn a_cluster_load_on_a_kubernetes_target_is_valid() {
    let loaded = load_source(Path::new("s.yaml"), scenario(KUBE_TARGET, CLUSTER_LOAD))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn refusals_say_what_to_do() {
    let local_target =
        "target:\n  local:\n    processes:\n      - {name: api, command: [\"true\"]}\n";
    let cases = [
        (
            scenario(local_target, CLUSTER_LOAD),
            "needs a kubernetes target",
        ),
        (
            scenario(
                KUBE_TARGET,
                "  url: http://svc/\n  rate: 1/s\n  duration: 5s\n  from: cluster\n",
            ),
            "needs `cluster:`",
        ),
        (
            scenario(
                KUBE_TARGET,
                &format!("{CLUSTER_LOAD}  auth: {{bearer_file: /home/me/token}}\n"),
            ),
            "use `auth.bearer_secret",
        ),
        (
            scenario(
                KUBE_TARGET,
                &format!(
                    "{CLUSTER_LOAD}  auth: {{token_url: \"http://jm:8081/token\", callers: 1}}\n"
                ),
            ),
            "cannot be spread over 2 workers",
        ),
        (
            scenario(
                KUBE_TARGET,
                "  url: http://svc/\n  rate: 1/s\n  duration: 5s\n  from: cluster\n  \
                 cluster: {workers: 500, image: i}\n",
            ),
            "must be between 1 and 64",
        ),
        (
            scenario(
                KUBE_TARGET,
                "  url: http://svc/\n  rate: 1/s\n  duration: 5s\n  \
                 auth: {bearer_secret: {name: t, key: token}}\n",
            ),
            "add `from: cluster`",
        ),
        (
            scenario(
                KUBE_TARGET,
                "  url: http://svc/\n  rate: 1/s\n  duration: 5s\n  cluster: {image: i}\n",
            ),
            "add `from: cluster`",
        ),
    ];
    for (source, expected) in cases {
        let errors = errors_of(source.clone());
        assert!(
            errors.contains(expected),
            "expected `{expected}` in:\n{errors}\nfor:\n{source}"
        );
    }
}

#[test]
fn a_loopback_url_from_a_worker_pod_is_a_warning() {
    let load = CLUSTER_LOAD.replace("requests-proxy.tracebloc.svc", "127.0.0.1");
    let loaded = load_source(Path::new("s.yaml"), scenario(KUBE_TARGET, &load))
        .unwrap_or_else(|e| panic!("{e}"));
    let warnings = format!("{:?}", loaded.warnings);
    assert!(warnings.contains("the worker pod itself"), "{warnings}");
}

#[test]
fn plan_shows_the_worker_jobs_it_would_create() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.yaml");
    std::fs::write(&path, scenario(KUBE_TARGET, CLUSTER_LOAD)).expect("write");
    let out = cli::drillbook()
        .args(["plan", "--offline"])
        .arg(&path)
        .output();
    let stdout = out.stdout_str();
    assert!(out.status.success(), "{stdout}{}", out.stderr_str());
    assert!(
        stdout.contains(
            "2 Job(s) drillbook-load-<run>-0..1 in namespace tracebloc, image reg/drillbook:1"
        ),
        "{stdout}"
    );
}
