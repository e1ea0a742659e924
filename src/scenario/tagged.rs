//! Mappings made of a few shared keys plus exactly one "kind" key, such as a step
//! (`{at: 30s, kill_pods: {...}}`) or a check (`{name: x, http: "rate(401) == 0"}`).
//!
//! serde's `flatten` would lose positions and `deny_unknown_fields`, so [`tagged_kinds!`]
//! generates the kind enum with a by-name dispatcher, and Step/Check implement `Deserialize`
//! with a map visitor that reports an unknown kind at its own key, with a suggestion.

use std::collections::BTreeMap;

use schemars::{Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess};

use super::model::{Action, Check, CheckKind, Step};
use super::spanned::{Pos, Sp};

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

macro_rules! tagged_kinds {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($key:literal, $ty:ty), )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub enum $name {
            $( $(#[$vmeta])* $variant($ty), )+
        }

        impl $name {
            /// Every kind key, in declaration order.
            pub const KINDS: &'static [&'static str] = &[$($key),+];

            /// The key this kind is written with.
            pub fn kind(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => $key, )+
                }
            }

            /// Reads the value of kind `key` from `map`; `None` when `key` is not a kind.
            pub(crate) fn deserialize_kind<'de, A: serde::de::MapAccess<'de>>(
                key: &str,
                map: &mut A,
            ) -> Result<Option<Self>, A::Error> {
                Ok(Some(match key {
                    $( $key => Self::$variant(map.next_value::<$ty>()?), )+
                    _ => return Ok(None),
                }))
            }

            pub(crate) fn kind_schemas(
                generator: &mut schemars::SchemaGenerator,
            ) -> Vec<(&'static str, schemars::Schema)> {
                vec![$( ($key, generator.subschema_for::<$ty>()), )+]
            }
        }
    };
}
pub(crate) use tagged_kinds;

/// Position and value of a key, as read by the map visitor.
fn next_key<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Sp<String>>, A::Error> {
    map.next_key::<Sp<String>>()
}

fn set_once<T, E: de::Error>(slot: &mut Option<T>, key: &Sp<String>, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::custom(at_key(
            key.pos,
            &format!("duplicate key `{}`", key.value),
        )));
    }
    *slot = Some(value);
    Ok(())
}

/// serde's custom errors carry no position of their own choosing; the key's position travels in
/// the message and [`super::parse_str`] moves it back out (see [`take_position`]).
const POS_MARK: &str = "@@";

fn at_key(pos: Pos, message: &str) -> String {
    format!("{POS_MARK}{}:{}{POS_MARK}{message}", pos.line, pos.column)
}

/// Splits a message made by [`at_key`] into its position and text.
pub(crate) fn take_position(message: &str) -> Option<(Pos, &str)> {
    let rest = message.strip_prefix(POS_MARK)?;
    let (pos, text) = rest.split_once(POS_MARK)?;
    let (line, column) = pos.split_once(':')?;
    Some((Pos::new(line.parse().ok()?, column.parse().ok()?), text))
}

