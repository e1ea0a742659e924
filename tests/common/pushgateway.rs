//! Debian's `prometheus-pushgateway` on an ephemeral loopback port, for the history's metrics
//! export. Outside CI a missing binary skips the test loudly; in CI
//! (`DRILLBOOK_REQUIRE_PROMETHEUS=1`) it fails it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::base::free_port;

#[derive(Debug)]
pub struct Pushgateway {
    pub url: String,
    /// `127.0.0.1:port`, for a Prometheus scrape target.
    pub addr: String,
    child: Option<Child>,
}

fn binary() -> Option<PathBuf> {
    let found = Some(PathBuf::from("/usr/bin/prometheus-pushgateway")).filter(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("DRILLBOOK_REQUIRE_PROMETHEUS").is_none(),
            "prometheus-pushgateway is required here: apt-get install prometheus-pushgateway"
        );
        eprintln!("\n!!! SKIPPING: prometheus-pushgateway is not installed !!!\n");
    }
    found
}

impl Pushgateway {
    pub fn start() -> Option<Self> {
        let binary = binary()?;
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(binary)
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-pushgateway");
        let gateway = Self {
            url: format!("http://{addr}"),
            addr: addr.clone(),
            child: Some(child),
        };
        // Plain polling: callers may be inside a tokio runtime.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the pushgateway did not listen on {addr} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(gateway)
    }

    /// Stops it (to test a push to a gateway that is down).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        self.stop();
    }
}
