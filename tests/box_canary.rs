//! The Kubernetes constructs of the canary checklist (issue #14) on the box, each both ways:
//! `not_ready` and `restarts` guards, `set_image`, `rollout_undo`, `patch` and `wait_for` on a
//! CRD, and the `logs`, `configmap` and `version` checks. Every test works in a fresh namespace
//! of its own (deleted on every exit path) with busybox workloads from the box's image store,
//! and runs the drill through the binary. Skips without the box (see `common::boxed`).

use crate::common::cli::{self, Ran};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BUSYBOX: &str = "box.local/busybox:1.35";
const DRILLBOOK_IMAGE: &str = "box.local/drillbook:dev";

use crate::common;

/// The pinned helm/kubectl of `e2e/tools.sh`.
fn tools_dir() -> PathBuf {
    std::env::var_os("DRILLBOOK_CACHE")
        .map_or_else(
            || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/drillbook"),
            PathBuf::from,
        )
        .join("tools/bin")
}

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let tools = tools_dir().join("kubectl");
    let program = if tools.exists() {
        tools
    } else {
        PathBuf::from("kubectl")
    };
    let mut child = Command::new(program)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--context", "box"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or("").as_bytes())
            .expect("kubectl stdin");
    }
    child.wait_with_output().expect("kubectl ends")
}

fn ok(output: &Output, what: &str) -> String {
    assert!(output.status.success(), "{what}: {}", output.stderr_str());
    output.stdout_str()
}

/// A fresh namespace, deleted (without waiting) when dropped.
struct Namespace {
    kubeconfig: PathBuf,
    name: String,
}

impl Namespace {
    fn new(kubeconfig: &Path, test: &str) -> Self {
        let name = format!("canary-{test}-{}", std::process::id());
        ok(
            &kubectl(kubeconfig, &["create", "namespace", &name], None),
            "create namespace",
        );
        Self {
            kubeconfig: kubeconfig.to_path_buf(),
            name,
        }
    }

    fn apply(&self, manifest: &str) {
        ok(
            &kubectl(
                &self.kubeconfig,
                &["-n", &self.name, "apply", "-f", "-"],
                Some(manifest),
            ),
            "apply",
        );
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ok(&kubectl(&self.kubeconfig, &all, None), &args.join(" "))
    }

    fn rollout(&self, deployment: &str) {
        self.kubectl(&[
            "rollout",
            "status",
            &format!("deployment/{deployment}"),
            "--timeout=120s",
        ]);
    }

    /// Runs a drill whose `target` is this namespace; `body` is everything after `target:`.
    fn drill(&self, name: &str, body: &str) -> Run {
        let dir = tempfile::tempdir().expect("temp dir");
        let scenario = dir.path().join("scenario.yaml");
        let text = format!(
            "apiVersion: drillbook/v1\nname: {name}\ntarget:\n  kubernetes:\n    context: box\n    \
             namespace: {ns}\n    allowed_contexts: [box]\n    allowed_namespaces: [{ns}]\n    \
             max_pods: 3\n{body}",
            ns = self.name
        );
        std::fs::write(&scenario, text).expect("write scenario");
        let reports = dir.path().join("reports");
        let output = cli::drillbook()
            .env("KUBECONFIG", &self.kubeconfig)
            .env("DRILLBOOK_STATE_DIR", dir.path().join("state"))
            .env("PATH", path_with_tools())
            .arg("run")
            .arg(&scenario)
            .arg("--report-dir")
            .arg(&reports)
            .output();
        let report = common::boxed::first_report(&reports);
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: output.stdout_str(),
            stderr: output.stderr_str(),
            report,
        }
    }
}

/// The drill's `command` steps run kubectl: the pinned one first.
fn path_with_tools() -> std::ffi::OsString {
    let mut paths = vec![tools_dir()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).expect("PATH joins")
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = kubectl(
            &self.kubeconfig,
            &[
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ],
            None,
        );
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    report: Option<Value>,
}

impl Run {
    fn verdict(&self) -> String {
        self.report.as_ref().map_or_else(String::new, |r| {
            r["verdict"].as_str().unwrap_or_default().to_string()
        })
    }

    fn reason(&self) -> String {
        self.report.as_ref().map_or_else(String::new, |r| {
            r["verdict_reason"].as_str().unwrap_or_default().to_string()
        })
    }

