//! `lab proxy`: the requests-proxy. Authenticates `Authorization: Bearer` tokens in the
//! configured mode and forwards good requests to a trivial in-process upstream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::http::{self as lab_http, Response, error_response, json_response, text_response};
use super::metrics::{self, CounterVec, DURATION_BUCKETS, Exposition, Histogram};
use super::revoke::RevokeList;
use super::token::{SigningKey, TokenRejection};
use super::{LabError, ProxyConfig, TokenMode};

/// How often the revoke file is checked for changes.
const REVOKE_POLL: Duration = Duration::from_millis(200);

/// Status codes whose request counters exist from the start, so `increase()` sees the first one.
const PRESEEDED_CODES: [&str; 3] = ["200", "401", "503"];

/// Reasons a token is refused, besides [`TokenRejection`]s.
const MISSING_TOKEN: &str = "missing_token";
const UNKNOWN_TOKEN: &str = "unknown_token";
const REVOKED: &str = "revoked";

/// Body of `POST /internal/register`.
#[derive(Debug, Deserialize)]
struct Registration {
    token: String,
    job_id: String,
}

#[derive(Debug)]
struct ProxyMetrics {
    requests: CounterVec,
    duration: Histogram,
    auth_failures: CounterVec,
    start_time_seconds: f64,
}

/// Everything the request handler needs; shared by all connections.
#[derive(Debug)]
struct Proxy {
    mode: TokenMode,
    key: SigningKey,
    /// Legacy mode's token → job id map. In memory only, on purpose: that is the failure mode
    /// the stateless design removes.
    registered: RwLock<HashMap<String, String>>,
    revoked: Arc<RevokeList>,
    ready_at: Instant,
    upstream_delay: Duration,
    /// Share of traffic answered 503 (`--fail-ratio`), and the traffic counted so far.
    fail_ratio: f64,
    served: AtomicU64,
    metrics: ProxyMetrics,
}

/// Serves the proxy until SIGTERM/Ctrl-C, then drains in-flight requests.
pub async fn run(args: ProxyConfig) -> Result<(), LabError> {
    let started = Instant::now();
    let listener = lab_http::bind(args.listen).await?;
    let shutdown = lab_http::shutdown_signal()?;
    let proxy = Arc::new(Proxy::new(&args, started));
    proxy.revoked.refresh();
    tokio::spawn(Arc::clone(&proxy.revoked).watch(REVOKE_POLL));
    tracing::info!(
        listen = %args.listen,
        mode = %proxy.mode,
        startup_delay = %args.startup_delay,
        "requests-proxy listening"
    );
    let ready_at = proxy.ready_at;
    tokio::spawn(async move {
        tokio::time::sleep_until(ready_at.into()).await;
        tracing::info!("requests-proxy ready");
    });
    lab_http::serve(
        listener,
        move |request| {
            let proxy = Arc::clone(&proxy);
            async move { proxy.handle(request).await }
        },
        shutdown,
    )
    .await;
    tracing::info!("requests-proxy stopped");
    Ok(())
}

impl Proxy {
    fn new(args: &ProxyConfig, started: Instant) -> Self {
        let mode = args.tokens.mode;
        let metrics = ProxyMetrics {
            requests: CounterVec::new(&["code"]),
            duration: Histogram::new(DURATION_BUCKETS),
            auth_failures: CounterVec::new(&["mode", "reason"]),
            start_time_seconds: metrics::unix_now_seconds(),
        };
        for code in PRESEEDED_CODES {
            metrics.requests.touch(&[code]);
        }
        for reason in failure_reasons(mode) {
            metrics.auth_failures.touch(&[mode.label(), reason]);
        }
        Self {
            mode,
            key: SigningKey::from_secret(&args.tokens.signing_key),
            registered: RwLock::new(HashMap::new()),
            revoked: Arc::new(RevokeList::new(args.revoke_file.clone())),
            ready_at: started + args.startup_delay.as_duration(),
            upstream_delay: args.upstream_delay.as_duration(),
            fail_ratio: args.fail_ratio,
            served: AtomicU64::new(0),
            metrics,
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Response {
        match (request.method(), request.uri().path()) {
            // Probes and scrapes are not traffic: they stay out of the request metrics.
            (&Method::GET, "/healthz") => self.healthz(),
            (&Method::GET, "/metrics") => self.metrics(),
            _ => {
                let started = Instant::now();
                let response = self.traffic(request).await;
                self.metrics.requests.inc(&[response.status().as_str()]);
                self.metrics.duration.observe(started.elapsed());
                response
            }
        }
    }

    /// Whether this request is one of the `fail_ratio` share: request n fails when the running
    /// quota floor(n * ratio) steps up, so failures are spread evenly and exact over any run.
    fn injects_failure(&self) -> bool {
        if self.fail_ratio <= 0.0 {
            return false;
        }
        let n = self.served.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * self.fail_ratio).floor() > (n * self.fail_ratio).floor()
    }

    fn starting(&self) -> bool {
        Instant::now() < self.ready_at
    }

    fn healthz(&self) -> Response {
        if self.starting() {
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "starting",
                "proxy is starting up",
            )
        } else {
            json_response(
                StatusCode::OK,
                &serde_json::json!({ "status": "ok", "mode": self.mode.label() }),
            )
        }
    }

