//! Scenario parameters substituted into *parsed* string scalars.
//!
//! `${var.NAME}` used to be replaced in the file's text before YAML parsing, so a value could
//! close a quote and add keys (`sel=a", percent: 100} #`). Here the substitution is a serde
//! [`Deserializer`] wrapped around serde-saphyr's: the YAML structure is already decided when a
//! string scalar reaches a visitor, and only then is the value put in. A value can never add a
//! key, an element or a flag:
//! - keys are never substituted (a `${var.` in a key is refused),
//! - check conditions and expressions take no parameters (a value would change the formula),
//! - in a PromQL `query`, a value inside a quoted string is escaped as string content, and
//!   outside one it must be a plain name, number or duration,
//! - a value that would make the scalar start with `-` where the scenario's text did not is
//!   refused: in an argv, or as a helm/kubectl positional, it would become a flag.
//!
//! `${port.NAME}` and `${drillbook}` are left in place; they are resolved once per run.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};

use super::vars::ParamError;

/// The newtype name through which serde-saphyr's `Spanned<T>` asks for its value and location
/// (as a map of its own). That map is not a level of the scenario: the key of the field around
/// it stays in force. A unit test below fails if serde-saphyr changes the name.
const SPANNED_NEWTYPE: &str = "__yaml_spanned";

/// Keys whose text is a condition or an expression: parameters stay out of formulas.
const FORMULA_KEYS: &[&str] = &[
    "http",
    "expect",
    "condition",
    "success_condition",
    "failure_condition",
    "metric",
];

/// Keys whose text is PromQL.
const PROMQL_KEYS: &[&str] = &["query"];

/// Why a parameter could not be put into a scalar.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("`${{var.{name}}}` in a key: parameters are substituted into values only")]
    InKey { name: String },
    #[error(
        "`${{var.{name}}}` in `{key}`: a condition or expression takes no parameters (a value would change the formula); write the value into the scenario"
    )]
    InFormula { name: String, key: String },
    #[error(
        "`${{var.{name}}}` = `{value}` would start this value with `-`, where kubectl, helm or a command would read a flag; a value cannot become a flag"
    )]
    Flag { name: String, value: String },
    #[error(
        "`${{var.{name}}}` = `{value}` in a PromQL query outside a quoted string must be a name, a number or a duration (letters, digits, `_`, `:`, `.`); put it inside quotes, e.g. `{{label=\"${{var.{name}}}\"}}`"
    )]
    PromqlToken { name: String, value: String },
    #[error(
        "`${{var.{name}}}` = `{value}` contains a backtick, which cannot appear inside a PromQL raw string"
    )]
    PromqlRaw { name: String, value: String },
}

/// The parameter values of one load and what the walk learned on the way.
#[derive(Debug)]
pub struct Params<'v> {
    values: &'v BTreeMap<String, String>,
    /// The key read last: the field whose value comes next.
    last_key: RefCell<Option<String>>,
}

impl<'v> Params<'v> {
    pub fn new(values: &'v BTreeMap<String, String>) -> Self {
        Self {
            values,
            last_key: RefCell::new(None),
        }
    }

