//! Prometheus checks (prometheus-http-query): an instant query once at the end, or sampled every
//! `interval` for `count` samples, judged like an Argo Rollouts analysis run:
//! - a sample is successful, failed or inconclusive; NaN and ±Inf are inconclusive, never a
//!   pass; with both conditions set, a value that meets neither is inconclusive;
//! - an empty result counts as `on_empty` says (inconclusive by default); a query error is an
//!   error, and more than `consecutive_error_limit` of them in a row make the check inconclusive;
//! - more than `failure_limit` failed samples fail the check, more than `inconclusive_limit`
//!   inconclusive ones make it inconclusive, and without one conclusive sample it is inconclusive.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_http_query::Client;
use prometheus_http_query::reqwest;
use prometheus_http_query::response::Data;

use super::{CheckVerdict, Judgement};
use crate::scenario::expr::{self, Expr};
use crate::scenario::parsed::Condition;
use crate::scenario::{OnEmpty, Parsed, PrometheusCheck};

/// Why a query gave no number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("the query returned no series (empty result)")]
    Empty,
    #[error("{0}")]
    Query(String),
}

/// One sample of a query: its scalar value, or why there is none.
pub type Sample = Result<f64, SampleError>;

/// How one sample counts (Argo Rollouts' measurement phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleOutcome {
    Successful,
    Failed,
    Inconclusive,
    Error,
}

fn client(url: &str, timeout: Duration) -> Result<Client, SampleError> {
    // HTTP_PROXY / HTTPS_PROXY / NO_PROXY are honoured (reqwest reads them): a staging
    // Prometheus is often reachable only through the corporate proxy. A loopback Prometheus
    // never is: no proxy can reach this machine's loopback.
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if reqwest::Url::parse(url).is_ok_and(|u| crate::support::http::is_loopback(&u)) {
        builder = builder.no_proxy();
    }
    let http = builder.build().map_err(|e| {
        let mut words = format!("cannot build the HTTP client: {e}");
        let mut cause = std::error::Error::source(&e);
        while let Some(inner) = cause {
            words.push_str(&format!(": {inner}"));
            cause = inner.source();
        }
        SampleError::Query(words)
    })?;
    Client::from(http, url)
        .map_err(|e| SampleError::Query(format!("bad Prometheus URL `{url}`: {e}")))
}

/// Runs `query` (at `at`, Unix seconds, or now) and returns its data.
async fn instant(
    url: &str,
    query: &str,
    headers: &BTreeMap<String, String>,
    timeout: Duration,
    at: Option<i64>,
) -> Result<Data, SampleError> {
    let mut request = client(url, timeout)?.query(query);
    if let Some(at) = at {
        request = request.at(at);
    }
    for (name, value) in header_pairs(headers)? {
        request = request.header(name, value);
    }
    let result = request
        .get()
        .await
        .map_err(|e| SampleError::Query(format!("query failed: {e}")))?;
    Ok(result.into_inner().0)
}

fn header_pairs(
    headers: &BTreeMap<String, String>,
) -> Result<Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>, SampleError> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SampleError::Query(format!("invalid header name `{name}`")))?;
            // Header values are secrets (Authorization): they never appear in an error.
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| SampleError::Query(format!("invalid value for header `{name}`")))?;
            Ok((name, value))
        })
        .collect()
}

/// The series of `query` between `start` and `end` (Unix seconds) every `step_s`: each
/// series' labels and the times (Unix seconds) it had a sample at.
pub async fn range_times(
    url: &str,
    query: &str,
    headers: &BTreeMap<String, String>,
    timeout: Duration,
    (start, end, step_s): (i64, i64, f64),
) -> Result<Vec<(BTreeMap<String, String>, Vec<f64>)>, SampleError> {
    let mut request = client(url, timeout)?.query_range(query, start, end.max(start), step_s);
    for (name, value) in header_pairs(headers)? {
        request = request.header(name, value);
    }
    let data = request
        .get()
        .await
        .map_err(|e| SampleError::Query(format!("query failed: {e}")))?
        .into_inner()
        .0;
    match data {
        Data::Matrix(series) => Ok(series
            .into_iter()
            .map(|s| {
                let (labels, samples) = s.into_inner();
                let times = samples.iter().map(|p| p.timestamp()).collect();
                (labels.into_iter().collect(), times)
            })
            .collect()),
        _ => Err(SampleError::Query(format!(
            "`{query}` did not return a range vector"
        ))),
    }
}

