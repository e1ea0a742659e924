//! Judging a run against its baseline: each limit's ceiling is the baseline's median plus the
//! larger allowance; a run above it regressed. Pure, so the `regression` check (judged by the
//! engine from a baseline read before judging) and `history --fail-on-regression` share it.

use super::baseline::Baseline;
use super::record::Measured;
use crate::checks::{CheckVerdict, Judgement};
use crate::scenario::regression::{Allowance, LimitError};
use crate::scenario::{RegressionCheck, RegressionMetric};

/// One limit, resolved: the metric, the phase it is read in, its allowance.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub metric: RegressionMetric,
    pub phase: String,
    pub allowance: Allowance,
}

impl Limit {
    /// The limits of a scenario's check (`check_phase`: the check's `phase`).
    pub fn of_check(
        check: &RegressionCheck,
        check_phase: Option<&str>,
    ) -> Result<Vec<Limit>, LimitError> {
        check
            .limits
            .iter()
            .map(|l| {
                Ok(Limit {
                    metric: l.value.metric,
                    phase: l.value.phase_or(check_phase).to_string(),
                    allowance: l.value.allowance()?,
                })
            })
            .collect()
    }

    /// `history --fail-on-regression`'s limits for a run with these phases: per phase p95
    /// `+50%` (or `+10ms`, so sub-millisecond noise is not a regression) and `rate(401)`,
    /// `rate(5xx)` `+1pp`; time to recover `+50%` or `+10s`.
    pub fn defaults<'a>(phases: impl IntoIterator<Item = &'a str>) -> Vec<Limit> {
        let limit = |metric, phase: &str, relative, absolute| Limit {
            metric,
            phase: phase.to_string(),
            allowance: Allowance { relative, absolute },
        };
        let mut limits = vec![limit(
            RegressionMetric::TimeToRecover,
            "",
            Some(0.5),
            Some(10.0),
        )];
        for phase in phases {
            limits.push(limit(RegressionMetric::P95, phase, Some(0.5), Some(0.010)));
            limits.push(limit(RegressionMetric::Rate401, phase, None, Some(0.01)));
            limits.push(limit(RegressionMetric::Rate5xx, phase, None, Some(0.01)));
        }
        limits
    }

    fn name(&self) -> String {
        if self.metric.has_phase() {
            format!("{} in {}", self.metric, self.phase)
        } else {
            self.metric.to_string()
        }
    }
}

/// A metric's value for humans: `412 ms`, `4.2 s`, `1.30 %`.
pub fn value_text(metric: RegressionMetric, value: f64) -> String {
    if metric.is_rate() {
        format!("{:.2} %", value * 100.0)
    } else if value < 1.0 {
        format!("{:.1} ms", value * 1000.0)
    } else {
        format!("{value:.2} s")
    }
}

