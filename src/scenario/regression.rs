//! The `regression` check's spec: which earlier runs form the baseline, and how much worse
//! than that baseline a metric may get. Judging lives in `history::regression`; this is the
//! scenario's contract and the parsing of its limits (shared by validation and judging).

use schemars::JsonSchema;
use serde::Deserialize;

use super::parsed::{Grammar, Parsed};
use super::spanned::Sp;
use crate::units::HumanDuration;

/// "Not worse than the usual": this run against the median of earlier runs of the same
/// scenario on the same context and namespace.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegressionCheck {
    /// How many earlier runs the baseline is the median of: the latest ones that passed.
    /// Default 5.
    #[serde(default = "default_runs")]
    pub runs: u32,
    /// Fewer earlier passing runs than this and the check is inconclusive, never a pass.
    /// Default 3.
    #[serde(default = "default_min_runs")]
    pub min_runs: u32,
    /// Folder holding the earlier runs' report folders (relative to the scenario file).
    /// Default: the folder this run's report goes to (`run --report-dir`).
    #[serde(default)]
    pub history: Option<String>,
    /// What may not get worse, and by how much. At least one.
    pub limits: Vec<Sp<RegressionLimit>>,
}

fn default_runs() -> u32 {
    5
}

fn default_min_runs() -> u32 {
    3
}

/// One metric's allowed increase over the baseline. With both `relative` and `absolute`, the
/// larger allowance holds ("+50 % or +10s").
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegressionLimit {
    pub metric: RegressionMetric,
    /// Phase the metric is read in. Default: the check's `phase`, else `fault`. Not used by
    /// `time_to_recover`, which spans the fault and recovery phases.
    #[serde(default)]
    pub phase: Option<Sp<String>>,
    /// Allowed increase as a share of the baseline: `+50%`.
    #[serde(default)]
    pub relative: Option<Sp<Parsed<RelativeIncrease>>>,
    /// Allowed increase in the metric's unit: `+10s`, `+250ms` for times, `+1pp` (percentage
    /// points) for rates.
    #[serde(default)]
    pub absolute: Option<Sp<Parsed<AbsoluteIncrease>>>,
}

/// `relative:` — `+50%` is 0.5.
#[derive(Debug)]
pub enum RelativeIncrease {}

impl Grammar for RelativeIncrease {
    type Output = f64;
    type Error = LimitError;
    fn parse(text: &str) -> Result<f64, LimitError> {
        parse_percent(text)
    }
}

/// `absolute:` — a time (`+10s`) or percentage points (`+1pp`); which one a metric takes is
/// checked against the metric, the text is not read again.
#[derive(Debug)]
pub enum AbsoluteIncrease {}

/// An absolute increase as written: seconds, or a fraction for percentage points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Increase {
    Seconds(f64),
    Points(f64),
}

impl Grammar for AbsoluteIncrease {
    type Output = Increase;
    type Error = LimitError;
    fn parse(text: &str) -> Result<Increase, LimitError> {
        parse_absolute(text)
    }
}

/// A per-run metric a regression limit may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, JsonSchema)]
pub enum RegressionMetric {
    /// 95th percentile of corrected latency (from the intended send time).
    #[serde(rename = "p95")]
    P95,
    /// 99th percentile of corrected latency.
    #[serde(rename = "p99")]
    P99,
    /// 95th percentile of service latency (from the actual send time).
    #[serde(rename = "service_p95")]
    ServiceP95,
    /// 99th percentile of service latency.
    #[serde(rename = "service_p99")]
    ServiceP99,
    /// From the start of the `fault` phase to the start of the `recovery` phase.
    #[serde(rename = "time_to_recover")]
    TimeToRecover,
    /// Share of requests answered 401.
    #[serde(rename = "rate(401)")]
    Rate401,
    /// Share of requests answered 5xx.
    #[serde(rename = "rate(5xx)")]
    Rate5xx,
}

impl RegressionMetric {
    pub const fn as_str(self) -> &'static str {
        match self {
            RegressionMetric::P95 => "p95",
            RegressionMetric::P99 => "p99",
            RegressionMetric::ServiceP95 => "service_p95",
            RegressionMetric::ServiceP99 => "service_p99",
            RegressionMetric::TimeToRecover => "time_to_recover",
            RegressionMetric::Rate401 => "rate(401)",
            RegressionMetric::Rate5xx => "rate(5xx)",
        }
    }

    /// Rates are fractions; every other metric is in seconds.
    pub const fn is_rate(self) -> bool {
        matches!(self, RegressionMetric::Rate401 | RegressionMetric::Rate5xx)
    }

    /// Whether the metric belongs to one phase.
    pub const fn has_phase(self) -> bool {
        !matches!(self, RegressionMetric::TimeToRecover)
    }
}

impl std::fmt::Display for RegressionMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A limit's allowances, parsed: `relative` as a fraction (0.5 for `+50%`), `absolute` in
/// the metric's unit (seconds, or a fraction for rates).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Allowance {
    pub relative: Option<f64>,
    pub absolute: Option<f64>,
}

impl Allowance {
    /// The highest value that is not a regression against `baseline`.
    pub fn ceiling(&self, baseline: f64) -> f64 {
        let relative = self.relative.map(|r| baseline * (1.0 + r));
        let absolute = self.absolute.map(|a| baseline + a);
        match (relative, absolute) {
            (Some(r), Some(a)) => r.max(a),
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => baseline,
        }
    }
}

/// Why a limit's allowance does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LimitError(pub String);

impl RegressionLimit {
    /// The phase the limit reads, given the check's own phase.
    pub fn phase_or<'a>(&'a self, check_phase: Option<&'a str>) -> &'a str {
        self.phase
            .as_ref()
            .map(|p| p.value.as_str())
            .or(check_phase)
            .unwrap_or("fault")
    }

