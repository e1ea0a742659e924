//! The embedded lab (issue #4): a miniature of the system in the stateless-proxy cutover ticket,
//! run as real processes that drillbook supervises, kills and restarts.
//!
//! - `lab proxy` — the requests-proxy: checks bearer tokens (stateless JWT or legacy in-memory
//!   map) and forwards to a trivial in-process upstream.
//! - `lab jobs-manager` — starts jobs and mints one token per job.
//! - `lab trainer` — one training job calling the proxy until its work is done, or stranded.
//!
//! Every flag can also come from a `LAB_*` environment variable, because drills flip the
//! configuration by changing env and restarting (the lab's `helm upgrade --set`).

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

use clap::{Args, Subcommand};

use crate::exit::Outcome;
use crate::units::HumanDuration;

/// `drillbook lab <component>`.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// The requests-proxy: authenticates bearer tokens and forwards to its upstream.
    #[command(
        after_help = "Example:\n  drillbook lab proxy --listen 127.0.0.1:8080 --stateless-tokens true --revoke-file /tmp/revoked"
    )]
    Proxy(ProxyArgs),
    /// The jobs-manager: starts training jobs and mints one token per job.
    #[command(
        after_help = "Example:\n  drillbook lab jobs-manager --listen 127.0.0.1:8081 --proxy-url http://127.0.0.1:8080 --stateless-tokens true"
    )]
    JobsManager(JobsManagerArgs),
    /// One training job: calls the proxy with its token for N steps.
    #[command(after_help = concat!(
        "Example:\n  drillbook lab trainer --proxy-url http://127.0.0.1:8080 --jobs-manager-url http://127.0.0.1:8081 --steps 100\n\n",
        "Exit codes: 0 all steps done, 3 stranded (K consecutive 401s), 4 gave up after --max-runtime, 2 usage error."
    ))]
    Trainer(TrainerArgs),
}

/// Token mode and key, shared by the proxy and the jobs-manager (they must agree).
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// `true`: stateless signed JWTs; `false`: legacy opaque tokens registered with the proxy
    /// (like the chart's `requestsProxy.statelessTokens`).
    #[arg(
        long,
        env = "LAB_STATELESS_TOKENS",
        value_name = "BOOL",
        action = clap::ArgAction::Set,
        default_value_t = true
    )]
    pub stateless_tokens: bool,
    /// Shared HMAC key that signs and verifies stateless tokens.
    #[arg(
        long,
        env = "LAB_SIGNING_KEY",
        hide_env_values = true,
        default_value = token::DEFAULT_SIGNING_KEY
    )]
    pub signing_key: String,
}

impl TokenArgs {
    /// The mode these flags select.
    pub fn mode(&self) -> TokenMode {
        if self.stateless_tokens {
            TokenMode::Stateless
        } else {
            TokenMode::Legacy
        }
    }
}

/// Arguments of `lab proxy`.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Address to listen on.
    #[arg(long, env = "LAB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Token mode and signing key.
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// File with one revoked job id per line, re-read when it changes (stateless mode).
    #[arg(long, env = "LAB_REVOKE_FILE")]
    pub revoke_file: Option<PathBuf>,
    /// Answer 503 (including /healthz) for this long after start, like a warming-up pod.
    #[arg(long, env = "LAB_STARTUP_DELAY", default_value = "0s")]
    pub startup_delay: HumanDuration,
    /// Extra latency of the in-process upstream.
    #[arg(long, env = "LAB_UPSTREAM_DELAY", default_value = "0s")]
    pub upstream_delay: HumanDuration,
    /// Answer this share of the traffic with 503, spread evenly (0.05: every 20th request), like
    /// a bad release; the box builds a "candidate" image with it set, for canary bakes.
    #[arg(long, env = "LAB_FAIL_RATIO", default_value_t = 0.0, value_parser = parse_ratio)]
    pub fail_ratio: f64,
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!(
            "`{text}` is not a share between 0 and 1 (0.05 = 5 %)"
        )),
    }
}

/// Arguments of `lab jobs-manager`.
#[derive(Debug, Clone, Args)]
pub struct JobsManagerArgs {
    /// Address to listen on.
    #[arg(long, env = "LAB_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Base URL of the requests-proxy (legacy tokens are registered there).
    #[arg(long, env = "LAB_PROXY_URL", default_value = "http://127.0.0.1:8080")]
    pub proxy_url: String,
    /// Token mode and signing key.
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// Lifetime of a stateless token (its `exp`).
    #[arg(long, env = "LAB_TOKEN_TTL", default_value = "1h")]
    pub token_ttl: HumanDuration,
    /// In a cluster: start real training Jobs and register with every proxy replica.
    #[command(flatten)]
    pub cluster: ClusterJobsArgs,
}

