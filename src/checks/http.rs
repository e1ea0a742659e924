//! Judging an http expression against the load measured in a phase.

use super::Judgement;
use crate::scenario::expr::{Expr, LatencyKind, Metric, StatusSel, Threshold, format_value};

/// What the http checks need from a phase's load statistics.
pub trait HttpStats {
    /// Requests sent (answered or failed), not counting dropped ones.
    fn requests(&self) -> u64;
    /// Requests matching a status selector (transport errors count for `errors`/`failed`).
    fn count(&self, selector: StatusSel) -> u64;
    /// Latency quantile (0..=100) in seconds, `None` without data.
    fn quantile_s(&self, quantile: f64, kind: LatencyKind) -> Option<f64>;
    fn dropped(&self) -> u64;
    /// Length of the measured span in seconds.
    fn seconds(&self) -> f64;
}

/// The value of `metric` in `stats`, or why it cannot be known.
pub fn measure(metric: Metric, stats: &dyn HttpStats) -> Result<f64, String> {
    let requests = stats.requests();
    match metric {
        Metric::Rate(sel) if requests == 0 => {
            Err(format!("no requests were sent, so rate({sel}) is unknown"))
        }
        Metric::Rate(sel) => Ok(stats.count(sel) as f64 / requests as f64),
        Metric::Count(sel) => Ok(stats.count(sel) as f64),
        Metric::Quantile(q, kind) => stats
            .quantile_s(q, kind)
            .ok_or_else(|| "no latency samples".to_string()),
        Metric::Rps if stats.seconds() <= 0.0 => Err("the phase has no length".into()),
        Metric::Rps => Ok(requests as f64 / stats.seconds()),
        Metric::Dropped => Ok(stats.dropped() as f64),
        Metric::Requests => Ok(requests as f64),
        Metric::Result => Err("`result` is only for prometheus conditions".into()),
    }
}

/// Judges `expr` on `phase`, with `baseline` for `... * baseline` thresholds.
pub fn judge(
    expr: &Expr,
    phase: Option<&dyn HttpStats>,
    baseline: Option<&dyn HttpStats>,
) -> Judgement {
    let Some(stats) = phase else {
        return Judgement::inconclusive("the phase never happened in this run (no data)");
    };
    let measured = match measure(expr.metric, stats) {
        Ok(v) => v,
        Err(why) => return Judgement::inconclusive(why),
    };
    let (threshold, threshold_text) = match expr.threshold {
        Threshold::Value(v) => (v, format_value(expr.metric, v)),
        Threshold::Baseline { factor } => {
            let Some(base_stats) = baseline else {
                return Judgement::inconclusive("the baseline phase has no data to compare with");
            };
            match measure(expr.metric, base_stats) {
                Ok(base) => (
                    base * factor,
                    format!(
                        "{} ({factor} × baseline {})",
                        format_value(expr.metric, base * factor),
                        format_value(expr.metric, base)
                    ),
                ),
                Err(why) => return Judgement::inconclusive(format!("baseline: {why}")),
            }
        }
    };
    let pass = expr.cmp.holds(measured, threshold);
    let measured_text = format_value(expr.metric, measured);
    let detail = format!(
        "{} = {measured_text} (needs {} {threshold_text}) over {} requests",
        expr.metric,
        expr.cmp,
        stats.requests()
    );
    Judgement::compared(
        measured,
        threshold,
        pass,
        (measured_text, threshold_text),
        detail,
    )
}

#[cfg(test)]
mod tests {
    use super::super::CheckVerdict;
    use super::*;
    use crate::scenario::expr::parse_http;

    struct Fixed {
        requests: u64,
        s401: u64,
        errors: u64,
        p95: Option<f64>,
    }

    impl HttpStats for Fixed {
        fn requests(&self) -> u64 {
            self.requests
        }
        fn count(&self, selector: StatusSel) -> u64 {
            match selector {
                StatusSel::Code(401) | StatusSel::Class(4) => self.s401,
                StatusSel::Errors => self.errors,
                StatusSel::Failed => self.s401 + self.errors,
                _ => 0,
            }
        }
        fn quantile_s(&self, _: f64, _: LatencyKind) -> Option<f64> {
            self.p95
        }
        fn dropped(&self) -> u64 {
            0
        }
        fn seconds(&self) -> f64 {
            10.0
        }
    }

    fn expr(t: &str) -> Expr {
        parse_http(t).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn rates_and_quantiles_are_judged() {
        let phase = Fixed {
            requests: 1000,
            s401: 0,
            errors: 5,
            p95: Some(0.120),
        };
        assert_eq!(
            judge(&expr("rate(401) == 0"), Some(&phase), None).verdict,
            CheckVerdict::Pass
        );
        assert_eq!(
            judge(&expr("rate(errors) < 0.1%"), Some(&phase), None).verdict,
            CheckVerdict::Fail
        );
        let j = judge(&expr("p(95) < 100ms"), Some(&phase), None);
        assert_eq!(j.verdict, CheckVerdict::Fail);
        assert_eq!(j.measured_text.as_deref(), Some("120ms"));
    }

    #[test]
    fn baseline_comparison() {
        let base = Fixed {
            requests: 1000,
            s401: 0,
            errors: 0,
            p95: Some(0.100),
        };
        let worse = Fixed {
            requests: 1000,
            s401: 0,
            errors: 0,
            p95: Some(0.140),
        };
        let much_worse = Fixed {
            requests: 1000,
            s401: 0,
            errors: 0,
            p95: Some(0.160),
        };
        let e = expr("p(95) <= 1.5 * baseline");
        let j = judge(&e, Some(&worse), Some(&base));
        assert_eq!(j.verdict, CheckVerdict::Pass);
        assert!(j.near_threshold, "140ms vs 150ms is within 10 %");
        assert_eq!(
            judge(&e, Some(&much_worse), Some(&base)).verdict,
            CheckVerdict::Fail
        );
    }

    #[test]
    fn missing_data_is_inconclusive_never_pass() {
        let empty = Fixed {
            requests: 0,
            s401: 0,
            errors: 0,
            p95: None,
        };
        assert_eq!(
            judge(&expr("rate(401) == 0"), Some(&empty), None).verdict,
            CheckVerdict::Inconclusive
        );
        assert_eq!(
            judge(&expr("rate(401) == 0"), None, None).verdict,
            CheckVerdict::Inconclusive
        );
        let phase = Fixed {
            requests: 10,
            s401: 0,
            errors: 0,
            p95: Some(0.1),
        };
        assert_eq!(
            judge(&expr("p(95) <= 1.5 * baseline"), Some(&phase), Some(&empty)).verdict,
            CheckVerdict::Inconclusive
        );
    }
}
