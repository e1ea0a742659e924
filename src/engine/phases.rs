//! Phases: named windows of a drill, resolved after the run from what actually happened
//! (when the first fault hit, when the target was ready again, when steps ran).

use std::collections::BTreeMap;

use crate::scenario::{Scenario, validate::WHOLE_RUN};

/// Times observed during a run, in seconds from the start of the load.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    pub end_s: f64,
    /// Start of the first step that injects a fault.
    pub first_fault_s: Option<f64>,
    /// When the target was ready again after the first fault.
    pub recovered_s: Option<f64>,
    /// Start and end of every named step.
    pub steps: BTreeMap<String, (f64, Option<f64>)>,
}

/// A resolved phase. `start_s..end_s` is half-open; a phase that did not happen is absent.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseWindow {
    pub name: String,
    pub start_s: f64,
    pub end_s: f64,
}

impl PhaseWindow {
    /// Whether the 1-second load window starting at `second` belongs to this phase: a window
    /// belongs to the phase that holds its midpoint, so every window is in exactly one of a
    /// set of adjacent phases.
    pub fn holds_window(&self, second: u64) -> bool {
        let mid = second as f64 + 0.5;
        self.start_s <= mid && mid < self.end_s
    }
}

/// Why a phase could not be placed (shown in the report).
#[derive(Debug, Clone, PartialEq)]
pub struct Unresolved {
    pub name: String,
    pub why: String,
}

/// The value of one boundary expression, if it happened.
pub fn boundary(text: &str, marks: &Marks) -> Result<f64, String> {
    match text {
        "start" => Ok(0.0),
        "end" => Ok(marks.end_s),
        "first_fault" => marks
            .first_fault_s
            .ok_or_else(|| "no fault was injected".to_string()),
        "recovered" => marks
            .recovered_s
            .ok_or_else(|| "the target was never seen ready again after the fault".to_string()),
        _ => {
            if let Ok(d) = text.parse::<crate::units::HumanDuration>() {
                return Ok(d.0.as_secs_f64().min(marks.end_s));
            }
            let (step, at_end) = match text.strip_suffix(".end") {
                Some(s) => (s, true),
                None => (text, false),
            };
            match marks.steps.get(step) {
                Some((start, _)) if !at_end => Ok(*start),
                Some((_, Some(end))) => Ok(*end),
                Some((_, None)) => Err(format!("step `{step}` never finished")),
                None => Err(format!("step `{step}` did not run")),
            }
        }
    }
}

/// Resolves the scenario's phases (or the defaults: baseline, fault, recovery) plus `all`.
pub fn resolve(scenario: &Scenario, marks: &Marks) -> (Vec<PhaseWindow>, Vec<Unresolved>) {
    let specs: Vec<(String, String, String)> = match &scenario.phases {
        Some(phases) => phases
            .iter()
            .map(|p| {
                (
                    p.name.value.clone(),
                    p.from.value.clone(),
                    p.to.value.clone(),
                )
            })
            .collect(),
        None => vec![
            (
                "baseline".into(),
                "start".into(),
                if marks.first_fault_s.is_some() {
                    "first_fault"
                } else {
                    "end"
                }
                .into(),
            ),
            ("fault".into(), "first_fault".into(), "recovered".into()),
            ("recovery".into(), "recovered".into(), "end".into()),
        ],
    };
    let mut windows = vec![PhaseWindow {
        name: WHOLE_RUN.into(),
        start_s: 0.0,
        end_s: marks.end_s,
    }];
    let mut unresolved = Vec::new();
    for (name, from, to) in specs {
        match (boundary(&from, marks), boundary(&to, marks)) {
            (Ok(start_s), Ok(end_s)) if end_s > start_s => windows.push(PhaseWindow {
                name,
                start_s,
                end_s,
            }),
            (Ok(start_s), Ok(end_s)) => unresolved.push(Unresolved {
                name,
                why: format!(
                    "it is empty ({from} at {start_s:.1}s is not before {to} at {end_s:.1}s)"
                ),
            }),
            (Err(why), _) | (_, Err(why)) => unresolved.push(Unresolved { name, why }),
        }
    }
    (windows, unresolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(phases: &str) -> Scenario {
        let text = format!(
            "apiVersion: drillbook/v1\nname: t\ntarget:\n  local:\n    processes:\n      - {{name: p, command: [sleep, '1']}}\nsteps:\n  - {{at: 5s, name: flip, wait: 1s}}\n{phases}"
        );
        crate::scenario::parse_str(&text).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn default_phases_follow_the_fault_and_the_recovery() {
        let marks = Marks {
            end_s: 20.0,
            first_fault_s: Some(6.0),
            recovered_s: Some(7.5),
            ..Marks::default()
        };
        let (w, u) = resolve(&scenario(""), &marks);
        assert!(u.is_empty());
        let names: Vec<_> = w
            .iter()
            .map(|p| (p.name.as_str(), p.start_s, p.end_s))
            .collect();
        assert_eq!(
            names,
            [
                ("all", 0.0, 20.0),
                ("baseline", 0.0, 6.0),
                ("fault", 6.0, 7.5),
                ("recovery", 7.5, 20.0)
            ]
        );
        // Window 5 ([5,6)) is baseline, window 6 is fault, window 7 ([7,8), midpoint 7.5) is recovery.
        assert!(w[1].holds_window(5) && w[2].holds_window(6) && w[3].holds_window(7));
    }

    #[test]
    fn without_a_fault_the_fault_phases_are_absent_not_empty_passes() {
        let marks = Marks {
            end_s: 20.0,
            ..Marks::default()
        };
        let (w, u) = resolve(&scenario(""), &marks);
        assert_eq!(
            w.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["all", "baseline"]
        );
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].why, "no fault was injected");
    }

    #[test]
    fn declared_phases_use_steps_and_offsets() {
        let s = scenario(
            "phases:\n  - {name: before, from: start, to: flip}\n  - {name: after, from: flip.end, to: 15s}\n",
        );
        let mut marks = Marks {
            end_s: 20.0,
            ..Marks::default()
        };
        marks.steps.insert("flip".into(), (5.0, Some(6.2)));
        let (w, u) = resolve(&s, &marks);
        assert!(u.is_empty());
        assert_eq!(
            w[1],
            PhaseWindow {
                name: "before".into(),
                start_s: 0.0,
                end_s: 5.0
            }
        );
        assert_eq!(
            w[2],
            PhaseWindow {
                name: "after".into(),
                start_s: 6.2,
                end_s: 15.0
            }
        );
    }
}
