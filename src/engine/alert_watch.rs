//! Alertmanager during a drill: every second, which of the alerts an `alerts` check expects
//! Alertmanager holds, since when, routed to which receivers. Alertmanager forgets resolved
//! alerts, so this is read while the drill runs, not at the end.

use std::collections::{BTreeMap, BTreeSet};

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::drill::offset;
use crate::checks::alerts::{AlertWatch, HeldSince};
use crate::scenario::{CheckKind, Scenario};
use crate::support::alertmanager::Alertmanager;

const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Polls, for every `alerts` check with `alertmanager` and `fire`, until `done`.
pub fn spawn(
    scenario: &Scenario,
    t0: Instant,
    done: CancellationToken,
) -> JoinHandle<BTreeMap<String, AlertWatch>> {
    let watched: Vec<(String, String, BTreeSet<String>)> = scenario
        .checks
        .iter()
        .filter_map(|c| match &c.value.kind {
            CheckKind::Alerts(a) if !a.fire.is_empty() => {
                let url = a.alertmanager.as_ref()?;
                let names = a.fire.iter().map(|n| n.value.clone()).collect();
                Some((c.value.name.value.clone(), url.clone(), names))
            }
            _ => None,
        })
        .collect();
    tokio::spawn(async move {
        let tasks: Vec<_> = watched
            .into_iter()
            .map(|(check, url, names)| {
                let done = done.clone();
                tokio::spawn(async move { (check, watch(url, names, t0, done).await) })
            })
            .collect();
        let mut out = BTreeMap::new();
        for task in tasks {
            if let Ok((check, watch)) = task.await {
                out.insert(check, watch);
            }
        }
        out
    })
}

async fn watch(
    url: String,
    names: BTreeSet<String>,
    t0: Instant,
    done: CancellationToken,
) -> AlertWatch {
    let mut out = AlertWatch::default();
    let am = match Alertmanager::new(&url).map_err(|e| e.to_string()) {
        Ok(am) => am,
        Err(why) => {
            out.last_error = Some(why);
            return out;
        }
    };
    out.url = am.url().to_string();
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = done.cancelled() => break,
        }
        out.polls += 1;
        let at_s = offset(t0, Instant::now());
        match am.alerts().await {
            Ok(alerts) => record(&mut out.held, &names, alerts, at_s),
            Err(e) => {
                out.failed_polls += 1;
                out.last_error = Some(e.to_string());
            }
        }
    }
    out
}

fn record(
    held: &mut BTreeMap<String, HeldSince>,
    names: &BTreeSet<String>,
    alerts: Vec<crate::support::alertmanager::HeldAlert>,
    at_s: f64,
) {
    for alert in alerts {
        let Some(name) = alert.labels.get("alertname").filter(|n| names.contains(*n)) else {
            continue;
        };
        let entry = held.entry(name.clone()).or_insert_with(|| HeldSince {
            first_s: at_s,
            ..HeldSince::default()
        });
        entry
            .receivers
            .extend(alert.receivers.into_iter().map(|r| r.name));
        entry.silenced_by.extend(alert.status.silenced_by);
    }
}
