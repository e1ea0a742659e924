//! Pre-flight for the local target: HTTP endpoints and commands that must succeed before the
//! first fault. (Kubernetes pre-flight lives with the Kubernetes target.)

use crate::report::model::{PreflightResult, PreflightStatus};
use crate::scenario::{PreflightCheck, Scenario};
use crate::support::{command, http};

/// Runs every pre-flight check a local target supports; the rest were rejected by validation.
pub async fn run(scenario: &Scenario) -> Vec<PreflightResult> {
    let mut results = Vec::new();
    for item in &scenario.preflight {
        let result = match &item.value {
            PreflightCheck::HttpOk(h) => {
                let url = &h.url;
                match http::status(url).await {
                    Ok(status) if status == h.status => {
                        ok(format!("http_ok {url}"), format!("answered {status}"))
                    }
                    Ok(status) => fail(
                        format!("http_ok {url}"),
                        format!("answered {status}, expected {}", h.status),
                    ),
                    Err(e) => fail(format!("http_ok {url}"), e.to_string()),
                }
            }
            PreflightCheck::Command(c) => match command::run(&c.argv, &c.env, c.timeout.0).await {
                Ok(out) if out.status == Some(0) => {
                    ok(format!("command {}", c.argv.join(" ")), "exit 0".into())
                }
                Ok(out) => fail(
                    format!("command {}", c.argv.join(" ")),
                    format!("{}: {}", out.status_text(), out.stderr_tail()),
                ),
                Err(e) => fail(format!("command {}", c.argv.join(" ")), e.to_string()),
            },
            other => PreflightResult {
                name: other.key().to_string(),
                status: PreflightStatus::Warn,
                detail: "needs a kubernetes target; skipped".into(),
            },
        };
        results.push(result);
    }
    results
}

fn ok(name: String, detail: String) -> PreflightResult {
    PreflightResult {
        name,
        status: PreflightStatus::Ok,
        detail,
    }
}

fn fail(name: String, detail: String) -> PreflightResult {
    PreflightResult {
        name,
        status: PreflightStatus::Fail,
        detail,
    }
}
