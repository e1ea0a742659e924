//! The embedded lab (issue #4): a miniature of the system in the stateless-proxy cutover ticket,
//! run as real processes that drillbook supervises, kills and restarts.
//!
//! - `lab proxy` — the requests-proxy: checks bearer tokens (stateless JWT or legacy in-memory
//!   map) and forwards to a trivial in-process upstream.
//! - `lab jobs-manager` — starts jobs and mints one token per job.
//! - `lab trainer` — one training job calling the proxy until its work is done, or stranded.
//!
//! The command line and its `LAB_*` environment variables are `cmd/lab.rs`; each component
//! here takes its plain configuration.

pub mod http;
pub mod jobs_manager;
pub mod launcher;
pub mod metrics;
pub mod proxy;
pub mod revoke;
pub mod token;
pub mod trainer;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::units::HumanDuration;

/// Token mode and key, shared by the proxy and the jobs-manager (they must agree).
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// Stateless signed JWTs, or legacy opaque tokens registered with the proxy.
    pub mode: TokenMode,
    /// Shared HMAC key that signs and verifies stateless tokens.
    pub signing_key: String,
}

/// The requests-proxy's configuration (`drillbook lab proxy`).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    pub tokens: TokenConfig,
    /// One revoked job id per line, re-read when it changes (stateless mode).
    pub revoke_file: Option<PathBuf>,
    /// Answer 503 (including /healthz) for this long after start.
    pub startup_delay: HumanDuration,
    /// Extra latency of the in-process upstream.
    pub upstream_delay: HumanDuration,
    /// Share of the traffic answered 503, spread evenly, between 0 and 1.
    pub fail_ratio: f64,
}

/// The jobs-manager's configuration (`drillbook lab jobs-manager`).
#[derive(Debug, Clone)]
pub struct JobsManagerConfig {
    pub listen: SocketAddr,
    /// Base URL of the requests-proxy (legacy tokens are registered there).
    pub proxy_url: String,
    pub tokens: TokenConfig,
    /// Lifetime of a stateless token (its `exp`).
    pub token_ttl: HumanDuration,
    pub cluster: ClusterJobsConfig,
}

/// The jobs-manager's cluster mode, on when `job_image` is set: training Jobs hold their
/// minted token in their pod env.
#[derive(Debug, Clone)]
pub struct ClusterJobsConfig {
    pub job_image: Option<String>,
    pub job_namespace: String,
    /// Base URL of the proxy as the Jobs' pods reach it (default: the proxy URL).
    pub job_proxy_url: Option<String>,
    /// Start one Job this often (zero: only on `POST /jobs`).
    pub launch_every: HumanDuration,
    pub job_steps: u64,
    pub job_interval: HumanDuration,
    pub job_give_up_after: u32,
    pub job_max_runtime: HumanDuration,
    /// Legacy tokens are registered with every ready endpoint of this Service.
    pub proxy_service: Option<String>,
}

/// One training job's configuration (`drillbook lab trainer`).
#[derive(Debug, Clone)]
pub struct TrainerConfig {
    pub proxy_url: String,
    pub jobs_manager_url: String,
    /// A token given up front instead of one from the jobs-manager, and its job id.
    pub token: Option<String>,
    pub job_id: Option<String>,
    /// Successful steps (proxy calls) before the job is done.
    pub steps: u64,
    pub interval: HumanDuration,
    /// Consecutive 401s after which the job is stranded (exit 3).
    pub give_up_after: u32,
    /// Bound on the job's runtime (exit 4).
    pub max_runtime: HumanDuration,
}

/// Which auth design is active: the flag `requestsProxy.statelessTokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    /// Self-contained signed JWTs; survive restarts of both services.
    Stateless,
    /// Opaque tokens in the proxy's in-memory map; lost when the proxy restarts.
    Legacy,
}

impl TokenMode {
    /// The label used in metrics and JSON bodies.
    pub const fn label(self) -> &'static str {
        match self {
            TokenMode::Stateless => "stateless",
            TokenMode::Legacy => "legacy",
        }
    }
}

impl fmt::Display for TokenMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Errors that stop a lab process before or while it serves.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Binding, signal set-up or a client call failed.
    #[error(transparent)]
    Http(#[from] http::HttpError),
    /// A base URL flag is not usable.
    #[error("--{flag} `{url}` is not an http:// URL")]
    BadBaseUrl {
        /// The flag name.
        flag: &'static str,
        /// Its value.
        url: String,
    },
    /// The cluster mode could not connect to the Kubernetes API.
    #[error("cannot start the cluster mode")]
    Cluster(#[from] launcher::LaunchError),
}

/// Checks a base URL flag and strips its trailing `/` so paths can be appended.
fn base_url(flag: &'static str, url: &str) -> Result<String, LabError> {
    let trimmed = url.trim_end_matches('/');
    let valid = trimmed
        .strip_prefix("http://")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
    if valid {
        Ok(trimmed.to_owned())
    } else {
        Err(LabError::BadBaseUrl {
            flag,
            url: url.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_plain_http_origins() {
        assert_eq!(
            base_url("proxy-url", "http://127.0.0.1:80/").expect("valid base url"),
            "http://127.0.0.1:80"
        );
        assert!(base_url("proxy-url", "https://example").is_err());
        assert!(base_url("proxy-url", "http://host/path").is_err());
        assert!(base_url("proxy-url", "http://").is_err());
    }
}
