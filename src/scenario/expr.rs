//! The compact check language, in the spirit of k6 thresholds:
//!
//! ```text
//! rate(401) == 0            share of requests answered 401
//! rate(5xx) < 5%            share answered 500-599
//! rate(errors) < 1%         share that failed without a response (refused, reset, timeout)
//! count(503) <= 10          number of 503s
//! p(99) < 800ms             corrected latency quantile (from the intended send time)
//! p(95, service) < 300ms    service latency quantile (from the actual send time)
//! p(95) <= 1.5 * baseline   compared with the same metric in the baseline phase
//! rps >= 180                achieved requests per second
//! dropped == 0              requests not sent because the generator fell behind
//! ```
//!
//! Conditions for Prometheus checks use the same comparison on `result`: `result < 0.05`.

use std::fmt;

/// Which responses a `rate(...)`/`count(...)` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSel {
    /// One status code, e.g. 401.
    Code(u16),
    /// A class, e.g. 5 for 5xx.
    Class(u8),
    /// Requests that got no response (connect refused, reset, timeout, TLS, other).
    Errors,
    /// Anything that is not a 2xx response (errors included).
    Failed,
}

impl fmt::Display for StatusSel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusSel::Code(c) => write!(f, "{c}"),
            StatusSel::Class(c) => write!(f, "{c}xx"),
            StatusSel::Errors => f.write_str("errors"),
            StatusSel::Failed => f.write_str("failed"),
        }
    }
}

