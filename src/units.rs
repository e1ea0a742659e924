//! Human units used throughout scenarios and the CLI: durations (`30s`, `2m`, `500ms`),
//! rates (`200/s`, `max`) and Kubernetes-style label selectors (`app=proxy,tier!=db`).
//!
//! Each type parses from a string, prints back to the same canonical string, and carries a JSON
//! Schema so editors can validate scenario files.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `value` with at most four significant digits, for people (`0.05052631578947368` → `0.05053`,
/// `1234.5678` → `1235`); NaN and infinities as Rust writes them.
pub fn four_significant(value: f64) -> String {
    if !value.is_finite() || value == 0.0 {
        return value.to_string();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 12) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// drillbook's sanity limits. Above them a typo (`callers: 100000000`) would exhaust memory or
/// hang the machine before the drill starts; a scenario lifts them with `allow_large: true`,
/// `drillbook load` with `--allow-large`.
pub mod limits {
    /// Open connections of one load (each a socket and a task).
    pub const CONNECTIONS: u64 = 10_000;
    /// Callers of one load (each a token and a row of per-caller statistics).
    pub const CALLERS: u64 = 10_000;
    /// Copies of one local process group (each a real process).
    pub const REPLICAS: u64 = 64;
    /// Requests per second of one load or stage.
    pub const RATE_PER_SECOND: f64 = 1_000_000.0;

    /// The refusal when `value` is above `max`: names the limit, why it exists and how to
    /// lift it (`lift`, e.g. "set `allow_large: true` in the scenario").
    /// `unit` follows both numbers (`/s` for rates, empty for counts).
    pub fn exceeded(what: &str, value: f64, max: f64, unit: &str, lift: &str) -> Option<String> {
        (value > max).then(|| {
            format!(
                "{what} {value}{unit} is above drillbook's limit of {max}{unit} (a typo would \
                 exhaust this machine before the drill starts); if you mean it, {lift}"
            )
        })
    }
}

/// Why a unit string did not parse. The message is shown to users verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UnitError {
    pub message: String,
}

