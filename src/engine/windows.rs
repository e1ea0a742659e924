//! Load windows as they arrive: kept for phase summaries, turned into the per-second series,
//! and watched by the abort guards.

use std::collections::BTreeMap;

use crate::checks::http::{HttpStats, measure};
use crate::load::{Stats, Window};
use crate::scenario::Parsed;
use crate::scenario::expr::{self, Expr, LatencyKind, StatusSel};
use crate::scenario::parsed::HttpFormula;

/// A merged span of load statistics and its length.
#[derive(Debug, Clone)]
pub struct Span {
    pub stats: Stats,
    pub seconds: f64,
}

impl HttpStats for Span {
    fn requests(&self) -> u64 {
        self.stats.requests
    }

    fn count(&self, selector: StatusSel) -> u64 {
        match selector {
            StatusSel::Code(code) => self.stats.status_count(code),
            StatusSel::Class(class) => self.stats.class_count(u16::from(class)),
            StatusSel::Errors => self.stats.error_count(),
            StatusSel::Failed => self.stats.failed_count(),
        }
    }

    fn quantile_s(&self, quantile: f64, kind: LatencyKind) -> Option<f64> {
        let kind = match kind {
            LatencyKind::Corrected => crate::load::LatencyKind::Corrected,
            LatencyKind::Service => crate::load::LatencyKind::Service,
        };
        self.stats.quantile_ms(quantile, kind).map(|ms| ms / 1000.0)
    }

    fn dropped(&self) -> u64 {
        self.stats.dropped
    }

    fn seconds(&self) -> f64 {
        self.seconds
    }
}

/// Every window of the run, by second. A drill lasts minutes, so keeping them is cheap; the
/// load engine itself keeps none.
#[derive(Debug, Default)]
pub struct WindowStore {
    windows: BTreeMap<u64, Stats>,
    /// Seconds of cluster load missing a worker's window: (reported, workers).
    partial: BTreeMap<u64, (u32, u32)>,
}

impl WindowStore {
    /// Records that `second` holds the windows of only `reported` of `workers` workers.
    pub fn mark_partial(&mut self, second: u64, reported: u32, workers: u32) {
        self.partial.insert(second, (reported, workers));
    }

    /// The partial seconds `holds` selects, with their (reported, workers).
    pub fn partial_in(&self, holds: impl Fn(u64) -> bool) -> Vec<(u64, (u32, u32))> {
        self.partial
            .iter()
            .filter(|(second, _)| holds(**second))
            .map(|(second, counts)| (*second, *counts))
            .collect()
    }

    pub fn insert(&mut self, window: Window) {
        match self.windows.get_mut(&window.second) {
            Some(existing) => existing.merge(&window.stats),
            None => {
                self.windows.insert(window.second, window.stats);
            }
        }
    }

    /// Merged statistics of the windows `holds` selects; `None` when it selects no window
    /// with traffic.
    pub fn span(&self, holds: impl Fn(u64) -> bool) -> Option<Span> {
        let mut merged: Option<Stats> = None;
        let mut seconds = 0.0;
        for (second, stats) in &self.windows {
            if !holds(*second) {
                continue;
            }
            seconds += 1.0;
            match merged.as_mut() {
                Some(m) => m.merge(stats),
                None => merged = Some(stats.clone()),
            }
        }
        merged
            .filter(|m| m.requests > 0 || m.dropped > 0)
            .map(|stats| Span { stats, seconds })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Stats)> {
        self.windows.iter()
    }
}

/// An abort guard: trips when its expression holds for `needed` consecutive windows.
#[derive(Debug)]
pub struct GuardState {
    /// The guard's name in the report (its expression unless it was named).
    pub label: String,
    pub expr: Expr,
    pub needed: u32,
    pub streak: u32,
}

impl GuardState {
    /// A condition that does not parse is an error: a guard never silently disappears.
    pub fn new(
        label: &str,
        http: &Parsed<HttpFormula>,
        for_: std::time::Duration,
    ) -> Result<Self, expr::ExprError> {
        let expr = http.get().map_err(expr::ExprError::clone)?.clone();
        let needed = u32::try_from(for_.as_secs().max(1)).unwrap_or(u32::MAX);
        Ok(Self {
            label: label.to_string(),
            expr,
            needed,
            streak: 0,
        })
    }