impl StatusSel {
    /// Parses `401`, `5xx`, `errors`, `failed`.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        match t {
            "errors" | "error" => return Some(StatusSel::Errors),
            "failed" | "non_2xx" => return Some(StatusSel::Failed),
            _ => {}
        }
        if let Some(class) = t.strip_suffix("xx") {
            return class
                .parse::<u8>()
                .ok()
                .filter(|c| (1..=5).contains(c))
                .map(StatusSel::Class);
        }
        t.parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .map(StatusSel::Code)
    }

    /// Whether a response status matches (transport errors are matched separately).
    pub fn matches_status(self, status: u16) -> bool {
        match self {
            StatusSel::Code(c) => status == c,
            StatusSel::Class(c) => status / 100 == u16::from(c),
            StatusSel::Errors => false,
            StatusSel::Failed => !(200..300).contains(&status),
        }
    }

    pub fn includes_transport_errors(self) -> bool {
        matches!(self, StatusSel::Errors | StatusSel::Failed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyKind {
    /// Measured from the intended send time (coordinated-omission-safe).
    Corrected,
    /// Measured from the actual send time.
    Service,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// Share of requests, 0..=1.
    Rate(StatusSel),
    Count(StatusSel),
    /// Latency quantile in seconds; the quantile is 0..=100.
    Quantile(f64, LatencyKind),
    Rps,
    Dropped,
    Requests,
    /// A Prometheus query's scalar result.
    Result,
}

impl Metric {
    pub fn is_latency(self) -> bool {
        matches!(self, Metric::Quantile(..))
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Rate(s) => write!(f, "rate({s})"),
            Metric::Count(s) => write!(f, "count({s})"),
            Metric::Quantile(q, LatencyKind::Corrected) => write!(f, "p({q})"),
            Metric::Quantile(q, LatencyKind::Service) => write!(f, "p({q}, service)"),
            Metric::Rps => f.write_str("rps"),
            Metric::Dropped => f.write_str("dropped"),
            Metric::Requests => f.write_str("requests"),
            Metric::Result => f.write_str("result"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Cmp {
    pub fn holds(self, left: f64, right: f64) -> bool {
        // Counts and rates are compared exactly; tiny float noise must not flip `== 0`.
        let eq = (left - right).abs() <= f64::EPSILON * left.abs().max(right.abs()).max(1.0);
        match self {
            Cmp::Lt => left < right && !eq,
            Cmp::Le => left < right || eq,
            Cmp::Gt => left > right && !eq,
            Cmp::Ge => left > right || eq,
            Cmp::Eq => eq,
            Cmp::Ne => !eq,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Eq => "==",
            Cmp::Ne => "!=",
        }
    }
}

impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// The right-hand side: a fixed value (seconds for latency, 0..=1 for rates) or a multiple of
/// the same metric measured in the baseline phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Value(f64),
    Baseline { factor: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub metric: Metric,
    pub cmp: Cmp,
    pub threshold: Threshold,
}

impl Expr {
    pub fn uses_baseline(&self) -> bool {
        matches!(self.threshold, Threshold::Baseline { .. })
    }

    /// Why this expression is decided before anything is measured, if it is: a rate beyond
    /// 100 % or a negative count, latency or rps can never be reached, so the check would
    /// pass or fail whatever happens.
    pub fn foregone(&self) -> Option<String> {
        let Threshold::Value(value) = self.threshold else {
            return None;
        };
        let shown = format_value(self.metric, value);
        match self.metric {
            Metric::Rate(_) if value > 1.0 => Some(format!(
                "`{self}` is decided before the drill: a rate is at most 100%, not {shown}"
            )),
            Metric::Count(_)
            | Metric::Quantile(..)
            | Metric::Rps
            | Metric::Dropped
            | Metric::Requests
                if value < 0.0 =>
            {
                let what = if self.metric.is_latency() {
                    "a latency"
                } else {
                    "a count"
                };
                Some(format!(
                    "`{self}` is decided before the drill: {what} is never negative ({shown})"
                ))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.metric, self.cmp)?;
        match self.threshold {
            Threshold::Baseline { factor } if (factor - 1.0).abs() < f64::EPSILON => {
                f.write_str("baseline")
            }
            Threshold::Baseline { factor } => write!(f, "{factor} * baseline"),
            Threshold::Value(v) => f.write_str(&format_value(self.metric, v)),
        }
    }
}

/// A value in the metric's natural unit: `800ms`, `5%`, `12`.
pub fn format_value(metric: Metric, value: f64) -> String {
    match metric {
        Metric::Quantile(..) if value < 1.0 => format!("{}ms", round3(value * 1000.0)),
        Metric::Quantile(..) => format!("{}s", round3(value)),
        Metric::Rate(_) => format!("{}%", round3(value * 100.0)),
        _ => format!("{}", round3(value)),
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// A parse error with the byte offset in the expression where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError {
        offset,
        message: message.into(),
    })
}

const HTTP_HINT: &str = "write e.g. `rate(401) == 0`, `p(99) < 800ms` or `p(95) <= 1.5 * baseline`";

/// Parses an http check or guard expression.
pub fn parse_http(text: &str) -> Result<Expr, ExprError> {
    parse(text, false)
}

/// Parses a Prometheus condition such as `result < 0.05`.
pub fn parse_condition(text: &str) -> Result<Expr, ExprError> {
    parse(text, true)
}

fn parse(text: &str, condition: bool) -> Result<Expr, ExprError> {
    let (cmp_at, cmp, cmp_len) = find_comparison(text).ok_or_else(|| ExprError {
        offset: text.len(),
        message: format!("no comparison (<, <=, >, >=, ==, !=) in `{text}`: {HTTP_HINT}"),
    })?;
    let left = &text[..cmp_at];
    let right_at = cmp_at + cmp_len;
    let right = &text[right_at..];
    let metric = if condition {
        if left.trim() != "result" {
            return err(
                leading(left),
                format!(
                    "a condition compares `result`, e.g. `result < 0.05`; found `{}`",
                    left.trim()
                ),
            );
        }
        Metric::Result
    } else {
        parse_metric(left)?
    };
    let threshold = parse_threshold(right, right_at, metric, condition)?;
    Ok(Expr {
        metric,
        cmp,
        threshold,
    })
}

fn leading(s: &str) -> usize {
    s.len() - s.trim_start().len()
}

fn find_comparison(text: &str) -> Option<(usize, Cmp, usize)> {
    for (i, byte) in text.bytes().enumerate() {
        let two = text.get(i..i + 2);
        let found = match (two, byte) {
            (Some("<="), _) => Some((Cmp::Le, 2)),
            (Some(">="), _) => Some((Cmp::Ge, 2)),
            (Some("=="), _) => Some((Cmp::Eq, 2)),
            (Some("!="), _) => Some((Cmp::Ne, 2)),
            (_, b'<') => Some((Cmp::Lt, 1)),
            (_, b'>') => Some((Cmp::Gt, 1)),
            _ => None,
        };
        if let Some((cmp, len)) = found {
            return Some((i, cmp, len));
        }
    }
    None
}

fn parse_metric(left: &str) -> Result<Metric, ExprError> {
    let start = leading(left);
    let t = left.trim();
    match t {
        "rps" => return Ok(Metric::Rps),
        "dropped" => return Ok(Metric::Dropped),
        "requests" => return Ok(Metric::Requests),
        _ => {}
    }
    let (func, args) = match t.split_once('(') {
        Some((f, rest)) => match rest.strip_suffix(')') {
            Some(args) => (f.trim(), args),
            None => return err(start + t.len(), format!("missing `)` in `{t}`")),
        },
        None => {
            return err(
                start,
                format!(
                    "unknown metric `{t}`: use rate(...), count(...), p(...), rps, dropped or requests"
                ),
            );
        }
    };
    let args_at = start + func.len() + 1;
    match func {
        "rate" | "count" => {
            let sel = StatusSel::parse(args).ok_or_else(|| ExprError {
                offset: args_at,
                message: format!("`{}` is not a status: use a code such as 401, a class such as 5xx, `errors` or `failed`", args.trim()),
            })?;
            Ok(if func == "rate" {
                Metric::Rate(sel)
            } else {
                Metric::Count(sel)
            })
        }
        "p" => {
            let (q, kind) = match args.split_once(',') {
                Some((q, k)) => match k.trim() {
                    "service" => (q, LatencyKind::Service),
                    "corrected" => (q, LatencyKind::Corrected),
                    other => {
                        return err(
                            args_at + q.len() + 1,
                            format!("unknown latency `{other}`: use `service` or `corrected`"),
                        );
                    }
                },
                None => (args, LatencyKind::Corrected),
            };
            let quantile: f64 = q.trim().parse().map_err(|_| ExprError {
                offset: args_at,
                message: format!("`{}` is not a percentile: write p(99) or p(99.9)", q.trim()),
            })?;
            if !(0.0..=100.0).contains(&quantile) {
                return err(args_at, format!("percentile {quantile} is outside 0..100"));
            }
            Ok(Metric::Quantile(quantile, kind))
        }
        other => err(
            start,
            format!("unknown function `{other}`: use rate(...), count(...) or p(...)"),
        ),
    }
}

fn parse_threshold(
    right: &str,
    right_at: usize,
    metric: Metric,
    condition: bool,
) -> Result<Threshold, ExprError> {
    let at = right_at + leading(right);
    let t = right.trim();
    if t.is_empty() {
        return err(at, "missing value after the comparison");
    }
    if t.contains("baseline") {
        if condition {
            return err(at, "`baseline` is only available in http checks");
        }
        if matches!(
            metric,
            Metric::Count(_) | Metric::Dropped | Metric::Requests
        ) {
            return err(
                at,
                format!(
                    "compare {metric} with a number; baseline comparisons need a rate, a percentile or rps"
                ),
            );
        }
        let factor = if t == "baseline" {
            1.0
        } else if let Some(f) = t
            .strip_suffix("* baseline")
            .or_else(|| t.strip_suffix("*baseline"))
        {
            parse_number(f.trim(), at)?
        } else if let Some(f) = t
            .strip_prefix("baseline *")
            .or_else(|| t.strip_prefix("baseline*"))
        {
            parse_number(f.trim(), at)?
        } else {
            return err(at, format!("cannot read `{t}`: write `1.5 * baseline`"));
        };
        return Ok(Threshold::Baseline { factor });
    }
    let value = if let Some(ms) = t.strip_suffix("ms") {
        latency_only(metric, at, t)?;
        parse_number(ms, at)? / 1000.0
    } else if let Some(s) = t.strip_suffix('s') {
        latency_only(metric, at, t)?;
        parse_number(s, at)?
    } else if let Some(pct) = t.strip_suffix('%') {
        if !matches!(metric, Metric::Rate(_) | Metric::Result) {
            return err(
                at,
                format!("`%` only makes sense for rate(...); {metric} is not a share"),
            );
        }
        parse_number(pct, at)? / 100.0
    } else {
        let v = parse_number(t, at)?;
        if metric.is_latency() {
            return err(at, format!("`{t}` has no unit: write `{t}ms` or `{t}s`"));
        }
        if matches!(metric, Metric::Rate(_)) && v > 1.0 {
            return err(
                at,
                format!("a rate is a share between 0 and 1: did you mean `{t}%`?"),
            );
        }
        v
    };
    Ok(Threshold::Value(value))
}

fn latency_only(metric: Metric, at: usize, t: &str) -> Result<(), ExprError> {
    if metric.is_latency() {
        Ok(())
    } else {
        err(
            at,
            format!("`{t}` is a duration, but {metric} is not a latency"),
        )
    }
}

fn parse_number(text: &str, at: usize) -> Result<f64, ExprError> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => err(at, format!("`{}` is not a number", text.trim())),
    }
}

/// One stream's metric in a comparison: `canary.rate(5xx)`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMetric {
    pub stream: String,
    pub metric: Metric,
    /// Byte offset of the stream name in the expression (for diagnostics).
    pub at: usize,
}

/// A comparison of two load streams, Kayenta-style: the canary judged against the stable
/// version measured at the same time, e.g. `canary.rate(5xx) <= stable.rate(5xx) + 1%` or
/// `canary.p(95) <= 1.2 * stable.p(95)`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareExpr {
    pub left: StreamMetric,
    pub cmp: Cmp,
    /// `factor * right.metric + offset`.
    pub factor: f64,
    pub right: StreamMetric,
    pub offset: f64,
}

impl fmt::Display for CompareExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} {} ", self.left.stream, self.left.metric, self.cmp)?;
        if (self.factor - 1.0).abs() > f64::EPSILON {
            write!(f, "{} * ", self.factor)?;
        }
        write!(f, "{}.{}", self.right.stream, self.right.metric)?;
        if self.offset != 0.0 {
            let sign = if self.offset < 0.0 { '-' } else { '+' };
            write!(
                f,
                " {sign} {}",
                format_value(self.left.metric, self.offset.abs())
            )?;
        }
        Ok(())
    }
}

