//! `drillbook load`: run the engine of the parsed options (`load_args.rs`) with a live progress line, print a
//! summary table and write the requested files.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tabled::builder::Builder;
use tabled::settings::Style;
use tokio_util::sync::CancellationToken;

use super::load_args::LoadArgs;
use crate::exit::Outcome;
use crate::load::report::{LoadReport, WindowLine};
use crate::load::{CallerStats, LatencyKind, LoadConfig, LoadSummary, Quantiles, Stats, Window};

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