    /// Deserializes `T` from `inner` with parameters substituted into string values.
    pub fn deserialize<'de, T: de::Deserialize<'de>, D: Deserializer<'de>>(
        &self,
        inner: D,
    ) -> Result<T, D::Error> {
        T::deserialize(Wrap {
            inner,
            params: self,
            mode: Mode::Value(None),
            spanned: false,
        })
    }

    /// `template` with every `${var.NAME}` replaced, as the value of `key`.
    pub fn substitute(&self, template: &str, key: Option<&str>) -> Result<String, Refused> {
        let pieces = split(template)?;
        if !pieces.iter().any(|p| matches!(p, Piece::Var(_))) {
            return Ok(template.to_string());
        }
        let promql = key.is_some_and(|k| PROMQL_KEYS.contains(&k));
        let mut out = String::with_capacity(template.len());
        let mut quote = Quote::default();
        for piece in &pieces {
            match piece {
                Piece::Text(text) => {
                    if promql {
                        quote.scan(text);
                    }
                    out.push_str(text);
                }
                Piece::Var(name) => {
                    if let Some(key) = key.filter(|k| FORMULA_KEYS.contains(k)) {
                        return Err(Refused::InFormula {
                            name: name.to_string(),
                            key: key.to_string(),
                        });
                    }
                    let value = self.value(name)?;
                    if promql {
                        out.push_str(&promql_value(name, value, quote.open)?);
                    } else {
                        out.push_str(value);
                    }
                }
            }
        }
        if out.starts_with('-')
            && !template.starts_with('-')
            && let Some(Piece::Var(name)) = pieces.iter().find(|p| !p.is_empty())
        {
            return Err(Refused::Flag {
                name: name.to_string(),
                value: self.value(name)?.to_string(),
            });
        }
        Ok(out)
    }

    fn value(&self, name: &str) -> Result<&'v str, ParamError> {
        self.values
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| ParamError::Unknown {
                name: name.to_string(),
                suggestion: super::tagged::did_you_mean(
                    name,
                    self.values.keys().map(String::as_str),
                )
                .map(str::to_string),
            })
    }

    /// A key as read: remembered for the value that follows; parameters are refused in it.
    fn key<E: de::Error>(&self, key: &str) -> Result<(), E> {
        if let Some(Piece::Var(name)) = split(key)
            .map_err(|e| E::custom(e.to_string()))?
            .into_iter()
            .find(|p| matches!(p, Piece::Var(_)))
        {
            return Err(E::custom(
                Refused::InKey {
                    name: name.to_string(),
                }
                .to_string(),
            ));
        }
        *self.last_key.borrow_mut() = Some(key.to_string());
        Ok(())
    }

    fn value_str<E: de::Error>(&self, template: &str, key: Option<&str>) -> Result<String, E> {
        self.substitute(template, key)
            .map_err(|e| E::custom(e.to_string()))
    }
}

enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

impl Piece<'_> {
    fn is_empty(&self) -> bool {
        matches!(self, Piece::Text(t) if t.is_empty())
    }
}

/// `template` cut into text and `${var.NAME}` references (other `${...}` stay text).
fn split(template: &str) -> Result<Vec<Piece<'_>>, ParamError> {
    const OPEN: &str = "${var.";
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find(OPEN) {
        pieces.push(Piece::Text(&rest[..start]));
        let after = &rest[start + OPEN.len()..];
        let Some(close) = after.find('}') else {
            return Err(ParamError::Unclosed);
        };
        pieces.push(Piece::Var(&after[..close]));
        rest = &after[close + 1..];
    }
    pieces.push(Piece::Text(rest));
    Ok(pieces)
}

/// Where a PromQL scan stands: inside which quote, if any.
#[derive(Default)]
struct Quote {
    open: Option<char>,
    escaped: bool,
}

impl Quote {
    fn scan(&mut self, text: &str) {
        for c in text.chars() {
            match self.open {
                None if matches!(c, '"' | '\'' | '`') => self.open = Some(c),
                None => {}
                Some('`') if c == '`' => self.open = None,
                Some('`') => {}
                Some(_) if self.escaped => self.escaped = false,
                Some(_) if c == '\\' => self.escaped = true,
                Some(q) if c == q => self.open = None,
                Some(_) => {}
            }
        }
    }
}

/// A value as PromQL text: string content inside quotes, a bare token outside.
fn promql_value(name: &str, value: &str, quote: Option<char>) -> Result<String, Refused> {
    match quote {
        Some('`') if value.contains('`') => Err(Refused::PromqlRaw {
            name: name.to_string(),
            value: value.to_string(),
        }),
        Some('`') => Ok(value.to_string()),
        Some(q) => Ok(value.replace('\\', "\\\\").replace(q, &format!("\\{q}"))),
        None if !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.')) =>
        {
            Ok(value.to_string())
        }
        None => Err(Refused::PromqlToken {
            name: name.to_string(),
            value: value.to_string(),
        }),
    }
}

/// What a wrapped node is: a key (remembered, never substituted) or the value of a key.
#[derive(Clone, Debug)]
enum Mode {
    Key,
    Value(Option<String>),
}

struct Wrap<'p, 'v, D> {
    inner: D,
    params: &'p Params<'v>,
    mode: Mode,
    /// Inside serde-saphyr's `Spanned` newtype, whose map is not the scenario's.
    spanned: bool,
}