    async fn traffic(&self, request: Request<Incoming>) -> Response {
        if self.starting() {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "starting",
                "proxy is starting up",
            );
        }
        if request.method() == Method::POST && request.uri().path() == "/internal/register" {
            return self.register(request).await;
        }
        if self.injects_failure() {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "injected",
                "this release fails a share of requests (--fail-ratio)",
            );
        }
        match self.authenticate(&request) {
            Ok(job_id) => self.upstream(request.uri().path(), &job_id).await,
            Err(reason) => {
                self.metrics.auth_failures.inc(&[self.mode.label(), reason]);
                json_response(
                    StatusCode::UNAUTHORIZED,
                    &serde_json::json!({
                        "error": "unauthorized",
                        "reason": reason,
                        "mode": self.mode.label(),
                    }),
                )
            }
        }
    }

    /// `POST /internal/register`: the jobs-manager hands over a legacy token. Accepted in both
    /// modes (both code paths coexist), but only legacy mode consults the map.
    async fn register(&self, request: Request<Incoming>) -> Response {
        let registration: Registration = match lab_http::read_json(request).await {
            Ok(registration) => registration,
            Err(error) => {
                return error_response(StatusCode::BAD_REQUEST, "bad_request", &error.to_string());
            }
        };
        let count = {
            let mut registered = self.registered_tokens_mut();
            registered.insert(registration.token, registration.job_id.clone());
            registered.len()
        };
        tracing::debug!(job_id = %registration.job_id, registered = count, "token registered");
        json_response(
            StatusCode::OK,
            &serde_json::json!({ "registered": registration.job_id }),
        )
    }

    /// The job id behind the request's token, or the reason it is refused.
    fn authenticate<B>(&self, request: &Request<B>) -> Result<String, &'static str> {
        let token = lab_http::bearer_token(request).ok_or(MISSING_TOKEN)?;
        match self.mode {
            TokenMode::Stateless => {
                let claims = self.key.verify(token).map_err(TokenRejection::reason)?;
                if self.revoked.contains(&claims.sub) {
                    return Err(REVOKED);
                }
                Ok(claims.sub)
            }
            TokenMode::Legacy => self
                .registered
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(token)
                .cloned()
                .ok_or(UNKNOWN_TOKEN),
        }
    }

    /// The in-process upstream: a trivial service that answers every authenticated call.
    async fn upstream(&self, path: &str, job_id: &str) -> Response {
        if !self.upstream_delay.is_zero() {
            tokio::time::sleep(self.upstream_delay).await;
        }
        json_response(
            StatusCode::OK,
            &serde_json::json!({ "ok": true, "path": path, "job_id": job_id }),
        )
    }

    fn registered_tokens_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, String>> {
        self.registered
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn metrics(&self) -> Response {
        let registered = self
            .registered
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        let mut exposition = Exposition::new();
        exposition.counter_vec(
            "lab_proxy_requests_total",
            "Requests answered, by HTTP status code (probes and scrapes excluded).",
            &self.metrics.requests,
        );
        exposition.histogram(
            "lab_proxy_request_duration_seconds",
            "Time from request to response, in seconds.",
            &self.metrics.duration,
        );
        exposition.counter_vec(
            "lab_proxy_auth_failures_total",
            "Requests refused with 401, by token mode and reason.",
            &self.metrics.auth_failures,
        );
        exposition.gauge(
            "lab_proxy_registered_tokens",
            "Legacy tokens in the in-memory map (empty after a restart).",
            registered as f64,
        );
        exposition.gauge(
            "lab_proxy_revoked_jobs",
            "Job ids in the revoke list.",
            self.revoked.len() as f64,
        );
        exposition.gauge(
            "lab_proxy_stateless_mode",
            "1 when stateless tokens are on, 0 in legacy mode.",
            if self.mode == TokenMode::Stateless {
                1.0
            } else {
                0.0
            },
        );
        exposition.gauge(
            "lab_proxy_start_time_seconds",
            "Start time of the process, seconds since the Unix epoch.",
            self.metrics.start_time_seconds,
        );
        exposition.process_cpu();
        text_response(StatusCode::OK, metrics::CONTENT_TYPE, exposition.finish())
    }
}

