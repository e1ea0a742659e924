//! Hand-written Prometheus text exposition (format 0.0.4) for the lab processes: labelled
//! counters, a fixed-bucket histogram and a writer that renders `# HELP`/`# TYPE` and samples.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Content type Prometheus expects for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A counter family keyed by label values (in the order of the family's label names).
#[derive(Debug)]
pub struct CounterVec {
    label_names: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl CounterVec {
    /// An empty family with these label names.
    pub fn new(label_names: &'static [&'static str]) -> Self {
        Self {
            label_names,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds one to the series with `label_values` (created at 0 first if new).
    pub fn inc(&self, label_values: &[&str]) {
        *self.lock().entry(owned(label_values)).or_insert(0) += 1;
    }

    /// Creates the series at 0 if missing, so `increase()` sees its first increment.
    pub fn touch(&self, label_values: &[&str]) {
        self.lock().entry(owned(label_values)).or_insert(0);
    }

    /// Current value of one series (0 if it does not exist).
    pub fn get(&self, label_values: &[&str]) -> u64 {
        self.lock().get(&owned(label_values)).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<String>, u64>> {
        // A panic while holding this lock cannot leave a counter half-updated: keep serving.
        self.values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn owned(label_values: &[&str]) -> Vec<String> {
    label_values
        .iter()
        .map(|value| (*value).to_owned())
        .collect()
}

/// A histogram with fixed upper bounds, in seconds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    state: Mutex<HistogramState>,
}

#[derive(Debug, Default)]
struct HistogramState {
    /// Non-cumulative count per bucket; the last slot is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
}

/// Request-duration buckets from 0.5 ms (the in-process upstream) to 5 s (a stuck request).
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

impl Histogram {
    /// An empty histogram with these (ascending) upper bounds.
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            state: Mutex::new(HistogramState {
                counts: vec![0; bounds.len() + 1],
                sum: 0.0,
            }),
        }
    }

    /// Records one observation.
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let slot = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.counts[slot] += 1;
        state.sum += seconds;
    }
}

/// Builds one exposition document.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self, name: &str, kind: &str, help: &str) {
        // Writing into a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (index, (label, label_value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape(label_value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// A gauge with a single unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, "gauge", help);
        self.sample(name, &[], value);
    }

    /// A counter with a single unlabelled sample.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, "counter", help);
        self.sample(name, &[], value);
    }

    /// `process_cpu_seconds_total` as Prometheus client libraries export it (user + system time
    /// of this process), so drills can gate a component's CPU by PromQL.
    pub fn process_cpu(&mut self) {
        let name = "process_cpu_seconds_total";
        self.header(
            name,
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        self.sample(name, &[], process_cpu_seconds());
    }

    /// Every series of a counter family.
    pub fn counter_vec(&mut self, name: &str, help: &str, family: &CounterVec) {
        self.header(name, "counter", help);
        for (label_values, value) in family.lock().iter() {
            let labels: Vec<(&str, &str)> = family
                .label_names
                .iter()
                .copied()
                .zip(label_values.iter().map(String::as_str))
                .collect();
            self.sample(name, &labels, value);
        }
    }

    /// A histogram: cumulative `_bucket{le=...}` series, `_sum` and `_count`.
    pub fn histogram(&mut self, name: &str, help: &str, histogram: &Histogram) {
        self.header(name, "histogram", help);
        let state = histogram
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, count) in histogram.bounds.iter().zip(&state.counts) {
            cumulative += count;
            self.sample(&bucket, &[("le", &bound.to_string())], cumulative);
        }
        let total: u64 = state.counts.iter().sum();
        self.sample(&bucket, &[("le", "+Inf")], total);
        self.sample(&format!("{name}_sum"), &[], state.sum);
        self.sample(&format!("{name}_count"), &[], total);
    }

    /// The finished document.
    pub fn finish(self) -> String {
        self.text
    }
}

/// Label-value escaping of the text format: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// User + system CPU seconds of this process so far (0 if the kernel will not say).
fn process_cpu_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |usage| {
        let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        seconds(usage.user_time()) + seconds(usage.system_time())
    })
}

/// Seconds since the Unix epoch, for `*_start_time_seconds` gauges.
pub fn unix_now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let histogram = Histogram::new(&[0.1, 1.0]);
        histogram.observe(Duration::from_millis(50));
        histogram.observe(Duration::from_millis(500));
        histogram.observe(Duration::from_secs(3));
        let mut exposition = Exposition::new();
        exposition.histogram("lat_seconds", "Latency.", &histogram);
        let text = exposition.finish();
        assert!(text.contains("# TYPE lat_seconds histogram\n"));
        assert!(text.contains("lat_seconds_bucket{le=\"0.1\"} 1\n"));
        assert!(text.contains("lat_seconds_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("lat_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("lat_seconds_sum 3.55\n"));
        assert!(text.contains("lat_seconds_count 3\n"));
    }

    #[test]
    fn counter_vec_renders_labels_in_declared_order_and_escapes_values() {
        let family = CounterVec::new(&["mode", "reason"]);
        family.touch(&["legacy", "unknown_token"]);
        family.inc(&["stateless", "bad \"sig\""]);
        family.inc(&["stateless", "bad \"sig\""]);
        assert_eq!(family.get(&["stateless", "bad \"sig\""]), 2);
        let mut exposition = Exposition::new();
        exposition.counter_vec("failures_total", "Failures.", &family);
        let text = exposition.finish();
        assert!(text.contains("failures_total{mode=\"legacy\",reason=\"unknown_token\"} 0\n"));
        assert!(text.contains("failures_total{mode=\"stateless\",reason=\"bad \\\"sig\\\"\"} 2\n"));
    }
}
