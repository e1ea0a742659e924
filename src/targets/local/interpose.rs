//! `http_fault` on a local port (issue #23), the lab's interposition: drillbook itself listens
//! on the public `${port.NAME}` that every caller was given, and forwards to the private port
//! that only the listening process was given (`templated::expand`). The fault proxy runs in
//! this process from the target's start to its shutdown, forwarding untouched; a step sets a
//! fault on it and its undo clears it. So, unlike on a cluster, no connection bypasses it:
//! kept-alive connections opened before the fault see it too.
//!
//! The proxy counts what it does; a sampler keeps one reading per second for the report.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::fault::proxy::{self, Counters, Counts, Faults, ProxyError, Route};
use crate::fault::{FaultSpec, Protocol};
use crate::targets::observe::FaultCounts;

/// One faulted port: where drillbook listens and where the listening process really is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontPlan {
    /// The `${port.NAME}` name.
    pub port: String,
    /// The process that listens behind it.
    pub listener: String,
    /// The public port (callers') and the private one (the listener's).
    pub public: u16,
    pub private: u16,
    pub protocol: Protocol,
}

impl FrontPlan {
    fn route(&self) -> Route {
        let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        Route {
            listen: loopback(self.public),
            upstream: loopback(self.private),
        }
    }

    /// `127.0.0.1:41000 → jobs-manager at 127.0.0.1:41001`, for the step's targets.
    pub fn words(&self) -> String {
        let route = self.route();
        format!(
            "{} → `{}` at {}",
            route.listen, self.listener, route.upstream
        )
    }
}

/// A running front: its fault and its counts, one reading per second.
#[derive(Debug)]
struct Front {
    plan: FrontPlan,
    faults: Faults,
    counters: Arc<Counters>,
    readings: Arc<Mutex<Vec<(Instant, Counts)>>>,
}

/// Every faulted port's proxy, started with the target.
#[derive(Debug)]
pub struct Fronts {
    fronts: Vec<Front>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// How often the counts are read.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

impl Fronts {
    /// Listens on every public port (before any process starts, so no caller finds it
    /// closed) and forwards untouched until a fault is set.
    pub async fn start(plans: Vec<FrontPlan>) -> Result<Self, ProxyError> {
        let (stop, tasks) = (CancellationToken::new(), TaskTracker::new());
        let mut fronts = Vec::with_capacity(plans.len());
        for (index, plan) in plans.into_iter().enumerate() {
            let bound = proxy::bind(&[plan.route()]).await?;
            let faults = Faults::new(plan.protocol, None);
            let counters = Arc::new(Counters::default());
            let readings = Arc::new(Mutex::new(Vec::new()));
            tasks.spawn(proxy::serve(
                bound,
                faults.clone(),
                counters.clone(),
                stop.clone(),
                index as u64,
            ));
            tasks.spawn(sample(counters.clone(), readings.clone(), stop.clone()));
            fronts.push(Front {
                plan,
                faults,
                counters,
                readings,
            });
        }
        Ok(Self {
            fronts,
            stop,
            tasks,
        })
    }

    /// The front of `port`, if that port is faulted.
    pub fn plan(&self, port: &str) -> Option<&FrontPlan> {
        self.front(port).map(|f| &f.plan)
    }

    fn front(&self, port: &str) -> Option<&Front> {
        self.fronts.iter().find(|f| f.plan.port == port)
    }

    /// Applies `spec` on `port` from now on (`None`: forward untouched). Whether the port
    /// has a front.
    pub fn set(&self, port: &str, spec: Option<FaultSpec>) -> bool {
        self.front(port).map(|f| f.faults.set(spec)).is_some()
    }

    /// Each faulted port's counts per second, by port name (`HttpFault::place`), up to now:
    /// what came after the last reading is a reading of its own.
    pub fn counts(&self) -> impl Iterator<Item = (String, FaultCounts)> + '_ {
        self.fronts.iter().map(|f| {
            let mut counts = FaultCounts {
                per_second: f.readings.lock().map(|r| r.clone()).unwrap_or_default(),
                errors: Vec::new(),
            };
            let tail = f.counters.snapshot().since(&counts.total());
            if tail != Counts::default() {
                counts.per_second.push((Instant::now(), tail));
            }
            (f.plan.port.clone(), counts)
        })
    }

    /// Stops listening; held connections are dropped.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Keeps what was counted in each second until `stop` (a last reading then).
async fn sample(
    counters: Arc<Counters>,
    readings: Arc<Mutex<Vec<(Instant, Counts)>>>,
    stop: CancellationToken,
) {
    let mut last = Counts::default();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            () = stop.cancelled() => true,
        };
        let now = counters.snapshot();
        let delta = now.since(&last);
        if delta != Counts::default()
            && let Ok(mut r) = readings.lock()
        {
            r.push((Instant::now(), delta));
        }
        last = now;
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{BlackholeMode, Matcher, now_ms};

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"))
    }

    /// A backend that answers every connection with one byte, then closes.
    async fn backend(port: u16) -> tokio::task::JoinHandle<()> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s.write_all(b"k").await;
            }
        })
    }

    async fn one_byte(port: u16) -> Option<u8> {
        use tokio::io::AsyncReadExt;
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let mut b = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut b)).await {
            Ok(Ok(_)) => Some(b[0]),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_front_forwards_until_a_fault_is_set_and_again_after_it_is_cleared() {
        let (public, private) = (free_port(), free_port());
        let server = backend(private).await;
        let fronts = Fronts::start(vec![FrontPlan {
            port: "api".into(),
            listener: "api".into(),
            public,
            private,
            protocol: Protocol::Tcp,
        }])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one_byte(public).await, Some(b'k'));
        let refuse = FaultSpec {
            protocol: Protocol::Tcp,
            latency: None,
            abort: None,
            reset: None,
            blackhole: Some(BlackholeMode::Refuse),
            bandwidth: None,
            matcher: Matcher::default(),
            until_ms: None,
            fail_open_at_ms: now_ms() + 60_000,
        };
        assert!(fronts.set("api", Some(refuse)));
        assert!(!fronts.set("other", None));
        assert_eq!(one_byte(public).await, None);
        assert!(fronts.set("api", None));
        assert_eq!(one_byte(public).await, Some(b'k'));
        // Read before the sampler's first tick: the counts are complete all the same.
        let (place, counts) = fronts.counts().next().unwrap_or_default();
        fronts.stop().await;
        assert_eq!(place, "api");
        let total = counts.total();
        assert_eq!((total.seen, total.blackholed), (3, 1));
        server.abort();
    }
}
