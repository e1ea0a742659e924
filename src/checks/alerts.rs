//! The `alerts` check: no Prometheus alert whose name matches a pattern fired during a phase.
//! Prometheus keeps every firing alert as the series `ALERTS{alertstate="firing"}`, so one
//! `max_over_time` over the phase, evaluated at its end, lists every alert that fired in it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::Judgement;
use super::prometheus::{SampleError, series_at};

/// Names of the alerts that were firing at some point of the `range_s` seconds before
/// `end_unix` (Unix seconds).
pub async fn fired_during(
    url: &str,
    headers: &BTreeMap<String, String>,
    timeout: Duration,
    end_unix: i64,
    range_s: u64,
) -> Result<BTreeSet<String>, SampleError> {
    let query = format!(
        "max_over_time(ALERTS{{alertstate=\"firing\"}}[{}s])",
        range_s.max(1)
    );
    let series = series_at(url, &query, headers, timeout, end_unix).await?;
    Ok(series
        .into_iter()
        .filter_map(|mut labels| labels.remove("alertname"))
        .collect())
}

/// Judges the alerts that fired against `pattern` (matched in full against alert names).
pub fn judge(
    pattern: &str,
    phase: &str,
    fired: Result<BTreeSet<String>, SampleError>,
) -> Judgement {
    let anchored = format!("^(?:{pattern})$");
    let Ok(re) = regex::Regex::new(&anchored) else {
        return Judgement::inconclusive(format!("`{pattern}` is not a regular expression"));
    };
    let fired = match fired {
        Ok(fired) => fired,
        Err(e) => return Judgement::inconclusive(format!("cannot read the alerts: {e}")),
    };
    let matching: Vec<&String> = fired.iter().filter(|name| re.is_match(name)).collect();
    let others = fired.len() - matching.len();
    let mut j = if matching.is_empty() {
        Judgement::decided(
            true,
            format!(
                "no alert matching `{pattern}` fired during phase {phase} ({others} other alert(s) did)"
            ),
        )
    } else {
        Judgement::decided(
            false,
            format!(
                "{} alert(s) matching `{pattern}` fired during phase {phase}: {}",
                matching.len(),
                matching
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    j.measured = Some(matching.len() as f64);
    j.measured_text = Some(format!("{} firing", matching.len()));
    j.threshold = Some(0.0);
    j.threshold_text = Some(format!("no `{pattern}` firing"));
    j
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckVerdict;

    fn fired(names: &[&str]) -> Result<BTreeSet<String>, SampleError> {
        Ok(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn only_matching_alerts_fail_the_check() {
        let p = "ZaiProxyCanary.*";
        assert_eq!(judge(p, "bake", fired(&[])).verdict, CheckVerdict::Pass);
        assert_eq!(
            judge(p, "bake", fired(&["Watchdog", "ProxyCanaryX"])).verdict,
            CheckVerdict::Pass,
            "the pattern matches whole names only"
        );
        let j = judge(
            p,
            "bake",
            fired(&["Watchdog", "ZaiProxyCanaryHighErrorRate"]),
        );
        assert_eq!(j.verdict, CheckVerdict::Fail);
        assert!(
            j.detail.contains("ZaiProxyCanaryHighErrorRate"),
            "{}",
            j.detail
        );
    }

    #[test]
    fn unreadable_alerts_are_inconclusive() {
        let j = judge("X", "bake", Err(SampleError::Query("refused".into())));
        assert_eq!(j.verdict, CheckVerdict::Inconclusive);
    }
}
