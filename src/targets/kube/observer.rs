//! Watch-based observers (kube-runtime watchers, not polling): pod creations, deletions,
//! readiness and container restarts for the drill's selectors; Job outcomes for the job
//! selectors; Warning events in the namespace. Everything is timestamped as it arrives.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Pod};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::KubeTarget;
use super::pods::{KilledPod, PodInfo};
use crate::targets::observe::{ConfigMapSample, PodHealth};
use crate::units::LabelSelector;

/// Something the observer saw, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeEvent {
    /// When it was seen (monotonic).
    pub at: Instant,
    /// When it was seen (wall clock).
    pub wall: Timestamp,
    /// What happened.
    pub kind: KubeEventKind,
}

/// What the observer saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeEventKind {
    /// A matching pod appeared after the observer started.
    PodCreated {
        name: String,
        labels: BTreeMap<String, String>,
    },
    /// A matching pod became Ready (again).
    PodReady {
        name: String,
        labels: BTreeMap<String, String>,
    },
    /// A matching pod got a deletion timestamp.
    PodTerminating {
        name: String,
        labels: BTreeMap<String, String>,
    },
    /// A matching pod is gone from the API.
    PodDeleted {
        name: String,
        labels: BTreeMap<String, String>,
    },
    /// A container of a matching pod restarted; `count` is the pod's new restart total.
    ContainerRestarted {
        pod: String,
        labels: BTreeMap<String, String>,
        count: i32,
    },
    /// A matching Job has running pods (reported once per Job, also for Jobs already running
    /// when the observer started).
    JobActive {
        name: String,
        labels: BTreeMap<String, String>,
        started: Option<Timestamp>,
    },
    /// A matching Job completed.
    JobSucceeded {
        name: String,
        labels: BTreeMap<String, String>,
        started: Option<Timestamp>,
    },
    /// A matching Job failed (`reason`: the Failed condition's reason, e.g. BackoffLimitExceeded).
    JobFailed {
        name: String,
        labels: BTreeMap<String, String>,
        started: Option<Timestamp>,
        reason: String,
    },
    /// A Warning event in the namespace (new or repeated after the observer started).
    WarningEvent {
        reason: String,
        message: String,
        /// `Kind/name` of the object it is about.
        object: String,
    },
    /// A watch failed; the watcher retries by itself with backoff.
    WatchError {
        watching: &'static str,
        error: String,
    },
}

/// Background watchers started by [`KubeTarget::observe`]. Dropping it (or [`Observer::stop`])
/// ends them.
#[derive(Debug)]
pub struct Observer {
    events: Arc<Mutex<Vec<KubeEvent>>>,
    live: LivePods,
    samples: ConfigMapSamples,
    tasks: Vec<JoinHandle<()>>,
}

/// A watched pod as it stands now, for the abort guards.
#[derive(Debug, Clone)]
struct LivePod {
    name: String,
    labels: BTreeMap<String, String>,
    ready: bool,
    terminating: bool,
    /// Restarts since the observer started (a pod listed at start counts from its count then).
    restarts: i32,
    /// Containers waiting in CrashLoopBackOff.
    crash_looping: Vec<String>,
}

/// ConfigMap readings by name.
type ConfigMapSamples = Arc<Mutex<BTreeMap<String, Vec<ConfigMapSample>>>>;

/// Reads one ConfigMap every `every` until the observer stops; a failed read is skipped (the
/// check is inconclusive without samples, never passed).
async fn sample_configmap(
    api: kube::Api<ConfigMap>,
    name: String,
    every: Duration,
    samples: ConfigMapSamples,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let sample = match api.get_opt(&name).await {
            Ok(Some(map)) => configmap_size(&map),
            Ok(None) => ConfigMapSample {
                at: Instant::now(),
                bytes: None,
                keys: 0,
            },
            Err(e) => {
                tracing::warn!(configmap = %name, "reading the configmap failed: {e}");
                continue;
            }
        };
        match samples.lock() {
            Ok(mut s) => s.entry(name.clone()).or_default().push(sample),
            Err(poisoned) => poisoned
                .into_inner()
                .entry(name.clone())
                .or_default()
                .push(sample),
        }
    }
}

