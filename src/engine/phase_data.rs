//! The phases of one finished run as the judge and the end-of-run gathering both read them:
//! resolved from what happened, with the load measured in each. Below both, so neither names
//! the other.

use super::drill::Observed;
use super::phases::{self, PhaseWindow, Unresolved};
use super::windows::Span;
use crate::checks::alerts::FireExpectation;
use crate::scenario::{AlertsCheck, Check, Scenario};

/// Phases as resolved for this run, with the load measured in each.
#[derive(Debug)]
pub struct JudgedPhases {
    pub windows: Vec<PhaseWindow>,
    pub unresolved: Vec<Unresolved>,
}

impl JudgedPhases {
    pub fn resolve(scenario: &Scenario, observed: &Observed) -> Self {
        let (windows, unresolved) = phases::resolve(scenario, &observed.marks);
        Self {
            windows,
            unresolved,
        }
    }

    /// What an `alerts` check's `fire` is judged against, with Prometheus read until
    /// `read_until_s`; `None` without `fire` or when its phase did not happen.
    pub fn fire_expectation<'a>(
        &self,
        check: &Check,
        a: &'a AlertsCheck,
        observed: &Observed,
        read_until_s: f64,
    ) -> Option<FireExpectation<'a>> {
        let within = a.within.filter(|_| !a.fire.is_empty())?;
        let phase = phase_of(check);
        let window = self.get(phase)?;
        let marks = &observed.marks;
        let after = match &a.after {
            Some(b) => phases::boundary(&b.value, marks).map(|t| (t, b.value.clone())),
            None => Ok((window.start_s, format!("the start of phase {phase}"))),
        };
        let resolve = a.resolve_within.map(|r| {
            let from = a
                .resolve_after
                .as_ref()
                .map_or("recovered", |b| b.value.as_str());
            let at = phases::boundary(from, marks).map(|t| (t, from.to_string()));
            (at, r.0.as_secs_f64())
        });
        Some(FireExpectation {
            names: a.fire.iter().map(|n| n.value.as_str()).collect(),
            after,
            within_s: within.0.as_secs_f64(),
            resolve,
            read_until_s,
        })
    }

    pub fn get(&self, name: &str) -> Option<&PhaseWindow> {
        self.windows.iter().find(|w| w.name == name)
    }

    pub fn span(&self, name: &str, observed: &Observed) -> Option<Span> {
        let window = self.get(name)?;
        observed.windows.span(|second| window.holds_window(second))
    }

    /// Seconds of phase `name` missing a cluster load worker's window, in words; `None` when
    /// every second of the phase is complete.
    pub fn missing_worker_data(&self, name: &str, observed: &Observed) -> Option<String> {
        let window = self.get(name)?;
        let partial = observed
            .windows
            .partial_in(|second| window.holds_window(second));
        let (first, _) = partial.first()?;
        let (last, _) = partial.last()?;
        let lost: u32 = partial.iter().map(|(_, (got, of))| of - got).sum();
        Some(format!(
            "{} second(s) of phase `{name}` (t+{first}s..t+{}s) lack {lost} load worker window(s): \
             requests that may have failed were not seen",
            partial.len(),
            last + 1
        ))
    }

    pub fn why_missing(&self, name: &str) -> String {
        self.unresolved.iter().find(|u| u.name == name).map_or_else(
            || format!("phase `{name}` did not happen"),
            |u| format!("phase `{name}` did not happen: {}", u.why),
        )
    }
}

/// The phase a check looks at: its `phase:`, else the whole run.
pub fn phase_of(check: &Check) -> &str {
    check
        .phase
        .as_ref()
        .map_or(crate::scenario::validate::WHOLE_RUN, |p| p.value.as_str())
}
