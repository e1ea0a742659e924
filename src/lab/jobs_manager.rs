//! `lab jobs-manager`: starts training jobs and mints one token per job. Stateless mode signs a
//! JWT; legacy mode makes an opaque token and registers it with the proxy, which is the only
//! place it means anything. In a cluster (`--job-image`), `POST /jobs` starts a real Kubernetes
//! Job holding its token in its pod env (see [`super::launcher`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;

use super::http::{
    self as lab_http, Client, Response, error_chain, error_response, json_response, text_response,
};
use super::launcher::{LaunchError, Launcher, TrainingJobSpec};
use super::metrics::{self, CounterVec, Exposition};
use super::token::{self, SigningKey};
use super::{ClusterJobsConfig, JobsManagerConfig, LabError, TokenMode, base_url};

/// Registration calls to the proxy give up after this long; the caller then gets a 503.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(2);

/// Answer of `POST /jobs` and `POST /token`.
#[derive(Debug, Serialize)]
struct IssuedToken {
    job_id: String,
    token: String,
    mode: &'static str,
}

/// Why no token could be issued.
#[derive(Debug, thiserror::Error)]
enum IssueError {
    #[error(transparent)]
    Signing(#[from] token::SigningError),
    #[error("cannot register the token with the proxy: {0}")]
    ProxyUnreachable(String),
    #[error("the proxy refused the registration with status {0}")]
    ProxyRefused(StatusCode),
    #[error(transparent)]
    Cluster(#[from] LaunchError),
}

/// Answer of `POST /jobs` in cluster mode: the Job holds the token, the caller does not.
#[derive(Debug, Serialize)]
struct StartedJob {
    job_id: String,
    job_name: String,
    mode: &'static str,
}

#[derive(Debug)]
struct JobsManager {
    mode: TokenMode,
    key: SigningKey,
    token_ttl: Duration,
    register_url: String,
    client: Client,
    /// Cluster mode: starts real Jobs and registers with every proxy replica.
    launcher: Option<Launcher>,
    proxy_service: Option<String>,
    launch_failures: AtomicU64,
    jobs_started: AtomicU64,
    tokens_minted: CounterVec,
    register_failures: AtomicU64,
    start_time_seconds: f64,
}

/// Serves the jobs-manager until SIGTERM/Ctrl-C.
pub async fn run(args: JobsManagerConfig) -> Result<(), LabError> {
    let proxy_url = base_url("proxy-url", &args.proxy_url)?;
    let listener = lab_http::bind(args.listen).await?;
    let shutdown = lab_http::shutdown_signal()?;
    let mode = args.tokens.mode;
    let tokens_minted = CounterVec::new(&["mode"]);
    tokens_minted.touch(&[mode.label()]);
    let launcher = match &args.cluster.job_image {
        Some(image) => Some(connect_launcher(&args.cluster, image, &proxy_url).await?),
        None => None,
    };
    let manager = Arc::new(JobsManager {
        mode,
        key: SigningKey::from_secret(&args.tokens.signing_key),
        token_ttl: args.token_ttl.as_duration(),
        register_url: format!("{proxy_url}/internal/register"),
        client: Client::new(REGISTER_TIMEOUT),
        launcher,
        proxy_service: args.cluster.proxy_service.clone(),
        launch_failures: AtomicU64::new(0),
        jobs_started: AtomicU64::new(0),
        tokens_minted,
        register_failures: AtomicU64::new(0),
        start_time_seconds: metrics::unix_now_seconds(),
    });
    tracing::info!(listen = %args.listen, %mode, proxy = %proxy_url, "jobs-manager listening");
    let launch_every = args.cluster.launch_every.as_duration();
    if let Some(launcher) = manager.launcher.clone()
        && !launch_every.is_zero()
    {
        tokio::spawn(launch_periodically(
            Arc::clone(&manager),
            launcher,
            launch_every,
        ));
    }
    lab_http::serve(
        listener,
        move |request| {
            let manager = Arc::clone(&manager);
            async move { manager.handle(request).await }
        },
        shutdown,
    )
    .await;
    tracing::info!("jobs-manager stopped");
    Ok(())
}

impl JobsManager {
    async fn handle(&self, request: Request<Incoming>) -> Response {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/healthz") => json_response(
                StatusCode::OK,
                &serde_json::json!({ "status": "ok", "mode": self.mode.label() }),
            ),
            (&Method::GET, "/metrics") => self.metrics(),
            (&Method::POST, "/jobs") => match &self.launcher {
                Some(launcher) => self.start_job_response(launcher).await,
                None => {
                    let response = self.issue_response("job").await;
                    if response.status().is_success() {
                        self.jobs_started.fetch_add(1, Ordering::Relaxed);
                    }
                    response
                }
            },
            // Each call stands for a new synthetic caller job of the load generator.
            (&Method::POST, "/token") => self.issue_response("caller").await,
            _ => error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
        }
    }

