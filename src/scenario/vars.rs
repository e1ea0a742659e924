//! `${...}` substitutions. Scenario parameters, `${var.NAME}`, take their value from
//! `--var NAME=value` or the `vars:` declaration's default, and are put into the parsed string
//! scalars by [`super::substitute`] (never into the text before parsing). At run time, local-target
//! commands, env, URLs and load settings get `${drillbook}` (this binary) and `${port.NAME}`
//! (a free loopback port chosen once per run).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;

use super::model::VarDecl;

/// Why scenario parameters could not be resolved. A reference's place is the scalar that holds
/// it (the parser locates it), so the errors carry no offsets of their own.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamError {
    #[error("unknown variable `${{var.{name}}}`: declare it under `vars:`{}", did_you_mean_suffix(.suggestion))]
    Unknown {
        name: String,
        suggestion: Option<String>,
    },
    #[error("unclosed `${{var.` (no `}}` on the same line)")]
    Unclosed,
    #[error("variable `{name}` is required: pass `--var {name}=VALUE` (it has no default)")]
    Missing { name: String },
    #[error(
        "`--var {name}=...` sets a variable the scenario does not declare (declared: [{declared}])"
    )]
    Undeclared { name: String, declared: String },
    #[error("variable `{name}` = `{value}` does not match its pattern `{pattern}`")]
    NoMatch {
        name: String,
        value: String,
        pattern: String,
    },
    #[error("variable `{name}` has an invalid pattern: {why}")]
    BadPattern { name: String, why: String },
    #[error("variable `{name}`: a value must be one line")]
    Multiline { name: String },
}

fn did_you_mean_suffix(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// The value of every declared parameter: the command line's, else the default.
pub fn resolve(
    declared: &BTreeMap<String, VarDecl>,
    given: &[(String, String)],
) -> Result<BTreeMap<String, String>, ParamError> {
    for (name, _) in given {
        if !declared.contains_key(name) {
            return Err(ParamError::Undeclared {
                name: name.clone(),
                declared: declared.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
    }
    let mut values = BTreeMap::new();
    for (name, decl) in declared {
        let value = given
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| decl.default.clone())
            .ok_or_else(|| ParamError::Missing { name: name.clone() })?;
        if value.contains(['\n', '\r']) {
            return Err(ParamError::Multiline { name: name.clone() });
        }
        if let Some(pattern) = &decl.pattern {
            let re = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                ParamError::BadPattern {
                    name: name.clone(),
                    why: e.to_string(),
                }
            })?;
            if !re.is_match(&value) {
                return Err(ParamError::NoMatch {
                    name: name.clone(),
                    value,
                    pattern: pattern.clone(),
                });
            }
        }
        values.insert(name.clone(), value);
    }
    Ok(values)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VarError {
    #[error("unclosed `${{` in `{0}`")]
    Unclosed(String),
    #[error("unknown variable `${{{name}}}`: use `${{drillbook}}` or `${{port.NAME}}`")]
    Unknown { name: String },
    #[error("no free loopback port for `${{port.{0}}}`: {1}")]
    NoPort(String, String),
}

/// Every variable named in `text`, in order (for validation before a run).
pub fn names(text: &str) -> Result<Vec<String>, VarError> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| VarError::Unclosed(text.to_string()))?;
        let name = &after[..end];
        if name != "drillbook" && name.strip_prefix("port.").is_none_or(|p| p.is_empty()) {
            return Err(VarError::Unknown {
                name: name.to_string(),
            });
        }
        found.push(name.to_string());
        rest = &after[end + 1..];
    }
    Ok(found)
}

/// The values for one run.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub drillbook: PathBuf,
    /// The port every caller is given for `${port.NAME}`.
    pub ports: BTreeMap<String, u16>,
    /// Process name → `${port.NAME}` → the private port that process listens on instead
    /// (a local `http_fault` listens on the public one and forwards there).
    pub private: BTreeMap<String, BTreeMap<String, u16>>,
}

/// A free loopback port, held open until the caller drops the listener.
fn free_port(name: &str) -> Result<(u16, TcpListener), VarError> {
    let no_port = |e: std::io::Error| VarError::NoPort(name.to_string(), e.to_string());
    let listener = TcpListener::bind("127.0.0.1:0").map_err(no_port)?;
    let port = listener.local_addr().map_err(no_port)?.port();
    Ok((port, listener))
}

