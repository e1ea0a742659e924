//! Test support shared by integration tests: free loopback ports, a tiny metrics server and a
//! real Prometheus (Debian's `prometheus` binary) on an ephemeral loopback port.
use super::cli::{self, Ran};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::base::free_port;

/// Serves `/metrics` with one counter whose value the test sets.
#[derive(Debug)]
pub struct MetricsServer {
    pub addr: SocketAddr,
    pub value: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    pub async fn start(metric: &'static str) -> Self {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let value = Arc::new(AtomicU64::new(0));
        let shared = value.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_req| {
                        let body = format!(
                            "# TYPE {metric} counter\n{metric} {}\n",
                            shared.load(Ordering::SeqCst)
                        );
                        async move {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from(body)),
                            ))
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Self { addr, value, task }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// PromQL `query`'s scalar value at `url`, once Prometheus has it (polled for up to 30 s).
pub async fn value_of(url: &str, query: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sample = drillbook::checks::prometheus::sample(
            url,
            query,
            &std::collections::BTreeMap::new(),
            Duration::from_secs(2),
        )
        .await;
        if let Ok(value) = sample {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "no series for {query}: {sample:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A real Prometheus scraping the given loopback targets every second.
#[derive(Debug)]
pub struct Prometheus {
    pub url: String,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

/// Finds Debian's prometheus binary. Outside CI a missing binary skips the test loudly; in CI
/// (`DRILLBOOK_REQUIRE_PROMETHEUS=1`, set by `.ci/run`) it fails it.
pub fn prometheus_binary() -> Option<PathBuf> {
    let found = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var_os("DRILLBOOK_REQUIRE_PROMETHEUS").is_some() {
            panic!(
                "prometheus is required here (DRILLBOOK_REQUIRE_PROMETHEUS is set): apt-get install prometheus"
            );
        }
        eprintln!(
            "\n!!! SKIPPING: Debian's `prometheus` binary is not installed (apt-get install prometheus) !!!\n"
        );
    }
    found
}

impl Prometheus {
    pub fn start(targets: &[String]) -> Option<Self> {
        Self::start_with_rules(targets, None)
    }

    /// Like [`Prometheus::start`], evaluating the given rule file (YAML) every second.
    pub fn start_with_rules(targets: &[String], rules: Option<&str>) -> Option<Self> {
        Self::start_alerting(targets, rules, None)
    }

    /// Like [`Prometheus::start_with_rules`], sending its alerts to the Alertmanager at
    /// `alertmanager` (`127.0.0.1:PORT`).
    pub fn start_alerting(
        targets: &[String],
        rules: Option<&str>,
        alertmanager: Option<&str>,
    ) -> Option<Self> {
        let binary = prometheus_binary()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let rule_files = match rules {
            Some(rules) => {
                let path = dir.path().join("rules.yml");
                std::fs::write(&path, rules).expect("write rules");
                format!("rule_files: ['{}']\n", path.display())
            }
            None => String::new(),
        };
        let alerting = alertmanager.map_or_else(String::new, |am| {
            format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am}']\n"
            )
        });
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{alerting}{rule_files}scrape_configs:\n  - job_name: drill\n    static_configs:\n      - targets: [{}]\n",
            targets
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write config");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let prometheus = Self {
            url: format!("http://127.0.0.1:{port}"),
            child: Some(child),
            _dir: dir,
        };
        prometheus.wait_ready(Duration::from_secs(30));
        Some(prometheus)
    }

    fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let addr: SocketAddr = self
            .url
            .trim_start_matches("http://")
            .parse()
            .expect("addr");
        while Instant::now() < deadline {
            if let Ok(mut stream) =
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
            {
                use std::io::{Read, Write};
                let _ = stream.write_all(b"GET /-/ready HTTP/1.0\r\n\r\n");
                let mut response = String::new();
                let _ = stream.read_to_string(&mut response);
                if response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prometheus did not become ready within {timeout:?}");
    }

    /// Stops Prometheus (to test what checks do when it is gone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A service stand-in on loopback: answers 200, or 503 to every `fail_one_in`-th request (0:
/// never), after `delay`; `/metrics` counts the answers as `test_requests_total{code}`.
#[derive(Debug)]
pub struct StatusServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl StatusServer {
    pub async fn start(fail_one_in: u64, delay: Duration) -> Self {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Answered 200, answered 503, requests seen.
        let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let counts = counts.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let counts = counts.clone();
                        async move {
                            let (status, body) = if req.uri().path() == "/metrics" {
                                let ok = counts[0].load(Ordering::SeqCst);
                                let failed = counts[1].load(Ordering::SeqCst);
                                (
                                    200,
                                    format!(
                                        "# TYPE test_requests_total counter\ntest_requests_total{{code=\"200\"}} {ok}\ntest_requests_total{{code=\"503\"}} {failed}\n"
                                    ),
                                )
                            } else {
                                tokio::time::sleep(delay).await;
                                let n = counts[2].fetch_add(1, Ordering::SeqCst) + 1;
                                if fail_one_in > 0 && n.is_multiple_of(fail_one_in) {
                                    counts[1].fetch_add(1, Ordering::SeqCst);
                                    (503, "unavailable\n".to_string())
                                } else {
                                    counts[0].fetch_add(1, Ordering::SeqCst);
                                    (200, "ok\n".to_string())
                                }
                            };
                            let mut response = hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(body),
                            ));
                            *response.status_mut() =
                                hyper::StatusCode::from_u16(status).expect("status");
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs scenario `text` through `drillbook -q run` (reports in a temporary directory, no drill
/// log): its exit code and its report.
pub fn run_drill(text: &str) -> (Option<i32>, drillbook::report::model::Report) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("drill.yaml");
    std::fs::write(&file, text).expect("write scenario");
    let output = cli::drillbook()
        .args(["-q", "run"])
        .arg(&file)
        .arg("--report-dir")
        .arg(dir.path().join("reports"))
        .arg("--no-drill-log")
        .output();
    let run_dir = std::fs::read_dir(dir.path().join("reports"))
        .ok()
        .and_then(|entries| entries.filter_map(Result::ok).find(|e| e.path().is_dir()))
        .unwrap_or_else(|| panic!("no report was written: {}", output.stderr_str()))
        .path();
    let report = drillbook::report::load(&run_dir.join("report.json")).expect("report");
    (output.status.code(), report)
}
