//! Rate profiles and the open-model schedule: the intended send time of request *i*.

use std::time::Duration;

/// How fast requests are sent.
#[derive(Debug, Clone, PartialEq)]
pub enum RateProfile {
    /// A constant rate for a duration.
    Constant {
        /// Requests per second.
        per_second: f64,
        /// Length of the load.
        duration: Duration,
    },
    /// Linear ramps, k6-style: each stage goes from the previous stage's target (0 before the
    /// first) to its own target over its duration. A stage with the same target holds.
    Stages(Vec<Stage>),
    /// Closed loop: every connection sends its next request as soon as the previous one is done.
    /// No schedule, so no lag, drops or saturation; for benchmarks.
    Max {
        /// Length of the load.
        duration: Duration,
    },
}

/// One stage of a [`RateProfile::Stages`] profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// How long the ramp takes.
    pub duration: Duration,
    /// The rate reached at the end of the stage, requests per second.
    pub target_per_second: f64,
}

impl RateProfile {
    /// Total length of the load.
    pub fn duration(&self) -> Duration {
        match self {
            RateProfile::Constant { duration, .. } | RateProfile::Max { duration } => *duration,
            RateProfile::Stages(stages) => stages.iter().map(|s| s.duration).sum(),
        }
    }

    /// Checks that rates are finite and non-negative; the message is shown to users.
    pub fn validate(&self) -> Result<(), String> {
        let check = |rate: f64| {
            if rate.is_finite() && rate >= 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "rate {rate}/s must be a finite number, zero or more"
                ))
            }
        };
        match self {
            RateProfile::Constant { per_second, .. } => check(*per_second),
            RateProfile::Stages(stages) if stages.is_empty() => {
                Err("a stage profile needs at least one stage".to_string())
            }
            RateProfile::Stages(stages) => stages
                .iter()
                .try_for_each(|stage| check(stage.target_per_second)),
            RateProfile::Max { .. } => Ok(()),
        }
    }

    /// The schedule of intended send times; `None` for the closed-loop `Max` profile.
    pub(crate) fn schedule(&self) -> Option<Schedule> {
        match self {
            RateProfile::Constant {
                per_second,
                duration,
            } => Some(Schedule::from_segments(&[(
                *duration,
                *per_second,
                *per_second,
            )])),
            RateProfile::Stages(stages) => {
                let mut previous = 0.0;
                let segments: Vec<_> = stages
                    .iter()
                    .map(|stage| {
                        let segment = (stage.duration, previous, stage.target_per_second);
                        previous = stage.target_per_second;
                        segment
                    })
                    .collect();
                Some(Schedule::from_segments(&segments))
            }
            RateProfile::Max { .. } => None,
        }
    }
}

/// A piece of the schedule where the rate moves linearly from `start_rate` to `end_rate`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start_s: f64,
    duration_s: f64,
    start_rate: f64,
    end_rate: f64,
    /// Requests scheduled before the segment starts (fractional).
    count_before: f64,
}

impl Segment {
    fn count(&self) -> f64 {
        (self.start_rate + self.end_rate) / 2.0 * self.duration_s
    }

    /// Seconds into the segment at which the cumulative count reaches `n` (relative to the
    /// segment start). Solves `a·τ² + b·τ = n` with `a = (r1 − r0) / 2d`, `b = r0`, in the
    /// form `2n / (b + √(b² + 4an))`, which is stable for ramps up, down and flat.
    fn time_of(&self, n: f64) -> f64 {
        if n <= 0.0 {
            return 0.0;
        }
        let a = (self.end_rate - self.start_rate) / (2.0 * self.duration_s);
        let b = self.start_rate;
        let root = (b * b + 4.0 * a * n).max(0.0).sqrt();
        (2.0 * n / (b + root)).min(self.duration_s)
    }
}

/// Intended send times of an open-model run: request `i` is due when the integral of the rate
/// reaches `i`, so the first request is due at 0.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    segments: Vec<Segment>,
    total: u64,
}