/// The names of the alerting rules Prometheus evaluates (the rules API takes no headers).
pub async fn alert_rule_names(
    url: &str,
    timeout: Duration,
) -> Result<std::collections::BTreeSet<String>, SampleError> {
    let groups = client(url, timeout)?
        .rules()
        .get()
        .await
        .map_err(|e| SampleError::Query(format!("cannot read the rules: {e}")))?;
    Ok(groups
        .iter()
        .flat_map(|g| g.rules())
        .filter_map(|r| match r {
            prometheus_http_query::response::Rule::Alerting(a) => Some(a.name().to_string()),
            prometheus_http_query::response::Rule::Recording(_) => None,
        })
        .collect())
}

/// Runs `query` once and reduces the result to one number (a scalar, or a one-element vector).
pub async fn sample(
    url: &str,
    query: &str,
    headers: &BTreeMap<String, String>,
    timeout: Duration,
) -> Sample {
    match instant(url, query, headers, timeout, None).await? {
        Data::Scalar(s) => Ok(s.value()),
        Data::Vector(v) if v.is_empty() => Err(SampleError::Empty),
        Data::Vector(v) if v.len() == 1 => Ok(v[0].sample().value()),
        Data::Vector(v) => Err(SampleError::Query(format!(
            "the query returned {} series; aggregate it to one (e.g. sum(...))",
            v.len()
        ))),
        Data::Matrix(_) => Err(SampleError::Query(
            "the query returned a range vector; use an instant query".into(),
        )),
    }
}