    async fn issue_response(&self, job_prefix: &str) -> Response {
        let job_id = token::new_job_id(job_prefix);
        match self.issue(&job_id).await {
            Ok(token) => {
                self.tokens_minted.inc(&[self.mode.label()]);
                tracing::debug!(%job_id, mode = %self.mode, "token minted");
                json_response(
                    StatusCode::OK,
                    &IssuedToken {
                        job_id,
                        token,
                        mode: self.mode.label(),
                    },
                )
            }
            Err(IssueError::Signing(error)) => {
                tracing::error!(%error, "cannot sign a job token");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "signing_failed",
                    &error.to_string(),
                )
            }
            Err(error) => {
                // An unregistered legacy token would only produce 401s: refuse instead.
                self.register_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%job_id, %error, "token not issued");
                error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "proxy_unavailable",
                    &error.to_string(),
                )
            }
        }
    }

    async fn issue(&self, job_id: &str) -> Result<String, IssueError> {
        match self.mode {
            TokenMode::Stateless => Ok(self.key.mint(job_id, self.token_ttl)?),
            TokenMode::Legacy => {
                let token = token::opaque_token();
                let registration = serde_json::json!({ "token": token, "job_id": job_id });
                for url in self.register_urls().await? {
                    let answer = self
                        .client
                        .post_json(&url, &registration)
                        .await
                        .map_err(|error| IssueError::ProxyUnreachable(error_chain(&error)))?;
                    if !answer.status.is_success() {
                        return Err(IssueError::ProxyRefused(answer.status));
                    }
                }
                Ok(token)
            }
        }
    }

    /// Where a legacy token must be registered: every ready proxy replica in a cluster (each
    /// keeps its own map, and the Service would pick just one), else the one proxy URL.
    async fn register_urls(&self) -> Result<Vec<String>, IssueError> {
        match (&self.launcher, &self.proxy_service) {
            (Some(launcher), Some(service)) => Ok(launcher
                .ready_endpoints(service)
                .await?
                .into_iter()
                .map(|base| format!("{base}/internal/register"))
                .collect()),
            _ => Ok(vec![self.register_url.clone()]),
        }
    }

    /// Cluster mode: mints a token and starts a Job that holds it. A failure is counted and
    /// logged here, for both callers (`POST /jobs` and the timer).
    async fn start_job(&self, launcher: &Launcher) -> Result<StartedJob, IssueError> {
        let started = self.try_start_job(launcher).await;
        if let Err(error) = &started {
            self.launch_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %error_chain(error), "training Job not started");
        }
        started
    }

    async fn try_start_job(&self, launcher: &Launcher) -> Result<StartedJob, IssueError> {
        let job_id = token::new_job_id("job");
        let token = self.issue(&job_id).await?;
        self.tokens_minted.inc(&[self.mode.label()]);
        let job_name = launcher.launch(&job_id, &token, self.mode).await?;
        self.jobs_started.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%job_id, job = %job_name, mode = %self.mode, "training Job started");
        if let Err(error) = launcher.prune_finished().await {
            tracing::warn!(error = %error_chain(&error), "cannot prune finished training Jobs");
        }
        Ok(StartedJob {
            job_id,
            job_name,
            mode: self.mode.label(),
        })
    }

    async fn start_job_response(&self, launcher: &Launcher) -> Response {
        match self.start_job(launcher).await {
            Ok(started) => json_response(StatusCode::OK, &started),
            Err(error) => error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "job_not_started",
                &error_chain(&error),
            ),
        }
    }

    fn metrics(&self) -> Response {
        let mut exposition = Exposition::new();
        exposition.counter(
            "lab_jobs_manager_jobs_started_total",
            "Training jobs started (POST /jobs answered 200).",
            self.jobs_started.load(Ordering::Relaxed),
        );
        exposition.counter_vec(
            "lab_jobs_manager_tokens_minted_total",
            "Tokens issued by POST /jobs and POST /token, by token mode.",
            &self.tokens_minted,
        );
        exposition.counter(
            "lab_jobs_manager_register_failures_total",
            "Legacy tokens not issued because the proxy could not register them.",
            self.register_failures.load(Ordering::Relaxed),
        );
        exposition.counter(
            "lab_jobs_manager_launch_failures_total",
            "Training Jobs that could not be started in the cluster.",
            self.launch_failures.load(Ordering::Relaxed),
        );
        exposition.gauge(
            "lab_jobs_manager_stateless_mode",
            "1 when stateless tokens are on, 0 in legacy mode.",
            if self.mode == TokenMode::Stateless {
                1.0
            } else {
                0.0
            },
        );
        exposition.gauge(
            "lab_jobs_manager_start_time_seconds",
            "Start time of the process, seconds since the Unix epoch.",
            self.start_time_seconds,
        );
        exposition.process_cpu();
        text_response(StatusCode::OK, metrics::CONTENT_TYPE, exposition.finish())
    }
}

/// Connects the cluster mode with the pod's ServiceAccount.
async fn connect_launcher(
    cluster: &ClusterJobsConfig,
    image: &str,
    proxy_url: &str,
) -> Result<Launcher, LabError> {
    let job_proxy_url = match &cluster.job_proxy_url {
        Some(url) => base_url("job-proxy-url", url)?,
        None => proxy_url.to_owned(),
    };
    let spec = TrainingJobSpec {
        image: image.to_owned(),
        proxy_url: job_proxy_url,
        steps: cluster.job_steps,
        interval: cluster.job_interval.as_duration(),
        give_up_after: cluster.job_give_up_after,
        max_runtime: cluster.job_max_runtime.as_duration(),
    };
    Ok(Launcher::connect(&cluster.job_namespace, spec).await?)
}

/// Starts one Job every `every`, like users submitting work, so drills always find Jobs in
/// flight. A failure is counted and logged by `start_job`; the next tick tries again.
async fn launch_periodically(manager: Arc<JobsManager>, launcher: Launcher, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // Already counted and logged by `start_job`.
        let _ = manager.start_job(&launcher).await;
    }
}