    fn check(&self, name: &str) -> String {
        self.report
            .as_ref()
            .and_then(|r| r["checks"].as_array())
            .and_then(|checks| checks.iter().find(|c| c["name"] == name))
            .and_then(|c| c["verdict"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    fn explain(&self) -> String {
        let tail: Vec<&str> = self.stderr.lines().rev().take(30).collect();
        format!(
            "exit {}\n--- stdout ---\n{}\n--- stderr (tail) ---\n{}",
            self.code,
            self.stdout,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

/// A busybox Deployment `name` (`app=name`) running `script`, ready while /tmp/ready exists.
fn deployment(name: &str, replicas: u32, script: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}, version: "1"}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: {BUSYBOX}
          imagePullPolicy: Never
          command: ["sh", "-c", {script:?}]
          readinessProbe:
            exec: {{command: ["test", "-f", "/tmp/ready"]}}
            periodSeconds: 1
            failureThreshold: 1
"#
    )
}

const HEALTHY: &str = "touch /tmp/ready; while true; do echo 'Token usage: 1'; sleep 1; done";

fn image_of(ns: &Namespace, deployment: &str) -> String {
    ns.kubectl(&[
        "get",
        &format!("deployment/{deployment}"),
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])
}

#[test]
fn not_ready_guard_trips_when_the_readiness_probe_fails_and_not_when_healthy() {
    let Some(kubeconfig) = common::boxed::kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "notready");
    ns.apply(&deployment("web", 2, HEALTHY));
    ns.rollout("web");
    let body = "steps:\n  - at: 2s\n    name: break\n    command: {argv: [kubectl, exec, deploy/web, --, rm, -f, /tmp/ready]}\n  - wait: 15s\nabort_when:\n  - not_ready: {selector: \"app=web\", above: \"0%\"}\n    for: 3s\nchecks:\n  - name: ran\n    version: {selector: \"app=web\", label: {version: \"1\"}}\n";
    let tripped = ns.drill("notready-trips", body);
    assert_eq!(tripped.code, 4, "{}", tripped.explain());
    assert!(
        tripped.reason().contains("NotReady"),
        "{}",
        tripped.explain()
    );

    let ns = Namespace::new(&kubeconfig, "ready");
    ns.apply(&deployment("web", 2, HEALTHY));
    ns.rollout("web");
    let quiet = ns.drill(
        "notready-quiet",
        "steps:\n  - wait: 8s\nabort_when:\n  - not_ready: {selector: \"app=web\", above: \"0%\"}\n    for: 3s\nchecks:\n  - name: ran\n    version: {selector: \"app=web\", label: {version: \"1\"}}\n",
    );
    assert_eq!(quiet.verdict(), "pass", "{}", quiet.explain());
}

#[test]
fn restarts_guard_trips_on_a_crash_looping_container() {
    let Some(kubeconfig) = common::boxed::kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "crash");
    ns.apply(&deployment("web", 1, HEALTHY));
    ns.rollout("web");
    let body = format!(
        "steps:\n  - name: crash\n    set_image: {{deployment: web, container: main, image: \"{BUSYBOX}\"}}\n  - command: {{argv: [kubectl, set, env, deploy/web, CRASH=1]}}\n  - wait: 90s\nabort_when:\n  - restarts: {{selector: \"app=web\", above: 1}}\nchecks:\n  - name: ran\n    version: {{selector: \"app=web\", image: \"{BUSYBOX}\"}}\n"
    );
    // The crash: the pod's script exits at once when CRASH is set.
    ns.apply(&deployment(
        "web",
        1,
        "if [ -n \"$CRASH\" ]; then exit 1; fi; touch /tmp/ready; sleep 3600",
    ));
    ns.rollout("web");
    let run = ns.drill("restarts-trips", &body);
    assert_eq!(run.code, 4, "{}", run.explain());
    assert!(
        run.reason().contains("restart") || run.reason().contains("CrashLoopBackOff"),
        "{}",
        run.explain()
    );
}

#[test]
fn set_image_changes_the_image_and_its_undo_restores_it_and_version_checks_both_ways() {
    let Some(kubeconfig) = common::boxed::kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "setimage");
    ns.apply(&deployment("web", 1, HEALTHY));
    ns.rollout("web");
    let body = format!(
        "steps:\n  - name: promote\n    set_image: {{deployment: web, container: main, image: \"{DRILLBOOK_IMAGE}\"}}\n  - wait: 3s\nchecks:\n  - name: new-version\n    version: {{selector: \"app=web\", image: \"{DRILLBOOK_IMAGE}\", container: main}}\n  - name: old-version\n    version: {{selector: \"app=web\", image: \"{BUSYBOX}\", container: main}}\n"
    );
    let run = ns.drill("set-image", &body);
    // The template changed at once; the old pod may still run: `old-version` or `new-version`
    // fails depending on the pods, but both are judged and the undo restores the template.
    assert!(run.report.is_some(), "{}", run.explain());
    assert_eq!(image_of(&ns, "web"), BUSYBOX, "{}", run.explain());
}

