//! `drillbook load`: parse the options, run the engine with a live progress line, print a
//! summary table and write the requested files.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tabled::builder::Builder;
use tabled::settings::Style;
use tokio_util::sync::CancellationToken;

use crate::exit::Outcome;
use crate::load::report::{LoadReport, WindowLine};
use crate::load::{
    AuthConfig, CallerStats, LatencyKind, LoadConfig, LoadSummary, Quantiles, RateProfile, Stage,
    Stats, TokenSource, Window,
};
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

/// `drillbook load`.
pub async fn run(args: LoadArgs) -> anyhow::Result<Outcome> {
    if args.worker_output {
        return super::load_worker::run(args).await;
    }
    let config = args.to_config()?;
    // Open every output before the load, so a typo does not cost a whole run.
    let ndjson = args.ndjson.as_deref().map(create).transpose()?;
    let hdr_log = args.hdr_log.as_deref().map(create).transpose()?;
    let json = args.json.as_deref().map(create).transpose()?;

    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.cancel();
        }
    });

    let progress = progress_bar(config.profile.duration());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let sink = tokio::spawn(consume_windows(rx, ndjson, hdr_log, progress.clone()));
    let result = crate::load::run(config.clone(), cancel.clone(), Some(tx)).await;
    let sink_result = sink.await.context("window writer failed")?;
    progress.finish_and_clear();
    let summary = result?;
    sink_result?;

    print!("{}", render_summary(&config, &summary));
    if let (Some(mut file), Some(path)) = (json, args.json.as_deref()) {
        let report = LoadReport::new(&config, &summary);
        serde_json::to_writer_pretty(&mut file, &report)
            .map_err(std::io::Error::from)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.flush())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if summary.cancelled {
        Outcome::Interrupted
    } else {
        Outcome::Pass
    })
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    File::create(path)
        .map(BufWriter::new)
        .with_context(|| format!("cannot create {}", path.display()))
}

fn progress_bar(duration: Duration) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(duration.as_secs().max(1)), target);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} / {len}s  {msg}") {
        bar.set_style(style);
    }
    bar.set_message("starting");
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Writes each window as it closes (NDJSON line, HDR log entries) and updates the progress.
async fn consume_windows(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Window>,
    mut ndjson: Option<BufWriter<File>>,
    mut hdr_file: Option<BufWriter<File>>,
    progress: ProgressBar,
) -> anyhow::Result<()> {
    let mut serializer = V2DeflateSerializer::new();
    let mut hdr_log = match hdr_file.as_mut() {
        Some(file) => Some(
            IntervalLogWriterBuilder::new()
                .add_comment("drillbook load: latency in microseconds, one interval per second")
                .with_start_time(SystemTime::now())
                .with_max_value_divisor(1000.0)
                .begin_log_with(file, &mut serializer)
                .context("cannot write the HDR log header")?,
        ),
        None => None,
    };
    let mut dropped = 0;
    while let Some(window) = rx.recv().await {
        dropped += window.stats.dropped;
        progress.set_message(progress_message(&window.stats, dropped));
        if let Some(out) = ndjson.as_mut() {
            serde_json::to_writer(&mut *out, &WindowLine::of(&window))
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush())
                .context("cannot write the NDJSON file")?;
        }
        if let Some(log) = hdr_log.as_mut() {
            let start = Duration::from_secs(window.second);
            for (tag, histogram) in [
                ("corrected", &window.stats.corrected),
                ("service", &window.stats.service),
            ] {
                log.write_histogram(histogram, start, Duration::from_secs(1), Tag::new(tag))
                    .map_err(|e| anyhow::anyhow!("cannot write the HDR log: {e}"))?;
            }
        }
    }
    drop(hdr_log);
    if let Some(file) = hdr_file.as_mut() {
        file.flush().context("cannot write the HDR log")?;
    }
    Ok(())
}

