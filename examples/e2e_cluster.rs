//! The e2e harness: a real Kubernetes 1.20 control plane on loopback for the Kubernetes tests.
//!
//! `cargo run --example e2e_cluster -- <command> [args...]` finds (or builds, once, with
//! `e2e/control-plane.sh`) etcd, kube-apiserver, kube-controller-manager and kube-scheduler,
//! starts them on ephemeral loopback ports in a temporary directory, plays the one node's
//! kubelet itself (see `e2e_cluster/kubelet.rs`), then runs `<command>` with
//!
//! - `DRILLBOOK_E2E_KUBECONFIG`: a kubeconfig whose current-context (`wrong-default`) points at
//!   nothing, plus the contexts `drill-e2e` and `prod-e2e` (both the real cluster, admin token);
//! - `DRILLBOOK_E2E_CONTEXT=drill-e2e`, `DRILLBOOK_E2E_SERVER`, `DRILLBOOK_E2E_TOKEN`,
//!
//! stops everything it started (also on Ctrl-C, SIGTERM, errors and panics) and exits with the
//! command's exit code. Component logs are in the temporary directory; their tails are printed
//! on failure. `DRILLBOOK_E2E_KEEP=1` keeps the directory.

#[path = "e2e_cluster/control_plane.rs"]
mod control_plane;
#[path = "e2e_cluster/kubelet.rs"]
mod kubelet;

use std::ffi::OsString;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use control_plane::{Layout, Processes};
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use kubelet::KubeletLog;
use tokio::signal::unix::{SignalKind, signal};

/// Generous: the first start after a build also warms the page cache on a busy 2-core machine.
const APISERVER_TIMEOUT: Duration = Duration::from_secs(180);
const STEP_TIMEOUT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(250);
const LOG_TAIL_LINES: usize = 25;

