//! What runs beside the timeline from time zero: the load (local or the cluster's workers),
//! its windows and abort guards, the named streams, Prometheus sampling and pod guards.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::{DrillError, LoadFailure};
use super::running::{Background, LoadRun};
use super::timeline::Drill;
use crate::engine::fleet::{FleetFailure, FleetReader, FleetRun};
use crate::engine::pod_guards::PodGuardState;
use crate::engine::progress::{Progress, WindowProgress};
use crate::engine::windows::{GuardState, WindowStore};
use crate::load::Window;
use crate::report::model::PodSample;
use crate::scenario::{LoadFrom, LoadSpec};
use crate::targets::Target;
use crate::targets::observe::PodHealth;
use crate::units::LabelSelector;

/// How often pod guards read the target's pods.
/// Pods are counted four times a second for the report, so a sub-second outage (a killed
/// process back in 0.6 s) still shows in its second; guards are evaluated on every fourth
/// count, once a second as before.
const POD_COUNT_INTERVAL: Duration = Duration::from_millis(250);
const COUNTS_PER_GUARD_TICK: u32 = 4;

impl<T: Target> Drill<'_, T> {
    pub(super) async fn start_background(&self, run_id: &str) -> Result<Background, DrillError> {
        let scenario = &self.loaded.scenario;
        // Before the load, any guard or step starts: a guard that cannot be watched refuses.
        let prometheus_guards = crate::engine::prometheus::prepare_guards(scenario)?;
        let (windows_tx, mut windows_rx) = mpsc::unbounded_channel::<Window>();
        let (load_started, load_over) = (CancellationToken::new(), CancellationToken::new());
        let store = Arc::<Mutex<WindowStore>>::default();
        let load = match &scenario.load {
            Some(spec) => {
                let config = crate::engine::load_config::build(self.loaded, spec, self.t0)?;
                let measuring = match (spec.from, &spec.cluster) {
                    (LoadFrom::Cluster, Some(cluster)) => {
                        let reader = FleetReader {
                            workers: cluster.value.workers,
                            t0: self.t0,
                            started_wall: self.zero_wall,
                            load_length: config.profile.duration(),
                            windows: windows_tx,
                            store: store.clone(),
                            started: load_started.clone(),
                            stop: self.stop.clone(),
                            progress: self.progress.clone(),
                        };
                        let started = self
                            .start_fleet(run_id, spec, &cluster.value, &config)
                            .await;
                        Box::pin(async move {
                            let FleetRun { summary, coverage } = reader.run(started?).await?;
                            Ok(LoadRun {
                                summary,
                                workers: Some(coverage),
                            })
                        })
                            as std::pin::Pin<
                                Box<dyn Future<Output = Result<LoadRun, LoadFailure>> + Send>,
                            >
                    }
                    _ => {
                        let (cancel, started) = (self.stop.clone(), load_started.clone());
                        Box::pin(async move {
                            let summary = crate::load::run_announcing(
                                config,
                                cancel,
                                Some(windows_tx),
                                started,
                            )
                            .await?;
                            Ok(LoadRun {
                                summary,
                                workers: None,
                            })
                        })
                    }
                };
                let (over, abort) = (load_over.clone(), self.abort.clone());
                Some(tokio::spawn(async move {
                    let result = measuring.await;
                    // Faults injected while nothing measures would be judged on no data.
                    if let Err(e) = &result {
                        abort.abort(format!("the load stopped: {e}"));
                    }
                    over.cancel();
                    result
                }))
            }
            None => {
                drop(windows_tx);
                None
            }
        };
        let guards = scenario
            .abort_when
            .iter()
            .filter_map(|g| Some((g.value.label(), g.value.http.as_ref()?, g.value.for_.0)))
            .map(|(label, http, for_)| {
                GuardState::new(&label, http, for_)
                    .map_err(|source| crate::engine::prometheus::GuardError::Http { label, source })
            })
            .collect::<Result<Vec<GuardState>, _>>()?;
        let t0 = self.t0;
        let windows = {
            let (abort, store) = (self.abort.clone(), store.clone());
            let progress = self.progress.clone();
            tokio::spawn(async move {
                let mut guards = guards;
                while let Some(window) = windows_rx.recv().await {
                    progress.emit(&Progress::Window(WindowProgress::of(&window)));
                    for guard in &mut guards {
                        if let Some(why) = guard.observe(&window.stats)
                            && !abort.token.is_cancelled()
                        {
                            abort.guard_tripped(why, t0, Instant::now());
                        }
                    }
                    if let Ok(mut store) = store.lock() {
                        store.insert(window);
                    }
                }
            })
        };
        let prometheus =
            crate::engine::prometheus::spawn_sampled(scenario, self.t0, self.stop.clone());
        let guards = {
            let abort = self.abort.clone();
            crate::engine::prometheus::spawn_guards(
                prometheus_guards,
                t0,
                &self.stop,
                move |trip| {
                    if !abort.token.is_cancelled() {
                        abort.guard_tripped(trip.reason, t0, trip.at);
                    }
                },
            )
        };
        let streams = self.start_streams()?;
        Ok(Background {
            streams,
            guards,
            load,
            load_started,
            load_over,
            windows,
            store,
            prometheus,
        })
    }

    /// Cluster load: the workers' removal is registered (and journaled) first, then their
    /// Jobs are created; the events of the running fleet come back.
    async fn start_fleet(
        &self,
        run_id: &str,
        spec: &LoadSpec,
        cluster: &crate::scenario::ClusterLoadSpec,
        config: &crate::load::LoadConfig,
    ) -> Result<mpsc::UnboundedReceiver<crate::targets::fleet::FleetEvent>, LoadFailure> {
        let name = if run_id.is_empty() {
            format!("{:08x}", self.seed & 0xffff_ffff)
        } else {
            run_id.to_ascii_lowercase()
        };
        let fleet = crate::engine::fleet::fleet_spec(
            &name,
            spec,
            cluster,
            config,
            self.zero_wall.as_millisecond(),
            config.profile.duration(),
        )
        .map_err(FleetFailure::from)?;
        let undo = self
            .target
            .fleet_undo(&fleet)
            .map_err(LoadFailure::WorkersNotStarted)?;
        self.undo
            .register("load workers", undo)
            .map_err(LoadFailure::UndoNotRecorded)?;
        self.progress.note(format!(
            "starting {} load worker(s) ({}), time zero in {:.0}s",
            fleet.workers.len(),
            fleet.image,
            self.t0
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
        ));
        self.target
            .start_fleet(&fleet, self.stop.clone())
            .await
            .map_err(LoadFailure::WorkersNotStarted)
    }

    /// Every `load.streams` entry: the scenario's load sent to the stream's URL from time
    /// zero, its windows kept apart for `compare` checks.
    fn start_streams(&self) -> Result<Vec<(String, JoinHandle<WindowStore>)>, DrillError> {
        let Some(spec) = &self.loaded.scenario.load else {
            return Ok(Vec::new());
        };
        let mut started = Vec::new();
        for (name, stream) in &spec.streams {
            let mut config = crate::engine::load_config::build(self.loaded, spec, self.t0)?;
            config.url.clone_from(&stream.url.value);
            let (tx, mut rx) = mpsc::unbounded_channel::<Window>();
            let (cancel, name_owned) = (self.stop.clone(), name.clone());
            let task = tokio::spawn(async move {
                let load = tokio::spawn(crate::load::run(config, cancel, Some(tx)));
                let mut store = WindowStore::default();
                while let Some(window) = rx.recv().await {
                    store.insert(window);
                }
                if let Ok(Err(e)) = load.await {
                    tracing::warn!("load stream `{name_owned}` stopped: {e}");
                }
                store
            });
            started.push((name.clone(), task));
        }
        Ok(started)
    }

    /// The `not_ready` and `restarts` guards, evaluated every second on the target's pods
    /// until `done` or the drill stops; meanwhile every pod of the target is counted each
    /// second for the report (nothing when the target has no pods to ask about).
    pub(super) async fn watch_pods(
        &self,
        mut guards: Vec<PodGuardState>,
        done: &CancellationToken,
    ) -> Vec<PodSample> {
        let everything = LabelSelector::default();
        let mut samples: Vec<PodSample> = Vec::new();
        let mut tick = tokio::time::interval_at(self.t0, POD_COUNT_INTERVAL);
        let mut ticks: u32 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = done.cancelled() => return samples,
                _ = self.stop.cancelled() => return samples,
            }
            let now = Instant::now();
            if let Some(all) = self.target.pod_health(&everything) {
                count_pods(
                    &mut samples,
                    now.saturating_duration_since(self.t0).as_secs(),
                    &all,
                );
            } else if guards.is_empty() {
                // Nothing to count and nothing to guard.
                return samples;
            }
            ticks = ticks.wrapping_add(1);
            if !(ticks - 1).is_multiple_of(COUNTS_PER_GUARD_TICK) {
                continue;
            }
            for guard in &mut guards {
                let Some(health) = self.target.pod_health(&guard.selector) else {
                    continue;
                };
                if let Some(why) = guard.observe(&health, now, self.t0)
                    && !self.abort.token.is_cancelled()
                {
                    self.abort.abort(why);
                }
            }
        }
    }
}

/// Folds one count into the report's per-second samples: the most pods, the fewest ready and
/// the most restarts seen during that second.
fn count_pods(samples: &mut Vec<PodSample>, second: u64, health: &PodHealth) {
    let ready = health.pods.saturating_sub(health.not_ready);
    match samples.last_mut() {
        Some(last) if last.t_s == second => {
            last.pods = last.pods.max(health.pods);
            last.ready = last.ready.min(ready);
            last.restarts = last.restarts.max(health.restarts);
        }
        _ => samples.push(PodSample {
            t_s: second,
            pods: health.pods,
            ready,
            restarts: health.restarts,
        }),
    }
}
