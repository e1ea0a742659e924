//! Abort guards on the target's pods (`not_ready`, `restarts`): evaluated every second on what
//! the target's observer sees, tripped when their condition held continuously for `for`.

use std::time::Duration;

use tokio::time::Instant;

use crate::scenario::describe::describe_guard;
use crate::scenario::parsed::NotAShare;
use crate::scenario::{Guard, Sp};
use crate::targets::observe::PodHealth;
use crate::units::LabelSelector;

#[derive(Debug, Clone)]
enum Condition {
    NotReady { threshold: f64 },
    Restarts { above: u32, crash_loop: bool },
}

/// One pod guard and since when its condition has held.
#[derive(Debug, Clone)]
pub struct PodGuardState {
    pub source: String,
    pub selector: LabelSelector,
    condition: Condition,
    needed: Duration,
    since: Option<Instant>,
}

/// A `not_ready` guard whose share does not parse: it refuses the drill, never disappears.
#[derive(Debug, thiserror::Error)]
#[error("abort guard `{label}`: {source}")]
pub struct PodGuardError {
    pub label: String,
    #[source]
    pub source: NotAShare,
}

/// Every pod guard of the scenario, prepared before the drill starts.
pub fn prepare(guards: &[Sp<Guard>]) -> Result<Vec<PodGuardState>, PodGuardError> {
    guards
        .iter()
        .filter_map(|g| PodGuardState::new(&g.value).transpose())
        .collect()
}

impl PodGuardState {
    /// The pod guard of `guard`; `None` for other guards.
    pub fn new(guard: &Guard) -> Result<Option<Self>, PodGuardError> {
        let (selector, condition) = if let Some(n) = &guard.not_ready {
            let threshold = *n.above.get().map_err(|e| PodGuardError {
                label: guard.label(),
                source: e.clone(),
            })?;
            (n.selector.value.clone(), Condition::NotReady { threshold })
        } else if let Some(r) = &guard.restarts {
            (
                r.selector.value.clone(),
                Condition::Restarts {
                    above: r.above,
                    crash_loop: r.crash_loop,
                },
            )
        } else {
            return Ok(None);
        };
        Ok(Some(Self {
            source: describe_guard(guard),
            selector,
            condition,
            needed: guard.for_.0,
            since: None,
        }))
    }

    /// What holds in `health`, in words, or `None` when the condition does not hold.
    fn holding(&self, health: &PodHealth) -> Option<String> {
        match self.condition {
            Condition::NotReady { threshold } => {
                let share = f64::from(health.not_ready) / f64::from(health.pods.max(1));
                (health.pods > 0 && share > threshold).then(|| {
                    format!(
                        "{} of {} pod(s) NotReady ({:.0}%)",
                        health.not_ready,
                        health.pods,
                        share * 100.0
                    )
                })
            }
            Condition::Restarts { above, crash_loop } => {
                let looping = crash_loop && !health.crash_looping.is_empty();
                (health.restarts > above || looping).then(|| {
                    let mut what =
                        format!("{} restart(s) since the drill started", health.restarts);
                    if looping {
                        what.push_str(&format!(
                            ", CrashLoopBackOff: {}",
                            health.crash_looping.join(", ")
                        ));
                    }
                    what
                })
            }
        }
    }

    /// Feeds one reading taken at `now`; returns why the guard trips, with its values and
    /// times relative to `t0`, once the condition held continuously for `for`.
    pub fn observe(&mut self, health: &PodHealth, now: Instant, t0: Instant) -> Option<String> {
        let Some(values) = self.holding(health) else {
            self.since = None;
            return None;
        };
        let since = *self.since.get_or_insert(now);
        let held = now.saturating_duration_since(since);
        (held >= self.needed).then(|| {
            format!(
                "abort guard `{}` tripped at t+{:.1}s: {values} (held since t+{:.1}s)",
                self.source,
                now.saturating_duration_since(t0).as_secs_f64(),
                since.saturating_duration_since(t0).as_secs_f64()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{NotReadyGuard, RestartsGuard, Sp};
    use crate::units::HumanDuration;

    fn guard(not_ready: Option<&str>, restarts: Option<u32>, for_secs: u64) -> Guard {
        Guard {
            http: None,
            name: None,
            prometheus: None,
            for_: HumanDuration::from_secs(for_secs),
            not_ready: not_ready.map(|above| NotReadyGuard {
                selector: Sp::unplaced("app=proxy".parse().unwrap()),
                above: Sp::unplaced(above.into()),
            }),
            restarts: restarts.map(|above| RestartsGuard {
                selector: Sp::unplaced("app=proxy".parse().unwrap()),
                above,
                crash_loop: true,
            }),
        }
    }

    fn health(pods: u32, not_ready: u32, restarts: u32, looping: &[&str]) -> PodHealth {
        PodHealth {
            pods,
            not_ready,
            restarts,
            crash_looping: looping.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn not_ready_trips_only_after_holding_continuously_for_its_duration() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut g = PodGuardState::new(&guard(Some("50%"), None, 2))
            .unwrap()
            .unwrap();
        assert!(g.observe(&health(2, 2, 0, &[]), at(1), t0).is_none());
        // Back to healthy: the streak starts over.
        assert!(g.observe(&health(2, 0, 0, &[]), at(2), t0).is_none());
        assert!(g.observe(&health(2, 2, 0, &[]), at(3), t0).is_none());
        assert!(g.observe(&health(2, 2, 0, &[]), at(4), t0).is_none());
        let why = g.observe(&health(2, 2, 0, &[]), at(5), t0).unwrap();
        assert!(why.contains("2 of 2 pod(s) NotReady (100%)"), "{why}");
        assert!(
            why.contains("t+5.0s") && why.contains("since t+3.0s"),
            "{why}"
        );
    }

    #[test]
    fn not_ready_at_exactly_the_share_or_with_no_pods_does_not_hold() {
        let t0 = Instant::now();
        let mut g = PodGuardState::new(&guard(Some("50%"), None, 0))
            .unwrap()
            .unwrap();
        assert!(g.observe(&health(2, 1, 0, &[]), t0, t0).is_none());
        assert!(g.observe(&health(0, 0, 0, &[]), t0, t0).is_none());
        assert!(g.observe(&health(3, 2, 0, &[]), t0, t0).is_some());
    }

    #[test]
    fn restarts_trip_above_the_count_or_on_a_crash_loop() {
        let t0 = Instant::now();
        let mut g = PodGuardState::new(&guard(None, Some(2), 0))
            .unwrap()
            .unwrap();
        assert!(g.observe(&health(1, 0, 2, &[]), t0, t0).is_none());
        assert!(g.observe(&health(1, 0, 3, &[]), t0, t0).is_some());
        let why = g
            .observe(&health(1, 0, 0, &["proxy-1/proxy"]), t0, t0)
            .unwrap();
        assert!(why.contains("CrashLoopBackOff: proxy-1/proxy"), "{why}");
    }
}
