//! Prometheus during a drill: sampled checks run on their interval from time zero, and
//! `prometheus` abort guards are sampled on their interval and trip once their condition has
//! held without a break for their `for:`. End-of-run samples are taken by `engine::gather`.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checks::prometheus::{ConditionError, Sample, condition, sample};
use crate::scenario::expr::{self, Expr};
use crate::scenario::{CheckKind, PrometheusCheck, PrometheusGuard, Scenario};

pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the sampling of every check with an `interval`; the handle yields samples by check.
pub fn spawn_sampled(
    scenario: &Scenario,
    t0: Instant,
    stop: CancellationToken,
) -> JoinHandle<BTreeMap<String, Vec<Sample>>> {
    let sampled: Vec<(String, PrometheusCheck, Duration)> = scenario
        .checks
        .iter()
        .filter_map(|c| match &c.value.kind {
            CheckKind::Prometheus(p) => p
                .interval
                .map(|i| (c.value.name.value.clone(), p.clone(), i.0)),
            _ => None,
        })
        .collect();
    tokio::spawn(async move {
        let tasks: Vec<_> = sampled
            .into_iter()
            .map(|(name, check, interval)| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    for i in 1..=check.count {
                        tokio::select! {
                            _ = tokio::time::sleep_until(t0 + interval * i) => {}
                            _ = stop.cancelled() => break,
                        }
                        samples.push(
                            sample(
                                &check.url,
                                &check.query.value,
                                &check.headers,
                                QUERY_TIMEOUT,
                            )
                            .await,
                        );
                    }
                    (name, samples)
                })
            })
            .collect();
        let mut all = BTreeMap::new();
        for task in tasks {
            if let Ok((name, samples)) = task.await {
                all.insert(name, samples);
            }
        }
        all
    })
}

/// Whether a guard's condition has held, without a break, for long enough.
#[derive(Debug, Clone)]
pub struct Streak {
    needed: Duration,
    since: Option<Duration>,
}

impl Streak {
    pub fn new(needed: Duration) -> Self {
        Self {
            needed,
            since: None,
        }
    }

    /// Feeds one observation at `at` (time since t0); true once the condition has held from
    /// the first observation of the current streak for at least `needed`.
    pub fn observe(&mut self, holds: bool, at: Duration) -> bool {
        if !holds {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(at);
        at.saturating_sub(since) >= self.needed
    }

    /// When the current streak began.
    pub fn since(&self) -> Option<Duration> {
        self.since
    }
}

/// Whether a guard's condition holds on one sample. No number (NaN, ±Inf, no series, a query
/// error) never holds: an abort needs evidence, and a gap in it breaks the streak.
pub fn guard_holds(condition: &Expr, sample: &Sample) -> bool {
    match (sample, condition.threshold) {
        (Ok(v), expr::Threshold::Value(t)) if v.is_finite() => condition.cmp.holds(*v, t),
        _ => false,
    }
}

/// A prometheus guard that tripped.
#[derive(Debug, Clone)]
pub struct GuardTrip {
    /// Why the drill aborts, naming the guard, its value and its streak.
    pub reason: String,
    pub at: Instant,
}

/// A `prometheus` abort guard that cannot be watched. The drill refuses to start: a guard
/// that silently stopped watching would let the faults run unguarded.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("abort guard `{label}`: {source}")]
    Condition {
        label: String,
        #[source]
        source: ConditionError,
    },
    #[error("abort guard `{label}`: {source}")]
    Http {
        label: String,
        #[source]
        source: expr::ExprError,
    },
}

/// One `prometheus` abort guard, ready to watch.
#[derive(Debug)]
pub struct Watched {
    label: String,
    guard: PrometheusGuard,
    condition: Expr,
    needed: Duration,
}

/// Every `prometheus` abort guard of the scenario, prepared once before the drill starts.
pub fn prepare_guards(scenario: &Scenario) -> Result<Vec<Watched>, GuardError> {
    scenario
        .abort_when
        .iter()
        .filter_map(|g| Some((g.value.label(), g.value.for_.0, g.value.prometheus.clone()?)))
        .map(|(label, needed, guard)| {
            let condition = match condition(&guard.condition) {
                Ok(condition) => condition.clone(),
                Err(source) => return Err(GuardError::Condition { label, source }),
            };
            Ok(Watched {
                label,
                guard,
                condition,
                needed,
            })
        })
        .collect()
}