/// The label sets of the series `query` returns at `at` (Unix seconds).
pub async fn series_at(
    url: &str,
    query: &str,
    headers: &BTreeMap<String, String>,
    timeout: Duration,
    at: i64,
) -> Result<Vec<BTreeMap<String, String>>, SampleError> {
    match instant(url, query, headers, timeout, Some(at)).await? {
        Data::Vector(v) => Ok(v
            .iter()
            .map(|s| {
                s.metric()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect()),
        _ => Err(SampleError::Query(format!(
            "`{query}` did not return an instant vector"
        ))),
    }
}

/// How one value counts under the conditions. NaN and ±Inf are never a pass: comparisons on
/// them are meaningless (`NaN > 0` is false, so a `failure_condition` alone would pass it).
pub fn classify(value: f64, success: Option<&Expr>, failure: Option<&Expr>) -> SampleOutcome {
    if !value.is_finite() {
        return SampleOutcome::Inconclusive;
    }
    let fails = failure.is_some_and(|e| holds(e, value));
    let succeeds = success.is_some_and(|e| holds(e, value));
    match (success.is_some(), failure.is_some()) {
        (true, true) if fails => SampleOutcome::Failed,
        (true, true) if succeeds => SampleOutcome::Successful,
        (true, true) | (false, false) => SampleOutcome::Inconclusive,
        (true, false) if succeeds => SampleOutcome::Successful,
        (true, false) => SampleOutcome::Failed,
        (false, true) if fails => SampleOutcome::Failed,
        (false, true) => SampleOutcome::Successful,
    }
}

/// How one sample counts for `check`.
pub fn outcome(
    sample: &Sample,
    success: Option<&Expr>,
    failure: Option<&Expr>,
    on_empty: OnEmpty,
) -> SampleOutcome {
    match sample {
        Ok(v) => classify(*v, success, failure),
        Err(SampleError::Empty) => match on_empty {
            OnEmpty::Pass => SampleOutcome::Successful,
            OnEmpty::Fail => SampleOutcome::Failed,
            OnEmpty::Inconclusive => SampleOutcome::Inconclusive,
        },
        Err(SampleError::Query(_)) => SampleOutcome::Error,
    }
}

fn holds(e: &Expr, value: f64) -> bool {
    match e.threshold {
        expr::Threshold::Value(t) => e.cmp.holds(value, t),
        expr::Threshold::Baseline { .. } => false,
    }
}

/// A check's conditions, parsed once before its samples are judged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditions {
    pub success: Option<Expr>,
    pub failure: Option<Expr>,
}

/// A condition that does not parse. Validation rejects it first; should one reach a run, the
/// check is inconclusive with this reason instead of judged as if the condition were absent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the condition `{text}` does not parse: {source}")]
pub struct ConditionError {
    pub text: String,
    #[source]
    pub source: expr::ExprError,
}

/// One condition as parsed when the scenario was read, with its text on an error.
pub fn condition(parsed: &Parsed<Condition>) -> Result<&Expr, ConditionError> {
    parsed.get().map_err(|source| ConditionError {
        text: parsed.text().to_string(),
        source: source.clone(),
    })
}

/// The check's conditions.
pub fn conditions(check: &PrometheusCheck) -> Result<Conditions, ConditionError> {
    let parse = |c: &Option<crate::scenario::Sp<Parsed<Condition>>>| {
        c.as_ref().map(|c| condition(c).cloned()).transpose()
    };
    Ok(Conditions {
        success: parse(&check.success_condition)?,
        failure: parse(&check.failure_condition)?,
    })
}

/// Samples counted by outcome.
#[derive(Debug, Default)]
struct Tally {
    successful: u32,
    failed: u32,
    inconclusive: u32,
    errors: u32,
    errors_in_a_row: u32,
}

/// Judges the samples taken for `check`; a condition that does not parse makes it
/// inconclusive with the parser's reason.
pub fn judge(check: &PrometheusCheck, samples: &[Sample]) -> Judgement {
    match conditions(check) {
        Ok(conditions) => judge_with(check, &conditions, samples),
        Err(e) => Judgement::inconclusive(e.to_string()),
    }
}

/// Judges the samples taken for `check` under its `conditions`, parsed once beforehand.
pub fn judge_with(
    check: &PrometheusCheck,
    conditions: &Conditions,
    samples: &[Sample],
) -> Judgement {
    let (success, failure) = (conditions.success.as_ref(), conditions.failure.as_ref());
    if samples.is_empty() {
        return Judgement::inconclusive(
            "no sample was taken (the drill ended before the first one)",
        );
    }
    let mut tally = Tally::default();
    let mut run = 0u32;
    let mut problems = Vec::new();
    for s in samples {
        let o = outcome(s, success, failure, check.on_empty);
        run = if o == SampleOutcome::Error {
            run + 1
        } else {
            0
        };
        tally.errors_in_a_row = tally.errors_in_a_row.max(run);
        match o {
            SampleOutcome::Successful => tally.successful += 1,
            SampleOutcome::Failed => tally.failed += 1,
            SampleOutcome::Inconclusive => tally.inconclusive += 1,
            SampleOutcome::Error => tally.errors += 1,
        }
        match s {
            Err(e) => problems.push(e.to_string()),
            Ok(v) if o == SampleOutcome::Inconclusive => problems.push(if v.is_finite() {
                format!("{v} meets neither condition")
            } else {
                format!("the query returned {v}")
            }),
            Ok(_) => {}
        }
    }
    let condition = [
        check
            .success_condition
            .as_ref()
            .map(|c| c.value.to_string()),
        check
            .failure_condition
            .as_ref()
            .map(|c| format!("not ({})", c.value)),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" and ");
    let summary = format!(
        "{}{} sample(s): {} successful, {} failed (limit {}), {} inconclusive (limit {}), {} error(s) ({} in a row, limit {}){}",
        if check.dry_run {
            "dry run, not deciding: "
        } else {
            ""
        },
        samples.len(),
        tally.successful,
        tally.failed,
        check.failure_limit,
        tally.inconclusive,
        check.inconclusive_limit,
        tally.errors,
        tally.errors_in_a_row,
        check.consecutive_error_limit,
        problems
            .first()
            .map(|p| format!(": {p}"))
            .unwrap_or_default()
    );
    let mut j = if tally.failed > check.failure_limit {
        Judgement::decided(false, summary)
    } else if tally.errors_in_a_row > check.consecutive_error_limit
        || tally.inconclusive > check.inconclusive_limit
        || tally.successful + tally.failed == 0
    {
        Judgement::inconclusive(summary)
    } else {
        Judgement::decided(true, summary)
    };
    let last = samples.iter().rev().find_map(|s| s.as_ref().ok().copied());
    j.measured = last.filter(|v| v.is_finite());
    j.measured_text = last.map(crate::units::four_significant);
    j.threshold_text = Some(condition);
    if j.verdict == CheckVerdict::Pass
        && let (
            Some(v),
            Some(Expr {
                threshold: expr::Threshold::Value(t),
                ..
            }),
        ) = (j.measured, success)
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

    fn check(success: Option<&str>, failure: Option<&str>, limit: u32) -> PrometheusCheck {
        PrometheusCheck {
            url: "http://127.0.0.1:9".into(),
            query: Sp::unplaced("up".into()),
            success_condition: success.map(|s| Sp::unplaced(s.into())),
            failure_condition: failure.map(|s| Sp::unplaced(s.into())),
            interval: None,
            count: 1,
            failure_limit: limit,
            headers: BTreeMap::new(),
            inconclusive_limit: 0,
            consecutive_error_limit: 0,
            dry_run: false,
            on_empty: OnEmpty::Inconclusive,
        }
    }

    fn judged(c: &PrometheusCheck, samples: &[Sample]) -> Judgement {
        judge_with(c, &conditions(c).expect("the conditions parse"), samples)
    }

    fn verdict(c: &PrometheusCheck, samples: &[Sample]) -> CheckVerdict {
        judged(c, samples).verdict
    }

    fn query_error() -> Sample {
        Err(SampleError::Query("unreachable".into()))
    }

    #[test]
    fn samples_are_judged_like_an_analysis_run() {
        let c = check(Some("result < 0.05"), None, 1);
        assert_eq!(verdict(&c, &[Ok(0.01), Ok(0.02)]), CheckVerdict::Pass);
        assert_eq!(
            verdict(&c, &[Ok(0.01), Ok(0.2)]),
            CheckVerdict::Pass,
            "one failure is within the limit"
        );
        assert_eq!(verdict(&c, &[Ok(0.3), Ok(0.2)]), CheckVerdict::Fail);
        assert_eq!(
            verdict(&c, &[Ok(0.01), query_error()]),
            CheckVerdict::Inconclusive
        );
        assert_eq!(verdict(&c, &[]), CheckVerdict::Inconclusive);
    }

    #[test]
    fn nan_and_infinities_are_inconclusive_never_a_pass() {
        // `result > 0` is false for NaN, so judged naively a failure condition alone passes it.
        let failure_only = check(None, Some("result > 0"), 0);
        let success_only = check(Some("result < 1"), None, 0);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for c in [&failure_only, &success_only] {
                let j = judged(c, &[Ok(bad)]);
                assert_eq!(j.verdict, CheckVerdict::Inconclusive, "{bad}: {}", j.detail);
                assert_eq!(j.measured, None, "{bad} is not a measurement");
            }
        }
        assert_eq!(verdict(&failure_only, &[Ok(0.0)]), CheckVerdict::Pass);
        assert_eq!(verdict(&failure_only, &[Ok(2.0)]), CheckVerdict::Fail);
        assert!(
            judged(&failure_only, &[Ok(f64::INFINITY)])
                .detail
                .contains("returned inf")
        );
    }

    #[test]
    fn a_value_in_neither_condition_is_inconclusive() {
        let band = check(Some("result < 0.05"), Some("result > 0.10"), 0);
        let parsed = conditions(&band).expect("the conditions parse");
        assert_eq!(
            classify(0.07, parsed.success.as_ref(), parsed.failure.as_ref()),
            SampleOutcome::Inconclusive
        );
        assert_eq!(verdict(&band, &[Ok(0.07)]), CheckVerdict::Inconclusive);
        assert_eq!(verdict(&band, &[Ok(0.01)]), CheckVerdict::Pass);
        assert_eq!(verdict(&band, &[Ok(0.2)]), CheckVerdict::Fail);
    }

    #[test]
    fn a_condition_that_does_not_parse_is_an_error_not_absent() {
        let c = check(Some("result < 0.05"), Some("result >"), 0);
        let e = conditions(&c).expect_err("the failure condition is broken");
        assert_eq!(e.text, "result >");
        let j = judge(&c, &[Ok(0.01)]);
        assert_eq!(j.verdict, CheckVerdict::Inconclusive);
        assert!(
            j.detail.contains("`result >` does not parse"),
            "{}",
            j.detail
        );
    }

    #[test]
    fn inconclusive_and_error_limits_are_honoured() {
        let mut c = check(Some("result < 0.05"), None, 0);
        let samples = [Ok(0.01), Ok(f64::NAN), Ok(0.02)];
        assert_eq!(verdict(&c, &samples), CheckVerdict::Inconclusive);
        c.inconclusive_limit = 1;
        assert_eq!(verdict(&c, &samples), CheckVerdict::Pass);

        let samples = [
            Ok(0.01),
            query_error(),
            query_error(),
            Ok(0.02),
            query_error(),
        ];
        c.consecutive_error_limit = 1;
        assert_eq!(
            verdict(&c, &samples),
            CheckVerdict::Inconclusive,
            "two errors in a row exceed a limit of one"
        );
        c.consecutive_error_limit = 2;
        assert_eq!(verdict(&c, &samples), CheckVerdict::Pass);
        assert_eq!(
            verdict(&c, &[query_error(), query_error()]),
            CheckVerdict::Inconclusive,
            "no conclusive sample at all"
        );
    }

    #[test]
    fn an_empty_result_counts_as_on_empty_says() {
        let mut c = check(Some("result == 0"), None, 0);
        let empty = [Err(SampleError::Empty)];
        assert_eq!(verdict(&c, &empty), CheckVerdict::Inconclusive);
        c.on_empty = OnEmpty::Pass;
        assert_eq!(verdict(&c, &empty), CheckVerdict::Pass);
        c.on_empty = OnEmpty::Fail;
        assert_eq!(verdict(&c, &empty), CheckVerdict::Fail);
    }

    #[test]
    fn a_dry_run_says_so_in_its_detail() {
        let mut c = check(Some("result < 0.05"), None, 0);
        c.dry_run = true;
        let j = judged(&c, &[Ok(0.5)]);
        assert_eq!(
            j.verdict,
            CheckVerdict::Fail,
            "measured and judged as usual"
        );
        assert!(j.detail.starts_with("dry run"), "{}", j.detail);
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
        assert!(matches!(s, Err(SampleError::Query(_))));
    }
}