    pub fn allowance(&self) -> Result<Allowance, LimitError> {
        if self.relative.is_none() && self.absolute.is_none() {
            return Err(LimitError(format!(
                "limit on `{}` needs `relative` (`+50%`) or `absolute`",
                self.metric
            )));
        }
        let relative = self
            .relative
            .as_ref()
            .map(|r| r.value.get().copied().map_err(Clone::clone))
            .transpose()?;
        let absolute = self
            .absolute
            .as_ref()
            .map(|a| {
                let text = a.value.text();
                match (a.value.get().map_err(Clone::clone)?, self.metric.is_rate()) {
                    (Increase::Points(p), true) => Ok(*p),
                    (Increase::Seconds(s), false) => Ok(*s),
                    (_, true) => Err(LimitError(format!(
                        "`{text}` is not an increase of `{}`: write percentage points, e.g. `+1pp`",
                        self.metric
                    ))),
                    (_, false) => Err(LimitError(format!(
                        "`{text}` is not an increase of `{}`: write a time, e.g. `+10s`",
                        self.metric
                    ))),
                }
            })
            .transpose()?;
        Ok(Allowance { relative, absolute })
    }
}

/// The check in words, for plan tables and reports: "p95 in fault ≤ +50 %; … vs median of the
/// last 5 passing runs (at least 3)".
pub fn describe(check: &RegressionCheck) -> String {
    let limits: Vec<String> = check
        .limits
        .iter()
        .map(|l| {
            let l = &l.value;
            let relative = l.relative.as_ref().map(|r| r.value.text().trim());
            let absolute = l.absolute.as_ref().map(|a| a.value.text().trim());
            let allowance: Vec<&str> = relative.into_iter().chain(absolute).collect();
            let place = match &l.phase {
                Some(phase) if l.metric.has_phase() => format!(" in {}", phase.value),
                _ => String::new(),
            };
            format!("{}{place} ≤ {}", l.metric, allowance.join(" or "))
        })
        .collect();
    format!(
        "{} vs the median of the last {} passing runs (at least {})",
        limits.join("; "),
        check.runs,
        check.min_runs
    )
}

fn unsigned(text: &str) -> &str {
    let text = text.trim();
    text.strip_prefix('+').unwrap_or(text).trim()
}

/// `+50%` → 0.5.
fn parse_percent(text: &str) -> Result<f64, LimitError> {
    let bad = || {
        LimitError(format!(
            "`{text}` is not a relative increase: write e.g. `+50%`"
        ))
    };
    let number = unsigned(text).strip_suffix('%').ok_or_else(bad)?.trim();
    let percent: f64 = number.parse().map_err(|_| bad())?;
    if !percent.is_finite() || percent < 0.0 {
        return Err(bad());
    }
    Ok(percent / 100.0)
}

/// `+10s` → 10 seconds, `+1pp` → 0.01 points.
fn parse_absolute(text: &str) -> Result<Increase, LimitError> {
    let value = unsigned(text);
    if let Some(points) = value.strip_suffix("pp") {
        return match points.trim().parse::<f64>() {
            Ok(p) if p.is_finite() && p >= 0.0 => Ok(Increase::Points(p / 100.0)),
            _ => Err(LimitError(format!(
                "`{text}` is not an increase in percentage points: write e.g. `+1pp`"
            ))),
        };
    }
    value
        .parse::<HumanDuration>()
        .map(|d| Increase::Seconds(d.0.as_secs_f64()))
        .map_err(|e| {
            LimitError(format!(
                "`{text}` is not an increase: {e} (a time such as `+10s`, or points such as `+1pp`)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(
        metric: RegressionMetric,
        relative: Option<&str>,
        absolute: Option<&str>,
    ) -> RegressionLimit {
        RegressionLimit {
            metric,
            phase: None,
            relative: relative.map(|s| Sp::new(s.into(), super::super::spanned::Pos::default())),
            absolute: absolute.map(|s| Sp::new(s.into(), super::super::spanned::Pos::default())),
        }
    }

    #[test]
    fn allowances_parse_and_the_larger_one_holds() {
        let ttr = limit(RegressionMetric::TimeToRecover, Some("+50%"), Some("+10s"))
            .allowance()
            .expect("parses");
        assert_eq!(ttr.ceiling(4.0), 14.0, "+10s beats +50 % of 4s");
        assert_eq!(ttr.ceiling(40.0), 60.0, "+50 % beats +10s of 40s");
        let rate = limit(RegressionMetric::Rate401, None, Some("+1pp"))
            .allowance()
            .expect("parses");
        assert!((rate.ceiling(0.02) - 0.03).abs() < 1e-12);
        let p95 = limit(RegressionMetric::P95, None, Some("250ms"))
            .allowance()
            .expect("parses");
        assert!((p95.ceiling(0.1) - 0.35).abs() < 1e-12);
    }

    #[test]
    fn bad_allowances_say_what_to_write() {
        let e = limit(RegressionMetric::P95, None, None)
            .allowance()
            .unwrap_err();
        assert!(e.0.contains("needs `relative`"), "{e}");
        let e = limit(RegressionMetric::Rate5xx, None, Some("+1s"))
            .allowance()
            .unwrap_err();
        assert!(e.0.contains("percentage points"), "{e}");
        let e = limit(RegressionMetric::P99, Some("50"), None)
            .allowance()
            .unwrap_err();
        assert!(e.0.contains("+50%"), "{e}");
        let e = limit(RegressionMetric::P99, Some("-5%"), None)
            .allowance()
            .unwrap_err();
        assert!(e.0.contains("relative"), "{e}");
    }
}
