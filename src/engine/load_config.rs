//! Turning a scenario's `load:` section into the load engine's configuration.

use tokio::time::Instant;

use crate::load::{AuthConfig, LoadConfig, RateProfile, Stage, TokenSource};
use crate::scenario::{LoadSpec, LoadedScenario, vars::Vars};
use crate::units::Rate;

/// The load configuration for one run, with variables expanded and paths resolved.
pub fn build(
    loaded: &LoadedScenario,
    spec: &LoadSpec,
    vars: &Vars,
    t0: Instant,
) -> Result<LoadConfig, String> {
    let expand = |s: &str| vars.expand(s).map_err(|e| e.to_string());
    let duration = spec.duration.as_ref().map(|d| d.value.0);
    let profile = match (&spec.rate, duration) {
        (Some(rate), Some(duration)) => match rate.value {
            Rate::Max => RateProfile::Max { duration },
            Rate::PerSecond(per_second) => RateProfile::Constant {
                per_second,
                duration,
            },
        },
        _ => RateProfile::Stages(
            spec.stages
                .iter()
                .map(|s| Stage {
                    duration: s.value.duration.0,
                    target_per_second: s.value.target.per_second().unwrap_or(0.0),
                })
                .collect(),
        ),
    };
    let body = match (&spec.body, &spec.body_file) {
        (Some(b), _) => bytes::Bytes::from(b.clone()),
        (None, Some(f)) => {
            let path = loaded.resolve(f);
            bytes::Bytes::from(
                std::fs::read(&path)
                    .map_err(|e| format!("cannot read body_file {}: {e}", path.display()))?,
            )
        }
        (None, None) => bytes::Bytes::new(),
    };
    let auth = match &spec.auth {
        None => None,
        Some(a) => {
            let source = if let Some(var) = &a.bearer_env {
                TokenSource::Env(var.clone())
            } else if let Some(file) = &a.bearer_file {
                TokenSource::File(loaded.resolve(file))
            } else if let Some(url) = &a.token_url {
                TokenSource::Url {
                    url: expand(url)?,
                    field: a.token_field.clone(),
                }
            } else {
                return Err("`auth` has no token source".into());
            };
            Some(AuthConfig {
                source,
                callers: a.callers as usize,
                caller_lifetime: a.caller_lifetime.map(|d| d.0),
            })
        }
    };
    let headers = spec
        .headers
        .iter()
        .map(|(k, v)| Ok((k.clone(), expand(v)?)))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(LoadConfig {
        url: expand(&spec.url.value)?,
        method: http::Method::from_bytes(spec.method.as_bytes()).map_err(|e| e.to_string())?,
        headers,
        body,
        profile,
        connections: spec.connections as usize,
        requests_per_connection: spec.requests_per_connection,
        timeout: spec.timeout.0,
        max_lag: spec.max_lag.0,
        auth,
        start_at: Some(t0),
        max_requests: None,
    })
}
