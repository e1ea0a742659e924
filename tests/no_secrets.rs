//! Secrets never reach an output. A lab drill whose scenario carries secrets of every kind
//! (`load.auth.bearer_env`, a `headers:` Authorization value and another credential header, a
//! Prometheus check's Authorization header — one reachable, one not) runs with `-v` in text
//! and JSON log format, with `-vv`, and interrupted by SIGINT mid-drill; stdout, stderr, every
//! file under the report directory and the drill log are searched for each secret. A
//! recording server on loopback proves the secrets were really sent, so the search is not
//! vacuous. `plan` and `validate` of the same scenario, and `plan --offline` of a Kubernetes
//! scenario with a `helm_upgrade.set_secret` value, must not print them either.

use crate::common;
/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common::cli::{self, Ran};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::trial::{RunDir, tail, wait_bounded};
use drillbook::report::model::Verdict;
use nix::sys::signal::Signal;

/// The secrets of one test run: a fixed prefix naming the kind (for readable failures) and a
/// random core, searched for on its own too, so a partly printed secret is caught as well.
struct Secret {
    kind: &'static str,
    core: String,
}

impl Secret {
    fn new(kind: &'static str) -> Self {
        Self {
            kind,
            core: format!(
                "{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            ),
        }
    }

    fn value(&self) -> String {
        format!("s3cr3t-{}-{}", self.kind, self.core)
    }
}

/// Every place a secret of a scenario can come from.
struct Secrets {
    bearer_env: Secret,
    header_authorization: Secret,
    header_api_key: Secret,
    prometheus_authorization: Secret,
    unreachable_prometheus_authorization: Secret,
}

impl Secrets {
    fn new() -> Self {
        Self {
            bearer_env: Secret::new("bearer-env"),
            header_authorization: Secret::new("header-authorization"),
            header_api_key: Secret::new("header-api-key"),
            prometheus_authorization: Secret::new("prometheus-authorization"),
            unreachable_prometheus_authorization: Secret::new("unreachable-prometheus"),
        }
    }

    fn all(&self) -> [&Secret; 5] {
        [
            &self.bearer_env,
            &self.header_authorization,
            &self.header_api_key,
            &self.prometheus_authorization,
            &self.unreachable_prometheus_authorization,
        ]
    }
}

/// Request headers the recording server saw, by path.
type Seen = Arc<Mutex<BTreeMap<String, BTreeSet<(String, String)>>>>;

/// A loopback HTTP server standing in for the service under load and for Prometheus: it
/// answers `/api/v1/query` with a one-element vector, everything else with 200, and records
/// the `authorization` and `x-api-key` headers of every request.
struct RecordingServer {
    url: String,
    seen: Seen,
    /// Owns the accept loop and connections; they end when the server is dropped.
    _runtime: tokio::runtime::Runtime,
}

impl RecordingServer {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let seen = Seen::default();
        runtime.spawn(serve(listener, seen.clone()));
        Self {
            url,
            seen,
            _runtime: runtime,
        }
    }