const COMPARE_HINT: &str = "write e.g. `canary.rate(5xx) <= stable.rate(5xx) + 1%` or `canary.p(95) <= 1.2 * stable.p(95)`";

/// Parses a comparison of two load streams.
pub fn parse_compare(text: &str) -> Result<CompareExpr, ExprError> {
    let (cmp_at, cmp, cmp_len) = find_comparison(text).ok_or_else(|| ExprError {
        offset: text.len(),
        message: format!("no comparison (<, <=, >, >=, ==, !=) in `{text}`: {COMPARE_HINT}"),
    })?;
    let left = stream_metric(&text[..cmp_at], 0)?;
    let right_at = cmp_at + cmp_len;
    let right_text = &text[right_at..];
    // `[factor *] stream.metric [+|- value]`, operators outside parentheses only.
    let mut depth = 0i32;
    let (mut star, mut sign) = (None, None);
    for (i, c) in right_text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '*' if depth == 0 && star.is_none() => star = Some(i),
            // A sign at the start or right after `*` belongs to the number that follows it.
            '+' | '-'
                if depth == 0
                    && sign.is_none()
                    && star.is_none_or(|s| i > s + 1)
                    && !right_text[..i].trim().is_empty() =>
            {
                sign = Some(i);
            }
            _ => {}
        }
    }
    let end = sign.unwrap_or(right_text.len());
    let (factor, metric_from) = match star {
        Some(s) if s < end => (parse_number(&right_text[..s], right_at)?, s + 1),
        _ => (1.0, 0),
    };
    let right = stream_metric(&right_text[metric_from..end], right_at + metric_from)?;
    if std::mem::discriminant(&left.metric) != std::mem::discriminant(&right.metric) {
        return err(
            right.at,
            format!(
                "compare like with like: {} against {}",
                left.metric, right.metric
            ),
        );
    }
    if left.stream == right.stream {
        return err(right.at, "a comparison needs two different streams");
    }
    let offset = match sign {
        None => 0.0,
        Some(at) => {
            let value = &right_text[at + 1..];
            let magnitude = match parse_threshold(value, right_at + at + 1, left.metric, false)? {
                Threshold::Value(v) => v,
                Threshold::Baseline { .. } => {
                    return err(right_at + at, "a stream comparison has no baseline");
                }
            };
            if right_text[at..].starts_with('-') {
                -magnitude
            } else {
                magnitude
            }
        }
    };
    Ok(CompareExpr {
        left,
        cmp,
        factor,
        right,
        offset,
    })
}