impl Vars {
    /// Vars with this executable, a fresh port for every `${port.NAME}` used in `texts`, and
    /// a private one for each `(process, port name)` in `private`.
    pub fn allocate<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        private: &[(String, String)],
    ) -> Result<Self, VarError> {
        let drillbook = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("drillbook"));
        let mut ports = BTreeMap::new();
        // Hold every listener until all ports are chosen so no two names get the same port.
        let mut held = Vec::new();
        for text in texts {
            for name in names(text)? {
                if let Some(port_name) = name.strip_prefix("port.") {
                    if ports.contains_key(port_name) {
                        continue;
                    }
                    let (port, listener) = free_port(port_name)?;
                    ports.insert(port_name.to_string(), port);
                    held.push(listener);
                }
            }
        }
        let mut private_ports: BTreeMap<String, BTreeMap<String, u16>> = BTreeMap::new();
        for (process, port_name) in private {
            let (port, listener) = free_port(port_name)?;
            private_ports
                .entry(process.clone())
                .or_default()
                .insert(port_name.clone(), port);
            held.push(listener);
        }
        Ok(Self {
            drillbook,
            ports,
            private: private_ports,
        })
    }

    /// `text` with every variable replaced.
    pub fn expand(&self, text: &str) -> Result<String, VarError> {
        self.expand_for(None, text)
    }

    /// `text` of `process` (`None`: of no process) with every variable replaced.
    pub fn expand_for(&self, process: Option<&str>, text: &str) -> Result<String, VarError> {
        let own = process.and_then(|p| self.private.get(p));
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| VarError::Unclosed(text.to_string()))?;
            let name = &after[..end];
            if name == "drillbook" {
                out.push_str(&self.drillbook.to_string_lossy());
            } else if let Some(port) = name
                .strip_prefix("port.")
                .and_then(|p| own.and_then(|o| o.get(p)).or_else(|| self.ports.get(p)))
            {
                out.push_str(&port.to_string());
            } else {
                return Err(VarError::Unknown {
                    name: name.to_string(),
                });
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_ports_consistently() -> Result<(), VarError> {
        let texts = [
            "http://127.0.0.1:${port.proxy}/x",
            "--listen=127.0.0.1:${port.proxy}",
            "${port.jobs}",
        ];
        let vars = Vars::allocate(texts, &[])?;
        assert_eq!(vars.ports.len(), 2);
        let a = vars.expand(texts[0])?;
        let b = vars.expand(texts[1])?;
        assert_eq!(
            a.rsplit(':').next().map(|s| s.trim_end_matches("/x")),
            b.rsplit(':').next()
        );
        assert_ne!(vars.ports["proxy"], vars.ports["jobs"]);
        Ok(())
    }

    fn declared(pairs: &[(&str, Option<&str>, Option<&str>)]) -> BTreeMap<String, VarDecl> {
        pairs
            .iter()
            .map(|(name, default, pattern)| {
                (
                    name.to_string(),
                    VarDecl {
                        default: default.map(str::to_string),
                        pattern: pattern.map(str::to_string),
                        description: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn parameters_resolve_from_the_command_line_then_defaults() {
        let d = declared(&[
            ("image", None, Some("[a-z/]+:[0-9.]+")),
            ("ns", Some("mcp"), None),
        ]);
        let given = vec![("image".to_string(), "proxy:1.2.1".to_string())];
        let values = resolve(&d, &given).expect("resolves");
        assert_eq!(values["image"], "proxy:1.2.1");
        assert_eq!(values["ns"], "mcp");
        assert_eq!(
            resolve(&d, &[]),
            Err(ParamError::Missing {
                name: "image".into()
            })
        );
        let bad = vec![("image".to_string(), "proxy:latest".to_string())];
        assert!(matches!(resolve(&d, &bad), Err(ParamError::NoMatch { .. })));
        let stray = vec![("imgae".to_string(), "x".to_string())];
        assert!(matches!(
            resolve(&d, &stray),
            Err(ParamError::Undeclared { .. })
        ));
    }

    #[test]
    fn rejects_unknown_and_unclosed() {
        assert_eq!(
            names("${nope}"),
            Err(VarError::Unknown {
                name: "nope".into()
            })
        );
        assert!(matches!(names("${port.x"), Err(VarError::Unclosed(_))));
        assert!(names("${port.}").is_err());
    }
}