    /// Values of header `name` seen on `path`.
    fn seen(&self, path: &str, name: &str) -> BTreeSet<String> {
        self.seen
            .lock()
            .expect("seen")
            .get(path)
            .into_iter()
            .flatten()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

async fn serve(listener: tokio::net::TcpListener, seen: Seen) {
    use hyper::service::service_fn;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let path = request.uri().path().to_owned();
                {
                    let mut seen = seen.lock().expect("seen");
                    let entry = seen.entry(path.clone()).or_default();
                    for name in ["authorization", "x-api-key"] {
                        for value in request.headers().get_all(name) {
                            entry.insert((
                                name.to_owned(),
                                String::from_utf8_lossy(value.as_bytes()).into_owned(),
                            ));
                        }
                    }
                }
                let body = if path == "/api/v1/query" {
                    r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"1"]}]}}"#
                } else {
                    "ok"
                };
                async move {
                    let mut response =
                        hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// The env var the scenario's `bearer_env` names.
const BEARER_VAR: &str = "DRILLBOOK_NO_SECRETS_TOKEN";

/// A lab drill: the lab's requests-proxy is the local target (killed and awaited mid-load),
/// the load and the Prometheus checks go to the recording server.
fn lab_scenario(dir: &Path, server: &str, secrets: &Secrets) -> PathBuf {
    let unreachable = closed_port();
    let text = format!(
        r#"apiVersion: drillbook/v1
name: no-secrets
description: A lab drill whose scenario is full of secrets; none may reach an output.
target:
  local:
    processes:
      - name: requests-proxy
        command: ["${{drillbook}}", "lab", "proxy", "--listen", "127.0.0.1:${{port.proxy}}"]
        env: {{LAB_STATELESS_TOKENS: "true"}}
        ready: http://127.0.0.1:${{port.proxy}}/healthz
load:
  url: {server}/v1/train
  headers:
    Authorization: "Bearer {header_authorization}"
    X-Api-Key: "{header_api_key}"
  rate: 40/s
  duration: 3s
  connections: 2
  timeout: 1s
  auth:
    bearer_env: {BEARER_VAR}
steps:
  - at: 1s
    name: kill-proxy
    kill_process: {{name: requests-proxy, signal: SIGKILL}}
  - name: proxy-back
    wait_ready: {{name: requests-proxy, timeout: 10s}}
checks:
  - name: load-answered
    http: "rate(failed) < 50%"
  - name: metrics-agree
    prometheus:
      url: {server}
      query: sum(up)
      success_condition: "result >= 0"
      headers: {{Authorization: "Bearer {prometheus_authorization}"}}
  - name: metrics-unreachable
    prometheus:
      url: http://127.0.0.1:{unreachable}
      query: sum(up)
      success_condition: "result >= 0"
      headers: {{Authorization: "Bearer {unreachable_prometheus_authorization}"}}
"#,
        header_authorization = secrets.header_authorization.value(),
        header_api_key = secrets.header_api_key.value(),
        prometheus_authorization = secrets.prometheus_authorization.value(),
        unreachable_prometheus_authorization = secrets.unreachable_prometheus_authorization.value(),
    );
    let path = dir.join("no-secrets.yaml");
    std::fs::write(&path, text).expect("write the scenario");
    path
}

/// A loopback port that was free a moment ago: nothing listens there during the drill.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// `(where, secret kind)` for every occurrence of a secret (or its core) in `text`.
fn leaks_in(place: &str, text: &[u8], secrets: &Secrets) -> Vec<String> {
    secrets
        .all()
        .iter()
        .filter(|secret| contains(text, secret.core.as_bytes()))
        .map(|secret| format!("{place}: contains the {} secret", secret.kind))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next)
            .expect("read a report directory")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// How one run of the drill is made.
#[derive(Debug, Clone, Copy)]
struct Variant {
    global: &'static [&'static str],
    /// SIGINT this long after the start: the partial report of an interrupted run is an
    /// output too.
    interrupt_after: Option<Duration>,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        global: &["-v"],
        interrupt_after: None,
    },
    Variant {
        global: &["-v", "--log-format", "json"],
        interrupt_after: None,
    },
    Variant {
        global: &["-vv"],
        interrupt_after: None,
    },
    Variant {
        global: &["-v"],
        interrupt_after: Some(Duration::from_millis(1500)),
    },
];

/// Runs the lab drill as `variant` says; returns every leak found in its outputs.
fn run_and_search(scenario: &Path, secrets: &Secrets, variant: Variant) -> Vec<String> {
    let Variant {
        global,
        interrupt_after,
    } = variant;
    let run = RunDir::new();
    let mut command = run.run_command(global, scenario, 7);
    command.env(BEARER_VAR, secrets.bearer_env.value());
    let mut child = command.spawn();
    if let Some(after) = interrupt_after {
        std::thread::sleep(after);
        common::trial::send_signal(&child, Signal::SIGINT).expect("SIGINT");
    }
    let status = wait_bounded(&mut child, Duration::from_secs(90)).expect("the drill ends");
    let label = match interrupt_after {
        Some(after) => format!("{} interrupted after {after:?}", global.join(" ")),
        None => global.join(" "),
    };
    let report_dir = run
        .report_dir()
        .unwrap_or_else(|e| panic!("[{label}] {e} (exit {status})\n{}", tail(&run.stderr(), 30)));
    let report = run.report().expect("report.json");
    // The drill really ran: it judged its checks (a refused or invalid run proves nothing).
    assert!(
        report.checks.len() == 3 && report.load.as_ref().is_some_and(|l| l.requests > 0),
        "[{label}] the drill did not run its load and checks (exit {status}):\n{}",
        tail(&run.stderr(), 30)
    );
    assert_eq!(
        report.verdict == Verdict::Interrupted,
        interrupt_after.is_some(),
        "[{label}] verdict {}",
        report.verdict.as_str()
    );
    assert!(
        run.runbook().contains(&report.run_id),
        "[{label}] no drill-log row"
    );
    // Every variant logs at debug level or more, where leaks would show first.
    assert!(
        run.stderr().contains("DEBUG"),
        "[{label}] -v logs at debug level"
    );
    let mut leaks = Vec::new();
    leaks.extend(leaks_in(
        &format!("[{label}] stdout"),
        run.stdout().as_bytes(),
        secrets,
    ));
    leaks.extend(leaks_in(
        &format!("[{label}] stderr"),
        run.stderr().as_bytes(),
        secrets,
    ));
    let files = files_under(&report_dir);
    assert!(files.len() >= 4, "[{label}] report files: {files:?}");
    for file in files {
        let bytes = std::fs::read(&file).expect("read a report file");
        let place = format!("[{label}] {}", file.display());
        leaks.extend(leaks_in(&place, &bytes, secrets));
        leaks.extend(leaks_in(
            &format!("{place} (its name)"),
            file.to_string_lossy().as_bytes(),
            secrets,
        ));
    }
    leaks.extend(leaks_in(
        &format!("[{label}] drill log {}", run.runbook_path().display()),
        run.runbook().as_bytes(),
        secrets,
    ));
    run.no_survivors().expect("no process left behind");
    leaks
}