impl UnitError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// A duration written by a human: `500ms`, `30s`, `2m`, `1h`, `1m30s`, `1.5s`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const ZERO: Self = Self(Duration::ZERO);

    pub fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl FromStr for HumanDuration {
    type Err = UnitError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        let hint = "write a duration like `500ms`, `30s`, `2m`, `1h` or `1m30s`";
        if s.is_empty() {
            return Err(UnitError::new(format!("empty duration: {hint}")));
        }
        if s.starts_with('-') {
            return Err(UnitError::new(format!(
                "negative duration `{s}`: durations count forward from the start of the drill"
            )));
        }
        let mut total = 0f64;
        let mut rest = s;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if number_len == 0 {
                return Err(UnitError::new(format!("`{s}` is not a duration: {hint}")));
            }
            let number: f64 = rest[..number_len]
                .parse()
                .map_err(|_| UnitError::new(format!("`{s}` is not a duration: {hint}")))?;
            rest = &rest[number_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let scale = match unit {
                "ms" => 0.001,
                "s" | "sec" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                "" if number == 0.0 => 0.0,
                "" => {
                    return Err(UnitError::new(format!(
                        "`{s}` has no unit: did you mean `{s}s`? ({hint})"
                    )));
                }
                other => {
                    return Err(UnitError::new(format!(
                        "unknown duration unit `{other}` in `{s}`: use ms, s, m or h"
                    )));
                }
            };
            total += number * scale;
        }
        if !total.is_finite() || total > 366.0 * 24.0 * 3600.0 {
            return Err(UnitError::new(format!(
                "duration `{s}` is longer than a year"
            )));
        }
        Ok(Self(Duration::from_secs_f64(total)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let secs = ms / 1000;
        let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

/// Requests per second, or `max` for the closed-loop mode used by benchmarks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    PerSecond(f64),
    Max,
}

impl Rate {
    /// The per-second rate, or `None` for `max`.
    pub fn per_second(self) -> Option<f64> {
        match self {
            Rate::PerSecond(r) => Some(r),
            Rate::Max => None,
        }
    }
}

impl FromStr for Rate {
    type Err = UnitError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        let hint = "write a rate like `200/s`, `600/m` or `max`";
        let (number, per) = match s.split_once('/') {
            Some((n, unit)) => (n.trim(), unit.trim()),
            None => {
                return Err(UnitError::new(format!(
                    "`{s}` has no time unit: did you mean `{s}/s`? ({hint})"
                )));
            }
        };
        let count: f64 = number
            .parse()
            .map_err(|_| UnitError::new(format!("`{s}` is not a rate: {hint}")))?;
        if !count.is_finite() || count < 0.0 {
            return Err(UnitError::new(format!("rate `{s}` must be zero or more")));
        }
        let per_second = match per {
            "s" | "sec" => count,
            "m" | "min" => count / 60.0,
            "h" => count / 3600.0,
            other => {
                return Err(UnitError::new(format!(
                    "unknown rate unit `/{other}` in `{s}`: use /s, /m or /h"
                )));
            }
        };
        if per_second > 10_000_000.0 {
            return Err(UnitError::new(format!(
                "rate `{s}` is above 10M/s; use `max` for an unthrottled run"
            )));
        }
        Ok(Rate::PerSecond(per_second))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::PerSecond(r) => write!(f, "{r}/s"),
        }
    }
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A Kubernetes equality- and set-based label selector: `app=proxy,tier!=db,env in (a,b),!legacy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Whether a set of labels satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|req| match req {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

fn check_label_key(key: &str, selector: &str) -> Result<(), UnitError> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(UnitError::new(format!(
            "invalid label key `{key}` in selector `{selector}`: keys are up to 63 characters of \
             letters, digits, `-`, `_` and `.`, optionally behind a `prefix/`"
        )))
    }
}

fn check_label_value(value: &str, selector: &str) -> Result<(), UnitError> {
    let valid = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && (value.is_empty()
            || (value.starts_with(|c: char| c.is_ascii_alphanumeric())
                && value.ends_with(|c: char| c.is_ascii_alphanumeric())));
    if valid {
        Ok(())
    } else {
        Err(UnitError::new(format!(
            "invalid label value `{value}` in selector `{selector}`"
        )))
    }
}

/// Splits on commas that are not inside a `( ... )` value set.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_value_set(set: &str, selector: &str) -> Result<Vec<String>, UnitError> {
    let inner = set
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| {
            UnitError::new(format!(
                "selector `{selector}`: a set must be written in parentheses, like `env in (a,b)`"
            ))
        })?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    for v in &values {
        check_label_value(v, selector)?;
    }
    Ok(values)
}

impl FromStr for LabelSelector {
    type Err = UnitError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let selector = input.trim();
        if selector.is_empty() {
            return Err(UnitError::new(
                "empty selector would match every pod: write one like `app=requests-proxy`",
            ));
        }
        let mut requirements = Vec::new();
        for raw in split_top_level(selector) {
            let part = raw.trim();
            if part.is_empty() {
                return Err(UnitError::new(format!(
                    "selector `{selector}` has an empty requirement (a stray comma?)"
                )));
            }
            let req = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, set)) = part.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), parse_value_set(set, selector)?)
            } else if let Some((k, set)) = part.split_once(" in ") {
                Requirement::In(k.trim().into(), parse_value_set(set, selector)?)
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::DoesNotExist(k.trim().into())
            } else if part.contains([' ', ':', '<', '>']) {
                return Err(UnitError::new(format!(
                    "cannot read `{part}` in selector `{selector}`: use `key=value`, `key!=value`, \
                     `key in (a,b)`, `key notin (a,b)`, `key` or `!key`"
                )));
            } else {
                Requirement::Exists(part.into())
            };
            let key = match &req {
                Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => {
                    check_label_value(v, selector)?;
                    k
                }
                Requirement::In(k, _)
                | Requirement::NotIn(k, _)
                | Requirement::Exists(k)
                | Requirement::DoesNotExist(k) => k,
            };
            check_label_key(key, selector)?;
            requirements.push(req);
        }
        Ok(Self { requirements })
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, req) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match req {
                Requirement::Equals(k, v) => write!(f, "{k}={v}")?,
                Requirement::NotEquals(k, v) => write!(f, "{k}!={v}")?,
                Requirement::In(k, vs) => write!(f, "{k} in ({})", vs.join(","))?,
                Requirement::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(","))?,
                Requirement::Exists(k) => write!(f, "{k}")?,
                Requirement::DoesNotExist(k) => write!(f, "!{k}")?,
            }
        }
        Ok(())
    }
}

/// One Alertmanager matcher, `name="value"`, `name!="value"`, `name=~"regex"` or
/// `name!~"regex"` (quotes optional), as a silence takes it: parsed here, sent as fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    pub is_equal: bool,
}

impl FromStr for AlertMatcher {
    type Err = UnitError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let text = input.trim();
        let Some(at) = text.find(['=', '!']) else {
            return Err(UnitError::new(format!(
                "cannot read matcher `{text}`: write `label=\"value\"`, `label!=\"value\"`, `label=~\"regex\"` or `label!~\"regex\"`"
            )));
        };
        let (name, rest) = (text[..at].trim(), &text[at..]);
        let (is_equal, is_regex, rest) = if let Some(r) = rest.strip_prefix("=~") {
            (true, true, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (false, true, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (false, false, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (true, false, r)
        } else {
            return Err(UnitError::new(format!(
                "cannot read the operator of matcher `{text}`: use =, !=, =~ or !~"
            )));
        };
        let valid_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(UnitError::new(format!(
                "`{name}` in matcher `{text}` is not a label name (letters, digits, `_`)"
            )));
        }
        let rest = rest.trim();
        let value = match rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
            None if rest.contains('"') => {
                return Err(UnitError::new(format!(
                    "the value of matcher `{text}` has an unbalanced quote"
                )));
            }
            None => rest.to_string(),
        };
        if is_regex && let Err(e) = regex::Regex::new(&value) {
            return Err(UnitError::new(format!(
                "the regex of matcher `{text}` does not compile: {e}"
            )));
        }
        Ok(Self {
            name: name.to_string(),
            value,
            is_regex,
            is_equal,
        })
    }
}

