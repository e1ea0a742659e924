//! The `alerts` check: no Prometheus alert whose name matches a pattern fired during a phase,
//! and the alerts that must fire did, soon enough, resolved after recovery and reached
//! Alertmanager. Prometheus keeps every firing alert as the series
//! `ALERTS{alertstate="firing"}`: one `max_over_time` over the phase lists every alert that
//! fired in it, and a 1-second range query over the drill says when each one fired.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::prometheus::{SampleError, range_times, series_at};
use super::{CheckVerdict, Judgement};
use crate::report::model::AlertTiming;
use crate::scenario::Parsed;
use crate::scenario::parsed::WholeName;

/// A boundary's time (seconds from time zero) with its name, or why it did not happen.
pub type Boundary = Result<(f64, String), String>;

/// Each alert's firing samples, in seconds from time zero.
pub type FiringTimes = BTreeMap<String, Vec<f64>>;

/// Resolution of the firing times: one range-query step, in seconds.
pub const STEP_S: f64 = 1.0;

/// The firing samples of each alert between `start_unix` and `end_unix` (Unix seconds), as
/// offsets in seconds from `zero_unix` (the drill's time zero).
pub async fn firing_times(
    url: &str,
    headers: &BTreeMap<String, String>,
    timeout: Duration,
    zero_unix: f64,
    (start_unix, end_unix): (i64, i64),
) -> Result<FiringTimes, SampleError> {
    let query = "ALERTS{alertstate=\"firing\"}";
    let series = range_times(url, query, headers, timeout, (start_unix, end_unix, STEP_S)).await?;
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (mut labels, times) in series {
        if let Some(name) = labels.remove("alertname") {
            let offsets = out.entry(name).or_default();
            offsets.extend(times.iter().map(|t| t - zero_unix));
        }
    }
    for offsets in out.values_mut() {
        offsets.sort_by(f64::total_cmp);
        offsets.dedup();
    }
    Ok(out)
}

/// Warnings for alert names in `fire` that the check's Prometheus has no alerting rule for.
/// Quiet when the rules cannot be read (a URL with run-time ports, a Prometheus not reachable
/// from here): `validate` must work offline.
pub async fn unknown_alert_warnings(
    scenario: &crate::scenario::Scenario,
) -> Vec<crate::scenario::Diagnostic> {
    let mut out = Vec::new();
    for check in &scenario.checks {
        let crate::scenario::CheckKind::Alerts(a) = &check.value.kind else {
            continue;
        };
        if a.fire.is_empty() || a.url.contains("${") {
            continue;
        }
        let Ok(rules) = super::prometheus::alert_rule_names(&a.url, Duration::from_secs(3)).await
        else {
            continue;
        };
        for name in a.fire.iter().filter(|n| !rules.contains(&n.value)) {
            let mut warning = crate::scenario::Diagnostic::warning(
                name.pos,
                format!(
                    "Prometheus at {} has no alerting rule `{}`: the check would wait for an alert that cannot fire",
                    a.url, name.value
                ),
            );
            warning.help = crate::scenario::tagged::did_you_mean(
                &name.value,
                rules.iter().map(String::as_str),
            )
            .map(|s| format!("did you mean `{s}`?"));
            out.push(warning);
        }
    }
    out
}

/// One expected alert as Alertmanager held it during the drill.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeldSince {
    /// First poll that saw it, in seconds from time zero.
    pub first_s: f64,
    pub receivers: BTreeSet<String>,
    /// Silences that suppressed it at some poll (ids).
    pub silenced_by: BTreeSet<String>,
}

/// What the polls of one check's Alertmanager saw during the drill.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertWatch {
    pub url: String,
    pub held: BTreeMap<String, HeldSince>,
    pub polls: u32,
    pub failed_polls: u32,
    pub last_error: Option<String>,
}

/// What an expectation is judged against, in seconds from time zero.
#[derive(Debug, Clone)]
pub struct FireExpectation<'a> {
    pub names: Vec<&'a str>,
    /// The `after` boundary and its name, or why it did not happen.
    pub after: Boundary,
    pub within_s: f64,
    /// `resolve_after` with its name (or why it did not happen) and `resolve_within`, when
    /// resolution is judged.
    pub resolve: Option<(Boundary, f64)>,
    /// Until when Prometheus' history was read.
    pub read_until_s: f64,
}

