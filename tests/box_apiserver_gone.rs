//! The API server dies in the middle of a Kubernetes drill, on the box (`make e2e-box`): the
//! drill must abort, keep the undo it could not apply in its journal, and `drillbook recover`
//! must finish the job once the server is back.
//!
//! The box's kube-apiserver is a real process (`/run/drillbook-box/kube-apiserver.pid`): the
//! test SIGKILLs it after the drill's first step and starts it again, with the same command
//! line and environment, inside the box's network namespace (a guard restarts it if the test
//! fails in between).

use crate::common::cli::Ran;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;

use common::boxed::{self, kubeconfig as box_kubeconfig, kubectl};

const PID_FILE: &str = "/run/drillbook-box/kube-apiserver.pid";
const LOG_FILE: &str = "/var/lib/drillbook-box/logs/kube-apiserver.log";
const NETNS: &str = "/var/run/netns/drillbook-box";

/// The box's kube-apiserver: its command line and environment, read while it runs, so it can
/// be started again exactly as `box.sh` started it.
struct ApiServer {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    pid: i32,
    killed: bool,
}

fn nul_separated(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    bytes
        .split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

impl ApiServer {
    fn find() -> Self {
        let pid: i32 = std::fs::read_to_string(PID_FILE)
            .expect("the box's apiserver pid file")
            .trim()
            .parse()
            .expect("a pid");
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let comm = std::fs::read_to_string(proc.join("comm")).unwrap_or_default();
        assert_eq!(
            comm.trim(),
            "kube-apiserver",
            "pid {pid} is not the apiserver"
        );
        let env = nul_separated(&proc.join("environ"))
            .into_iter()
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                Some((key.to_string(), value.to_string()))
            })
            .collect();
        Self {
            argv: nul_separated(&proc.join("cmdline")),
            env,
            pid,
            killed: false,
        }
    }

    fn kill(&mut self) {
        self.killed = true;
        let status = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGKILL to the apiserver failed");
        let gone = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{}", self.pid)).exists() && Instant::now() < gone {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts it again in the node's netns, detached, logging where box.sh logs, and records
    /// the new pid where box.sh looks for it (`box.sh down` then stops it like the rest).
    fn restart(&mut self) {
        if !self.killed {
            return;
        }
        self.killed = false;
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(LOG_FILE)
            .expect("the apiserver log");
        let child = Command::new("setsid")
            .args(["bash", "-c", "echo $$ > \"$0\"; exec \"$@\"", PID_FILE])
            .args(["nsenter", &format!("--net={NETNS}"), "--"])
            .args(&self.argv)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("the apiserver starts");
        drop(child);
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.restart();
    }
}

fn ready(kubeconfig: &Path) -> bool {
    let output = kubectl(kubeconfig, &["get", "--raw", "/readyz"]);
    output.status.success() && output.stdout_str().trim() == "ok"
}

fn replicas(kubeconfig: &Path, namespace: &str) -> Option<u32> {
    let output = kubectl(
        kubeconfig,
        &[
            "-n",
            namespace,
            "get",
            "deployment/web",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    );
    output.stdout_str().trim().parse().ok()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("drillbook did not end within {limit:?} of the apiserver's death");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_api_server_dying_mid_drill_aborts_journals_the_undo_and_recover_finishes_it() {
    let Some(kubeconfig) = box_kubeconfig() else {
        return;
    };
    let namespace = format!("apiserver-gone-{}", std::process::id());
    let created = kubectl(&kubeconfig, &["create", "namespace", &namespace]);
    assert!(created.status.success(), "{:?}", created);
    let deployment = kubectl(
        &kubeconfig,
        &[
            "-n",
            &namespace,
            "create",
            "deployment",
            "web",
            "--image=box.local/busybox:1.35",
            "--replicas=2",
            "--",
            "sleep",
            "3600",
        ],
    );
    assert!(deployment.status.success(), "{deployment:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("scenario.yaml");
    std::fs::write(
        &scenario,
        format!(
            "apiVersion: drillbook/v1\nname: apiserver-gone\ntarget:\n  kubernetes:\n    \
             context: box\n    namespace: {namespace}\n    allowed_contexts: [box]\n    \
             allowed_namespaces: [{namespace}]\nsteps:\n  - at: 1s\n    name: scale-up\n    \
             scale: {{deployment: web, replicas: 3}}\n  - at: 8s\n    name: scale-more\n    \
             scale: {{deployment: web, replicas: 4}}\n  - name: hold\n    wait: 5s\n"
        ),
    )
    .expect("write scenario");
    let state = dir.path().join("state");
    let reports = dir.path().join("reports");

    let mut apiserver = ApiServer::find();
    let mut drill = boxed::drillbook(&kubeconfig, &state)
        .arg("run")
        .arg(&scenario)
        .arg("--report-dir")
        .arg(&reports)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    wait_for(
        "the first step scaled web to 3",
        Duration::from_secs(60),
        || replicas(&kubeconfig, &namespace) == Some(3),
    );
    apiserver.kill();
    let code = wait_exit(&mut drill, Duration::from_secs(240));
    let output = drill.wait_with_output().expect("output");
    let stderr = output.stderr_str();
    let stdout = output.stdout_str();
    let explain = format!("exit {code}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert_eq!(code, 4, "the drill aborts: {explain}");
    assert!(
        stdout.contains("scale-more"),
        "the report names the step that could not reach the API server: {explain}"
    );
    assert!(
        stdout.contains("drillbook recover") || stderr.contains("drillbook recover"),
        "the user is told to run recover: {explain}"
    );

    apiserver.restart();
    wait_for(
        "the apiserver is ready again",
        Duration::from_secs(120),
        || ready(&kubeconfig),
    );
    assert_eq!(
        replicas(&kubeconfig, &namespace),
        Some(3),
        "nothing undid it yet"
    );

    let dry = boxed::drillbook(&kubeconfig, &state)
        .args(["recover", "--dry-run"])
        .output();
    let dry_text = format!("{}{}", dry.stdout_str(), dry.stderr_str());
    assert!(
        dry_text.contains("scale-up") || dry_text.contains("web"),
        "the journaled undo is listed: {dry_text}"
    );
    assert_eq!(
        replicas(&kubeconfig, &namespace),
        Some(3),
        "--dry-run changes nothing"
    );

    let recover = boxed::drillbook(&kubeconfig, &state)
        .arg("recover")
        .output();
    assert!(
        recover.status.success(),
        "recover: {}{}",
        recover.stdout_str(),
        recover.stderr_str()
    );
    assert_eq!(
        replicas(&kubeconfig, &namespace),
        Some(2),
        "recover scaled web back"
    );
    let again = boxed::drillbook(&kubeconfig, &state)
        .args(["recover", "--dry-run"])
        .output();
    assert!(again.status.success(), "{again:?}");
    let again_text = again.stdout_str();
    assert!(
        !again_text.contains("scale-up"),
        "nothing left to recover: {again_text}"
    );
    let _ = kubectl(
        &kubeconfig,
        &["delete", "namespace", &namespace, "--wait=false"],
    );
}
