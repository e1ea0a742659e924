//! Turning a scenario's `load:` section into the load engine's configuration.

use tokio::time::Instant;

use std::path::PathBuf;

use crate::load::{AuthConfig, LoadConfig, RateProfile, Stage, TokenSource};
use crate::scenario::{LoadSpec, LoadedScenario};
use crate::units::Rate;

/// Why a scenario's `load:` could not become a load configuration.
#[derive(Debug, thiserror::Error)]
pub enum LoadConfigError {
    #[error("cannot read body_file {}: {source}", .path.display())]
    BodyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`auth` has no token source")]
    NoTokenSource,
    #[error(transparent)]
    Method(#[from] http::method::InvalidMethod),
}

/// The load configuration for one run (its fields already expanded), paths resolved.
pub fn build(
    loaded: &LoadedScenario,
    spec: &LoadSpec,
    t0: Instant,
) -> Result<LoadConfig, LoadConfigError> {
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
                    .map_err(|source| LoadConfigError::BodyFile { path, source })?,
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
            } else if a.bearer_secret.is_some() {
                // Cluster load: each worker pod reads the Secret's key from this variable.
                TokenSource::Env(crate::load::fleet::WORKER_BEARER_ENV.into())
            } else if let Some(url) = &a.token_url {
                TokenSource::Url {
                    url: url.clone(),
                    field: a.token_field.clone(),
                }
            } else {
                return Err(LoadConfigError::NoTokenSource);
            };
            Some(AuthConfig {
                source,
                callers: a.callers.value as usize,
                caller_lifetime: a.caller_lifetime.map(|d| d.0),
            })
        }
    };
    let headers = spec
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(LoadConfig {
        url: spec.url.value.clone(),
        method: http::Method::from_bytes(spec.method.as_bytes())?,
        headers,
        body,
        profile,
        connections: spec.connections.value as usize,
        // A drill's rates (hundreds to thousands per second) need one load thread.
        threads: 1,
        requests_per_connection: spec.requests_per_connection,
        timeout: spec.timeout.0,
        max_lag: spec.max_lag.0,
        auth,
        start_at: Some(t0),
        max_requests: None,
        ca_file: spec.ca_file.as_ref().map(|file| loaded.resolve(file)),
    })
}
