//! Bounded retries for transient API failures (429, 5xx, connection trouble) on reads and
//! idempotent writes: at most [`MAX_TRIES`] attempts with exponential backoff and jitter, well
//! under 10 s in total, so a flaky API server cannot stall a drill step.

use std::future::Future;
use std::time::Duration;

/// Attempts per call, the first one included.
pub const MAX_TRIES: u32 = 5;
/// First backoff; doubled after each failed attempt (200, 400, 800, 1600 ms before jitter).
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The HTTP status of an API error, when the server answered with one.
pub fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Whether another attempt may succeed: throttling, server-side trouble or a broken connection.
pub fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// Runs `attempt` until it succeeds, fails with a non-transient error, or [`MAX_TRIES`] is
/// reached. Only use it for reads and idempotent writes (patches to fixed values, deletes with
/// a UID precondition).
pub async fn retrying<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut tries = 1;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if tries < MAX_TRIES && is_transient(&error) => {
                // Jitter (50–150 %) keeps many drills against one server from retrying in step.
                let delay = backoff.mul_f64(rand::random_range(0.5..1.5));
                tracing::debug!(%error, tries, ?delay, "{what}: transient API error, retrying");
                tokio::time::sleep(delay).await;
                backoff *= 2;
                tries += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("boom", "x").with_code(code),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_then_succeeds() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let result = retrying("get", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(api_error(503)),
                1 => Err(api_error(429)),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_tries_within_ten_seconds() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let result: Result<(), _> = retrying("get", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(api_error(500))
        })
        .await;
        assert_eq!(status_code(&result.unwrap_err()), Some(500));
        assert_eq!(calls.load(Ordering::SeqCst), MAX_TRIES);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_client_errors() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retrying("get", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(api_error(404))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