/// Judges the alerts that must fire against their firing samples (or why they could not be
/// read) and, with `alertmanager`, what Alertmanager held.
pub fn judge_fire(
    expect: &FireExpectation<'_>,
    firing: Result<&FiringTimes, &SampleError>,
    alertmanager: Option<&AlertWatch>,
) -> Judgement {
    let firing = match firing {
        Ok(firing) => firing,
        Err(e) => return Judgement::inconclusive(format!("cannot read the alerts: {e}")),
    };
    let (anchor, anchor_name) = match &expect.after {
        Ok((at, name)) => (*at, name.as_str()),
        Err(why) => return Judgement::inconclusive(format!("no time to count from: {why}")),
    };
    let none = Vec::new();
    let mut verdicts = Vec::new();
    let (mut details, mut timings) = (Vec::new(), Vec::new());
    for name in &expect.names {
        let samples = firing.get(*name).unwrap_or(&none);
        let (verdict, words, timing) = judge_alert(expect, name, samples, anchor, anchor_name);
        let (verdict, words, timing) = match alertmanager {
            Some(watch) => reached(watch, (name, anchor, anchor_name), verdict, words, timing),
            None => (verdict, words, timing),
        };
        verdicts.push(verdict);
        details.push(words);
        timings.push(timing);
    }
    let verdict = super::combine(verdicts);
    let mut j = Judgement::inconclusive(details.join("; "));
    j.verdict = verdict;
    let slowest = timings.iter().filter_map(|t| t.detect_s).reduce(f64::max);
    if let Some(detect) = slowest {
        j.measured = Some(detect);
        j.measured_text = Some(format!("detected in {detect:.1}s"));
    }
    j.threshold = Some(expect.within_s);
    j.threshold_text = Some(format!("within {}s of {anchor_name}", expect.within_s));
    j.alerts = timings;
    j
}

/// One alert's time to detect and to resolve, from Prometheus' samples.
fn judge_alert(
    expect: &FireExpectation<'_>,
    name: &str,
    samples: &[f64],
    anchor: f64,
    anchor_name: &str,
) -> (CheckVerdict, String, AlertTiming) {
    let mut timing = AlertTiming {
        alert: name.to_string(),
        detect_s: None,
        resolve_s: None,
        reached_alertmanager: None,
        receivers: Vec::new(),
    };
    // A sample at the anchor's own second counts: the range query's grid is whole seconds.
    let Some(first) = samples
        .iter()
        .copied()
        .find(|t| *t >= anchor - STEP_S / 2.0)
    else {
        let watched = expect.read_until_s - anchor;
        return if watched >= expect.within_s {
            let words = format!(
                "{name} did not fire within {}s of {anchor_name} (not at all in the {watched:.0}s watched)",
                expect.within_s
            );
            (CheckVerdict::Fail, words, timing)
        } else {
            let words = format!(
                "{name} had not fired when the drill ended, {watched:.0}s after {anchor_name}, before the {}s allowed had passed",
                expect.within_s
            );
            (CheckVerdict::Inconclusive, words, timing)
        };
    };
    let detect = (first - anchor).max(0.0);
    timing.detect_s = Some(detect);
    let mut verdict = if detect <= expect.within_s {
        CheckVerdict::Pass
    } else {
        CheckVerdict::Fail
    };
    let mut words = format!(
        "{name} fired {detect:.1}s after {anchor_name} (allowed {}s)",
        expect.within_s
    );
    if samples.iter().any(|t| *t < anchor - STEP_S / 2.0) {
        words.push_str(&format!(", and was already firing before {anchor_name}"));
    }
    if let Some((recovered, resolve_within)) = &expect.resolve {
        let (resolve_verdict, resolve_words) = judge_resolve(
            samples,
            recovered,
            *resolve_within,
            expect.read_until_s,
            &mut timing,
        );
        verdict = super::combine([verdict, resolve_verdict]);
        words.push_str(&resolve_words);
    }
    (verdict, words, timing)
}