/// The jobs-manager's cluster mode (the chart sets these): `POST /jobs` (and a timer, with
/// `--launch-every`) creates a Kubernetes Job whose pod holds the minted token in its env.
#[derive(Debug, Clone, Args)]
pub struct ClusterJobsArgs {
    /// Image of the training Jobs; setting it turns the cluster mode on.
    #[arg(long, env = "LAB_JOB_IMAGE")]
    pub job_image: Option<String>,
    /// Namespace of the training Jobs (the chart passes the pod's own, by the downward API).
    #[arg(
        long,
        env = "LAB_JOB_NAMESPACE",
        default_value = "default",
        requires = "job_image"
    )]
    pub job_namespace: String,
    /// Base URL of the proxy as the Jobs' pods reach it (default: `--proxy-url`).
    #[arg(long, env = "LAB_JOB_PROXY_URL")]
    pub job_proxy_url: Option<String>,
    /// Start one training Job this often, like users submitting work (`0s`: only on `POST /jobs`).
    #[arg(
        long,
        env = "LAB_LAUNCH_EVERY",
        default_value = "0s",
        requires = "job_image"
    )]
    pub launch_every: HumanDuration,
    /// Training steps of each Job.
    #[arg(long, env = "LAB_JOB_STEPS", default_value_t = 300)]
    pub job_steps: u64,
    /// Pause between two calls of a Job.
    #[arg(long, env = "LAB_JOB_INTERVAL", default_value = "100ms")]
    pub job_interval: HumanDuration,
    /// Consecutive 401s after which a Job gives up as stranded (and fails).
    #[arg(long, env = "LAB_JOB_GIVE_UP_AFTER", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub job_give_up_after: u32,
    /// A Job's bound on its own runtime.
    #[arg(long, env = "LAB_JOB_MAX_RUNTIME", default_value = "300s")]
    pub job_max_runtime: HumanDuration,
    /// Legacy tokens are registered with every ready endpoint of this Service (each proxy
    /// replica keeps its own map), instead of the one `--proxy-url` reaches.
    #[arg(long, env = "LAB_PROXY_SERVICE", requires = "job_image")]
    pub proxy_service: Option<String>,
}

/// Arguments of `lab trainer`.
#[derive(Debug, Clone, Args)]
pub struct TrainerArgs {
    /// Base URL of the requests-proxy.
    #[arg(long, env = "LAB_PROXY_URL", default_value = "http://127.0.0.1:8080")]
    pub proxy_url: String,
    /// Base URL of the jobs-manager (where the job's token comes from).
    #[arg(
        long,
        env = "LAB_JOBS_MANAGER_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub jobs_manager_url: String,
    /// Use this token instead of asking the jobs-manager for one (a Job started by the
    /// jobs-manager in a cluster holds it in its env).
    #[arg(long, env = "LAB_TRAINER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The job id the token was minted for (only printed), with `--token`.
    #[arg(long, env = "LAB_TRAINER_JOB_ID", requires = "token")]
    pub job_id: Option<String>,
    /// Successful training steps (proxy calls) before the job is done.
    #[arg(long, env = "LAB_TRAINER_STEPS", default_value_t = 100)]
    pub steps: u64,
    /// Pause between two calls.
    #[arg(long, env = "LAB_TRAINER_INTERVAL", default_value = "50ms")]
    pub interval: HumanDuration,
    /// Give up as stranded (exit 3) after this many consecutive 401s.
    #[arg(long, env = "LAB_TRAINER_GIVE_UP_AFTER", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub give_up_after: u32,
    /// Give up (exit 4) when the job has not finished after this long, whatever the cause.
    #[arg(long, env = "LAB_TRAINER_MAX_RUNTIME", default_value = "120s")]
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

/// Runs one lab component until it ends. Services end with [`Outcome::Pass`] after SIGTERM;
/// the trainer maps its result onto the shared exit codes (see [`trainer::TrainerExit`]).
pub async fn run(command: LabCommand) -> anyhow::Result<Outcome> {
    match command {
        LabCommand::Proxy(args) => proxy::run(args).await?,
        LabCommand::JobsManager(args) => jobs_manager::run(args).await?,
        LabCommand::Trainer(args) => return Ok(trainer::run(args).await?.outcome()),
    }
    Ok(Outcome::Pass)
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
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(subcommand)]
        lab: LabCommand,
    }

    #[test]
    fn stateless_flag_takes_true_or_false_like_the_chart_value() {
        let cli = TestCli::try_parse_from([
            "lab",
            "proxy",
            "--stateless-tokens",
            "false",
            "--startup-delay",
            "300ms",
        ])
        .expect("valid arguments");
        let LabCommand::Proxy(args) = cli.lab else {
            panic!("parsed {:?}", cli.lab)
        };
        assert_eq!(args.tokens.mode(), TokenMode::Legacy);
        assert_eq!(args.startup_delay, HumanDuration::from_millis(300));
        assert!(TestCli::try_parse_from(["lab", "proxy", "--stateless-tokens", "yes"]).is_err());
    }

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
