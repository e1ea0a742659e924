//! Formulas and patterns parsed once, as the scenario is read.
//!
//! A check's expression, a guard's condition or a regular expression is a `Parsed<G>` field of
//! the model: its text (for plans, reports and diagnostics) and the outcome of parsing it with
//! grammar `G`, kept side by side. Validation reports a failed outcome at the field's position;
//! the run reads the parsed value and never parses again. A failure is kept rather than raised
//! by the deserializer so that validation can point inside the formula (the caret under the
//! offending character) and report every broken formula of a file at once.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

use super::expr::{self, CompareExpr, Expr, ExprError, StatusSel};
use super::field_condition::FieldCondition;

/// How the text of one kind of field is parsed. Grammars are marker types (never built).
pub trait Grammar {
    type Output: fmt::Debug + Clone;
    type Error: fmt::Debug + fmt::Display + Clone;
    fn parse(text: &str) -> Result<Self::Output, Self::Error>;
}

/// A field's text and what parsing it gave.
pub struct Parsed<G: Grammar> {
    text: String,
    parsed: Result<G::Output, G::Error>,
}

impl<G: Grammar> Parsed<G> {
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let parsed = G::parse(&text);
        Self { text, parsed }
    }

    /// The text as written (after `--var` substitution).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The parsed value, or why the text does not parse (validation refuses such a scenario).
    pub fn get(&self) -> Result<&G::Output, &G::Error> {
        self.parsed.as_ref()
    }
}

impl<G: Grammar> Clone for Parsed<G> {
    fn clone(&self) -> Self {
        Self {
            text: self.text.clone(),
            parsed: self.parsed.clone(),
        }
    }
}

impl<G: Grammar> fmt::Debug for Parsed<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parsed")
            .field("text", &self.text)
            .field("parsed", &self.parsed)
            .finish()
    }
}

impl<G: Grammar> fmt::Display for Parsed<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// For scenarios built in code.
impl<G: Grammar> From<&str> for Parsed<G> {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl<'de, G: Grammar> Deserialize<'de> for Parsed<G> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// Written back as the text it was read from.
impl<G: Grammar> serde::Serialize for Parsed<G> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// In the JSON Schema a parsed field is the string it is written as.
impl<G: Grammar> JsonSchema for Parsed<G> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        String::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        String::json_schema(generator)
    }
}

/// An `http` check or guard: `rate(401) == 0`, `p(95) <= 1.5 * baseline`.
#[derive(Debug)]
pub enum HttpFormula {}

impl Grammar for HttpFormula {
    type Output = Expr;
    type Error = ExprError;
    fn parse(text: &str) -> Result<Expr, ExprError> {
        expr::parse_http(text)
    }
}

/// A Prometheus condition on a query's `result`: `result < 0.05`.
#[derive(Debug)]
pub enum Condition {}

impl Grammar for Condition {
    type Output = Expr;
    type Error = ExprError;
    fn parse(text: &str) -> Result<Expr, ExprError> {
        expr::parse_condition(text)
    }
}

/// A `compare` check between two load streams: `canary.p(95) <= 1.2 * stable.p(95)`.
#[derive(Debug)]
pub enum Comparison {}

impl Grammar for Comparison {
    type Output = CompareExpr;
    type Error = ExprError;
    fn parse(text: &str) -> Result<CompareExpr, ExprError> {
        expr::parse_compare(text)
    }
}

/// A regular expression searched for anywhere in a text (log lines, a command's stdout).
#[derive(Debug)]
pub enum Search {}

impl Grammar for Search {
    type Output = regex::Regex;
    type Error = regex::Error;
    fn parse(text: &str) -> Result<regex::Regex, regex::Error> {
        regex::Regex::new(text)
    }
}

/// A regular expression a whole name must match (alert names).
#[derive(Debug)]
pub enum WholeName {}