/// Whether the alert stopped firing within `resolve_within` of `recovered`: the end of its
/// last firing sample, when that is before the end of what was read.
fn judge_resolve(
    samples: &[f64],
    from: &Boundary,
    resolve_within: f64,
    read_until_s: f64,
    timing: &mut AlertTiming,
) -> (CheckVerdict, String) {
    let (recovered, from) = match from {
        Ok((at, name)) => (*at, name.as_str()),
        Err(why) => {
            return (
                CheckVerdict::Inconclusive,
                format!("; its resolution cannot be judged: {why}"),
            );
        }
    };
    let last = samples.last().copied().unwrap_or(recovered);
    let still_firing = last + 1.5 * STEP_S >= read_until_s;
    if still_firing {
        let since = read_until_s - recovered;
        let verdict = if since >= resolve_within {
            CheckVerdict::Fail
        } else {
            CheckVerdict::Inconclusive
        };
        return (
            verdict,
            format!("; still firing {since:.0}s after {from} (allowed {resolve_within}s)"),
        );
    }
    let resolve = (last + STEP_S - recovered).max(0.0);
    timing.resolve_s = Some(resolve);
    let verdict = if resolve <= resolve_within {
        CheckVerdict::Pass
    } else {
        CheckVerdict::Fail
    };
    (
        verdict,
        format!(", resolved {resolve:.1}s after {from} (allowed {resolve_within}s)"),
    )
}

