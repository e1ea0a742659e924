//! `${...}` substitutions in local-target commands, env, URLs and load settings:
//! `${drillbook}` is this binary, `${port.NAME}` a free loopback port chosen once per run.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;

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
    pub ports: BTreeMap<String, u16>,
}

impl Vars {
    /// Vars with this executable and a fresh port for every `${port.NAME}` used in `texts`.
    pub fn allocate<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Self, VarError> {
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
                    let listener = TcpListener::bind("127.0.0.1:0")
                        .map_err(|e| VarError::NoPort(port_name.to_string(), e.to_string()))?;
                    let port = listener
                        .local_addr()
                        .map_err(|e| VarError::NoPort(port_name.to_string(), e.to_string()))?
                        .port();
                    ports.insert(port_name.to_string(), port);
                    held.push(listener);
                }
            }
        }
        Ok(Self { drillbook, ports })
    }

    /// `text` with every variable replaced.
    pub fn expand(&self, text: &str) -> Result<String, VarError> {
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
            } else if let Some(port) = name.strip_prefix("port.").and_then(|p| self.ports.get(p)) {
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
        let vars = Vars::allocate(texts)?;
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
