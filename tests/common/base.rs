//! What every kind of test needs: a free loopback port, and polling until something holds.

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Polls `probe` every 200 ms until it returns true (→ true) or `timeout` passes (→ false).
pub async fn wait_until<F, Fut>(timeout: Duration, probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll(timeout, Duration::from_millis(200), probe).await
}

/// [`wait_until`] for tests without a runtime: polls `condition` every 50 ms and panics
/// naming `what` after `timeout`.
pub fn block_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime to poll on");
    let held = runtime.block_on(poll(timeout, Duration::from_millis(50), || {
        let holds = condition();
        async move { holds }
    }));
    assert!(held, "timed out after {timeout:?} waiting for {what}");
}

/// The one polling loop: `probe` until true or past `timeout`, `every` apart.
async fn poll<F, Fut>(timeout: Duration, every: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if probe().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}