/// `current` against `baseline` under `limits`: fail when any limit is exceeded; inconclusive
/// when the baseline has too few runs or a metric is missing on either side; else pass.
pub fn judge(limits: &[Limit], current: &Measured, baseline: &Baseline) -> Judgement {
    let used = format!(
        "median of {} earlier passing run(s): {}",
        baseline.runs.len(),
        baseline.runs_in_words()
    );
    let passed_over = match baseline.passed_over() {
        over if over.is_empty() => String::new(),
        over => format!("; passed over: {over}"),
    };
    if !baseline.enough() {
        return Judgement::inconclusive(format!(
            "too few earlier passing runs of this scenario on this context and namespace: {} \
             of at least {} ({}{passed_over})",
            baseline.runs.len(),
            baseline.min_runs,
            baseline.runs_in_words()
        ));
    }
    let mut parts = Vec::new();
    let mut verdicts = Vec::new();
    // The limit nearest to (or furthest past) its ceiling gives the measured/threshold pair.
    let mut worst: Option<(f64, f64, f64, RegressionMetric)> = None;
    for limit in limits {
        let name = limit.name();
        let Some(now) = current.metric(limit.metric, &limit.phase) else {
            verdicts.push(CheckVerdict::Inconclusive);
            parts.push(format!("{name}: this run did not measure it"));
            continue;
        };
        let Some((base, from)) = baseline.median(limit.metric, &limit.phase) else {
            verdicts.push(CheckVerdict::Inconclusive);
            parts.push(format!("{name}: no earlier run measured it"));
            continue;
        };
        if from < baseline.min_runs as usize {
            verdicts.push(CheckVerdict::Inconclusive);
            parts.push(format!(
                "{name}: only {from} earlier run(s) measured it (need {})",
                baseline.min_runs
            ));
            continue;
        }
        let ceiling = limit.allowance.ceiling(base);
        let ok = now <= ceiling;
        verdicts.push(if ok {
            CheckVerdict::Pass
        } else {
            CheckVerdict::Fail
        });
        parts.push(format!(
            "{name} {} vs baseline {} (limit {}){}",
            value_text(limit.metric, now),
            value_text(limit.metric, base),
            value_text(limit.metric, ceiling),
            if ok { "" } else { ": REGRESSED" }
        ));
        let ratio = if ceiling > 0.0 {
            now / ceiling
        } else if now > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        if worst.is_none_or(|(r, ..)| ratio > r) {
            worst = Some((ratio, now, ceiling, limit.metric));
        }
    }
    let verdict = crate::checks::combine(verdicts);
    let detail = format!("{}; {used}{passed_over}", parts.join("; "));
    match worst {
        Some((_, now, ceiling, metric)) if verdict != CheckVerdict::Inconclusive => {
            let mut judged = Judgement::compared(
                now,
                ceiling,
                verdict == CheckVerdict::Pass,
                (
                    value_text(metric, now),
                    format!("≤ {}", value_text(metric, ceiling)),
                ),
                detail,
            );
            judged.verdict = verdict;
            judged
        }
        _ => Judgement::inconclusive(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::baseline::BaselineQuery;
    use crate::history::baseline::tests::query;
    use crate::history::record::fixtures::run;
    use crate::report::model::Verdict;

    fn baseline(records: &[crate::history::RunRecord], min_runs: u32) -> Baseline {
        BaselineQuery {
            exclude_run: None,
            hash: None,
            min_runs,
            ..query(5)
        }
        .select(records)
    }

    fn p95_limit() -> Vec<Limit> {
        vec![Limit {
            metric: RegressionMetric::P95,
            phase: "fault".into(),
            allowance: Allowance {
                relative: Some(0.5),
                absolute: None,
            },
        }]
    }

    #[test]
    fn a_slower_run_regresses_and_a_usual_one_passes() {
        let earlier = [
            run("a", 1, Verdict::Pass, "drill", 100.0),
            run("b", 2, Verdict::Pass, "drill", 120.0),
            run("c", 3, Verdict::Pass, "drill", 110.0),
        ];
        let base = baseline(&earlier, 3);
        let slow = run("slow", 9, Verdict::Pass, "drill", 400.0).measured;
        let judged = judge(&p95_limit(), &slow, &base);
        assert_eq!(judged.verdict, CheckVerdict::Fail, "{}", judged.detail);
        assert!(judged.detail.contains("REGRESSED"), "{}", judged.detail);
        assert_eq!(judged.threshold, Some(0.11 * 1.5));
        let usual = run("ok", 9, Verdict::Pass, "drill", 130.0).measured;
        assert_eq!(
            judge(&p95_limit(), &usual, &base).verdict,
            CheckVerdict::Pass
        );
    }

    #[test]
    fn too_few_runs_or_missing_data_is_inconclusive_never_pass() {
        let earlier = [run("a", 1, Verdict::Pass, "drill", 100.0)];
        let judged = judge(
            &p95_limit(),
            &run("x", 9, Verdict::Pass, "drill", 100.0).measured,
            &baseline(&earlier, 3),
        );
        assert_eq!(judged.verdict, CheckVerdict::Inconclusive);
        assert!(judged.detail.contains("too few"), "{}", judged.detail);
        let enough = [
            run("a", 1, Verdict::Pass, "drill", 100.0),
            run("b", 2, Verdict::Pass, "drill", 100.0),
        ];
        let empty = Measured::default();
        let judged = judge(&p95_limit(), &empty, &baseline(&enough, 2));
        assert_eq!(
            judged.verdict,
            CheckVerdict::Inconclusive,
            "{}",
            judged.detail
        );
    }

    #[test]
    fn default_limits_tolerate_noise_and_catch_a_slow_recovery() {
        let earlier = [
            run("a", 1, Verdict::Pass, "drill", 1.0),
            run("b", 2, Verdict::Pass, "drill", 1.2),
        ];
        let base = baseline(&earlier, 2);
        let noisy = run("n", 9, Verdict::Pass, "drill", 3.0).measured;
        assert_eq!(
            judge(&Limit::defaults(["fault"]), &noisy, &base).verdict,
            CheckVerdict::Pass
        );
        let mut slow = noisy;
        slow.time_to_recover_s = Some(30.0);
        let judged = judge(&Limit::defaults(["fault"]), &slow, &base);
        assert_eq!(judged.verdict, CheckVerdict::Fail, "{}", judged.detail);
        assert!(
            judged.detail.contains("time_to_recover 30.00 s"),
            "{}",
            judged.detail
        );
    }
}