/// Adds what Alertmanager held: an alert that fired in Prometheus but never reached it, or
/// that a silence suppressed, would have paged nobody.
fn reached(
    watch: &AlertWatch,
    (name, anchor, anchor_name): (&str, f64, &str),
    verdict: CheckVerdict,
    mut words: String,
    mut timing: AlertTiming,
) -> (CheckVerdict, String, AlertTiming) {
    if watch.polls > 0 && watch.failed_polls == watch.polls || watch.polls == 0 {
        let why = watch.last_error.as_deref().unwrap_or("it was never asked");
        words.push_str(&format!("; Alertmanager could not be read: {why}"));
        return (
            super::combine([verdict, CheckVerdict::Inconclusive]),
            words,
            timing,
        );
    }
    match watch.held.get(name) {
        Some(held) => {
            timing.reached_alertmanager = Some(true);
            timing.receivers = held.receivers.iter().cloned().collect();
            words.push_str(&format!(
                "; reached Alertmanager {:.1}s after {anchor_name}, routed to {}",
                held.first_s - anchor,
                if timing.receivers.is_empty() {
                    "no receiver".to_string()
                } else {
                    timing.receivers.join(", ")
                }
            ));
            if held.silenced_by.is_empty() {
                (verdict, words, timing)
            } else {
                let ids: Vec<&str> = held.silenced_by.iter().map(String::as_str).collect();
                words.push_str(&format!(", but silenced there by {}", ids.join(", ")));
                (CheckVerdict::Fail, words, timing)
            }
        }
        None => {
            timing.reached_alertmanager = Some(false);
            if timing.detect_s.is_some() {
                words.push_str(&format!(
                    "; fired in Prometheus but never reached Alertmanager at {} ({} polls)",
                    watch.url, watch.polls
                ));
                (CheckVerdict::Fail, words, timing)
            } else {
                words.push_str("; not seen at Alertmanager either");
                (verdict, words, timing)
            }
        }
    }
}

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

    fn expectation(
        within_s: f64,
        resolve: Option<(Result<f64, String>, f64)>,
    ) -> FireExpectation<'static> {
        let resolve =
            resolve.map(|(at, within)| (at.map(|t| (t, "recovered".to_string())), within));
        FireExpectation {
            names: vec!["LabProxyDown"],
            after: Ok((6.0, "kill-proxy".into())),
            within_s,
            resolve,
            read_until_s: 30.0,
        }
    }

    fn samples(from: u32, to: u32) -> BTreeMap<String, Vec<f64>> {
        let times = (from..=to).map(|t| f64::from(t) + 0.2).collect();
        BTreeMap::from([("LabProxyDown".to_string(), times)])
    }

    #[test]
    fn an_alert_that_fires_and_resolves_in_time_passes_with_both_times() {
        let j = judge_fire(
            &expectation(5.0, Some((Ok(12.0), 5.0))),
            Ok(&samples(9, 13)),
            None,
        );
        assert_eq!(j.verdict, CheckVerdict::Pass, "{}", j.detail);
        let t = &j.alerts[0];
        assert!((t.detect_s.expect("detected") - 3.2).abs() < 1e-9, "{t:?}");
        assert!((t.resolve_s.expect("resolved") - 2.2).abs() < 1e-9, "{t:?}");
        assert!(
            j.measured.is_some_and(|m| (m - 3.2).abs() < 1e-9),
            "{:?}",
            j.measured
        );
    }

    #[test]
    fn late_missing_and_unresolved_alerts_fail_and_a_short_watch_is_inconclusive() {
        let late = judge_fire(&expectation(2.0, None), Ok(&samples(9, 13)), None);
        assert_eq!(late.verdict, CheckVerdict::Fail, "{}", late.detail);
        assert!(
            late.detail.contains("fired 3.2s after kill-proxy"),
            "{}",
            late.detail
        );
        let never = judge_fire(&expectation(2.0, None), Ok(&BTreeMap::new()), None);
        assert_eq!(never.verdict, CheckVerdict::Fail, "{}", never.detail);
        let mut short = expectation(60.0, None);
        short.read_until_s = 20.0;
        let unsure = judge_fire(&short, Ok(&BTreeMap::new()), None);
        assert_eq!(
            unsure.verdict,
            CheckVerdict::Inconclusive,
            "{}",
            unsure.detail
        );
        let stuck = judge_fire(
            &expectation(5.0, Some((Ok(12.0), 5.0))),
            Ok(&samples(9, 30)),
            None,
        );
        assert_eq!(stuck.verdict, CheckVerdict::Fail, "{}", stuck.detail);
        assert!(stuck.detail.contains("still firing"), "{}", stuck.detail);
        let unreadable = SampleError::Query("refused".into());
        let j = judge_fire(&expectation(5.0, None), Err(&unreadable), None);
        assert_eq!(j.verdict, CheckVerdict::Inconclusive);
    }

    #[test]
    fn firing_without_reaching_alertmanager_or_silenced_there_fails() {
        let mut watch = AlertWatch {
            url: "http://127.0.0.1:9093".into(),
            polls: 20,
            ..AlertWatch::default()
        };
        let lost = judge_fire(&expectation(5.0, None), Ok(&samples(9, 13)), Some(&watch));
        assert_eq!(lost.verdict, CheckVerdict::Fail, "{}", lost.detail);
        assert!(
            lost.detail.contains("never reached Alertmanager"),
            "{}",
            lost.detail
        );
        assert_eq!(lost.alerts[0].reached_alertmanager, Some(false));
        watch.held.insert(
            "LabProxyDown".into(),
            HeldSince {
                first_s: 9.5,
                receivers: BTreeSet::from(["on-call".to_string()]),
                silenced_by: BTreeSet::new(),
            },
        );
        let routed = judge_fire(&expectation(5.0, None), Ok(&samples(9, 13)), Some(&watch));
        assert_eq!(routed.verdict, CheckVerdict::Pass, "{}", routed.detail);
        assert_eq!(routed.alerts[0].receivers, vec!["on-call".to_string()]);
        if let Some(held) = watch.held.get_mut("LabProxyDown") {
            held.silenced_by.insert("abc".into());
        }
        let hidden = judge_fire(&expectation(5.0, None), Ok(&samples(9, 13)), Some(&watch));
        assert_eq!(hidden.verdict, CheckVerdict::Fail, "{}", hidden.detail);
        watch.failed_polls = watch.polls;
        let unread = judge_fire(&expectation(5.0, None), Ok(&samples(9, 13)), Some(&watch));
        assert_eq!(
            unread.verdict,
            CheckVerdict::Inconclusive,
            "{}",
            unread.detail
        );
    }

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