    /// Feeds one window; returns a description when the guard trips.
    pub fn observe(&mut self, stats: &Stats) -> Option<String> {
        let span = Span {
            stats: stats.clone(),
            seconds: 1.0,
        };
        let threshold = match self.expr.threshold {
            expr::Threshold::Value(v) => v,
            expr::Threshold::Baseline { .. } => return None,
        };
        let value = measure(self.expr.metric, &span).ok();
        let holds = value.is_some_and(|v| self.expr.cmp.holds(v, threshold));
        self.streak = if holds { self.streak + 1 } else { 0 };
        (self.streak >= self.needed).then(|| {
            format!(
                "abort guard `{}` ({}) held for {} consecutive second(s); last second: {}",
                self.label,
                self.expr,
                self.streak,
                value.map_or_else(|| "-".into(), |v| expr::format_value(self.expr.metric, v))
            )
        })
    }
}

/// Above this share of failed requests (non-2xx or no answer) a baseline is no steady state:
/// a fault injected then could not be told apart from what was already broken.
pub const STEADY_STATE_MAX_FAILED: f64 = 0.5;

/// Why `baseline` is no steady state to inject a fault into (Chaos Toolkit's rule: verify the
/// steady state before the method); `None` when it is one.
pub fn unsteady(baseline: &Stats) -> Option<String> {
    let ok = baseline.class_count(2);
    let failed = baseline.failed_count();
    let sent = baseline.requests;
    let why = if ok == 0 {
        format!("no baseline request succeeded ({sent} sent, {failed} failed")
    } else if failed as f64 > STEADY_STATE_MAX_FAILED * sent as f64 {
        format!(
            "{failed} of {sent} baseline requests failed (more than {:.0}%",
            STEADY_STATE_MAX_FAILED * 100.0
        )
    } else {
        return None;
    };
    let mut causes: Vec<String> = baseline
        .errors
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("{n} {}", kind.as_str()))
        .chain(
            baseline
                .statuses
                .iter()
                .filter(|(code, n)| **code / 100 != 2 && **n > 0)
                .map(|(code, n)| format!("{n} x {code}")),
        )
        .collect();
    if baseline.dropped > 0 {
        causes.push(format!("{} dropped", baseline.dropped));
    }
    Some(if causes.is_empty() {
        format!("{why})")
    } else {
        format!("{why}: {})", causes.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// It used to be `parse_http(..).ok()?`: an unparsable condition left the drill unguarded.
    #[test]
    fn an_http_guard_that_does_not_parse_is_an_error_not_a_missing_guard() {
        let guard = GuardState::new(
            "g",
            &Parsed::new("rate(5xx) >>> 50%"),
            std::time::Duration::ZERO,
        );
        assert!(guard.is_err());
        assert!(
            GuardState::new(
                "g",
                &Parsed::new("rate(5xx) > 50%"),
                std::time::Duration::ZERO
            )
            .is_ok()
        );
    }
    use crate::load::ErrorKind;

    fn stats(ok: u64, refused: u64, status_503: u64) -> Stats {
        let mut s = Stats {
            requests: ok + refused + status_503,
            ..Stats::default()
        };
        s.statuses.insert(200, ok);
        s.statuses.insert(503, status_503);
        s.errors.insert(ErrorKind::ConnectRefused, refused);
        s
    }

    #[test]
    fn a_baseline_without_a_success_or_mostly_failed_is_unsteady() {
        let none = unsteady(&stats(0, 26, 0)).expect("no success is unsteady");
        assert!(none.contains("no baseline request succeeded"), "{none}");
        assert!(none.contains("26 connect_refused"), "{none}");
        let most = unsteady(&stats(4, 3, 3)).expect("60% failed is unsteady");
        assert!(most.contains("6 of 10"), "{most}");
        assert!(most.contains("3 x 503"), "{most}");
        assert!(unsteady(&Stats::default()).is_some(), "nothing answered");
    }

    #[test]
    fn a_baseline_with_at_most_half_failed_is_steady() {
        assert_eq!(unsteady(&stats(5, 5, 0)), None);
        assert_eq!(unsteady(&stats(100, 0, 1)), None);
    }
}