impl Grammar for WholeName {
    type Output = regex::Regex;
    type Error = regex::Error;
    fn parse(text: &str) -> Result<regex::Regex, regex::Error> {
        // On an error, the pattern alone is compiled to say what is wrong in the user's own
        // text rather than in the anchored form.
        regex::Regex::new(&format!("^(?:{text})$"))
            .map_err(|anchored| regex::Regex::new(text).err().unwrap_or(anchored))
    }
}

/// A response status class: `401`, `5xx`, `errors`, `failed`.
#[derive(Debug)]
pub enum Status {}

/// A status class that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a status: use 401, 5xx, errors or failed")]
pub struct UnknownStatus(pub String);

impl Grammar for Status {
    type Output = StatusSel;
    type Error = UnknownStatus;
    fn parse(text: &str) -> Result<StatusSel, UnknownStatus> {
        StatusSel::parse(text).ok_or_else(|| UnknownStatus(text.to_string()))
    }
}

/// A `wait_for` condition on a field of a live object: `status.phase == Healthy`.
#[derive(Debug)]
pub enum FieldPath {}

/// A `wait_for` condition that is not `path == value` or `path != value`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a condition is `path == value` or `path != value`, the path dotted with `[n]` indices")]
pub struct NotAFieldCondition;

impl Grammar for FieldPath {
    type Output = FieldCondition;
    type Error = NotAFieldCondition;
    fn parse(text: &str) -> Result<FieldCondition, NotAFieldCondition> {
        FieldCondition::parse(text).ok_or(NotAFieldCondition)
    }
}

/// A share of pods such as `50%`, as a fraction in `[0, 1]`.
#[derive(Debug)]
pub enum Share {}

/// A share that is not `N%` with N in 0..=100.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a share such as `50%` (0-100%)")]
pub struct NotAShare(pub String);

impl Grammar for Share {
    type Output = f64;
    type Error = NotAShare;
    fn parse(text: &str) -> Result<f64, NotAShare> {
        let percent: Option<f64> = text
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse().ok());
        percent
            .filter(|p| (0.0..=100.0).contains(p))
            .map(|p| p / 100.0)
            .ok_or_else(|| NotAShare(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_text_and_the_outcome() {
        let ok = Parsed::<HttpFormula>::new("rate(401) == 0");
        assert_eq!(ok.text(), "rate(401) == 0");
        assert!(ok.get().is_ok());
        let broken = Parsed::<HttpFormula>::new("rate(401) ==");
        assert!(broken.get().is_err(), "{broken:?}");
    }

    #[test]
    fn a_whole_name_pattern_matches_whole_names_only() {
        let p = Parsed::<WholeName>::new("Lab.*High");
        let re = p.get().expect("compiles");
        assert!(re.is_match("LabProxyErrorRateHigh"));
        assert!(!re.is_match("XLabProxyErrorRateHigh"));
        assert!(!re.is_match("LabProxyErrorRateHighX"));
    }

    #[test]
    fn a_broken_pattern_quotes_what_the_user_wrote() {
        let p = Parsed::<WholeName>::new("a(b");
        let message = p.get().expect_err("does not compile").to_string();
        assert!(message.contains("a(b"), "{message}");
        assert!(!message.contains("^(?:"), "{message}");
    }

    #[test]
    fn shares_are_percentages_from_0_to_100() {
        assert_eq!(Parsed::<Share>::new("50%").get().ok(), Some(&0.5));
        assert_eq!(Parsed::<Share>::new(" 0 % ").get().ok(), Some(&0.0));
        for bad in ["50", "101%", "-1%", "half"] {
            assert!(Parsed::<Share>::new(bad).get().is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_status_classes_are_kept_as_errors() {
        assert!(Parsed::<Status>::new("5xx").get().is_ok());
        let e = Parsed::<Status>::new("6xx");
        assert_eq!(
            e.get().expect_err("unknown").to_string(),
            "`6xx` is not a status: use 401, 5xx, errors or failed"
        );
    }
}