#[tokio::main]
async fn main() -> ExitCode {
    let command: Vec<OsString> = std::env::args_os().skip(1).collect();
    if command.is_empty() {
        eprintln!("usage: cargo run --example e2e_cluster -- <command> [args...]");
        return ExitCode::from(2);
    }
    match run(command).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("e2e_cluster: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Vec<OsString>) -> anyhow::Result<ExitCode> {
    let _already_installed = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/control-plane.sh");
    // Before the signal handlers: a Ctrl-C during the (long) first build just ends everything.
    let binaries = control_plane::locate_binaries(&script)?;

    let dir = tempfile::Builder::new()
        .prefix("drillbook-e2e-")
        .tempdir()
        .context("creating the temporary directory")?;
    // etcd fsyncs every write; on tmpfs that costs nothing.
    let etcd_dir = tempfile::Builder::new()
        .prefix("drillbook-e2e-etcd-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::Builder::new().tempdir_in(dir.path()))
        .context("creating etcd's data directory")?;
    let layout = Layout {
        dir: dir.path().to_path_buf(),
        etcd_data: etcd_dir.path().join("data"),
    };

    let mut interrupt = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut processes = Processes::default();
    let outcome = tokio::select! {
        outcome = session(&binaries, &layout, &mut processes, &command) => outcome,
        _ = interrupt.recv() => Err(Interrupted(130).into()),
        _ = terminate.recv() => Err(Interrupted(143).into()),
    };
    // The session's command (if any) is stopped by now: dropping the session future did it.
    processes.stop_all();

    let keep = std::env::var_os("DRILLBOOK_E2E_KEEP").is_some_and(|value| value == "1");
    if !matches!(outcome, Ok(0)) {
        print_log_tails(&processes, &layout);
        if !keep {
            eprintln!("e2e_cluster: DRILLBOOK_E2E_KEEP=1 keeps the logs and keys after the run");
        }
    }
    if keep {
        eprintln!("e2e_cluster: kept {}", dir.keep().display());
    }
    match outcome {
        Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
        Err(error) => match error.downcast_ref::<Interrupted>() {
            Some(Interrupted(code)) => {
                eprintln!("e2e_cluster: interrupted; everything stopped");
                Ok(ExitCode::from(*code))
            }
            None => Err(error),
        },
    }
}

/// A signal ended the run; the exit code to report (128 + signal number).
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted(u8);

/// Everything between "binaries found" and "command finished": the exit code of the command.
async fn session(
    binaries: &control_plane::Binaries,
    layout: &Layout,
    processes: &mut Processes,
    command: &[OsString],
) -> anyhow::Result<i32> {
    let started = Instant::now();
    let token = format!("{:032x}", rand::random::<u128>());
    control_plane::write_token_file(layout, &token)?;
    control_plane::generate_service_account_keys(layout)?;

    let etcd_port = free_port()?;
    processes.start(
        "etcd",
        &binaries.etcd,
        &control_plane::args::etcd(layout, etcd_port, free_port()?),
        layout.log("etcd"),
    )?;
    wait_for("etcd", STEP_TIMEOUT, processes, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", etcd_port))
            .await
            .map(drop)
            .map_err(|error| error.to_string())
    })
    .await?;
    progress(started, "etcd listening");

    let apiserver_port = free_port()?;
    processes.start(
        "kube-apiserver",
        &binaries.apiserver,
        &control_plane::args::apiserver(layout, apiserver_port, etcd_port),
        layout.log("kube-apiserver"),
    )?;
    let serving_cert = layout.serving_cert();
    wait_for(
        "the apiserver's certificate",
        STEP_TIMEOUT,
        processes,
        || {
            let exists = serving_cert.is_file();
            async move { exists.then_some(()).ok_or("not written yet".to_owned()) }
        },
    )
    .await?;
    let server = format!("https://127.0.0.1:{apiserver_port}");
    let nowhere = format!("https://127.0.0.1:{}", free_port()?);
    control_plane::write_kubeconfigs(layout, &server, &nowhere, &token)?;
    let client = admin_client(&layout.kubeconfig()).await?;
    wait_for("apiserver /readyz", APISERVER_TIMEOUT, processes, || {
        let client = client.clone();
        async move {
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|error| error.to_string())?;
            client
                .request_text(request)
                .await
                .map(drop)
                .map_err(|error| error.to_string())
        }
    })
    .await?;
    progress(started, &format!("kube-apiserver ready on {server}"));

    processes.start(
        "kube-controller-manager",
        &binaries.controller_manager,
        &control_plane::args::controller_manager(layout),
        layout.log("kube-controller-manager"),
    )?;
    processes.start(
        "kube-scheduler",
        &binaries.scheduler,
        &control_plane::args::scheduler(layout),
        layout.log("kube-scheduler"),
    )?;

    let kubelet_log = KubeletLog::create(&layout.log("kubelet"))?;
    wait_for("node registration", STEP_TIMEOUT, processes, || {
        let (client, log) = (client.clone(), kubelet_log.clone());
        async move {
            kubelet::register_node(&client, &log)
                .await
                .map_err(|error| error.to_string())
        }
    })
    .await?;
    // Aborted when dropped with the session, like the processes.
    let kubelet_task = AbortOnDrop(tokio::spawn(kubelet::run(client.clone(), kubelet_log)));

    wait_for("node Ready", STEP_TIMEOUT, processes, || {
        let client = client.clone();
        async move { node_ready(&client).await }
    })
    .await?;
    wait_for(
        "the default service account and its token",
        STEP_TIMEOUT,
        processes,
        || {
            let client = client.clone();
            async move { default_service_account_ready(&client).await }
        },
    )
    .await?;
    progress(
        started,
        "controller-manager, scheduler and stand-in kubelet ready",
    );

    let env = [
        (
            "DRILLBOOK_E2E_KUBECONFIG",
            layout.kubeconfig().display().to_string(),
        ),
        (
            "DRILLBOOK_E2E_CONTEXT",
            control_plane::TEST_CONTEXT.to_owned(),
        ),
        ("DRILLBOOK_E2E_SERVER", server),
        ("DRILLBOOK_E2E_TOKEN", token),
    ];
    eprintln!(
        "e2e_cluster: running {}",
        command
            .iter()
            .map(|arg| arg.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let code = run_command(command, &env, processes).await?;
    drop(kubelet_task);
    progress(started, &format!("command exited with {code}"));
    Ok(code)
}

/// Runs the command in its own process group; dropping the guard (a signal, a panic) stops the
/// whole group, so `cargo test` and the test binary it started go together.
async fn run_command(
    command: &[OsString],
    env: &[(&str, String)],
    processes: &mut Processes,
) -> anyhow::Result<i32> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow!("no command to run"))?;
    let child = tokio::process::Command::new(program)
        .args(args)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    let mut command = CommandGroup(child);
    let mut health = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            status = command.0.wait() => {
                let status = status.context("waiting for the command")?;
                return Ok(exit_code(status));
            }
            _ = health.tick() => {
                // A dead apiserver turns every test into a timeout; say so at once.
                if let Err(error) = processes.check_running() {
                    eprintln!("e2e_cluster: {error}");
                }
            }
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1)
}

