//! A run's results as Prometheus metrics, pushed to a Pushgateway (docs/history.md lists the
//! metrics). The group is `job="drillbook"` plus the scenario, context and namespace (values
//! base64url-encoded in the path, so any text is only a value), and each push replaces it
//! (PUT): the gateway holds the latest run of each scenario and target, so the number of
//! series stays bounded by the scenarios' phases and checks. The run id is a label of
//! `drillbook_run_info` only, so per-run series are one per push.

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;

use super::record::{PhaseMetrics, time_to_recover};
use crate::report::model::{CheckVerdict, Report, Verdict};

/// The Pushgateway's job label for every drillbook push.
pub const JOB: &str = "drillbook";
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a push did not land.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("`{0}` is not an http(s) URL")]
    Url(String),
    #[error("could not build an HTTP client: {0}")]
    Client(#[source] prometheus_http_query::reqwest::Error),
    #[error("the Pushgateway at {url} did not answer: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: prometheus_http_query::reqwest::Error,
    },
    #[error("the Pushgateway at {url} refused the push: HTTP {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
}

/// The push URL of `report`'s group under `base` (`http://host:9091`).
pub fn group_url(base: &str, report: &Report) -> Result<String, PushError> {
    let base = base.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(PushError::Url(base.to_string()));
    }
    let encode = |v: &str| {
        if v.is_empty() {
            // The Pushgateway's spelling of an empty label value.
            "=".to_string()
        } else {
            base64::engine::general_purpose::URL_SAFE.encode(v)
        }
    };
    Ok(format!(
        "{base}/metrics/job/{JOB}/scenario@base64/{}/context@base64/{}/namespace@base64/{}",
        encode(&report.scenario.name),
        encode(report.target.context.as_deref().unwrap_or("")),
        encode(report.target.namespace.as_deref().unwrap_or(""))
    ))
}

/// Pushes `report`'s metrics, replacing its group's previous run.
pub async fn push(base: &str, report: &Report) -> Result<String, PushError> {
    let url = group_url(base, report)?;
    let client = prometheus_http_query::reqwest::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        .build()
        .map_err(PushError::Client)?;
    let response = client
        .put(&url)
        .header("content-type", "text/plain; version=0.0.4")
        .body(exposition(report))
        .send()
        .await
        .map_err(|source| PushError::Unreachable {
            url: url.clone(),
            source,
        })?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(PushError::Refused {
            url,
            status: status.as_u16(),
            body: body.chars().take(300).collect(),
        });
    }
    Ok(url)
}

/// The text exposition of `report` (labels of the group come from the URL).
pub fn exposition(report: &Report) -> String {
    let mut out = Exposition::default();
    let info = [
        ("run_id", report.run_id.as_str()),
        ("drillbook_version", report.drillbook_version.as_str()),
        (
            "scenario_hash",
            report.scenario.content_hash.as_deref().unwrap_or(""),
        ),
    ];
    out.family(
        "drillbook_run_info",
        "A pushed drill run: its id, drillbook version and scenario file hash; always 1.",
    );
    out.sample("drillbook_run_info", &info, 1.0);
    out.family(
        "drillbook_run_verdict",
        "The run's verdict as a state set: 1 for its verdict, 0 for the others.",
    );
    for verdict in [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Inconclusive,
        Verdict::Aborted,
        Verdict::Interrupted,
    ] {
        out.sample(
            "drillbook_run_verdict",
            &[("verdict", verdict.as_str())],
            f64::from(u8::from(report.verdict == verdict)),
        );
    }
    out.family(
        "drillbook_run_start_timestamp_seconds",
        "When the run started, Unix time.",
    );
    out.sample(
        "drillbook_run_start_timestamp_seconds",
        &[],
        unix(report.started_at),
    );
    out.family(
        "drillbook_run_end_timestamp_seconds",
        "When the run ended (undos included), Unix time.",
    );
    out.sample(
        "drillbook_run_end_timestamp_seconds",
        &[],
        unix(report.ended_at),
    );
    if let Some(ttr) = time_to_recover(report.phases.iter().map(|p| (p.name.as_str(), p.start_s))) {
        out.family(
            "drillbook_time_to_recover_seconds",
            "From the start of the fault phase to the start of the recovery phase.",
        );
        out.sample("drillbook_time_to_recover_seconds", &[], ttr);
    }
    out.family(
        "drillbook_check_verdict",
        "Each check's verdict as a state set: 1 for its verdict, 0 for the others.",
    );
    for check in &report.checks {
        let phase = check.phase.as_deref().unwrap_or("");
        for verdict in [
            CheckVerdict::Pass,
            CheckVerdict::Fail,
            CheckVerdict::Inconclusive,
        ] {
            out.sample(
                "drillbook_check_verdict",
                &[
                    ("check", &check.name),
                    ("phase", phase),
                    ("verdict", verdict.as_str()),
                ],
                f64::from(u8::from(check.verdict == verdict)),
            );
        }
    }
    let phases: Vec<PhaseMetrics> = report
        .phases
        .iter()
        .filter_map(|p| {
            Some(PhaseMetrics::from_summary(
                &p.name,
                Some(p.verdict),
                p.load.as_ref()?,
            ))
        })
        .collect();
    out.family("drillbook_phase_requests", "Requests sent in the phase.");
    for p in &phases {
        out.sample(
            "drillbook_phase_requests",
            &[("phase", &p.name)],
            p.requests as f64,
        );
    }
    out.family(
        "drillbook_phase_responses",
        "Responses in the phase with status 401, or a 5xx status.",
    );
    for p in &phases {
        out.sample(
            "drillbook_phase_responses",
            &[("phase", &p.name), ("status", "401")],
            p.status_401 as f64,
        );
        out.sample(
            "drillbook_phase_responses",
            &[("phase", &p.name), ("status", "5xx")],
            p.status_5xx as f64,
        );
    }
    out.family(
        "drillbook_phase_latency_seconds",
        "Latency quantile in the phase: corrected (from the intended send time) or service (from the actual send).",
    );
    for p in &phases {
        let Some(l) = &p.latency else { continue };
        for (quantile, latency, ms) in [
            ("0.95", "corrected", l.p95_ms),
            ("0.99", "corrected", l.p99_ms),
            ("0.95", "service", l.service_p95_ms),
            ("0.99", "service", l.service_p99_ms),
        ] {
            out.sample(
                "drillbook_phase_latency_seconds",
                &[
                    ("phase", &p.name),
                    ("quantile", quantile),
                    ("latency", latency),
                ],
                ms / 1000.0,
            );
        }
    }
    out.text
}

fn unix(at: jiff::Timestamp) -> f64 {
    at.as_millisecond() as f64 / 1000.0
}

#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} gauge");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
                .collect();
            let _ = write!(self.text, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value in the text format: backslash, quote and newline escaped.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
