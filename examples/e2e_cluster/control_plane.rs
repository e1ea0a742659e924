//! The real control plane's processes: where the binaries are, the files they need (keys,
//! token file, kubeconfigs), starting them on loopback and stopping them — always, via `Drop`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::json;

/// Kubernetes version `e2e/control-plane.sh` builds.
const KUBERNETES_VERSION: &str = "1.20.2";
/// How long a component gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why the control plane could not be prepared or started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `e2e/control-plane.sh` failed or printed no cache directory.
    #[error("building the control plane with {script}: {reason}")]
    Build {
        /// The script path.
        script: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A binary is still missing after the build.
    #[error("{0} not found (is e2e/control-plane.sh's cache complete?)")]
    MissingBinary(PathBuf),
    /// A file could not be written or read.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A helper command (openssl) failed.
    #[error("{command} failed: {reason}")]
    Tool {
        /// The command line, shortened.
        command: String,
        /// Exit status or spawn error.
        reason: String,
    },
    /// A component could not be spawned.
    #[error("starting {name}: {source}")]
    Spawn {
        /// The component.
        name: &'static str,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// A component exited while it should be running.
    #[error("{name} exited early ({status}); see its log {log}")]
    Exited {
        /// The component.
        name: &'static str,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StartError {
    let path = path.to_path_buf();
    move |source| StartError::Io {
        action,
        path,
        source,
    }
}

/// The executables of the control plane.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// Debian's `etcd` (from `etcd-server`).
    pub etcd: PathBuf,
    /// `kube-apiserver` built by `e2e/control-plane.sh`.
    pub apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub controller_manager: PathBuf,
    /// `kube-scheduler`.
    pub scheduler: PathBuf,
}

impl Binaries {
    fn in_cache(cache: &Path) -> Option<Self> {
        let bin = cache.join("bin");
        let binaries = Self {
            etcd: find_on_path("etcd")?,
            apiserver: bin.join("kube-apiserver"),
            controller_manager: bin.join("kube-controller-manager"),
            scheduler: bin.join("kube-scheduler"),
        };
        binaries.missing().is_none().then_some(binaries)
    }

    fn missing(&self) -> Option<&Path> {
        [
            &self.etcd,
            &self.apiserver,
            &self.controller_manager,
            &self.scheduler,
        ]
        .into_iter()
        .find(|path| !path.is_file())
        .map(PathBuf::as_path)
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn default_cache() -> Option<PathBuf> {
    let root = match std::env::var_os("DRILLBOOK_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/drillbook"),
    };
    Some(root.join(format!("k8s-{KUBERNETES_VERSION}")))
}

/// The cached binaries; when any is missing, runs `e2e/control-plane.sh` (it builds once,
/// 15–30 minutes, and prints the cache directory on its last stdout line).
pub fn locate_binaries(script: &Path) -> Result<Binaries, StartError> {
    if let Some(binaries) = default_cache().as_deref().and_then(Binaries::in_cache) {
        return Ok(binaries);
    }
    eprintln!(
        "e2e_cluster: control-plane binaries not cached; running {} (15-30 minutes the first time)",
        script.display()
    );
    let build_error = |reason: String| StartError::Build {
        script: script.to_path_buf(),
        reason,
    };
    let output = Command::new(script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| build_error(error.to_string()))?;
    if !output.status.success() {
        return Err(build_error(output.status.to_string()));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let cache = stdout
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .map(|line| PathBuf::from(line.trim()))
        .ok_or_else(|| build_error("it printed no cache directory".to_owned()))?;
    let bin = cache.join("bin");
    let binaries = Binaries {
        etcd: find_on_path("etcd").unwrap_or_else(|| PathBuf::from("/usr/bin/etcd")),
        apiserver: bin.join("kube-apiserver"),
        controller_manager: bin.join("kube-controller-manager"),
        scheduler: bin.join("kube-scheduler"),
    };
    match binaries.missing() {
        Some(path) => Err(StartError::MissingBinary(path.to_path_buf())),
        None => Ok(binaries),
    }
}

/// Where everything of one run lives inside its temporary directory.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The run's directory (logs, keys, kubeconfigs).
    pub dir: PathBuf,
    /// etcd's data directory (on tmpfs when available: etcd fsyncs every write).
    pub etcd_data: PathBuf,
}

impl Layout {
    /// Service-account signing key (private, PEM).
    pub fn sa_key(&self) -> PathBuf {
        self.dir.join("sa.key")
    }
    /// Service-account verification key (public, PEM).
    pub fn sa_pub(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }
    /// The apiserver's static token file.
    pub fn token_file(&self) -> PathBuf {
        self.dir.join("tokens.csv")
    }
    /// Where the apiserver generates its self-signed serving certificate.
    pub fn cert_dir(&self) -> PathBuf {
        self.dir.join("certs")
    }
    /// The generated serving certificate (leaf + its CA), used as the clients' trust root.
    pub fn serving_cert(&self) -> PathBuf {
        self.cert_dir().join("apiserver.crt")
    }
    /// The kubeconfig handed to the command (current-context deliberately wrong).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
    /// The kubeconfig of the controller-manager and the scheduler.
    pub fn components_kubeconfig(&self) -> PathBuf {
        self.dir.join("components.kubeconfig")
    }
    /// A component's log file.
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }
}

/// Writes the static token file: one admin in `system:masters` (RBAC's superuser group).
pub fn write_token_file(layout: &Layout, token: &str) -> Result<(), StartError> {
    let path = layout.token_file();
    std::fs::write(
        &path,
        format!("{token},drill-admin,drill-admin,\"system:masters\"\n"),
    )
    .map_err(io_error("writing", &path))
}

/// An RSA key pair for service-account tokens, made with `openssl`.
pub fn generate_service_account_keys(layout: &Layout) -> Result<(), StartError> {
    let key = layout.sa_key();
    let public = layout.sa_pub();
    run_tool(
        Command::new("openssl")
            .arg("genrsa")
            .arg("-out")
            .arg(&key)
            .arg("2048"),
    )?;
    run_tool(
        Command::new("openssl")
            .arg("rsa")
            .arg("-in")
            .arg(&key)
            .arg("-pubout")
            .arg("-out")
            .arg(&public),
    )
}

fn run_tool(command: &mut Command) -> Result<(), StartError> {
    let described = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| StartError::Tool {
            command: described.clone(),
            reason: error.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(StartError::Tool {
            command: described,
            reason: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

/// The contexts of the kubeconfig handed to the command.
pub const TEST_CONTEXT: &str = "drill-e2e";
/// Same cluster, a production-looking name: drillbook must refuse it without a flag.
pub const PROD_CONTEXT: &str = "prod-e2e";
/// The current-context, pointing at nothing: using it instead of the explicit context fails.
pub const WRONG_DEFAULT_CONTEXT: &str = "wrong-default";

/// Writes both kubeconfigs. `nowhere` is a loopback URL nothing listens on.
pub fn write_kubeconfigs(
    layout: &Layout,
    server: &str,
    nowhere: &str,
    token: &str,
) -> Result<(), StartError> {
    let cluster = json!({ "server": server, "certificate-authority": layout.serving_cert() });
    let user = json!([{ "name": "drill-admin", "user": { "token": token } }]);
    let context = |name: &str, cluster: &str| json!({ "name": name, "context": { "cluster": cluster, "user": "drill-admin", "namespace": "default" } });
    let for_tests = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": WRONG_DEFAULT_CONTEXT,
        "clusters": [
            { "name": "drill-e2e", "cluster": cluster },
            { "name": "nowhere", "cluster": { "server": nowhere, "insecure-skip-tls-verify": true } },
        ],
        "users": user,
        "contexts": [
            context(WRONG_DEFAULT_CONTEXT, "nowhere"),
            context(TEST_CONTEXT, "drill-e2e"),
            context(PROD_CONTEXT, "drill-e2e"),
        ],
    });
    let for_components = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": TEST_CONTEXT,
        "clusters": [{ "name": "drill-e2e", "cluster": cluster }],
        "users": user,
        "contexts": [context(TEST_CONTEXT, "drill-e2e")],
    });
    // JSON is YAML: kube-rs, client-go and kubectl all read it.
    for (path, config) in [
        (layout.kubeconfig(), for_tests),
        (layout.components_kubeconfig(), for_components),
    ] {
        std::fs::write(&path, config.to_string()).map_err(io_error("writing", &path))?;
    }
    Ok(())
}

/// Command-line arguments of each component, in start order.
pub mod args {
    use super::Layout;

    /// etcd on loopback ports chosen by the caller.
    pub fn etcd(layout: &Layout, client_port: u16, peer_port: u16) -> Vec<String> {
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        vec![
            "--name=drill".to_owned(),
            format!("--data-dir={}", layout.etcd_data.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=drill={peer}"),
            "--logger=zap".to_owned(),
            "--log-outputs=stderr".to_owned(),
        ]
    }

    /// kube-apiserver on `127.0.0.1:<port>` with a self-signed certificate from `--cert-dir`.
    /// Admission stays at 1.20's defaults, `ServiceAccount` included: the controller-manager's
    /// token controller creates the secrets it requires.
    pub fn apiserver(layout: &Layout, port: u16, etcd_port: u16) -> Vec<String> {
        vec![
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", layout.cert_dir().display()),
            format!("--token-auth-file={}", layout.token_file().display()),
            "--authorization-mode=Node,RBAC".to_owned(),
            "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
            format!("--service-account-key-file={}", layout.sa_pub().display()),
            format!(
                "--service-account-signing-key-file={}",
                layout.sa_key().display()
            ),
            "--service-cluster-ip-range=10.96.0.0/24".to_owned(),
            "--allow-privileged=true".to_owned(),
            // No Endpoints for the `kubernetes` Service: its loopback address would be refused.
            "--endpoint-reconciler-type=none".to_owned(),
            // Flow control costs CPU this one-client cluster does not need.
            "--enable-priority-and-fairness=false".to_owned(),
            "--profiling=false".to_owned(),
        ]
    }

    /// kube-controller-manager: only the controllers the tests rely on (no node lifecycle, so
    /// nothing taints or evicts the stand-in node), no serving ports, admin credentials.
    pub fn controller_manager(layout: &Layout) -> Vec<String> {
        vec![
            format!(
                "--kubeconfig={}",
                layout.components_kubeconfig().display()
            ),
            "--controllers=deployment,replicaset,job,garbagecollector,namespace,serviceaccount,serviceaccount-token".to_owned(),
            "--use-service-account-credentials=false".to_owned(),
            format!(
                "--service-account-private-key-file={}",
                layout.sa_key().display()
            ),
            format!("--root-ca-file={}", layout.serving_cert().display()),
            "--leader-elect=false".to_owned(),
            "--port=0".to_owned(),
            "--secure-port=0".to_owned(),
            "--profiling=false".to_owned(),
        ]
    }

    /// kube-scheduler: no serving ports, no leader election.
    pub fn scheduler(layout: &Layout) -> Vec<String> {
        vec![
            format!("--kubeconfig={}", layout.components_kubeconfig().display()),
            "--leader-elect=false".to_owned(),
            "--port=0".to_owned(),
            "--secure-port=0".to_owned(),
            "--profiling=false".to_owned(),
            // At the default verbosity the scheduler logs nothing at all; 2 shows each binding.
            "--v=2".to_owned(),
        ]
    }
}

#[derive(Debug)]
struct Component {
    name: &'static str,
    child: Child,
    log: PathBuf,
    stopped: bool,
}

/// The started processes. Dropping it stops them all (reverse start order, SIGTERM then
/// SIGKILL), so an error, a panic or an early return never leaves a component behind.
#[derive(Debug, Default)]
pub struct Processes {
    components: Vec<Component>,
}

impl Processes {
    /// Starts `program args` in its own process group (a terminal's Ctrl-C reaches the harness,
    /// which then stops the components in order), output to `log`.
    pub fn start(
        &mut self,
        name: &'static str,
        program: &Path,
        args: &[String],
        log: PathBuf,
    ) -> Result<(), StartError> {
        let file = File::create(&log).map_err(io_error("creating", &log))?;
        let stderr = file.try_clone().map_err(io_error("opening", &log))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|source| StartError::Spawn { name, source })?;
        self.components.push(Component {
            name,
            child,
            log,
            stopped: false,
        });
        Ok(())
    }

    /// Fails naming the first component that is no longer running.
    pub fn check_running(&mut self) -> Result<(), StartError> {
        for component in &mut self.components {
            if let Ok(Some(status)) = component.child.try_wait() {
                component.stopped = true;
                return Err(StartError::Exited {
                    name: component.name,
                    status: status.to_string(),
                    log: component.log.clone(),
                });
            }
        }
        Ok(())
    }

    /// Log files of the components, in start order.
    pub fn logs(&self) -> impl Iterator<Item = (&'static str, &Path)> {
        self.components
            .iter()
            .map(|component| (component.name, component.log.as_path()))
    }

    /// Stops every component, last started first.
    pub fn stop_all(&mut self) {
        for component in self.components.iter_mut().rev() {
            stop(component);
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn stop(component: &mut Component) {
    if component.stopped {
        return;
    }
    component.stopped = true;
    let child = &mut component.child;
    stop_group(component.name, child.id(), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// Stops the process group led by `leader`: SIGTERM, then SIGKILL if `exited` is still false
/// after a grace period.
pub fn stop_group(name: &str, leader: u32, mut exited: impl FnMut() -> bool) {
    if exited() {
        return;
    }
    let Some(group) = i32::try_from(leader).ok().map(Pid::from_raw) else {
        return;
    };
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if exited() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("e2e_cluster: {name} ignored SIGTERM for {STOP_GRACE:?}; killing it");
    let _ = killpg(group, Signal::SIGKILL);
}

/// The last `lines` lines of a log file (reads at most its last 64 KiB).
pub fn tail(path: &Path, lines: usize) -> String {
    const WINDOW: u64 = 64 * 1024;
    let Ok(mut file) = File::open(path) else {
        return String::from("(no log)");
    };
    let length = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(WINDOW)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