fn stream_metric(text: &str, base: usize) -> Result<StreamMetric, ExprError> {
    let at = base + leading(text);
    let t = text.trim();
    let Some((stream, metric)) = t.split_once('.').filter(|(s, _)| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }) else {
        return err(
            at,
            format!("`{t}` names no stream: write `STREAM.metric`; {COMPARE_HINT}"),
        );
    };
    let metric = parse_metric(metric).map_err(|e| ExprError {
        offset: at + stream.len() + 1 + e.offset,
        message: e.message,
    })?;
    if matches!(metric, Metric::Result) {
        return err(at, "`result` is only for prometheus conditions");
    }
    Ok(StreamMetric {
        stream: stream.to_string(),
        metric,
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Expr {
        parse_http(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            ok("rate(401) == 0"),
            Expr {
                metric: Metric::Rate(StatusSel::Code(401)),
                cmp: Cmp::Eq,
                threshold: Threshold::Value(0.0)
            }
        );
        assert_eq!(ok("rate(5xx) < 5%").threshold, Threshold::Value(0.05));
        assert_eq!(ok("p(99) < 800ms").threshold, Threshold::Value(0.8));
        assert_eq!(
            ok("p(95, service) < 1.5s").metric,
            Metric::Quantile(95.0, LatencyKind::Service)
        );
        assert_eq!(
            ok("p(95) <= 1.5 * baseline").threshold,
            Threshold::Baseline { factor: 1.5 }
        );
        assert_eq!(
            ok("count(503) <= 10").metric,
            Metric::Count(StatusSel::Code(503))
        );
        assert_eq!(ok("rps >= 180").metric, Metric::Rps);
        assert_eq!(ok("dropped == 0").metric, Metric::Dropped);
        assert_eq!(
            ok("p(95) <= 1.5 * baseline").to_string(),
            "p(95) <= 1.5 * baseline"
        );
        assert_eq!(ok("p(99) < 800ms").to_string(), "p(99) < 800ms");
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = |t: &str| {
            parse_http(t)
                .err()
                .unwrap_or_else(|| panic!("{t} should fail"))
        };
        assert_eq!(
            e("p(99) < 800").message,
            "`800` has no unit: write `800ms` or `800s`"
        );
        assert_eq!(e("p(99) < 800").offset, 8);
        assert!(e("rate(401) == 5").message.contains("did you mean `5%`"));
        assert!(e("rate(601) == 0").message.contains("not a status"));
        assert_eq!(e("rate(601) == 0").offset, 5);
        assert!(e("latency < 1s").message.contains("unknown metric"));
        assert!(e("rate(401)").message.contains("no comparison"));
        assert!(
            e("count(401) < baseline")
                .message
                .contains("compare count(401) with a number")
        );
    }

    #[test]
    fn comparisons_hold_exactly() {
        assert!(Cmp::Eq.holds(0.0, 0.0));
        assert!(!Cmp::Lt.holds(0.05, 0.05));
        assert!(Cmp::Le.holds(0.1 + 0.2, 0.3));
        assert!(parse_condition("result < 0.05").is_ok());
        assert!(parse_condition("value < 0.05").is_err());
    }

    #[test]
    fn parses_stream_comparisons() {
        let e = parse_compare("canary.rate(5xx) <= stable.rate(5xx) + 1%").expect("parses");
        assert_eq!(e.left.stream, "canary");
        assert_eq!(e.right.stream, "stable");
        assert_eq!(e.left.metric, Metric::Rate(StatusSel::Class(5)));
        assert_eq!((e.factor, e.offset), (1.0, 0.01));
        assert_eq!(e.to_string(), "canary.rate(5xx) <= stable.rate(5xx) + 1%");
        let e = parse_compare("canary.p(95) <= 1.2 * stable.p(95)").expect("parses");
        assert_eq!((e.factor, e.offset), (1.2, 0.0));
        assert_eq!(
            e.right.metric,
            Metric::Quantile(95.0, LatencyKind::Corrected)
        );
        let e = parse_compare("canary.p(99) < 1.5*stable.p(99) - 10ms").expect("parses");
        assert_eq!(e.factor, 1.5);
        assert!((e.offset + 0.010).abs() < 1e-12);
        assert_eq!(e.to_string(), "canary.p(99) < 1.5 * stable.p(99) - 10ms");
    }

    #[test]
    fn stream_comparison_errors_point_at_the_problem() {
        let e = |t: &str| {
            parse_compare(t)
                .err()
                .unwrap_or_else(|| panic!("{t} should fail"))
        };
        assert!(
            e("rate(5xx) <= stable.rate(5xx)")
                .message
                .contains("names no stream")
        );
        let like = e("canary.rate(5xx) <= stable.p(95)");
        assert!(like.message.contains("like with like"), "{}", like.message);
        assert_eq!(like.offset, 20);
        assert!(
            e("canary.rate(5xx) <= canary.rate(5xx)")
                .message
                .contains("two different")
        );
        assert!(
            e("canary.p(95) <= stable.p(95) + 5")
                .message
                .contains("no unit")
        );
        assert_eq!(e("canary.rate(6xx) <= stable.rate(5xx)").offset, 12);
    }
}
