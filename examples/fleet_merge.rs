//! How much merging cluster load costs the controller (issue #13): builds the wire lines of
//! `WORKERS` workers × `SECONDS` seconds, each window holding `PER_WINDOW` requests with a
//! realistic latency spread, then times parsing and merging them as the drill does.
//!
//! `cargo run --release --example fleet_merge [WORKERS] [SECONDS] [PER_WINDOW]`

use std::time::{Duration, Instant};

use drillbook::load::wire::{FleetMerger, WorkerLine};
use drillbook::load::{Stats, Window};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (workers, seconds, per_window) = (arg(1, 64), arg(2, 60), arg(3, 500));
    let workers = u32::try_from(workers)?;
    let mut lines = Vec::new();
    for second in 0..seconds {
        for worker in 0..workers {
            let mut stats = Stats::new();
            for i in 0..per_window {
                let us = 300 + (i * 7919 + second * 31 + u64::from(worker)) % 80_000;
                let status = if i % 50 == 0 { 503 } else { 200 };
                stats.record_response(
                    status,
                    Duration::from_micros(us),
                    Duration::from_micros(us / 2),
                );
            }
            let window = Window { second, stats };
            lines.push(WorkerLine::window(worker, 1_700_000_000, &window)?.to_json()?);
        }
    }
    let bytes: usize = lines.iter().map(String::len).sum();
    let started = Instant::now();
    let mut merger = FleetMerger::new(workers);
    let mut merged = 0;
    for line in &lines {
        merger.push(WorkerLine::parse(line)?)?;
        merged += merger.take_settled(0).len();
    }
    let took = started.elapsed();
    let per_line = took.as_secs_f64() / lines.len() as f64;
    println!(
        "{workers} workers × {seconds} s × {per_window} requests/window: {} lines, {:.1} KiB/line, \
         merged {merged} seconds in {:.3} s = {:.0} µs per line; one core keeps up with {:.0} \
         worker-lines/s ({:.0} workers at one line per second)",
        lines.len(),
        bytes as f64 / lines.len() as f64 / 1024.0,
        took.as_secs_f64(),
        per_line * 1e6,
        1.0 / per_line,
        1.0 / per_line
    );
    Ok(())
}
