//! What the target was seen doing, in terms every target shares: workloads becoming ready,
//! restarting, jobs finishing. The judge reads only these, never target-specific types.

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::Instant;

use crate::fault::proxy::Counts;
use crate::units::LabelSelector;

pub type Labels = BTreeMap<String, String>;

/// Labels that differ between the pods of one workload across a rollout; ignored when asking
/// "is this the same workload".
const REVISION_LABELS: &[&str] = &["pod-template-hash", "controller-revision-hash"];

/// Whether `candidate` belongs to the same workload as `disrupted` (all its labels but the
/// revision ones are present and equal).
pub fn same_workload(disrupted: &Labels, candidate: &Labels) -> bool {
    disrupted
        .iter()
        .filter(|(k, _)| !REVISION_LABELS.contains(&k.as_str()))
        .all(|(k, v)| candidate.get(k) == Some(v))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObsKind {
    /// A pod or process became ready.
    Ready,
    /// A container or service process restarted.
    Restart,
}

/// One observation with the labels of what it concerns.
#[derive(Debug, Clone)]
pub struct Obs {
    pub at: Instant,
    pub kind: ObsKind,
    pub name: String,
    pub labels: Labels,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    Failed(String),
}

/// A Job (Kubernetes) or one-shot process (local) and how it ended.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub name: String,
    pub labels: Labels,
    pub started: Option<Instant>,
    pub state: JobState,
}

/// The pods matching a guard's selector, as the target sees them right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodHealth {
    /// Matching pods that are not being deleted.
    pub pods: u32,
    /// Of those, the ones whose Ready condition is not true.
    pub not_ready: u32,
    /// Container restarts of matching pods since the drill started.
    pub restarts: u32,
    /// `pod/container` of containers waiting in CrashLoopBackOff.
    pub crash_looping: Vec<String>,
}

/// Log lines a `logs` check counts, read from the matching pods' containers.
#[derive(Debug, Clone, Default)]
pub struct LogMatches {
    /// `pod/container` whose logs were read.
    pub read: Vec<String>,
    /// When each matching line was written.
    pub matches: Vec<Instant>,
    /// Why some logs could not be read.
    pub errors: Vec<String>,
}

/// One reading of a ConfigMap's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigMapSample {
    pub at: Instant,
    /// Bytes of every key and value of `data` and `binaryData` (`None`: the ConfigMap is absent).
    pub bytes: Option<u64>,
    pub keys: u32,
}

/// A pod's images (by container) and labels, for `version` checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodVersion {
    pub name: String,
    pub images: BTreeMap<String, String>,
    pub labels: Labels,
}

/// What the fault proxies of one `http_fault` did, counted by the proxies themselves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultCounts {
    /// Each second's counts (summed over the proxies), stamped when they were read.
    pub per_second: Vec<(Instant, Counts)>,
    /// Why some proxies' counts could not be read.
    pub errors: Vec<String>,
}

impl FaultCounts {
    /// Everything counted.
    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        for (_, counts) in &self.per_second {
            total += *counts;
        }
        total
    }
}

#[derive(Debug, Clone, Default)]
pub struct Observations {
    pub events: Vec<Obs>,
    pub jobs: Vec<JobRecord>,
    /// By `logs` check name.
    pub logs: BTreeMap<String, LogMatches>,
    /// By ConfigMap name.
    pub configmaps: BTreeMap<String, Vec<ConfigMapSample>>,
    /// By `version` check name: the matching pods at the end of the drill, or why they could
    /// not be listed.
    pub versions: BTreeMap<String, Result<Vec<PodVersion>, String>>,
    /// By the Service or port an `http_fault` applies to (`HttpFault::place`: one fault per
    /// place, validation sees to it).
    pub faults: BTreeMap<String, FaultCounts>,
}

impl Observations {
    /// First time something matching `matches` became ready at or after `after`.
    pub fn ready_after(
        &self,
        after: Instant,
        matches: impl Fn(&Labels) -> bool,
    ) -> Option<Instant> {
        self.events
            .iter()
            .filter(|o| o.kind == ObsKind::Ready && o.at >= after && matches(&o.labels))
            .map(|o| o.at)
            .min()
    }

    /// Restarts of anything matching `selector` in `[from, to)`, and the names that restarted.
    pub fn restarts(
        &self,
        selector: &LabelSelector,
        from: Instant,
        to: Instant,
    ) -> (u32, BTreeSet<String>) {
        let hits: Vec<&Obs> = self
            .events
            .iter()
            .filter(|o| {
                o.kind == ObsKind::Restart
                    && o.at >= from
                    && o.at < to
                    && selector.matches(&o.labels)
            })
            .collect();
        (
            u32::try_from(hits.len()).unwrap_or(u32::MAX),
            hits.iter().map(|o| o.name.clone()).collect(),
        )
    }

    /// Whether anything ever seen matches `selector`.
    pub fn knows(&self, selector: &LabelSelector) -> bool {
        self.events.iter().any(|o| selector.matches(&o.labels))
            || self.jobs.iter().any(|j| selector.matches(&j.labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_replacement_pod_from_a_new_replica_set_is_the_same_workload() {
        let killed = labels(&[("app", "proxy"), ("pod-template-hash", "aaa")]);
        assert!(same_workload(
            &killed,
            &labels(&[("app", "proxy"), ("pod-template-hash", "bbb")])
        ));
        assert!(!same_workload(
            &killed,
            &labels(&[("app", "jobs-manager"), ("pod-template-hash", "aaa")])
        ));
    }

    #[test]
    fn ready_after_takes_the_first_matching_event_after_the_instant() {
        let t0 = Instant::now();
        let obs = |secs: u64, app: &str| Obs {
            at: t0 + std::time::Duration::from_secs(secs),
            kind: ObsKind::Ready,
            name: app.into(),
            labels: labels(&[("app", app)]),
        };
        let o = Observations {
            events: vec![
                obs(1, "proxy"),
                obs(5, "other"),
                obs(7, "proxy"),
                obs(9, "proxy"),
            ],
            ..Observations::default()
        };
        let proxy = labels(&[("app", "proxy")]);
        let at = o.ready_after(t0 + std::time::Duration::from_secs(2), |l| {
            same_workload(&proxy, l)
        });
        assert_eq!(at, Some(t0 + std::time::Duration::from_secs(7)));
    }
}
