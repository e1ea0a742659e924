//! Prometheus checks during a drill: sampled ones run on their interval from time zero;
//! end-of-run ones are queried when the drill is judged.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checks::prometheus::{Sample, sample};
use crate::scenario::{CheckKind, PrometheusCheck, Scenario, vars::Vars};

pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

fn expanded_url(check: &PrometheusCheck, vars: &Vars) -> String {
    vars.expand(&check.url)
        .unwrap_or_else(|_| check.url.clone())
}

/// Starts the sampling of every check with an `interval`; the handle yields samples by check.
pub fn spawn_sampled(
    scenario: &Scenario,
    vars: &Vars,
    t0: Instant,
    stop: CancellationToken,
) -> JoinHandle<BTreeMap<String, Vec<Sample>>> {
    let sampled: Vec<(String, String, PrometheusCheck, Duration)> = scenario
        .checks
        .iter()
        .filter_map(|c| match &c.value.kind {
            CheckKind::Prometheus(p) => p.interval.map(|i| {
                (
                    c.value.name.value.clone(),
                    expanded_url(p, vars),
                    p.clone(),
                    i.0,
                )
            }),
            _ => None,
        })
        .collect();
    tokio::spawn(async move {
        let tasks: Vec<_> = sampled
            .into_iter()
            .map(|(name, url, check, interval)| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    for i in 1..=check.count {
                        tokio::select! {
                            _ = tokio::time::sleep_until(t0 + interval * i) => {}
                            _ = stop.cancelled() => break,
                        }
                        samples.push(
                            sample(&url, &check.query.value, &check.headers, QUERY_TIMEOUT).await,
                        );
                    }
                    (name, samples)
                })
            })
            .collect();
        let mut all = BTreeMap::new();
        for task in tasks {
            if let Ok((name, samples)) = task.await {
                all.insert(name, samples);
            }
        }
        all
    })
}

/// The single end-of-run sample of a check without `interval`.
pub async fn sample_at_end(check: &PrometheusCheck, vars: &Vars) -> Vec<Sample> {
    vec![
        sample(
            &expanded_url(check, vars),
            &check.query.value,
            &check.headers,
            QUERY_TIMEOUT,
        )
        .await,
    ]
}
