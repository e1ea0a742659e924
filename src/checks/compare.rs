//! Canary against stable: one metric measured on two load streams over the same phase.

use super::Judgement;
use super::http::{HttpStats, measure};
use crate::scenario::expr::{CompareExpr, format_value};

/// Judges `expr` on the two streams' statistics for the phase.
pub fn judge(
    expr: &CompareExpr,
    left: Option<&dyn HttpStats>,
    right: Option<&dyn HttpStats>,
) -> Judgement {
    let (l, r) = (&expr.left, &expr.right);
    let value = |stream: &str, stats: Option<&dyn HttpStats>, metric| {
        let stats = stats.ok_or_else(|| format!("stream `{stream}` has no data in this phase"))?;
        measure(metric, stats).map_err(|why| format!("stream `{stream}`: {why}"))
    };
    let (measured, reference) = match (
        value(&l.stream, left, l.metric),
        value(&r.stream, right, r.metric),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(why), _) | (_, Err(why)) => return Judgement::inconclusive(why),
    };
    let threshold = expr.factor * reference + expr.offset;
    let pass = expr.cmp.holds(measured, threshold);
    let measured_text = format_value(l.metric, measured);
    let threshold_text = format!(
        "{} ({}.{} = {})",
        format_value(l.metric, threshold),
        r.stream,
        r.metric,
        format_value(r.metric, reference)
    );
    let requests = |s: Option<&dyn HttpStats>| s.map_or(0, |s| s.requests());
    let detail = format!(
        "{}.{} = {measured_text} (needs {} {threshold_text}) over {} and {} requests",
        l.stream,
        l.metric,
        expr.cmp,
        requests(left),
        requests(right)
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
    use super::*;
    use crate::checks::CheckVerdict;
    use crate::scenario::expr::{LatencyKind, StatusSel, parse_compare};

    struct Stream {
        requests: u64,
        s5xx: u64,
        p95_s: f64,
    }

    impl HttpStats for Stream {
        fn requests(&self) -> u64 {
            self.requests
        }
        fn count(&self, selector: StatusSel) -> u64 {
            match selector {
                StatusSel::Class(5) | StatusSel::Failed => self.s5xx,
                _ => 0,
            }
        }
        fn quantile_s(&self, _: f64, _: LatencyKind) -> Option<f64> {
            (self.requests > 0).then_some(self.p95_s)
        }
        fn dropped(&self) -> u64 {
            0
        }
        fn seconds(&self) -> f64 {
            10.0
        }
    }

    fn verdict(text: &str, canary: &Stream, stable: &Stream) -> CheckVerdict {
        let e = parse_compare(text).expect("parses");
        judge(&e, Some(canary), Some(stable)).verdict
    }

    #[test]
    fn the_canary_is_judged_against_stable() {
        let stable = Stream {
            requests: 1000,
            s5xx: 0,
            p95_s: 0.100,
        };
        let bad = Stream {
            requests: 1000,
            s5xx: 50,
            p95_s: 0.130,
        };
        let good = Stream {
            requests: 1000,
            s5xx: 5,
            p95_s: 0.110,
        };
        let errors = "canary.rate(5xx) <= stable.rate(5xx) + 1%";
        let latency = "canary.p(95) <= 1.2 * stable.p(95)";
        assert_eq!(verdict(errors, &bad, &stable), CheckVerdict::Fail);
        assert_eq!(verdict(errors, &good, &stable), CheckVerdict::Pass);
        assert_eq!(verdict(latency, &bad, &stable), CheckVerdict::Fail);
        assert_eq!(verdict(latency, &good, &stable), CheckVerdict::Pass);
    }

    #[test]
    fn a_stream_without_data_is_inconclusive() {
        let e = parse_compare("canary.rate(5xx) <= stable.rate(5xx)").expect("parses");
        let stable = Stream {
            requests: 10,
            s5xx: 0,
            p95_s: 0.1,
        };
        let j = judge(&e, None, Some(&stable));
        assert_eq!(j.verdict, CheckVerdict::Inconclusive);
        assert!(j.detail.contains("`canary`"), "{}", j.detail);
        let empty = Stream {
            requests: 0,
            s5xx: 0,
            p95_s: 0.0,
        };
        assert_eq!(
            judge(&e, Some(&stable), Some(&empty)).verdict,
            CheckVerdict::Inconclusive
        );
    }
}
