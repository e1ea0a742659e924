//! `wait_for` conditions: `path == value` on a field of a live object.

/// A parsed `wait_for` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCondition {
    pub path: Vec<PathSegment>,
    pub equal: bool,
    pub value: String,
}

/// One step of a field path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

impl FieldCondition {
    /// Parses `a.b[0].c == value` (or `!=`); the value may be quoted.
    pub fn parse(text: &str) -> Option<Self> {
        let (path, equal, value) = if let Some((p, v)) = text.split_once("!=") {
            (p, false, v)
        } else {
            let (p, v) = text.split_once("==")?;
            (p, true, v)
        };
        let value = value
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_string();
        let mut segments = Vec::new();
        for part in path.trim().trim_start_matches('.').split('.') {
            let (key, indices) = part
                .split_once('[')
                .map_or((part, ""), |(k, rest)| (k, rest));
            if key.is_empty() {
                return None;
            }
            segments.push(PathSegment::Key(key.to_string()));
            for index in indices.split('[').filter(|i| !i.is_empty()) {
                segments.push(PathSegment::Index(index.strip_suffix(']')?.parse().ok()?));
            }
        }
        Some(Self {
            path: segments,
            equal,
            value,
        })
    }

    /// The field at the path, as text (strings bare, other JSON values serialised).
    pub fn field(&self, object: &serde_json::Value) -> Option<String> {
        let mut at = object;
        for segment in &self.path {
            at = match segment {
                PathSegment::Key(k) => at.get(k)?,
                PathSegment::Index(i) => at.get(i)?,
            };
        }
        Some(match at {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// Whether the condition holds on `object`.
    pub fn holds(&self, object: &serde_json::Value) -> bool {
        match self.field(object) {
            Some(field) => (field == self.value) == self.equal,
            None => !self.equal,
        }
    }
}
