//! Pre-flight for the local target: HTTP endpoints and commands that must succeed before the
//! first fault. (Kubernetes pre-flight lives with the Kubernetes target.)

use crate::report::model::{PreflightResult, PreflightStatus};
use crate::scenario::{PreflightCheck, Scenario, vars::Vars};
use crate::support::{command, http};

/// Runs every pre-flight check a local target supports; the rest were rejected by validation.
pub async fn run(scenario: &Scenario, vars: &Vars) -> Vec<PreflightResult> {
    let mut results = Vec::new();
    for item in &scenario.preflight {
        let result = match &item.value {
            PreflightCheck::HttpOk(h) => {
                // A URL that cannot be expanded fails the check: asking the raw text would
                // test some other address.
                let url = match vars.expand(&h.url) {
                    Ok(url) => url,
                    Err(e) => {
                        results.push(fail(format!("http_ok {}", h.url), e.to_string()));
                        continue;
                    }
                };
                match http::status(&url).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The raw text used to be asked instead (`http://127.0.0.1:${port.api}/` is no address).
    #[tokio::test]
    async fn a_url_that_cannot_be_expanded_fails_and_is_not_asked() {
        let scenario = crate::scenario::parse_str(
            "apiVersion: drillbook/v1\nname: p\ntarget:\n  local:\n    processes:\n    \
             - {name: api, command: [\"true\"]}\npreflight:\n  \
             - http_ok: {url: \"http://127.0.0.1:${port.api}/\"}\n",
        )
        .expect("valid");
        let results = run(&scenario, &Vars::default()).await;
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].status, PreflightStatus::Fail);
        assert!(results[0].detail.contains("port.api"), "{:?}", results[0]);
    }
}
