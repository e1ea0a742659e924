//! The options of `drillbook load` and the engine configuration they describe; below both the
//! interactive command (`load.rs`) and one worker of a fleet (`load_worker.rs`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;

use crate::load::{AuthConfig, LoadConfig, RateProfile, Stage, TokenSource};
use crate::units::{HumanDuration, Rate, limits};

/// Options of `drillbook load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Target URL (http:// or https://).
    pub url: String,
    /// Request rate: `500/s`, `600/m`, or `max` (closed loop, for benchmarks).
    #[arg(long, required_unless_present = "stage", conflicts_with = "stage")]
    pub rate: Option<Rate>,
    /// A ramp stage `DURATION:RATE` such as `10s:200/s` (repeatable): the rate moves linearly
    /// from the previous stage's target (0 at first) to RATE over DURATION.
    #[arg(long, value_parser = parse_stage, conflicts_with = "duration")]
    pub stage: Vec<Stage>,
    /// Length of the load (with --rate).
    #[arg(long, default_value = "10s")]
    pub duration: HumanDuration,
    /// Number of keep-alive connections.
    #[arg(long, short = 'c', default_value_t = 8)]
    pub connections: usize,
    /// OS threads the connections are spread over (each a single-threaded runtime). One
    /// sends tens of thousands of requests per second; more help only on a machine with cores
    /// to spare beside the target's.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Close each connection after N requests and open a new one (default: keep alive).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests_per_connection: Option<u64>,
    /// Request method.
    #[arg(long, short = 'm', default_value = "GET")]
    pub method: String,
    /// Request header `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// Request body: text, or `@path` to read it from a file.
    #[arg(long)]
    pub body: Option<String>,
    /// Time allowed per request, connecting included.
    #[arg(long, default_value = "2s")]
    pub timeout: HumanDuration,
    /// A request later than this behind schedule is counted as dropped instead of sent.
    #[arg(long, default_value = "1s")]
    pub max_lag: HumanDuration,
    /// Bearer token from this environment variable.
    #[arg(long, group = "token", value_name = "VAR")]
    pub bearer_env: Option<String>,
    /// Bearer tokens from this file, one per line; re-read when it changes.
    #[arg(long, group = "token", value_name = "FILE")]
    pub bearer_file: Option<PathBuf>,
    /// Bearer tokens minted by POSTing to this endpoint (one per caller).
    #[arg(long, group = "token", value_name = "URL")]
    pub token_url: Option<String>,
    /// JSON field of the token endpoint's answer holding the token (or a JSON pointer).
    #[arg(long, default_value = "token")]
    pub token_field: String,
    /// Number of callers, each with its own token, used round-robin.
    #[arg(long, default_value_t = 1)]
    pub callers: usize,
    /// Replace each caller by a new one (fresh token) after this long.
    #[arg(long)]
    pub caller_lifetime: Option<HumanDuration>,
    /// Stop after this many requests whatever the profile says.
    #[arg(long)]
    pub max_requests: Option<u64>,
    /// Also trust the CA certificates (PEM) in this file for https (besides the system trust
    /// store): a staging service with an internal CA.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Lift the sanity limits (10000 connections, 10000 callers, 1000000/s) deliberately.
    #[arg(long)]
    pub allow_large: bool,
    /// Write the summary as JSON (schema: load.schema.json).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write one JSON line per 1-second window.
    #[arg(long, value_name = "FILE")]
    pub ndjson: Option<PathBuf>,
    /// Write an HdrHistogram interval log (tags `corrected` and `service`, microseconds).
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,
    /// Run as a worker of an in-cluster fleet: one wire line per window on stdout, no table.
    #[arg(long, hide = true, conflicts_with_all = ["json", "ndjson", "hdr_log"])]
    pub worker_output: bool,
    /// This worker's index in the fleet (with --worker-output).
    #[arg(long, hide = true, default_value_t = 0, requires = "worker_output")]
    pub worker_index: u32,
    /// The fleet's time zero, Unix milliseconds (with --worker-output; default: now).
    #[arg(long, hide = true, requires = "worker_output")]
    pub start_at_unix_ms: Option<i64>,
    /// First caller slot of this worker in the fleet (with --worker-output).
    #[arg(long, hide = true, default_value_t = 0, requires = "worker_output")]
    pub caller_slot_offset: u32,
}

