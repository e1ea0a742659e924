//! Checks and verdicts: each check is judged pass, fail or inconclusive; a check whose data is
//! missing is inconclusive, never pass.

pub mod alerts;
pub mod compare;
pub mod http;
pub mod kube_state;
pub mod prometheus;

pub use crate::report::model::CheckVerdict;

/// What a check measured and how it was judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: CheckVerdict,
    pub measured: Option<f64>,
    pub threshold: Option<f64>,
    pub measured_text: Option<String>,
    pub threshold_text: Option<String>,
    pub detail: String,
    /// Passed, but within 10 % of its threshold: worth a mention in the post-rollout note.
    pub near_threshold: bool,
    /// An `alerts` check's expected alerts, each with its times.
    pub alerts: Vec<crate::report::model::AlertTiming>,
}

impl Judgement {
    pub fn inconclusive(detail: impl Into<String>) -> Self {
        Self {
            verdict: CheckVerdict::Inconclusive,
            measured: None,
            threshold: None,
            measured_text: None,
            threshold_text: None,
            detail: detail.into(),
            near_threshold: false,
            alerts: Vec::new(),
        }
    }

    pub fn decided(pass: bool, detail: impl Into<String>) -> Self {
        Self {
            verdict: if pass {
                CheckVerdict::Pass
            } else {
                CheckVerdict::Fail
            },
            ..Self::inconclusive(detail)
        }
    }

    /// A comparison of a measured value with a threshold.
    pub fn compared(
        measured: f64,
        threshold: f64,
        pass: bool,
        texts: (String, String),
        detail: impl Into<String>,
    ) -> Self {
        let near = pass && is_near(measured, threshold);
        Self {
            verdict: if pass {
                CheckVerdict::Pass
            } else {
                CheckVerdict::Fail
            },
            measured: Some(measured),
            threshold: Some(threshold),
            measured_text: Some(texts.0),
            threshold_text: Some(texts.1),
            detail: detail.into(),
            near_threshold: near,
            alerts: Vec::new(),
        }
    }
}

/// Within 10 % of the threshold (and not trivially equal at zero).
fn is_near(measured: f64, threshold: f64) -> bool {
    threshold != 0.0 && ((threshold - measured).abs() / threshold.abs()) < 0.10
}

/// Overall verdict of a set of checks: any fail → fail; else any inconclusive → inconclusive.
pub fn combine(verdicts: impl IntoIterator<Item = CheckVerdict>) -> CheckVerdict {
    let mut result = CheckVerdict::Pass;
    for v in verdicts {
        match v {
            CheckVerdict::Fail => return CheckVerdict::Fail,
            CheckVerdict::Inconclusive => result = CheckVerdict::Inconclusive,
            CheckVerdict::Pass => {}
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_fail_fails_and_missing_data_is_never_a_pass() {
        use CheckVerdict::*;
        assert_eq!(combine([Pass, Inconclusive, Fail]), Fail);
        assert_eq!(combine([Pass, Inconclusive]), Inconclusive);
        assert_eq!(combine([Pass, Pass]), Pass);
        assert_eq!(combine([]), Pass);
    }
}