#[test]
fn rollout_undo_returns_to_the_previous_template_and_its_undo_restores_the_current() {
    let Some(kubeconfig) = common::boxed::kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "undo");
    ns.apply(&deployment("web", 1, HEALTHY));
    ns.rollout("web");
    ns.kubectl(&["set", "env", "deploy/web", "REVISION=2"]);
    ns.rollout("web");
    let body = "steps:\n  - name: back\n    rollout_undo: {deployment: web}\n  - wait_rollout: {deployment: web, timeout: 120s}\n  - name: check\n    command: {argv: [kubectl, get, deploy/web, -o, \"jsonpath={.spec.template.spec.containers[0].env}\"]}\nchecks:\n  - name: ran\n    version: {selector: \"app=web\", label: {version: \"1\"}}\n";
    let run = ns.drill("rollout-undo", body);
    assert_eq!(run.verdict(), "pass", "{}", run.explain());
    // The drill's undo put revision 2's template (REVISION=2) back.
    let env = ns.kubectl(&[
        "get",
        "deploy/web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[0].value}",
    ]);
    assert_eq!(env, "2", "{}", run.explain());
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: canaryrollouts.drill.example.com}
spec:
  group: drill.example.com
  scope: Namespaced
  names: {plural: canaryrollouts, singular: canaryrollout, kind: CanaryRollout}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

fn crd_object(ns: &Namespace) {
    ok(
        &kubectl(&ns.kubeconfig, &["apply", "-f", "-"], Some(CRD)),
        "install the CRD",
    );
    ok(
        &kubectl(
            &ns.kubeconfig,
            &[
                "wait",
                "--for=condition=Established",
                "crd/canaryrollouts.drill.example.com",
                "--timeout=60s",
            ],
            None,
        ),
        "CRD established",
    );
    ns.apply("apiVersion: drill.example.com/v1\nkind: CanaryRollout\nmetadata: {name: canary}\nspec: {paused: false}\n");
}

#[test]
fn patch_and_wait_for_on_a_crd_status_and_the_patch_undo_restores_it() {
    let Some(kubeconfig) = common::boxed::kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "crd");
    crd_object(&ns);
    let body = "steps:\n  - name: healthy\n    patch: {apiVersion: drill.example.com/v1, kind: CanaryRollout, name: canary, subresource_status: true, merge: {status: {phase: Healthy}}}\n  - name: pause\n    patch: {apiVersion: drill.example.com/v1, kind: CanaryRollout, name: canary, json: [{op: replace, path: /spec/paused, value: true}]}\n  - wait_for: {apiVersion: drill.example.com/v1, kind: CanaryRollout, name: canary, condition: \"status.phase == Healthy\", timeout: 20s}\n  # Long enough for the ConfigMap sampler (every 2s) to read once.\n  - wait: 3s\nchecks:\n  - name: ran\n    configmap: {name: kube-root-ca.crt, max_bytes: 100000}\n";
    let run = ns.drill("crd-patch", body);
    assert_eq!(run.verdict(), "pass", "{}", run.explain());
    let after = ns.kubectl(&["get", "canaryrollout/canary", "-o", "json"]);
    let after: Value = serde_json::from_str(&after).expect("json");
    assert_eq!(after["spec"]["paused"], false, "the json patch was undone");
    assert!(
        after["status"]["phase"].is_null(),
        "the status patch was undone: {after}"
    );

    let timeout = ns.drill(
        "crd-wait-timeout",
        "steps:\n  - wait_for: {apiVersion: drill.example.com/v1, kind: CanaryRollout, name: canary, condition: \"status.phase == Healthy\", timeout: 3s}\nchecks:\n  - name: ran\n    configmap: {name: kube-root-ca.crt, max_bytes: 100000}\n",
    );
    assert_eq!(timeout.code, 4, "{}", timeout.explain());
    assert!(
        timeout.reason().contains("timed out"),
        "{}",
        timeout.explain()
    );
}

