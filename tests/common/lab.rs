//! Shared helpers of the lab tests: real `drillbook lab ...` processes on ephemeral loopback
//! ports, killed on drop, and a tiny blocking HTTP/1.1 client independent of the code under test.

use super::cli;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::base::block_until;

/// A running `drillbook lab ...` process. Killed (SIGKILL) and reaped when dropped, so a failing
/// assertion never leaves a process behind.
#[derive(Debug)]
pub struct LabProcess {
    args: Vec<String>,
    env: Vec<(String, String)>,
    capture_stdout: bool,
    child: Child,
}

impl LabProcess {
    /// Starts `drillbook -q lab <args>` with `env` added; stderr (warnings only) is inherited.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(owned(args), owned_pairs(env), false)
    }

    /// Like [`LabProcess::start`] but stdout is captured for [`LabProcess::wait_exit`].
    pub fn start_capturing(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(owned(args), owned_pairs(env), true)
    }

    fn spawn(args: Vec<String>, env: Vec<(String, String)>, capture_stdout: bool) -> Self {
        let mut command = cli::drillbook();
        command
            .arg("-q")
            .arg("lab")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(if capture_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        // The caller's environment must not flip the lab's mode behind the test's back.
        for name in [
            "LAB_STATELESS_TOKENS",
            "LAB_SIGNING_KEY",
            "LAB_REVOKE_FILE",
            "LAB_TRAINER_TOKEN",
        ] {
            command.env_remove(name);
        }
        command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let child = command.spawn();
        Self {
            args,
            env,
            capture_stdout,
            child,
        }
    }

    /// SIGKILL, like `kubectl delete pod --grace-period=0`; waits until the process is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, like Kubernetes stopping a pod; does not wait.
    pub fn terminate(&self) {
        let pid = i32::try_from(self.child.id()).expect("pid fits in i32");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("send SIGTERM");
    }

    /// SIGKILL, then start the same command again (a pod replaced by its Deployment).
    pub fn restart(&mut self) {
        self.kill();
        let fresh = Self::spawn(self.args.clone(), self.env.clone(), self.capture_stdout);
        *self = fresh;
    }

    /// Waits for the process to exit by itself, then returns its status and captured stdout.
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "`lab {}` still running after {timeout:?}",
                self.args.join(" ")
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            pipe.read_to_string(&mut stdout).expect("read stdout");
        }
        (status, stdout)
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

fn owned_pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A proxy in the given mode on `port`, waited for until healthy.
pub fn start_proxy(port: u16, stateless: bool, extra: &[&str]) -> LabProcess {
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["proxy", "--listen", &listen];
    args.extend_from_slice(extra);
    let proxy = LabProcess::start(&args, &[("LAB_STATELESS_TOKENS", mode(stateless))]);
    wait_healthy(port);
    proxy
}

/// A jobs-manager in the given mode on `port`, registering with the proxy on `proxy_port`.
pub fn start_jobs_manager(port: u16, proxy_port: u16, stateless: bool) -> LabProcess {
    let listen = format!("127.0.0.1:{port}");
    let proxy_url = format!("http://127.0.0.1:{proxy_port}");
    let manager = LabProcess::start(
        &[
            "jobs-manager",
            "--listen",
            &listen,
            "--proxy-url",
            &proxy_url,
        ],
        &[("LAB_STATELESS_TOKENS", mode(stateless))],
    );
    wait_healthy(port);
    manager
}

fn mode(stateless: bool) -> &'static str {
    if stateless { "true" } else { "false" }
}

/// An HTTP answer: status code and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// A string field of the JSON body.
    pub fn field(&self, name: &str) -> String {
        let value: serde_json::Value =
            serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body));
        value[name]
            .as_str()
            .unwrap_or_else(|| panic!("no string `{name}` in {}", self.body))
            .to_owned()
    }
}

/// One HTTP/1.1 exchange with `Connection: close`.
pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let auth = bearer.map_or(String::new(), |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {raw:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok(Answer {
        status,
        body: body.to_owned(),
    })
}

/// [`try_request`] that must succeed at the transport level.
pub fn request(port: u16, method: &str, path: &str, bearer: Option<&str>) -> Answer {
    try_request(port, method, path, bearer, "")
        .unwrap_or_else(|e| panic!("{method} 127.0.0.1:{port}{path}: {e}"))
}

/// `GET /v1/train` with `token` through the proxy.
pub fn train(proxy_port: u16, token: &str) -> Answer {
    request(proxy_port, "GET", "/v1/train", Some(token))
}

/// `POST /jobs` on the jobs-manager; returns (job id, token).
pub fn new_job(jobs_port: u16) -> (String, String) {
    let answer = request(jobs_port, "POST", "/jobs", None);
    assert_eq!(answer.status, 200, "POST /jobs: {}", answer.body);
    (answer.field("job_id"), answer.field("token"))
}

/// Waits until `GET /healthz` answers 200 (like a readiness probe).
pub fn wait_healthy(port: u16) {
    block_until(
        &format!("127.0.0.1:{port}/healthz"),
        Duration::from_secs(20),
        || try_request(port, "GET", "/healthz", None, "").is_ok_and(|answer| answer.status == 200),
    );
}

/// The `/metrics` document of the process on `port`.
pub fn metrics(port: u16) -> String {
    let answer = request(port, "GET", "/metrics", None);
    assert_eq!(answer.status, 200);
    answer.body
}

/// The value of one series (`name` or `name{labels}` exactly as exposed), if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
}