fn progress_message(stats: &Stats, dropped_total: u64) -> String {
    let p99 = stats
        .quantile_ms(99.0, LatencyKind::Corrected)
        .map_or_else(|| "-".to_string(), format_ms);
    format!(
        "rps {}  401/s {}  5xx/s {}  errors/s {}  p99 {p99}  dropped {dropped_total}",
        stats.requests,
        stats.status_count(401),
        stats.class_count(5),
        stats.error_count(),
    )
}

fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{ms:.2}ms")
    }
}

fn join_counts<'a>(counts: impl Iterator<Item = (String, &'a u64)>) -> String {
    let parts: Vec<String> = counts.map(|(k, n)| format!("{k}: {n}")).collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

/// The summary printed at the end of a run.
pub fn render_summary(config: &LoadConfig, summary: &LoadSummary) -> String {
    let total = summary.summary();
    let mut overview = Builder::new();
    overview.push_record(["url", config.url.as_str()]);
    overview.push_record([
        "requests".to_string(),
        format!(
            "{} in {:.1}s ({:.1}/s){}",
            total.requests,
            summary.duration.as_secs_f64(),
            total.rps,
            if summary.cancelled { ", cancelled" } else { "" }
        ),
    ]);
    overview.push_record([
        "statuses".to_string(),
        join_counts(total.statuses.iter().map(|(k, n)| (k.clone(), n))),
    ]);
    overview.push_record([
        "errors".to_string(),
        join_counts(total.errors.iter().map(|(k, n)| (k.clone(), n))),
    ]);
    overview.push_record([
        "dropped".to_string(),
        format!(
            "{} (saturated windows: {}, max lag {})",
            total.dropped,
            total.saturated_windows,
            format_ms(total.max_lag_ms)
        ),
    ]);
    let mut text = overview.build().with(Style::rounded()).to_string();
    text.push('\n');

    let mut latency = Builder::new();
    latency.push_record(["latency", "p50", "p90", "p95", "p99", "p99.9", "max"]);
    for (name, q) in [
        ("corrected", &total.latency_ms),
        ("service", &total.service_latency_ms),
    ] {
        latency.push_record(quantile_row(name, q));
    }
    text.push_str(&latency.build().with(Style::rounded()).to_string());
    text.push('\n');

    if !summary.callers.is_empty() {
        text.push_str(&render_callers(&summary.callers));
    }
    text
}

fn quantile_row(name: &str, q: &Quantiles) -> Vec<String> {
    [q.p50, q.p90, q.p95, q.p99, q.p999, q.max]
        .into_iter()
        .map(format_ms)
        .fold(vec![name.to_string()], |mut row, cell| {
            row.push(cell);
            row
        })
}

/// Callers table: every caller when there are few, otherwise those that saw failures.
fn render_callers(callers: &[CallerStats]) -> String {
    const LIST_ALL_UP_TO: usize = 16;
    let failing: Vec<&CallerStats> = callers.iter().filter(|c| c.failures() > 0).collect();
    let shown: Vec<&CallerStats> = if callers.len() <= LIST_ALL_UP_TO {
        callers.iter().collect()
    } else {
        failing.clone()
    };
    let mut table = Builder::new();
    table.push_record([
        "caller", "alive", "requests", "statuses", "errors", "failures", "first", "last",
    ]);
    let seconds = |s: Option<f64>| s.map_or_else(|| "-".to_string(), |s| format!("{s:.2}s"));
    for caller in &shown {
        table.push_record([
            caller.label.clone(),
            format!(
                "{:.1}s-{}",
                caller.started_at_s,
                caller
                    .ended_at_s
                    .map_or_else(|| "end".to_string(), |s| format!("{s:.1}s"))
            ),
            caller.requests.to_string(),
            join_counts(caller.statuses.iter().map(|(k, n)| (k.clone(), n))),
            caller.errors.to_string(),
            caller.failures().to_string(),
            seconds(caller.first_failure_s),
            seconds(caller.last_failure_s),
        ]);
    }
    let mut text = format!(
        "callers: {} ({} saw failures)\n",
        callers.len(),
        failing.len()
    );
    if !shown.is_empty() {
        text.push_str(&table.build().with(Style::rounded()).to_string());
        text.push('\n');
    }
    text
}