struct WrapVisitor<'p, 'v, V> {
    inner: V,
    params: &'p Params<'v>,
    mode: Mode,
    /// The map of a `Spanned<T>`: its own keys are not the scenario's.
    spanned: bool,
}

impl<'p, 'v, D> Wrap<'p, 'v, D> {
    fn visitor<V>(&self, inner: V) -> WrapVisitor<'p, 'v, V> {
        WrapVisitor {
            inner,
            params: self.params,
            mode: self.mode.clone(),
            spanned: self.spanned,
        }
    }
}

struct WrapSeed<'p, 'v, S> {
    inner: S,
    params: &'p Params<'v>,
    mode: Mode,
}

impl<'p, 'v, V> WrapVisitor<'p, 'v, V> {
    fn wrap<D>(&self, inner: D) -> Wrap<'p, 'v, D> {
        Wrap {
            inner,
            params: self.params,
            mode: self.mode.clone(),
            spanned: self.spanned,
        }
    }

    /// The text a string scalar stands for in this place.
    fn text<E: de::Error>(&self, v: &str) -> Result<Option<String>, E> {
        match &self.mode {
            Mode::Key => self.params.key(v).map(|()| None),
            Mode::Value(_) if !v.contains("${var.") => Ok(None),
            Mode::Value(key) => self.params.value_str(v, key.as_deref()).map(Some),
        }
    }
}