/// Every reason a token can be refused with in `mode`.
fn failure_reasons(mode: TokenMode) -> Vec<&'static str> {
    match mode {
        TokenMode::Stateless => std::iter::once(MISSING_TOKEN)
            .chain(TokenRejection::ALL.map(TokenRejection::reason))
            .chain(std::iter::once(REVOKED))
            .collect(),
        TokenMode::Legacy => vec![MISSING_TOKEN, UNKNOWN_TOKEN],
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lab::TokenConfig;
    use crate::units::HumanDuration;

    fn proxy(stateless: bool) -> Proxy {
        proxy_failing(stateless, 0.0)
    }

    fn proxy_failing(stateless: bool, fail_ratio: f64) -> Proxy {
        let args = ProxyConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            tokens: TokenConfig {
                mode: if stateless {
                    TokenMode::Stateless
                } else {
                    TokenMode::Legacy
                },
                signing_key: "test-key".into(),
            },
            revoke_file: None,
            startup_delay: HumanDuration::ZERO,
            upstream_delay: HumanDuration::ZERO,
            fail_ratio,
        };
        Proxy::new(&args, Instant::now())
    }

    #[test]
    fn fail_ratio_fails_exactly_that_share_spread_evenly() {
        let failing = proxy_failing(true, 0.05);
        let pattern: Vec<bool> = (0..200).map(|_| failing.injects_failure()).collect();
        assert_eq!(pattern.iter().filter(|f| **f).count(), 10);
        // One in every block of 20, never two in a row.
        for block in pattern.chunks(20) {
            assert_eq!(block.iter().filter(|f| **f).count(), 1, "{pattern:?}");
        }
        let healthy = proxy(true);
        assert!((0..1000).all(|_| !healthy.injects_failure()));
    }

    #[test]
    fn metrics_carry_process_cpu_seconds() {
        let text = metrics_text(&proxy(true));
        let line = text
            .lines()
            .find(|l| l.starts_with("process_cpu_seconds_total "))
            .unwrap_or_else(|| panic!("no process_cpu_seconds_total in\n{text}"));
        let value: f64 = line["process_cpu_seconds_total ".len()..]
            .parse()
            .expect("a number");
        assert!(value > 0.0, "{line}");
    }

    fn with_bearer(token: &str) -> Request<()> {
        Request::builder()
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .expect("request")
    }

    #[test]
    fn stateless_mode_accepts_signed_tokens_and_ignores_the_legacy_map() {
        let proxy = proxy(true);
        let token = SigningKey::from_secret("test-key")
            .mint("job-7", Duration::from_secs(60))
            .expect("mint");
        assert_eq!(proxy.authenticate(&with_bearer(&token)), Ok("job-7".into()));
        proxy
            .registered_tokens_mut()
            .insert("opaque".into(), "job-8".into());
        assert_eq!(proxy.authenticate(&with_bearer("opaque")), Err("malformed"));
        assert_eq!(proxy.authenticate(&Request::new(())), Err(MISSING_TOKEN));
    }

    #[test]
    fn legacy_mode_only_knows_registered_tokens() {
        let proxy = proxy(false);
        let jwt = SigningKey::from_secret("test-key")
            .mint("job-7", Duration::from_secs(60))
            .expect("mint");
        assert_eq!(proxy.authenticate(&with_bearer(&jwt)), Err(UNKNOWN_TOKEN));
        proxy
            .registered_tokens_mut()
            .insert("opaque".into(), "job-8".into());
        assert_eq!(
            proxy.authenticate(&with_bearer("opaque")),
            Ok("job-8".into())
        );
    }

    #[test]
    fn failure_series_of_the_active_mode_exist_from_the_start() {
        let proxy = proxy(true);
        for reason in [
            "missing_token",
            "malformed",
            "bad_signature",
            "expired",
            "revoked",
        ] {
            assert_eq!(proxy.metrics.auth_failures.get(&["stateless", reason]), 0);
        }
        let text = metrics_text(&proxy);
        assert!(
            text.contains(
                "lab_proxy_auth_failures_total{mode=\"stateless\",reason=\"revoked\"} 0\n"
            )
        );
        assert!(text.contains("lab_proxy_stateless_mode 1\n"));
        assert!(text.contains("lab_proxy_registered_tokens 0\n"));
    }

    fn metrics_text(proxy: &Proxy) -> String {
        String::from_utf8(
            futures::executor::block_on(http_body_util::BodyExt::collect(
                proxy.metrics().into_body(),
            ))
            .expect("metrics body")
            .to_bytes()
            .to_vec(),
        )
        .expect("utf-8 exposition")
    }
}