#[test]
fn a_lab_drill_full_of_secrets_prints_none_of_them() {
    let secrets = Secrets::new();
    let server = RecordingServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = lab_scenario(dir.path(), &server.url, &secrets);

    // Text and JSON logs at debug level, text at trace level, and an interrupted run, side by
    // side.
    let leaks: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = VARIANTS
            .into_iter()
            .map(|variant| {
                let (scenario, secrets) = (&scenario, &secrets);
                scope.spawn(move || run_and_search(scenario, secrets, variant))
            })
            .collect();
        runs.into_iter()
            .flat_map(|run| run.join().expect("a drill thread"))
            .collect()
    });

    // The secrets were really used: the bearer token replaced the Authorization header on the
    // load, the other header went along, and Prometheus got its header.
    assert_eq!(
        server.seen("/v1/train", "authorization"),
        BTreeSet::from([format!("Bearer {}", secrets.bearer_env.value())]),
        "the load sends the bearer_env token"
    );
    assert_eq!(
        server.seen("/v1/train", "x-api-key"),
        BTreeSet::from([secrets.header_api_key.value()]),
        "the load sends the scenario's headers"
    );
    assert_eq!(
        server.seen("/api/v1/query", "authorization"),
        BTreeSet::from([format!(
            "Bearer {}",
            secrets.prometheus_authorization.value()
        )]),
        "the Prometheus check sends its header"
    );

    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));

    // `validate` and `plan --offline` of the same scenario print none of them either.
    for args in [&["validate"][..], &["plan", "--offline"][..]] {
        let output = cli::drillbook()
            .args(args)
            .arg(&scenario)
            .env(BEARER_VAR, secrets.bearer_env.value())
            .output();
        assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
        let mut leaks = leaks_in(&format!("{args:?} stdout"), &output.stdout, &secrets);
        leaks.extend(leaks_in(
            &format!("{args:?} stderr"),
            &output.stderr,
            &secrets,
        ));
        assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    }
}

#[test]
fn plan_of_a_helm_upgrade_redacts_its_set_secret_values() {
    let secret = Secret::new("helm-set-secret");
    let secrets_dir = tempfile::tempdir().expect("tempdir");
    let path = secrets_dir.path().join("helm-secret.yaml");
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: drillbook/v1
name: helm-secret
target:
  kubernetes:
    context: staging
    namespace: tracebloc
    allowed_contexts: [staging]
steps:
  - name: rotate
    helm_upgrade:
      release: tracebloc
      chart: charts/tracebloc
      set: {{requestsProxy.statelessTokens: "true"}}
      set_secret: {{auth.signingKey: "{value}"}}
checks:
  - name: flip-rolls-pods
    rolled: {{deployment: requests-proxy, after: rotate}}
"#,
            value = secret.value()
        ),
    )
    .expect("write the scenario");
    let output = cli::drillbook()
        .args(["-v", "plan", "--offline"])
        .arg(&path)
        .env_remove("KUBECONFIG")
        .output();
    let stdout = output.stdout_str();
    let stderr = output.stderr_str();
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    // The plan shows the step and that a secret value is set, without the value.
    assert!(stdout.contains("auth.signingKey=<redacted>"), "{stdout}");
    assert!(
        stdout.contains("requestsProxy.statelessTokens=true"),
        "{stdout}"
    );
    for (stream, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(
            !text.contains(&secret.core),
            "plan printed the set_secret value on {stream}:\n{text}"
        );
    }
}
