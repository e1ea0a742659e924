//! `drillbook load` as a user runs it: the real binary against an in-test server. Checks the
//! committed JSON Schema, validates `--json` against it, and greps every output and the
//! verbose log for the bearer tokens.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

/// Shared test support (tests/common); `pub` so that helpers this file does not use are
/// not dead code.
use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::cli::{self, Ran};
use common::load::{TestServer, TokenAuthority};

/// A `drillbook load` of these tests ends on its own well within this.
const LOAD_ENDS: Duration = Duration::from_secs(20);

const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/load.schema.json");

#[test]
fn committed_schema_is_current() {
    let generated = drillbook::load::report::schema_json();
    let committed = std::fs::read_to_string(SCHEMA_PATH).unwrap_or_default();
    assert!(
        committed == generated,
        "load.schema.json is stale: run `make schema`"
    );
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}

fn assert_no_secret(secrets: &[String], name: &str, text: &str) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a token leaked into {name}"
        );
    }
    assert!(!text.contains("s3cr3t"), "a token leaked into {name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_matches_the_schema_and_no_token_leaks_anywhere() {
    drillbook::telemetry::install_crypto_provider();
    let authority = Arc::new(TokenAuthority {
        revoke_index: Some(1),
        ..TokenAuthority::default()
    });
    let server = TestServer::start(authority.handler()).await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("load.json");
    let ndjson = dir.path().join("windows.ndjson");
    let hdr = dir.path().join("latency.hlog");
    let token_file = dir.path().join("tokens");
    std::fs::write(&token_file, "file-s3cr3t-one\nfile-s3cr3t-two\n").unwrap();
    let env_token = "env-s3cr3t-token";

    let url = server.url("/");
    let token_url = server.url("/token");
    let runs: [(&str, Vec<&str>); 3] = [
        (
            "token endpoint",
            vec!["--token-url", &token_url, "--callers", "3"],
        ),
        ("env var", vec!["--bearer-env", "LOAD_TEST_TOKEN"]),
        (
            "token file",
            vec![
                "--bearer-file",
                token_file.to_str().unwrap(),
                "--callers",
                "2",
            ],
        ),
    ];
    for (name, auth) in runs {
        let mut args = vec![
            "-v",
            "load",
            &url,
            "--rate",
            "40/s",
            "--duration",
            "1s",
            "--connections",
            "2",
            "--json",
            json.to_str().unwrap(),
            "--ndjson",
            ndjson.to_str().unwrap(),
            "--hdr-log",
            hdr.to_str().unwrap(),
            "--header",
            "X-Drill: load-test",
        ];
        args.extend(auth);
        let output = cli::drillbook()
            .args(&args)
            .env("LOAD_TEST_TOKEN", env_token)
            .output_within(LOAD_ENDS)
            .await;
        let stdout = output.stdout_str();
        let stderr = output.stderr_str();
        assert!(output.status.success(), "{name}: {stderr}");
        assert!(
            stderr.contains("load starting"),
            "{name}: -v logs the run: {stderr}"
        );
        assert!(stdout.contains("requests"), "{name}: {stdout}");

        let mut secrets = authority.tokens();
        secrets.push(env_token.to_string());
        for (file, text) in [
            ("stdout", stdout.to_string()),
            ("stderr", stderr.to_string()),
            ("--json", read(&json)),
            ("--ndjson", read(&ndjson)),
            ("--hdr-log", read(&hdr)),
        ] {
            assert_no_secret(&secrets, &format!("{file} ({name})"), &text);
        }

        let schema: serde_json::Value =
            serde_json::from_str(&read(Path::new(SCHEMA_PATH))).unwrap();
        let report: serde_json::Value = serde_json::from_str(&read(&json)).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let problems: Vec<String> = validator
            .iter_errors(&report)
            .map(|e| e.to_string())
            .collect();
        assert!(
            problems.is_empty(),
            "{name}: --json does not match load.schema.json: {problems:?}"
        );
        assert_eq!(report["schema_version"], 1);
        assert_eq!(report["total"]["requests"], 40, "{name}");

        let lines: Vec<serde_json::Value> = read(&ndjson)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{name}: one line per window");
        assert_eq!(lines[0]["second"], 0);
        assert_eq!(lines[0]["requests"], 40);
        assert!(
            read(&hdr).contains("Tag=corrected"),
            "{name}: HDR log has intervals"
        );

        if name == "token endpoint" {
            // The second token issued was revoked: the report names that one caller.
            let revoked = authority.revoked.lock().unwrap()[0].clone();
            let label = authority.label_of(&revoked).unwrap();
            let failing: Vec<&str> = report["callers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["statuses"]["401"].as_u64().is_some_and(|n| n > 0))
                .map(|c| c["label"].as_str().unwrap())
                .collect();
            assert_eq!(failing, [label.as_str()]);
            assert!(stdout.contains("1 saw failures"), "{stdout}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_fail_before_any_load_with_exit_code_2() {
    let missing_var = cli::drillbook()
        .args([
            "load",
            "http://127.0.0.1:9/",
            "--rate",
            "1/s",
            "--duration",
            "1s",
            "--bearer-env",
            "LOAD_TEST_UNSET_VAR",
        ])
        .output_within(LOAD_ENDS)
        .await;
    missing_var.assert_code(2);
    assert!(missing_var.stderr_str().contains("LOAD_TEST_UNSET_VAR"));

    let bad_rate = cli::drillbook()
        .args(["load", "http://127.0.0.1:9/", "--rate", "fast"])
        .output_within(LOAD_ENDS)
        .await;
    bad_rate.assert_code(2);

    // A token with a control character cannot be sent; the error must not quote it.
    let bad_token = cli::drillbook()
        .args([
            "load",
            "http://127.0.0.1:9/",
            "--rate",
            "1/s",
            "--duration",
            "1s",
            "--bearer-env",
            "LOAD_TEST_TOKEN",
        ])
        .env("LOAD_TEST_TOKEN", "bad\u{7}s3cr3t")
        .output_within(LOAD_ENDS)
        .await;
    bad_token.assert_code(2);
    assert_no_secret(&[], "stderr", &bad_token.stderr_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_a_url_are_refused_without_echoing_the_password() {
    for args in [
        &["load", "http://ops:hunter2pw@127.0.0.1:9/x"][..],
        // Not even a valid URL: the refusal still must not quote the password.
        &["load", "http://ops:hunter2pw@127.0.0.1:9/a b"],
        &[
            "load",
            "http://127.0.0.1:9/",
            "--token-url",
            "http://ops:hunter2pw@127.0.0.1:9/token",
        ],
    ] {
        let mut args = args.to_vec();
        args.extend(["--rate", "1/s", "--duration", "1s"]);
        let out = cli::drillbook().args(&args).output_within(LOAD_ENDS).await;
        let (stdout, stderr) = (out.stdout_str(), out.stderr_str());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for text in [&stdout, &stderr] {
            assert!(!text.contains("hunter2pw"), "{args:?} leaked: {text}");
        }
        assert!(stderr.contains("ops:***@"), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn counts_above_the_sanity_limits_are_refused_at_once_unless_allow_large() {
    // Nothing listens on port 1: a refused load never opens a connection.
    let url = "http://127.0.0.1:1/";
    for (args, flag) in [
        (&["--connections", "10000000"][..], "--connections 10000000"),
        (
            &[
                "--callers",
                "1000000",
                "--token-url",
                "http://127.0.0.1:1/t",
            ][..],
            "--callers 1000000",
        ),
        (&["--rate", "5000000/s"][..], "a rate of 5000000/s"),
    ] {
        let mut all = vec!["load", url, "--duration", "1s"];
        if !args.contains(&"--rate") {
            all.extend(["--rate", "10/s"]);
        }
        all.extend_from_slice(args);
        let started = std::time::Instant::now();
        let output = cli::drillbook().args(&all).output_within(LOAD_ENDS).await;
        let stderr = output.stderr_str();
        assert_eq!(output.status.code(), Some(2), "{flag}: {stderr}");
        assert!(
            stderr.contains(&format!("{flag} is above drillbook's limit"))
                && stderr.contains("--allow-large"),
            "{stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "refused at once"
        );
    }
    let lifted = cli::drillbook()
        .args([
            "load",
            url,
            "--rate",
            "10/s",
            "--duration",
            "1s",
            "--connections",
            "20000",
            "--allow-large",
            "--max-requests",
            "5",
        ])
        .output_within(LOAD_ENDS)
        .await;
    let stderr = lifted.stderr_str();
    assert!(!stderr.contains("above drillbook's limit"), "{stderr}");
}

/// A staging service with an internal CA: `--cacert` trusts it; without it every request is a
/// TLS error. The server is a real TLS endpoint (`openssl s_server -www`) on loopback with a
/// CA and a `localhost` certificate made for this test.
#[tokio::test]
async fn cacert_trusts_an_internal_ca_and_without_it_tls_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=drill test CA",
        "-keyout",
        &path("ca.key"),
        "-out",
        &path("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &path("srv.key"),
        "-out",
        &path("srv.csr"),
    ]);
    std::fs::write(path("ext"), "subjectAltName=DNS:localhost\n").expect("ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path("srv.csr"),
        "-CA",
        &path("ca.pem"),
        "-CAkey",
        &path("ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &path("ext"),
        "-out",
        &path("srv.pem"),
    ]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut server = tokio::process::Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-cert", &path("srv.pem"), "-key", &path("srv.key")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl s_server starts");
    let up = std::time::Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            up.elapsed() < Duration::from_secs(10),
            "s_server did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("https://localhost:{port}/");
    let load = |extra: Vec<String>| {
        let json = path(&format!("load-{}.json", extra.len()));
        let mut args = vec![
            "load".to_string(),
            url.clone(),
            "--rate".into(),
            "5/s".into(),
            "--duration".into(),
            "1s".into(),
            "--connections".into(),
            "1".into(),
            "--json".into(),
            json.clone(),
        ];
        args.extend(extra);
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let output = cli::drillbook()
                .args(&refs)
                .env("SSL_CERT_FILE", "/nonexistent")
                .output_within(LOAD_ENDS)
                .await;
            let text = std::fs::read_to_string(&json).unwrap_or_default();
            let report: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("no JSON: {}", output.stderr_str()));
            report
        }
    };
    let untrusted = load(Vec::new()).await;
    assert_eq!(
        untrusted["total"]["statuses"]["200"],
        serde_json::Value::Null,
        "{untrusted}"
    );
    assert!(
        untrusted["total"]["errors"]["tls"].as_u64().unwrap_or(0) > 0,
        "{untrusted}"
    );
    let trusted = load(vec!["--cacert".into(), path("ca.pem")]).await;
    assert!(
        trusted["total"]["statuses"]["200"].as_u64().unwrap_or(0) > 0,
        "{trusted}"
    );
    let _ = server.kill().await;
}