fn unknown_kind<E: de::Error>(what: &str, key: &Sp<String>, kinds: &[&str], shared: &[&str]) -> E {
    let pos = key.pos;
    let key = key.value.as_str();
    let all = kinds.iter().chain(shared).copied();
    let hint = match did_you_mean(key, all) {
        Some(s) => format!("did you mean `{s}`? "),
        None => String::new(),
    };
    E::custom(at_key(
        pos,
        &format!(
            "unknown {what} key `{key}`: {hint}{what} kinds are {}",
            kinds
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

fn second_kind<E: de::Error>(what: &str, first: &str, second: &Sp<String>) -> E {
    E::custom(at_key(
        second.pos,
        &format!(
            "a {what} has exactly one kind, but both `{first}` and `{}` are given: split them into two {what}s",
            second.value
        ),
    ))
}

const STEP_KEYS: &[&str] = &["name", "at"];
const CHECK_KEYS: &[&str] = &["name", "phase", "description"];

impl<'de> serde::Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StepVisitor;
        impl<'de> de::Visitor<'de> for StepVisitor {
            type Value = Step;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a step: a mapping with an action key such as `kill_pods:` and optional `at:`/`name:`")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
                let (mut name, mut at, mut action) = (None, None, None::<(Action, Pos)>);
                while let Some(key) = next_key(&mut map)? {
                    match key.value.as_str() {
                        "name" => set_once(&mut name, &key, map.next_value()?)?,
                        "at" => set_once(&mut at, &key, map.next_value()?)?,
                        other => {
                            if let Some((first, _)) = &action {
                                return Err(second_kind("step", first.kind(), &key));
                            }
                            let parsed =
                                Action::deserialize_kind(other, &mut map)?.ok_or_else(|| {
                                    unknown_kind("step", &key, Action::KINDS, STEP_KEYS)
                                })?;
                            action = Some((parsed, key.pos));
                        }
                    }
                }
                let (action, action_at) = action.ok_or_else(|| {
                    de::Error::custom(format!(
                        "this step has no action: add one of {}",
                        Action::KINDS
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
                Ok(Step {
                    name,
                    at,
                    action_at,
                    action,
                })
            }
        }
        deserializer.deserialize_map(StepVisitor)
    }
}

impl<'de> serde::Deserialize<'de> for Check {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CheckVisitor;
        impl<'de> de::Visitor<'de> for CheckVisitor {
            type Value = Check;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a check: a mapping with `name:` and a kind key such as `http:`")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Check, A::Error> {
                let (mut name, mut phase, mut description) = (None, None, None);
                let mut kind = None::<(CheckKind, Pos)>;
                while let Some(key) = next_key(&mut map)? {
                    match key.value.as_str() {
                        "name" => set_once(&mut name, &key, map.next_value()?)?,
                        "phase" => set_once(&mut phase, &key, map.next_value()?)?,
                        "description" => set_once(&mut description, &key, map.next_value()?)?,
                        other => {
                            if let Some((first, _)) = &kind {
                                return Err(second_kind("check", first.kind(), &key));
                            }
                            let parsed =
                                CheckKind::deserialize_kind(other, &mut map)?.ok_or_else(|| {
                                    unknown_kind("check", &key, CheckKind::KINDS, CHECK_KEYS)
                                })?;
                            kind = Some((parsed, key.pos));
                        }
                    }
                }
                let (kind, kind_at) = kind.ok_or_else(|| {
                    de::Error::custom(format!(
                        "this check has no kind: add one of {}",
                        CheckKind::KINDS
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
                let name: Sp<String> = name.ok_or_else(|| de::Error::missing_field("name"))?;
                Ok(Check {
                    name,
                    phase,
                    description,
                    kind_at,
                    kind,
                })
            }
        }
        deserializer.deserialize_map(CheckVisitor)
    }
}

/// `{shared keys} + exactly one of {kinds}`, closed to other keys.
fn one_kind_of(
    generator: &mut SchemaGenerator,
    description: &str,
    shared: &BTreeMap<&'static str, Schema>,
    required_shared: &[&str],
    kinds: Vec<(&'static str, Schema)>,
) -> Schema {
    let one_of: Vec<Schema> = kinds
        .into_iter()
        .map(|(key, schema)| {
            json_schema!({
                "type": "object",
                "required": [key],
                "properties": { key: schema },
            })
        })
        .collect();
    let _ = generator;
    json_schema!({
        "type": "object",
        "description": description,
        "properties": shared,
        "required": required_shared,
        "oneOf": one_of,
        "unevaluatedProperties": false,
    })
}

impl schemars::JsonSchema for Step {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let shared = BTreeMap::from([
            (
                "name",
                json_schema!({"type": "string", "description": "Name other parts of the scenario refer to."}),
            ),
            (
                "at",
                generator.subschema_for::<crate::units::HumanDuration>(),
            ),
        ]);
        let kinds = Action::kind_schemas(generator);
        one_kind_of(
            generator,
            "A timeline step: `at`/`name` plus exactly one action.",
            &shared,
            &[],
            kinds,
        )
    }
}

impl schemars::JsonSchema for Check {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Check".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let shared = BTreeMap::from([
            ("name", json_schema!({"type": "string"})),
            (
                "phase",
                json_schema!({"type": "string", "description": "Phase the check looks at."}),
            ),
            ("description", json_schema!({"type": "string"})),
        ]);
        let kinds = CheckKind::kind_schemas(generator);
        one_kind_of(
            generator,
            "An assertion: `name` plus exactly one kind.",
            &shared,
            &["name"],
            kinds,
        )
    }
}