macro_rules! forward_deserialize {
    ($($method:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                let visitor = self.visitor(visitor);
                self.inner.$method(visitor)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Wrap<'_, '_, D> {
    type Error = D::Error;

    forward_deserialize!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.visitor(visitor);
        self.inner.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let mut visitor = self.visitor(visitor);
        visitor.spanned |= name == SPANNED_NEWTYPE;
        self.inner.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.visitor(visitor);
        self.inner.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.visitor(visitor);
        self.inner.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.visitor(visitor);
        self.inner.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.visitor(visitor);
        self.inner.deserialize_enum(name, variants, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for WrapVisitor<'_, '_, V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(formatter)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match self.text(v)? {
            Some(text) => self.inner.visit_string(text),
            None => self.inner.visit_str(v),
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        match self.text(v)? {
            Some(text) => self.inner.visit_string(text),
            None => self.inner.visit_borrowed_str(v),
        }
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        match self.text(&v)? {
            Some(text) => self.inner.visit_string(text),
            None => self.inner.visit_string(v),
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let wrapped = self.wrap(deserializer);
        self.inner.visit_some(wrapped)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        let wrapped = self.wrap(deserializer);
        self.inner.visit_newtype_struct(wrapped)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let wrapped = self.wrap(seq);
        self.inner.visit_seq(wrapped)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let wrapped = WrapMap {
            inner: map,
            params: self.params,
            outer: self.mode.clone(),
            spanned: self.spanned,
        };
        self.inner.visit_map(wrapped)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let wrapped = self.wrap(data);
        self.inner.visit_enum(wrapped)
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for WrapSeed<'_, '_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Wrap {
            inner: deserializer,
            params: self.params,
            mode: self.mode,
            spanned: false,
        })
    }
}

/// A sequence's elements are values of the key the sequence belongs to (`argv: [...]`).
impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<'_, '_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(WrapSeed {
            inner: seed,
            params: self.params,
            mode: self.mode.clone(),
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

struct WrapMap<'p, 'v, A> {
    inner: A,
    params: &'p Params<'v>,
    /// The mode of the map itself (what its values are when it is a `Spanned` carrier).
    outer: Mode,
    spanned: bool,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WrapMap<'_, '_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        if self.spanned {
            return self.inner.next_key_seed(seed);
        }
        self.inner.next_key_seed(WrapSeed {
            inner: seed,
            params: self.params,
            mode: Mode::Key,
        })
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let mode = if self.spanned {
            self.outer.clone()
        } else {
            Mode::Value(self.params.last_key.borrow_mut().take())
        };
        self.inner.next_value_seed(WrapSeed {
            inner: seed,
            params: self.params,
            mode,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// An enum's variant name is read like a key; its content is that key's value.
impl<'p, 'v, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<'p, 'v, A> {
    type Error = A::Error;
    type Variant = Wrap<'p, 'v, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (value, variant) = self.inner.variant_seed(WrapSeed {
            inner: seed,
            params: self.params,
            mode: Mode::Key,
        })?;
        let mode = Mode::Value(self.params.last_key.borrow_mut().take());
        Ok((
            value,
            Wrap {
                inner: variant,
                params: self.params,
                mode,
                spanned: false,
            },
        ))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Wrap<'_, '_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.newtype_variant_seed(WrapSeed {
            inner: seed,
            params: self.params,
            mode: self.mode,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let visitor = self.visitor(visitor);
        self.inner.tuple_variant(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visitor = self.visitor(visitor);
        self.inner.struct_variant(fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_value_goes_in_whole_and_other_references_stay() {
        let v = values(&[("image", "proxy:1.2")]);
        let p = Params::new(&v);
        assert_eq!(
            p.substitute("img=${var.image} on ${port.x}", Some("argv")),
            Ok("img=proxy:1.2 on ${port.x}".to_string())
        );
        assert_eq!(p.substitute("plain", None), Ok("plain".to_string()));
    }

    #[test]
    fn a_value_cannot_become_a_flag() {
        let v = values(&[("ns", "--all-namespaces"), ("n", "-1")]);
        let p = Params::new(&v);
        assert!(matches!(
            p.substitute("${var.ns}", Some("argv")),
            Err(Refused::Flag { name, .. }) if name == "ns"
        ));
        // Written with a leading dash by the scenario: the author's flag, not the value's.
        assert_eq!(
            p.substitute("-${var.n}", None),
            Ok("--1".to_string()),
            "a dash the scenario wrote stays the scenario's"
        );
        assert_eq!(p.substitute("x=${var.n}", None), Ok("x=-1".to_string()));
    }

    #[test]
    fn formulas_take_no_parameters() {
        let v = values(&[("max", "1 or true")]);
        let p = Params::new(&v);
        assert!(matches!(
            p.substitute("rate(401) <= ${var.max}", Some("http")),
            Err(Refused::InFormula { .. })
        ));
    }

    #[test]
    fn promql_values_are_string_content_or_plain_tokens() {
        let v = values(&[("variant", r#"x"} or vector(0) or {a=""#), ("window", "5m")]);
        let p = Params::new(&v);
        assert_eq!(
            p.substitute(
                r#"sum(rate(x{variant="${var.variant}"}[5m]))"#,
                Some("query")
            ),
            Ok(r#"sum(rate(x{variant="x\"} or vector(0) or {a=\""}[5m]))"#.to_string())
        );
        assert_eq!(
            p.substitute("rate(x[${var.window}])", Some("query")),
            Ok("rate(x[5m])".to_string())
        );
        assert!(matches!(
            p.substitute("sum(${var.variant})", Some("query")),
            Err(Refused::PromqlToken { .. })
        ));
        // A quote escaped inside the string does not close it.
        assert_eq!(
            p.substitute(r#"x{a="q\"${var.window}"}"#, Some("query")),
            Ok(r#"x{a="q\"5m"}"#.to_string())
        );
    }

    #[test]
    fn unknown_and_unclosed_references_are_errors() {
        let v = values(&[("image", "x")]);
        let p = Params::new(&v);
        assert!(matches!(
            p.substitute("${var.imgae}", None),
            Err(Refused::Param(ParamError::Unknown { suggestion: Some(s), .. })) if s == "image"
        ));
        assert!(matches!(
            p.substitute("${var.image", None),
            Err(Refused::Param(ParamError::Unclosed))
        ));
    }
}
/// The same rules through the whole parse: the YAML structure is fixed before a value goes in.
#[cfg(test)]
mod parse_tests {
    use std::path::Path;

    use crate::scenario::{Action, CheckKind, LoadedScenario, load_source_with};

    const SCENARIO: &str = r#"apiVersion: drillbook/v1
name: v
vars:
  sel: {default: app=x}
  ns: {default: shop}
  tag: {default: "1.0"}
  variant: {default: prod}
target:
  kubernetes: {context: staging, namespace: shop, allowed_contexts: [staging]}
steps:
  - at: 1s
    kill_pods: {selector: "${var.sel}", count: 1}
  - name: cmd
    command: {argv: [kubectl, get, pods, "${var.ns}"]}
  - name: helm
    helm_upgrade: {release: zai, chart: ./c, set: {image.tag: "${var.tag}"}}
checks:
  - name: q
    prometheus:
      url: http://127.0.0.1:9090
      query: sum(rate(x{variant="${var.variant}"}[5m]))
      success_condition: "result < 0.05"
"#;

    fn load(source: &str, var: (&str, &str)) -> Result<LoadedScenario, String> {
        let given = [(var.0.to_string(), var.1.to_string())];
        load_source_with(Path::new("v.yaml"), source.to_string(), &given).map_err(|d| d.to_string())
    }

    /// Issue #22's repro: the value used to close the quote and add `percent`, `count`, `force`.
    #[test]
    fn a_value_that_closes_its_quote_adds_no_keys() {
        let e = load(
            SCENARIO,
            ("sel", r#"a", percent: 100, count: null, force: true} #"#),
        )
        .expect_err("not a selector");
        assert!(e.contains("v.yaml:12:"), "located at the selector: {e}");
        assert!(e.contains("invalid label key"), "{e}");
        // A value with YAML flow syntax that is a valid selector stays one selector value.
        let loaded = load(SCENARIO, ("sel", "app=x,tier in (a, b)")).expect("a selector");
        let Action::KillPods(kill) = &loaded.scenario.steps[0].value.action else {
            panic!("a kill_pods step");
        };
        assert_eq!(kill.count, Some(1), "count is the scenario's");
        assert!(!kill.force, "force is the scenario's");
    }

    #[test]
    fn an_argv_element_stays_one_element_and_never_a_flag() {
        let e = load(SCENARIO, ("ns", "--all-namespaces")).expect_err("a flag");
        assert!(e.contains("v.yaml:14:"), "{e}");
        assert!(e.contains("`${var.ns}` = `--all-namespaces`"), "{e}");
        let loaded = load(SCENARIO, ("ns", "a, -A], extra: [x")).expect("inert text");
        let Action::Command(cmd) = &loaded.scenario.steps[1].value.action else {
            panic!("a command step");
        };
        assert_eq!(cmd.argv.len(), 4, "{:?}", cmd.argv);
        assert_eq!(cmd.argv[3], "a, -A], extra: [x");
    }

    #[test]
    fn a_helm_value_stays_the_value_of_its_key() {
        let loaded = load(SCENARIO, ("tag", "1, --post-renderer=/bin/x")).expect("one value");
        let Action::HelmUpgrade(helm) = &loaded.scenario.steps[2].value.action else {
            panic!("a helm step");
        };
        assert_eq!(helm.set.len(), 1);
        assert_eq!(helm.set["image.tag"], "1, --post-renderer=/bin/x");
        assert_eq!(helm.chart.as_deref(), Some("./c"));
        let e = load(SCENARIO, ("tag", "--post-renderer=/bin/x")).expect_err("a flag");
        assert!(e.contains("`${var.tag}`"), "{e}");
    }

    #[test]
    fn a_promql_value_cannot_leave_its_string() {
        let loaded = load(SCENARIO, ("variant", r#"x"} or vector(0) or {a=""#)).expect("escaped");
        let CheckKind::Prometheus(p) = &loaded.scenario.checks[0].value.kind else {
            panic!("a prometheus check");
        };
        assert_eq!(
            p.query.value,
            r#"sum(rate(x{variant="x\"} or vector(0) or {a=\""}[5m]))"#
        );
        assert_eq!(
            (p.query.pos.line, p.query.pos.column),
            (21, 14),
            "positions are the file's"
        );
    }

    #[test]
    fn keys_and_formulas_take_no_parameters() {
        let keyed = SCENARIO.replace("image.tag:", "\"${var.tag}\":");
        let e = load(&keyed, ("tag", "x")).expect_err("a key");
        assert!(e.contains("in a key"), "{e}");
        let formula = SCENARIO.replace("result < 0.05", "result < ${var.tag}");
        let e = load(&formula, ("tag", "1")).expect_err("a formula");
        assert!(e.contains("takes no parameters"), "{e}");
    }

    #[test]
    fn an_unknown_reference_is_located_with_a_suggestion() {
        let typo = SCENARIO.replace("${var.ns}", "${var.nss}");
        let e = load(&typo, ("ns", "x")).expect_err("unknown");
        assert!(e.contains("v.yaml:14:"), "{e}");
        assert!(e.contains("unknown variable `${var.nss}`"), "{e}");
        assert!(e.contains("did you mean `ns`"), "{e}");
    }
}