fn parse_stage(text: &str) -> Result<Stage, String> {
    let (duration, rate) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not a stage: write DURATION:RATE, like `10s:200/s`"))?;
    let duration: HumanDuration = duration.parse().map_err(|e| format!("{e}"))?;
    let rate: Rate = rate.parse().map_err(|e| format!("{e}"))?;
    let target_per_second = rate
        .per_second()
        .ok_or_else(|| "a stage needs a number rate, not `max`".to_string())?;
    Ok(Stage {
        duration: duration.as_duration(),
        target_per_second,
    })
}

impl LoadArgs {
    /// The engine configuration these options describe.
    pub fn to_config(&self) -> anyhow::Result<LoadConfig> {
        self.check_limits()?;
        let profile = if self.stage.is_empty() {
            let duration = self.duration.as_duration();
            match self.rate {
                Some(Rate::PerSecond(per_second)) => RateProfile::Constant {
                    per_second,
                    duration,
                },
                Some(Rate::Max) => RateProfile::Max { duration },
                None => bail!("give --rate or at least one --stage"),
            }
        } else {
            RateProfile::Stages(self.stage.clone())
        };
        let method = http::Method::from_bytes(self.method.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("`{}` is not an HTTP method", self.method))?;
        let headers = self
            .headers
            .iter()
            .map(|header| {
                header
                    .split_once(':')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .with_context(|| format!("header `{header}` must be written `Name: value`"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let body = match self.body.as_deref() {
            None => Bytes::new(),
            Some(text) => match text.strip_prefix('@') {
                Some(path) => Bytes::from(
                    std::fs::read(path).with_context(|| format!("cannot read body file {path}"))?,
                ),
                None => Bytes::from(text.to_string()),
            },
        };
        let source = match (&self.bearer_env, &self.bearer_file, &self.token_url) {
            (Some(var), _, _) => Some(TokenSource::Env(var.clone())),
            (_, Some(path), _) => Some(TokenSource::File(path.clone())),
            (_, _, Some(url)) => Some(TokenSource::Url {
                url: url.clone(),
                field: self.token_field.clone(),
            }),
            _ => None,
        };
        if source.is_none() && (self.callers != 1 || self.caller_lifetime.is_some()) {
            bail!(
                "--callers and --caller-lifetime need a token source: --bearer-env, --bearer-file or --token-url"
            );
        }
        Ok(LoadConfig {
            url: self.url.clone(),
            method,
            headers,
            body,
            profile,
            connections: self.connections,
            threads: usize::from(self.threads),
            requests_per_connection: self.requests_per_connection,
            timeout: self.timeout.as_duration(),
            max_lag: self.max_lag.as_duration(),
            auth: source.map(|source| AuthConfig {
                source,
                callers: self.callers,
                caller_lifetime: self.caller_lifetime.map(HumanDuration::as_duration),
            }),
            start_at: None,
            max_requests: self.max_requests,
            ca_file: self.cacert.clone(),
        })
    }
}

impl LoadArgs {
    /// Refuses a count or rate above drillbook's sanity limits unless `--allow-large`.
    fn check_limits(&self) -> anyhow::Result<()> {
        if self.connections == 0 {
            bail!("--connections must be at least 1");
        }
        if self.allow_large {
            return Ok(());
        }
        let lift = "pass --allow-large";
        let rates = self
            .rate
            .iter()
            .copied()
            .filter_map(Rate::per_second)
            .chain(self.stage.iter().map(|stage| stage.target_per_second));
        let counts = [
            (
                "--connections",
                self.connections as f64,
                limits::CONNECTIONS as f64,
                "",
            ),
            ("--callers", self.callers as f64, limits::CALLERS as f64, ""),
        ];
        let too_large = counts
            .into_iter()
            .chain(rates.map(|rate| ("a rate of", rate, limits::RATE_PER_SECOND, "/s")))
            .find_map(|(what, value, max, unit)| limits::exceeded(what, value, max, unit, lift));
        match too_large {
            Some(message) => bail!("{message}"),
            None => Ok(()),
        }
    }
}