/// The command's child process; stops its process group when dropped before it exited.
struct CommandGroup(tokio::process::Child);

impl Drop for CommandGroup {
    fn drop(&mut self) {
        let child = &mut self.0;
        if let Some(leader) = child.id() {
            control_plane::stop_group("the command", leader, || {
                matches!(child.try_wait(), Ok(Some(_)))
            });
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A kube client for the `drill-e2e` context, never the current context.
async fn admin_client(kubeconfig: &Path) -> anyhow::Result<Client> {
    let config = Kubeconfig::read_from(kubeconfig).context("reading the kubeconfig")?;
    let options = KubeConfigOptions {
        context: Some(control_plane::TEST_CONTEXT.to_owned()),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(config, &options)
        .await
        .context("loading the drill-e2e context")?;
    Client::try_from(config).context("building the kube client")
}

async fn node_ready(client: &Client) -> Result<(), String> {
    let node = Api::<Node>::all(client.clone())
        .get(kubelet::NODE_NAME)
        .await
        .map_err(|error| error.to_string())?;
    let ready = node
        .status
        .and_then(|status| status.conditions)
        .into_iter()
        .flatten()
        .any(|condition| condition.type_ == "Ready" && condition.status == "True");
    let tainted = node
        .spec
        .and_then(|spec| spec.taints)
        .into_iter()
        .flatten()
        .any(|taint| taint.effect == "NoSchedule" || taint.effect == "NoExecute");
    match (ready, tainted) {
        (true, false) => Ok(()),
        _ => Err(format!("ready: {ready}, tainted: {tainted}")),
    }
}

/// Pods are admitted only once their namespace's `default` service account has its token
/// secret (ServiceAccount admission in 1.20); the `default` namespace proves the apiserver's
/// bootstrap, its account proves both service-account controllers.
async fn default_service_account_ready(client: &Client) -> Result<(), String> {
    Api::<Namespace>::all(client.clone())
        .get("default")
        .await
        .map_err(|error| format!("namespace default: {error}"))?;
    let account = Api::<ServiceAccount>::namespaced(client.clone(), "default")
        .get_opt("default")
        .await
        .map_err(|error| error.to_string())?
        .ok_or("no default service account yet")?;
    if account.secrets.is_some_and(|secrets| !secrets.is_empty()) {
        Ok(())
    } else {
        Err("the default service account has no token secret yet".to_owned())
    }
}

/// Polls `probe` until it succeeds, failing early when a component died and with the probe's
/// last error on timeout.
async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    processes: &mut Processes,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        processes
            .check_running()
            .with_context(|| format!("waiting for {what}"))?;
        match probe().await {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => {
                bail!("timed out after {timeout:?} waiting for {what} (last: {last})")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding an ephemeral port")?;
    Ok(listener.local_addr()?.port())
}

fn progress(started: Instant, message: &str) {
    eprintln!(
        "e2e_cluster: [{:>5.1}s] {message}",
        started.elapsed().as_secs_f64()
    );
}

fn print_log_tails(processes: &Processes, layout: &Layout) {
    let kubelet_log: PathBuf = layout.log("kubelet");
    let logs = processes
        .logs()
        .chain(std::iter::once(("kubelet", kubelet_log.as_path())));
    for (name, path) in logs {
        eprintln!(
            "\n----- {name}: last {LOG_TAIL_LINES} lines of {} -----\n{}",
            path.display(),
            control_plane::tail(path, LOG_TAIL_LINES)
        );
    }
}
