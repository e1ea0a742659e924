//! Prometheus is queried through `HTTP_PROXY` / `HTTPS_PROXY` when they are set (`NO_PROXY`
//! as curl reads it), and a loopback Prometheus never through a proxy: a staging Prometheus is
//! often reachable only through one. Everything here is on loopback: a proxy that answers
//! itself (it sees the absolute-form request line or the CONNECT a proxy receives, so the
//! named host is never resolved) and a stand-in Prometheus.

use crate::common::cli::{self, Ran};
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// Answers every query with `value`, recording each request line.
fn fake_prometheus(value: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        // Bounded: the test makes four requests.
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            if let Ok(mut log) = log.lock() {
                log.push(request_line.trim().to_string());
            }
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"{value}"]}}]}}}}"#
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (address, seen)
}

/// The verdict of the check `through`, `result == 0.5` (the proxy's answer), of a drill that
/// queries the Prometheus at `url` with `env` set.
fn verdict(url: &str, env: &[(&str, String)]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("proxy.yaml");
    std::fs::write(
        &scenario,
        format!(
            "apiVersion: drillbook/v1\nname: proxy\ntarget:\n  local:\n    processes:\n      \
             - name: job\n        kind: job\n        command: [\"true\"]\nsteps:\n  - wait: 1s\n\
             checks:\n  - name: through\n    prometheus:\n      url: {url}\n      \
             query: up\n      success_condition: \"result == 0.5\"\n"
        ),
    )
    .expect("write the scenario");
    let reports = dir.path().join("reports");
    let mut command = cli::drillbook();
    command
        .arg("run")
        .arg(&scenario)
        .arg("--report-dir")
        .arg(&reports)
        .arg("--no-drill-log");
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let output = command.output();
    let report = std::fs::read_dir(&reports)
        .expect("reports")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("report.json"))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("no report: {}", output.stderr_str()));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).expect("read")).expect("json");
    json["checks"][0]["verdict"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn prometheus_queries_go_through_the_proxy_and_loopback_ones_never_do() {
    let (prometheus, direct) = fake_prometheus("0.25");
    let (proxy, proxied) = fake_prometheus("0.5");
    let seen = || proxied.lock().map(|l| l.clone()).unwrap_or_default();

    // An http:// Prometheus by name: the proxy gets the absolute-form request and answers.
    let via_proxy = [("HTTP_PROXY", format!("http://{proxy}"))];
    assert_eq!(
        verdict("http://prometheus.staging.test:9090", &via_proxy),
        "pass",
        "answered by the proxy"
    );
    assert!(
        seen()
            .iter()
            .any(|l| l.starts_with("GET http://prometheus.staging.test:9090/api/v1/query")),
        "{:?}",
        seen()
    );

    // An https:// one: a CONNECT tunnel is asked of HTTPS_PROXY (this proxy refuses to
    // tunnel, so the check has no data, but the request went where it should).
    let via_https_proxy = [("HTTPS_PROXY", format!("http://{proxy}"))];
    assert_eq!(
        verdict("https://prometheus.staging.test", &via_https_proxy),
        "inconclusive"
    );
    assert!(
        seen()
            .iter()
            .any(|l| l.starts_with("CONNECT prometheus.staging.test:443")),
        "{:?}",
        seen()
    );

    // A loopback Prometheus is asked directly even with a proxy set.
    let before = seen().len();
    assert_eq!(
        verdict(&format!("http://{prometheus}"), &via_proxy),
        "fail",
        "0.25, direct"
    );
    assert_eq!(
        seen().len(),
        before,
        "the proxy was not asked: {:?}",
        seen()
    );
    let direct = direct.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(
        direct.iter().any(|l| l.starts_with("GET /api/v1/query")),
        "{direct:?}"
    );
}
