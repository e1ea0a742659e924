//! The `alerts` check: no Prometheus alert whose name matches a pattern fired during a phase.
//! Prometheus keeps every firing alert as the series `ALERTS{alertstate="firing"}`, so one
//! `max_over_time` over the phase, evaluated at its end, lists every alert that fired in it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::Judgement;
use super::prometheus::{SampleError, series_at};
use crate::scenario::Parsed;
use crate::scenario::parsed::WholeName;

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

/// Judges the alerts that fired (or why they could not be read) against `pattern`.
pub fn judge(
    pattern: &Parsed<WholeName>,
    phase: &str,
    fired: Result<&BTreeSet<String>, &SampleError>,
) -> Judgement {
    let re = match pattern.get() {
        Ok(re) => re,
        Err(e) => {
            return Judgement::inconclusive(format!("the pattern `{pattern}` does not parse: {e}"));
        }
    };
    let pattern = pattern.text();
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

    fn fired(p: &Parsed<WholeName>, names: &[&str]) -> Judgement {
        let names: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
        judge(p, "bake", Ok(&names))
    }

    #[test]
    fn only_matching_alerts_fail_the_check() {
        let p = &Parsed::new("ZaiProxyCanary.*");
        assert_eq!(fired(p, &[]).verdict, CheckVerdict::Pass);
        assert_eq!(
            fired(p, &["Watchdog", "ProxyCanaryX"]).verdict,
            CheckVerdict::Pass,
            "the pattern matches whole names only"
        );
        let j = fired(p, &["Watchdog", "ZaiProxyCanaryHighErrorRate"]);
        assert_eq!(j.verdict, CheckVerdict::Fail);
        assert!(
            j.detail.contains("ZaiProxyCanaryHighErrorRate"),
            "{}",
            j.detail
        );
    }

    #[test]
    fn unreadable_alerts_are_inconclusive() {
        let p = Parsed::new("X");
        let j = judge(&p, "bake", Err(&SampleError::Query("refused".into())));
        assert_eq!(j.verdict, CheckVerdict::Inconclusive);
    }
}