impl fmt::Display for AlertMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match (self.is_equal, self.is_regex) {
            (true, false) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (false, true) => "!~",
        };
        let value = self.value.replace('\\', "\\\\").replace('"', "\\\"");
        write!(f, "{}{op}\"{value}\"", self.name)
    }
}

/// Serde and JSON Schema for a type that is written as a string and parsed with `FromStr`.
macro_rules! string_unit {
    ($ty:ty, $schema_name:literal, $description:literal, $pattern:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = StringOrNumber::deserialize(deserializer)?;
                raw.as_str().parse().map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed($schema_name)
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                let pattern: Option<&str> = $pattern;
                match pattern {
                    Some(p) => json_schema!({
                        "type": "string",
                        "description": $description,
                        "pattern": p,
                    }),
                    None => json_schema!({"type": "string", "description": $description}),
                }
            }
        }
    };
}

/// YAML readers hand `30` to us as a number; accept it so the error can say "no unit".
#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    String(String),
    Integer(i64),
    Float(f64),
}

impl StringOrNumber {
    fn as_str(&self) -> Cow<'_, str> {
        match self {
            StringOrNumber::String(s) => Cow::Borrowed(s),
            StringOrNumber::Integer(i) => Cow::Owned(i.to_string()),
            StringOrNumber::Float(f) => Cow::Owned(f.to_string()),
        }
    }
}