/// The size of a ConfigMap as stored: every key and value of `data` and `binaryData`.
pub fn configmap_size(map: &ConfigMap) -> ConfigMapSample {
    let data = map.data.iter().flatten().map(|(k, v)| (k.len(), v.len()));
    let binary = map
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.len(), v.0.len()));
    let (mut bytes, mut keys) = (0u64, 0u32);
    for (k, v) in data.chain(binary) {
        bytes += (k + v) as u64;
        keys += 1;
    }
    ConfigMapSample {
        at: Instant::now(),
        bytes: Some(bytes),
        keys,
    }
}

/// The watched pods by name, kept current by the pod watcher.
type LivePods = Arc<Mutex<BTreeMap<String, LivePod>>>;

fn crash_looping(pod: &Pod) -> Vec<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                == Some("CrashLoopBackOff")
        })
        .map(|c| c.name.clone())
        .collect()
}

impl Observer {
    /// Every ConfigMap reading so far, by name.
    pub fn configmap_samples(&self) -> BTreeMap<String, Vec<ConfigMapSample>> {
        self.samples
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// The watched pods matching `selector` right now.
    pub fn pod_health(&self, selector: &LabelSelector) -> PodHealth {
        let live = self
            .live
            .lock()
            .map(|l| l.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        let mut health = PodHealth::default();
        for pod in live
            .values()
            .filter(|p| !p.terminating && selector.matches(&p.labels))
        {
            let name = &pod.name;
            health.pods += 1;
            health.not_ready += u32::from(!pod.ready);
            health.restarts += u32::try_from(pod.restarts.max(0)).unwrap_or(0);
            health
                .crash_looping
                .extend(pod.crash_looping.iter().map(|c| format!("{name}/{c}")));
        }
        health
    }

    /// Everything seen so far, in arrival order.
    pub fn events(&self) -> Vec<KubeEvent> {
        self.events
            .lock()
            .map(|events| events.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Time from the first of `killed` until as many *other* matching pods became Ready after
    /// it as pods were killed (their replacements): the "ready again" time of a kill step.
    /// `None` while that has not happened.
    pub fn ready_again(&self, killed: &[KilledPod], selector: &LabelSelector) -> Option<Duration> {
        let since = killed.iter().map(|k| k.at).min()?;
        let killed_names: BTreeSet<&str> = killed.iter().map(|k| k.pod.name.as_str()).collect();
        let mut replacements = BTreeSet::new();
        for event in self.events() {
            if event.at < since {
                continue;
            }
            if let KubeEventKind::PodReady { name, labels } = &event.kind
                && selector.matches(labels)
                && !killed_names.contains(name.as_str())
            {
                replacements.insert(name.clone());
                if replacements.len() >= killed.len() {
                    return Some(event.at.saturating_duration_since(since));
                }
            }
        }
        None
    }

    /// Ends the watchers.
    pub fn stop(self) {
        // Drop aborts them.
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Shared sink the watcher tasks push into.
#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<KubeEvent>>>);

impl Sink {
    fn push(&self, kind: KubeEventKind) {
        tracing::debug!(?kind, "observed");
        let event = KubeEvent {
            at: Instant::now(),
            wall: Timestamp::now(),
            kind,
        };
        match self.0.lock() {
            Ok(mut events) => events.push(event),
            Err(poisoned) => poisoned.into_inner().push(event),
        }
    }
}

impl KubeTarget {
    /// Starts watching pods matching any of `selectors`, Jobs matching any of `job_selectors`
    /// (no Job watcher when empty) and Warning events in the namespace.
    pub fn observe(
        &self,
        selectors: Vec<LabelSelector>,
        job_selectors: Vec<LabelSelector>,
    ) -> Observer {
        self.observe_with_configmaps(selectors, job_selectors, Vec::new())
    }

    /// [`Self::observe`], and also reads each `(ConfigMap, interval)` on its interval.
    pub fn observe_with_configmaps(
        &self,
        selectors: Vec<LabelSelector>,
        job_selectors: Vec<LabelSelector>,
        configmaps: Vec<(String, Duration)>,
    ) -> Observer {
        let samples = ConfigMapSamples::default();
        let sink = Sink(Arc::new(Mutex::new(Vec::new())));
        let live = LivePods::default();
        let mut tasks = Vec::new();
        if !selectors.is_empty() {
            tasks.push(tokio::spawn(watch_pods(
                self.api::<Pod>(),
                selectors,
                sink.clone(),
                live.clone(),
            )));
        }
        if !job_selectors.is_empty() {
            tasks.push(tokio::spawn(watch_jobs(
                self.api::<Job>(),
                job_selectors,
                sink.clone(),
            )));
        }
        tasks.push(tokio::spawn(watch_warnings(
            self.api::<CoreEvent>(),
            sink.clone(),
        )));
        for (name, every) in configmaps {
            tasks.push(tokio::spawn(sample_configmap(
                self.api::<ConfigMap>(),
                name,
                every,
                samples.clone(),
            )));
        }
        Observer {
            events: sink.0,
            live,
            samples,
            tasks,
        }
    }
}

/// What the pod watcher remembers of each pod, to turn snapshots into transitions.
struct PodSeen {
    uid: String,
    ready: bool,
    terminating: bool,
    restarts: i32,
}

/// One watcher over the namespace's pods, filtered by the selectors here (a pod matching two
/// selectors is reported once).
async fn watch_pods(
    api: kube::Api<Pod>,
    selectors: Vec<LabelSelector>,
    sink: Sink,
    live: LivePods,
) {
    let mut seen: BTreeMap<String, PodSeen> = BTreeMap::new();
    // Restart counts of the pods listed at start: restarts before the drill are not its doing.
    let mut restarts_at_start: BTreeMap<String, i32> = BTreeMap::new();
    let mut initializing = false;
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        let (pod, deleted) = match event {
            Ok(Event::Init) => {
                initializing = true;
                continue;
            }
            Ok(Event::InitDone) => {
                initializing = false;
                continue;
            }
            Ok(Event::InitApply(pod) | Event::Apply(pod)) => (pod, false),
            Ok(Event::Delete(pod)) => (pod, true),
            Err(e) => {
                sink.push(KubeEventKind::WatchError {
                    watching: "pods",
                    error: super::watch_words(&e),
                });
                continue;
            }
        };
        let info = PodInfo::from_pod(&pod);
        if !selectors.iter().any(|s| s.matches(&info.labels)) {
            continue;
        }
        let (name, labels) = (info.name.clone(), info.labels.clone());
        if let Ok(mut live) = live.lock() {
            if deleted {
                live.remove(&info.uid);
            } else {
                let baseline = if initializing {
                    *restarts_at_start
                        .entry(info.uid.clone())
                        .or_insert(info.restarts)
                } else {
                    restarts_at_start.get(&info.uid).copied().unwrap_or(0)
                };
                live.insert(
                    info.uid.clone(),
                    LivePod {
                        name: name.clone(),
                        labels: labels.clone(),
                        ready: info.ready,
                        terminating: info.terminating,
                        restarts: info.restarts - baseline,
                        crash_looping: crash_looping(&pod),
                    },
                );
            }
        }
        if deleted {
            seen.remove(&name);
            sink.push(KubeEventKind::PodDeleted { name, labels });
            continue;
        }
        let previous = seen.get(&name).filter(|p| p.uid == info.uid);
        match previous {
            None if initializing => {}
            None => sink.push(KubeEventKind::PodCreated {
                name: name.clone(),
                labels: labels.clone(),
            }),
            Some(_) => {}
        }
        // During the initial list only remember state: what was true before the drill is not news.
        if !initializing || previous.is_some() {
            let was_ready = previous.is_some_and(|p| p.ready);
            let was_terminating = previous.is_some_and(|p| p.terminating);
            let restarts_before = previous.map_or(0, |p| p.restarts);
            if info.ready && !was_ready {
                sink.push(KubeEventKind::PodReady {
                    name: name.clone(),
                    labels: labels.clone(),
                });
            }
            if info.terminating && !was_terminating {
                sink.push(KubeEventKind::PodTerminating {
                    name: name.clone(),
                    labels: labels.clone(),
                });
            }
            if info.restarts > restarts_before {
                sink.push(KubeEventKind::ContainerRestarted {
                    pod: name.clone(),
                    labels,
                    count: info.restarts,
                });
            }
        }
        seen.insert(
            name,
            PodSeen {
                uid: info.uid,
                ready: info.ready,
                terminating: info.terminating,
                restarts: info.restarts,
            },
        );
    }
}

/// Where a Job stands, as far as the observer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum JobPhase {
    Pending,
    Active,
    Finished,
}

fn job_condition(job: &Job, type_: &str) -> Option<String> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| c.reason.clone().unwrap_or_default())
}

/// One watcher over the namespace's Jobs; each Job is reported once per phase it reaches after
/// the observer started.
async fn watch_jobs(api: kube::Api<Job>, selectors: Vec<LabelSelector>, sink: Sink) {
    let mut phases: BTreeMap<String, JobPhase> = BTreeMap::new();
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        let (job, listed) = match event {
            Ok(Event::InitApply(job)) => (job, true),
            Ok(Event::Apply(job)) => (job, false),
            Ok(Event::Init | Event::InitDone | Event::Delete(_)) => continue,
            Err(e) => {
                sink.push(KubeEventKind::WatchError {
                    watching: "jobs",
                    error: super::watch_words(&e),
                });
                continue;
            }
        };
        let labels = job.metadata.labels.clone().unwrap_or_default();
        if !selectors.iter().any(|s| s.matches(&labels)) {
            continue;
        }
        let key = job.metadata.uid.clone().unwrap_or_default();
        let name = job.metadata.name.clone().unwrap_or_default();
        let started = job
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0);
        let before = phases.get(&key).copied().unwrap_or(JobPhase::Pending);
        let active = job.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0;
        let kind = if let Some(reason) = job_condition(&job, "Failed") {
            Some((
                JobPhase::Finished,
                KubeEventKind::JobFailed {
                    name,
                    labels,
                    started,
                    reason,
                },
            ))
        } else if job_condition(&job, "Complete").is_some() {
            Some((
                JobPhase::Finished,
                KubeEventKind::JobSucceeded {
                    name,
                    labels,
                    started,
                },
            ))
        } else if active {
            Some((
                JobPhase::Active,
                KubeEventKind::JobActive {
                    name,
                    labels,
                    started,
                },
            ))
        } else {
            None
        };
        if let Some((phase, kind)) = kind
            && phase > before
        {
            phases.insert(key, phase);
            // A Job first seen already finished (in the watch's initial list) ended before the
            // drill: not news. One still running is (the in-flight Jobs a drill must not break),
            // and so is the end of a Job seen running before a relist.
            if !(listed && phase == JobPhase::Finished && before == JobPhase::Pending) {
                sink.push(kind);
            }
        }
    }
}

/// Warning events in the namespace, from the moment the observer started.
async fn watch_warnings(api: kube::Api<CoreEvent>, sink: Sink) {
    let config = watcher::Config::default().fields("type=Warning");
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let warning = match event {
            // Events listed at start-up happened before the drill.
            Ok(Event::Apply(e)) => e,
            Ok(_) => continue,
            Err(e) => {
                sink.push(KubeEventKind::WatchError {
                    watching: "events",
                    error: super::watch_words(&e),
                });
                continue;
            }
        };
        let object = &warning.involved_object;
        sink.push(KubeEventKind::WarningEvent {
            reason: warning.reason.clone().unwrap_or_default(),
            message: warning.message.clone().unwrap_or_default(),
            object: format!(
                "{}/{}",
                object.kind.clone().unwrap_or_default(),
                object.name.clone().unwrap_or_default()
            ),
        });
    }
}