/// Samples every prepared guard from time zero until `stop`; `trip` is called once for each
/// guard that trips (after which that guard stops sampling).
pub fn spawn_guards(
    guards: Vec<Watched>,
    t0: Instant,
    stop: &CancellationToken,
    trip: impl Fn(GuardTrip) + Clone + Send + 'static,
) -> Vec<JoinHandle<()>> {
    guards
        .into_iter()
        .map(|watched| {
            let (stop, trip) = (stop.clone(), trip.clone());
            tokio::spawn(async move { watched.watch(t0, &stop, trip).await })
        })
        .collect()
}

impl Watched {
    async fn watch(&self, t0: Instant, stop: &CancellationToken, trip: impl Fn(GuardTrip)) {
        let guard = &self.guard;
        let mut streak = Streak::new(self.needed);
        for i in 1u32.. {
            tokio::select! {
                _ = tokio::time::sleep_until(t0 + guard.interval.0 * i) => {}
                _ = stop.cancelled() => return,
            }
            let value = sample(
                &guard.url,
                &guard.query.value,
                &guard.headers,
                QUERY_TIMEOUT,
            )
            .await;
            let at = Instant::now();
            let since_t0 = at.saturating_duration_since(t0);
            if streak.observe(guard_holds(&self.condition, &value), since_t0) {
                let first = streak.since().unwrap_or(since_t0);
                let shown = value.map_or_else(|e| e.to_string(), crate::units::four_significant);
                trip(GuardTrip {
                    reason: format!(
                        "abort guard `{}` tripped at t+{:.1}s: result {shown} ({}), held since t+{:.1}s (for: {})",
                        self.label,
                        since_t0.as_secs_f64(),
                        guard.condition.value,
                        first.as_secs_f64(),
                        crate::units::HumanDuration(self.needed)
                    ),
                    at,
                });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::prometheus::SampleError;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_streak_trips_only_after_holding_for_its_duration() {
        let mut s = Streak::new(S(20));
        assert!(!s.observe(true, S(10)));
        assert!(!s.observe(true, S(20)));
        assert!(!s.observe(false, S(30)), "a break resets the streak");
        assert!(!s.observe(true, S(40)));
        assert!(!s.observe(true, S(50)));
        assert!(s.observe(true, S(60)), "held from 40s to 60s");
        assert_eq!(s.since(), Some(S(40)));
    }

    #[test]
    fn for_zero_trips_on_the_first_sample_that_holds() {
        let mut s = Streak::new(Duration::ZERO);
        assert!(!s.observe(false, S(1)));
        assert!(s.observe(true, S(2)));
    }

    #[test]
    fn a_guard_that_cannot_be_watched_refuses_the_drill() {
        let guarded = |condition: &str, url: &str| {
            let source = format!(
                "apiVersion: drillbook/v1\nname: g\ntarget:\n  local:\n    processes:\n      \
                 - name: svc\n        command: [\"true\"]\nsteps:\n  - wait: 1s\nabort_when:\n  \
                 - prometheus: {{url: \"{url}\", query: up, condition: \"{condition}\"}}\n    for: 0s\n"
            );
            match crate::scenario::parse_str(&source) {
                Ok(scenario) => prepare_guards(&scenario),
                Err(diagnostics) => panic!("the fixture does not parse: {diagnostics:?}"),
            }
        };
        let ok = guarded("result > 0.1", "http://127.0.0.1:9");
        assert!(matches!(ok.as_deref(), Ok([_])), "{ok:?}");
        let bad = guarded("result >", "http://127.0.0.1:9");
        assert!(matches!(bad, Err(GuardError::Condition { .. })), "{bad:?}");
    }

    #[test]
    fn no_number_never_holds() {
        let above = expr::parse_condition("result > 0.1").expect("condition");
        assert!(guard_holds(&above, &Ok(0.5)));
        assert!(!guard_holds(&above, &Ok(0.05)));
        assert!(!guard_holds(&above, &Ok(f64::NAN)));
        assert!(!guard_holds(&above, &Ok(f64::INFINITY)));
        assert!(!guard_holds(&above, &Err(SampleError::Empty)));
        assert!(!guard_holds(
            &above,
            &Err(SampleError::Query("down".into()))
        ));
    }
}