impl Schedule {
    /// Segments as `(duration, start rate, end rate)`.
    fn from_segments(parts: &[(Duration, f64, f64)]) -> Self {
        let mut segments = Vec::with_capacity(parts.len());
        let (mut start_s, mut count) = (0.0, 0.0);
        for &(duration, start_rate, end_rate) in parts {
            let segment = Segment {
                start_s,
                duration_s: duration.as_secs_f64(),
                start_rate,
                end_rate,
                count_before: count,
            };
            start_s += segment.duration_s;
            if segment.duration_s > 0.0 {
                count += segment.count();
                segments.push(segment);
            }
        }
        // Requests due strictly before the end; the epsilon absorbs float error so that
        // 200/s for 3 s is exactly 600 requests.
        let total = (count - 1e-9).ceil().max(0.0) as u64;
        Self { segments, total }
    }

    /// Number of requests in the schedule.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Intended send time of request `i`, as an offset from the start of the load.
    pub(crate) fn offset(&self, i: u64) -> Duration {
        let n = i as f64;
        let index = self
            .segments
            .partition_point(|s| s.count_before + s.count() <= n)
            .min(self.segments.len().saturating_sub(1));
        let Some(segment) = self.segments.get(index) else {
            return Duration::ZERO;
        };
        let at = segment.start_s + segment.time_of(n - segment.count_before);
        Duration::from_secs_f64(at.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let schedule = RateProfile::Constant {
            per_second: 200.0,
            duration: secs(3.0),
        }
        .schedule()
        .unwrap_or_else(|| panic!("constant has a schedule"));
        assert_eq!(schedule.total(), 600);
        assert_eq!(schedule.offset(0), Duration::ZERO);
        assert_eq!(schedule.offset(1).as_micros(), 5_000);
        assert_eq!(schedule.offset(599).as_micros(), 2_995_000);
    }

    #[test]
    fn stages_ramp_linearly_and_hold() {
        let profile = RateProfile::Stages(vec![
            Stage {
                duration: secs(2.0),
                target_per_second: 100.0,
            },
            Stage {
                duration: secs(1.0),
                target_per_second: 100.0,
            },
            Stage {
                duration: secs(2.0),
                target_per_second: 0.0,
            },
        ]);
        assert_eq!(profile.duration(), secs(5.0));
        let schedule = profile
            .schedule()
            .unwrap_or_else(|| panic!("has a schedule"));
        // Ramp 0→100 over 2 s = 100, hold 1 s = 100, ramp down 2 s = 100.
        assert_eq!(schedule.total(), 300);
        // Half the ramp-up requests are due by √(0.5)·2 s.
        let t50 = schedule.offset(50).as_secs_f64();
        assert!((t50 - 2.0 * 0.5f64.sqrt()).abs() < 1e-6, "{t50}");
        assert!((schedule.offset(100).as_secs_f64() - 2.0).abs() < 1e-6);
        assert!((schedule.offset(150).as_secs_f64() - 2.5).abs() < 1e-6);
        let last = schedule.offset(299).as_secs_f64();
        assert!(last < 5.0 && last > 4.7, "{last}");
        // Intended times never go backwards.
        let mut previous = Duration::ZERO;
        for i in 0..schedule.total() {
            let t = schedule.offset(i);
            assert!(t >= previous, "request {i}");
            previous = t;
        }
    }

    #[test]
    fn zero_rate_and_instant_jumps() {
        let idle = RateProfile::Constant {
            per_second: 0.0,
            duration: secs(2.0),
        };
        assert_eq!(idle.schedule().map(|s| s.total()), Some(0));
        let jump = RateProfile::Stages(vec![
            Stage {
                duration: Duration::ZERO,
                target_per_second: 10.0,
            },
            Stage {
                duration: secs(1.0),
                target_per_second: 10.0,
            },
        ]);
        let schedule = jump.schedule().unwrap_or_else(|| panic!("has a schedule"));
        assert_eq!(schedule.total(), 10);
        assert!((schedule.offset(5).as_secs_f64() - 0.5).abs() < 1e-9);
        assert!(
            RateProfile::Constant {
                per_second: f64::NAN,
                duration: secs(1.0)
            }
            .validate()
            .is_err()
        );
    }
}