#[test]
fn preflight_reviews_the_permissions_of_a_discovered_resource_and_refuses_an_unserved_kind() {
    let Some(kubeconfig) = common::boxed::kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "discovery");
    crd_object(&ns);
    let checks =
        "checks:\n  - name: ran\n    configmap: {name: kube-root-ca.crt, max_bytes: 100000}\n";
    let reviewed = |run: &Run| -> u32 {
        let line = run
            .stderr
            .lines()
            .find_map(|l| {
                l.split_once("pre-flight ok: permissions all ")
                    .map(|(_, rest)| rest)
            })
            .unwrap_or_else(|| panic!("no permissions line: {}", run.explain()));
        line.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {line}"))
    };
    let without = ns.drill("no-patch", &format!("steps:\n  - wait: 3s\n{checks}"));
    let served = ns.drill(
        "discovered",
        &format!(
            "steps:\n  - patch: {{apiVersion: drill.example.com/v1, kind: CanaryRollout, name: canary, json: [{{op: replace, path: /spec/paused, value: true}}]}}\n  # The ConfigMap sampler reads every 2 s.\n  - wait: 3s\n{checks}"
        ),
    );
    assert_eq!(served.verdict(), "pass", "{}", served.explain());
    // The patch adds `get` and `patch` on canaryrollouts.drill.example.com, found by discovery.
    assert_eq!(
        reviewed(&served),
        reviewed(&without) + 2,
        "{}",
        served.explain()
    );
    let unserved = ns.drill(
        "unserved",
        "steps:\n  - patch: {apiVersion: drill.example.com/v1, kind: NoSuchRollout, name: canary, json: [{op: replace, path: /spec/paused, value: true}]}\n",
    );
    assert_eq!(
        unserved.code,
        5,
        "refused before anything: {}",
        unserved.explain()
    );
    assert!(
        unserved
            .stderr
            .contains("refused: pre-flight `resource NoSuchRollout (drill.example.com/v1)` failed")
            && unserved
                .stderr
                .contains("the cluster does not serve this kind")
            && !unserved.stderr.contains("GroupVersionKind {"),
        "the pre-flight names the kind the cluster does not serve: {}",
        unserved.explain()
    );
}

#[test]
fn logs_check_passes_and_fails_on_real_container_logs() {
    let Some(kubeconfig) = common::boxed::kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "logs");
    ns.apply(&deployment("jobs-manager", 1, HEALTHY));
    ns.rollout("jobs-manager");
    let body = "steps:\n  - wait: 6s\nchecks:\n  - name: token-usage\n    logs: {selector: \"app=jobs-manager\", pattern: \"Token usage\", min: 1}\n  - name: no-errors\n    logs: {selector: \"app=jobs-manager\", pattern: \"ERROR\", max: 0}\n  - name: errors-expected\n    logs: {selector: \"app=jobs-manager\", pattern: \"ERROR\", min: 1}\n";
    let run = ns.drill("logs", body);
    assert_eq!(run.check("token-usage"), "pass", "{}", run.explain());
    assert_eq!(run.check("no-errors"), "pass", "{}", run.explain());
    assert_eq!(run.check("errors-expected"), "fail", "{}", run.explain());
}

#[test]
fn configmap_check_passes_under_its_limit_and_fails_above_it() {
    let Some(kubeconfig) = common::boxed::kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "configmap");
    ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: revoke}\ndata: {a: \"1\"}\n");
    let body = "steps:\n  - wait: 2s\n  - name: grow\n    patch_configmap: {name: revoke, data: {big: \"0123456789012345678901234567890123456789\"}}\n  - wait: 4s\nchecks:\n  - name: small\n    configmap: {name: revoke, max_bytes: 1000, interval: 1s}\n  - name: tiny\n    configmap: {name: revoke, max_bytes: 10, interval: 1s}\n  - name: few-keys\n    configmap: {name: revoke, max_keys: 1, interval: 1s}\n";
    let run = ns.drill("configmap", body);
    assert_eq!(run.check("small"), "pass", "{}", run.explain());
    assert_eq!(run.check("tiny"), "fail", "{}", run.explain());
    assert_eq!(run.check("few-keys"), "fail", "{}", run.explain());
}

#[test]
fn version_check_passes_on_the_running_image_and_fails_on_another() {
    let Some(kubeconfig) = common::boxed::kubeconfig() else {
        return;
    };
    let ns = Namespace::new(&kubeconfig, "version");
    ns.apply(&deployment("web", 2, HEALTHY));
    ns.rollout("web");
    let body = format!(
        "steps:\n  - wait: 2s\nchecks:\n  - name: busybox\n    version: {{selector: \"app=web\", image: \"{BUSYBOX}\"}}\n  - name: candidate\n    version: {{selector: \"app=web\", image: \"{DRILLBOOK_IMAGE}\"}}\n  - name: label\n    version: {{selector: \"app=web\", label: {{version: \"2\"}}}}\n"
    );
    let run = ns.drill("version", &body);
    assert_eq!(run.check("busybox"), "pass", "{}", run.explain());
    assert_eq!(run.check("candidate"), "fail", "{}", run.explain());
    assert_eq!(run.check("label"), "fail", "{}", run.explain());
}
