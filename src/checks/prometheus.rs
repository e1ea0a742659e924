//! Prometheus checks (prometheus-http-query): an instant query once at the end, or sampled every
//! `interval` for `count` samples with a `failure_limit` (Argo Rollouts' analysis model).
//! A query error, an unreachable server or an empty result is inconclusive, never a pass.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_http_query::Client;
use prometheus_http_query::reqwest;
use prometheus_http_query::response::Data;

use super::{CheckVerdict, Judgement};
use crate::scenario::PrometheusCheck;
use crate::scenario::expr::{self, Expr};

/// One sample of a query: its scalar value, or why there is none.
pub type Sample = Result<f64, String>;

/// Runs `query` once and reduces the result to one number (a scalar, or a one-element vector).
pub async fn sample(
    url: &str,
    query: &str,
    headers: &BTreeMap<String, String>,
    timeout: Duration,
) -> Sample {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))?;
    let client = Client::from(http, url).map_err(|e| format!("bad Prometheus URL `{url}`: {e}"))?;
    let mut request = client.query(query);
    for (name, value) in headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{name}`"))?;
        // Header values are secrets (Authorization): they never appear in an error.
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header `{name}`"))?;
        request = request.header(name, value);
    }
    let result = request
        .get()
        .await
        .map_err(|e| format!("query failed: {e}"))?;
    match result.data() {
        Data::Scalar(s) => Ok(s.value()),
        Data::Vector(v) if v.is_empty() => {
            Err("the query returned no series (empty result)".into())
        }
        Data::Vector(v) if v.len() == 1 => Ok(v[0].sample().value()),
        Data::Vector(v) => Err(format!(
            "the query returned {} series; aggregate it to one (e.g. sum(...))",
            v.len()
        )),
        Data::Matrix(_) => Err("the query returned a range vector; use an instant query".into()),
    }
}

/// Whether one sample counts as failed under the check's conditions.
fn sample_failed(value: f64, success: Option<&Expr>, failure: Option<&Expr>) -> bool {
    let fails_success = success.is_some_and(|e| !holds(e, value));
    let meets_failure = failure.is_some_and(|e| holds(e, value));
    fails_success || meets_failure
}

fn holds(e: &Expr, value: f64) -> bool {
    match e.threshold {
        expr::Threshold::Value(t) => e.cmp.holds(value, t),
        expr::Threshold::Baseline { .. } => false,
    }
}

/// Judges the samples taken for `check`.
pub fn judge(check: &PrometheusCheck, samples: &[Sample]) -> Judgement {
    let parse = |c: &Option<crate::scenario::Sp<String>>| {
        c.as_ref()
            .and_then(|c| expr::parse_condition(&c.value).ok())
    };
    let (success, failure) = (
        parse(&check.success_condition),
        parse(&check.failure_condition),
    );
    if samples.is_empty() {
        return Judgement::inconclusive(
            "no sample was taken (the drill ended before the first one)",
        );
    }
    let mut failed = 0u32;
    let mut problems = Vec::new();
    let mut last = None;
    for s in samples {
        match s {
            Ok(v) => {
                last = Some(*v);
                if sample_failed(*v, success.as_ref(), failure.as_ref()) {
                    failed += 1;
                }
            }
            Err(why) => problems.push(why.clone()),
        }
    }
    let condition = check
        .success_condition
        .as_ref()
        .map(|c| c.value.clone())
        .or_else(|| {
            check
                .failure_condition
                .as_ref()
                .map(|c| format!("not ({})", c.value))
        })
        .unwrap_or_default();
    let summary = format!(
        "{} sample(s): {failed} failed (limit {}), {} without data{}",
        samples.len(),
        check.failure_limit,
        problems.len(),
        problems
            .first()
            .map(|p| format!(": {p}"))
            .unwrap_or_default()
    );
    let mut j = if failed > check.failure_limit {
        Judgement::decided(false, summary)
    } else if !problems.is_empty() {
        Judgement::inconclusive(summary)
    } else {
        Judgement::decided(true, summary)
    };
    j.measured = last;
    j.measured_text = last.map(|v| format!("{v}"));
    j.threshold_text = Some(condition);
    if j.verdict == CheckVerdict::Pass
        && let (
            Some(v),
            Some(Expr {
                threshold: expr::Threshold::Value(t),
                ..
            }),
        ) = (last, success.as_ref())
    {
        j.threshold = Some(*t);
        j.near_threshold = *t != 0.0 && ((t - v).abs() / t.abs()) < 0.10;
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Sp;

    fn check(success: &str, limit: u32) -> PrometheusCheck {
        PrometheusCheck {
            url: "http://127.0.0.1:9".into(),
            query: Sp::unplaced("up".into()),
            success_condition: Some(Sp::unplaced(success.into())),
            failure_condition: None,
            interval: None,
            count: 1,
            failure_limit: limit,
            headers: BTreeMap::new(),
        }
    }

    #[test]
    fn samples_are_judged_like_an_analysis_run() {
        let c = check("result < 0.05", 1);
        assert_eq!(judge(&c, &[Ok(0.01), Ok(0.02)]).verdict, CheckVerdict::Pass);
        assert_eq!(
            judge(&c, &[Ok(0.01), Ok(0.2)]).verdict,
            CheckVerdict::Pass,
            "one failure is within the limit"
        );
        assert_eq!(judge(&c, &[Ok(0.3), Ok(0.2)]).verdict, CheckVerdict::Fail);
        assert_eq!(
            judge(&c, &[Ok(0.01), Err("unreachable".into())]).verdict,
            CheckVerdict::Inconclusive
        );
        assert_eq!(judge(&c, &[]).verdict, CheckVerdict::Inconclusive);
    }

    #[tokio::test]
    async fn an_unreachable_server_gives_no_sample() {
        // Port 9 (discard) on loopback is closed here: the connection is refused at once.
        let s = sample(
            "http://127.0.0.1:9",
            "up",
            &BTreeMap::new(),
            Duration::from_secs(2),
        )
        .await;
        assert!(s.is_err());
    }
}
