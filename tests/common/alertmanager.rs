//! A real Alertmanager (Debian's `prometheus-alertmanager`) on an ephemeral loopback port,
//! without clustering, with its own storage in a temp dir; and plain reads of its API v2,
//! independent of drillbook's own client.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::base::free_port;

/// Routes everything to the receiver `on-call` (no integration: nothing leaves the machine),
/// grouping at once so that alerts show up quickly.
const CONFIG: &str = "route:\n  receiver: on-call\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: on-call\n";

#[derive(Debug)]
pub struct Alertmanager {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT`, for Prometheus' `alerting:` section.
    pub addr: SocketAddr,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

/// Debian's binary; outside CI a missing one skips loudly, in CI (`DRILLBOOK_REQUIRE_PROMETHEUS`)
/// it fails.
fn binary() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/prometheus-alertmanager");
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("DRILLBOOK_REQUIRE_PROMETHEUS").is_some() {
        panic!("prometheus-alertmanager is required here: apt-get install prometheus-alertmanager");
    }
    eprintln!("\n!!! SKIPPING: prometheus-alertmanager is not installed !!!\n");
    None
}

impl Alertmanager {
    pub fn start() -> Option<Self> {
        let binary = binary()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, CONFIG).expect("write config");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No cluster port: this Alertmanager talks to nobody.
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let am = Self {
            url: format!("http://{addr}"),
            addr,
            child: Some(child),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while am.request("GET", "/-/ready").0 != 200 {
            assert!(
                Instant::now() < deadline,
                "alertmanager did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(am)
    }

    /// Status and body of one request (HTTP/1.0, so the body ends with the connection).
    fn request(&self, method: &str, path: &str) -> (u16, String) {
        let Ok(mut stream) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500))
        else {
            return (0, String::new());
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.addr
        );
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn list(&self, path: &str) -> Vec<serde_json::Value> {
        let (status, body) = self.request("GET", path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// `GET /api/v2/silences`.
    pub fn silences(&self) -> Vec<serde_json::Value> {
        self.list("/api/v2/silences")
    }

    /// `GET /api/v2/alerts`.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.list("/api/v2/alerts")
    }

    /// The states (`active`, `expired`, …) of the silences whose comment contains `text`.
    pub fn silence_states(&self, text: &str) -> Vec<String> {
        self.silences()
            .iter()
            .filter(|s| s["comment"].as_str().is_some_and(|c| c.contains(text)))
            .map(|s| s["status"]["state"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

impl Alertmanager {
    /// Stops it (to test what a drill does when Alertmanager is gone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.stop();
    }
}
