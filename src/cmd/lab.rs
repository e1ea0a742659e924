//! `drillbook lab <component>`: the lab's command line (flags and their `LAB_*` environment
//! variables, because drills flip the configuration by changing env and restarting, the lab's
//! `helm upgrade --set`), turned into the lab's plain configuration ([`crate::lab`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::exit::Outcome;
use crate::lab::{
    self, ClusterJobsConfig, JobsManagerConfig, ProxyConfig, TokenConfig, TokenMode, TrainerConfig,
};
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
        default_value = lab::token::DEFAULT_SIGNING_KEY
    )]
    pub signing_key: String,
}

impl From<TokenArgs> for TokenConfig {
    fn from(args: TokenArgs) -> Self {
        let mode = if args.stateless_tokens {
            TokenMode::Stateless
        } else {
            TokenMode::Legacy
        };
        Self {
            mode,
            signing_key: args.signing_key,
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

impl From<ProxyArgs> for ProxyConfig {
    fn from(args: ProxyArgs) -> Self {
        Self {
            listen: args.listen,
            tokens: args.tokens.into(),
            revoke_file: args.revoke_file,
            startup_delay: args.startup_delay,
            upstream_delay: args.upstream_delay,
            fail_ratio: args.fail_ratio,
        }
    }
}

impl From<JobsManagerArgs> for JobsManagerConfig {
    fn from(args: JobsManagerArgs) -> Self {
        let c = args.cluster;
        Self {
            listen: args.listen,
            proxy_url: args.proxy_url,
            tokens: args.tokens.into(),
            token_ttl: args.token_ttl,
            cluster: ClusterJobsConfig {
                job_image: c.job_image,
                job_namespace: c.job_namespace,
                job_proxy_url: c.job_proxy_url,
                launch_every: c.launch_every,
                job_steps: c.job_steps,
                job_interval: c.job_interval,
                job_give_up_after: c.job_give_up_after,
                job_max_runtime: c.job_max_runtime,
                proxy_service: c.proxy_service,
            },
        }
    }
}

impl From<TrainerArgs> for TrainerConfig {
    fn from(args: TrainerArgs) -> Self {
        Self {
            proxy_url: args.proxy_url,
            jobs_manager_url: args.jobs_manager_url,
            token: args.token,
            job_id: args.job_id,
            steps: args.steps,
            interval: args.interval,
            give_up_after: args.give_up_after,
            max_runtime: args.max_runtime,
        }
    }
}

/// Runs one lab component until it ends. Services end with [`Outcome::Pass`] after SIGTERM;
/// the trainer maps its result onto the shared exit codes (see [`lab::trainer::TrainerExit`]).
pub async fn run(command: LabCommand) -> anyhow::Result<Outcome> {
    match command {
        LabCommand::Proxy(args) => lab::proxy::run(args.into()).await?,
        LabCommand::JobsManager(args) => lab::jobs_manager::run(args.into()).await?,
        LabCommand::Trainer(args) => return Ok(lab::trainer::run(args.into()).await?.outcome()),
    }
    Ok(Outcome::Pass)
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
        assert_eq!(TokenConfig::from(args.tokens).mode, TokenMode::Legacy);
        assert_eq!(args.startup_delay, HumanDuration::from_millis(300));
        assert!(TestCli::try_parse_from(["lab", "proxy", "--stateless-tokens", "yes"]).is_err());
    }
}