string_unit!(
    HumanDuration,
    "Duration",
    "A duration such as `500ms`, `30s`, `2m`, `1h` or `1m30s`, or a `${var.NAME}` that is one.",
    // A parameter is substituted before the value is read, so the file may hold its name.
    Some(r"^([0-9]+(\.[0-9]+)?(ms|s|sec|m|min|h))+$|^0$|^\$\{var\.[^}]+\}$")
);
string_unit!(
    Rate,
    "Rate",
    "Requests per unit of time, such as `200/s` or `600/m`, or `max` for a closed loop.",
    Some(r"^(max|[0-9]+(\.[0-9]+)?/(s|sec|m|min|h))$")
);
string_unit!(
    AlertMatcher,
    "AlertMatcher",
    "An Alertmanager matcher such as `namespace=\"tracebloc\"` or `severity=~\"warning|page\"`.",
    None
);
string_unit!(
    LabelSelector,
    "LabelSelector",
    "A Kubernetes label selector such as `app=requests-proxy,tier!=db`.",
    None
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_significant_digits_for_people() {
        assert_eq!(four_significant(0.05052631578947368), "0.05053");
        assert_eq!(four_significant(1234.5678), "1235");
        assert_eq!(four_significant(2.0), "2");
        assert_eq!(four_significant(-0.5), "-0.5");
        assert_eq!(four_significant(0.0), "0");
        assert_eq!(four_significant(f64::NAN), "NaN");
    }

    #[test]
    fn durations_parse_and_print_canonically() {
        for (input, ms, printed) in [
            ("500ms", 500, "500ms"),
            ("30s", 30_000, "30s"),
            ("2m", 120_000, "2m"),
            ("1m30s", 90_000, "1m30s"),
            ("1.5s", 1_500, "1500ms"),
            ("1h", 3_600_000, "1h"),
            ("0", 0, "0s"),
        ] {
            let d: HumanDuration = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(d.0.as_millis(), ms, "{input}");
            assert_eq!(d.to_string(), printed, "{input}");
        }
    }

    #[test]
    fn bad_durations_say_how_to_fix_them() {
        let err = |s: &str| s.parse::<HumanDuration>().err().map(|e| e.message);
        assert!(err("30").is_some_and(|m| m.contains("did you mean `30s`")));
        assert!(err("-5s").is_some_and(|m| m.contains("negative")));
        assert!(err("5 parsecs").is_some_and(|m| m.contains("unknown duration unit")));
        assert!(err("").is_some_and(|m| m.contains("empty")));
        assert!(err("abc").is_some());
    }

    #[test]
    fn rates_parse() {
        assert_eq!("200/s".parse::<Rate>(), Ok(Rate::PerSecond(200.0)));
        assert_eq!("600/m".parse::<Rate>(), Ok(Rate::PerSecond(10.0)));
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Max));
        assert!(
            "200"
                .parse::<Rate>()
                .is_err_and(|e| e.message.contains("`200/s`"))
        );
        assert!("-1/s".parse::<Rate>().is_err());
        assert!("10/fortnight".parse::<Rate>().is_err());
    }

    #[test]
    fn selectors_parse_match_and_round_trip() {
        let sel: LabelSelector = "app=requests-proxy,tier!=db,env in (staging,dev),!legacy"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            sel.to_string(),
            "app=requests-proxy,tier!=db,env in (staging,dev),!legacy"
        );
        let labels: BTreeMap<String, String> = [("app", "requests-proxy"), ("env", "staging")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(sel.matches(&labels));
        let mut legacy = labels;
        legacy.insert("legacy".into(), "true".into());
        assert!(!sel.matches(&legacy));
    }

    #[test]
    fn bad_selectors_are_rejected() {
        for bad in [
            "",
            "app=",
            "app=proxy,",
            "app==proxy==x",
            "-bad=1",
            "app in a,b",
            "a b",
        ] {
            let parsed = bad.parse::<LabelSelector>();
            if bad == "app=" {
                // An empty value is legal in Kubernetes (`app=` matches the empty value).
                assert!(parsed.is_ok(), "{bad}");
            } else {
                assert!(parsed.is_err(), "{bad} should be rejected");
            }
        }
    }
}
