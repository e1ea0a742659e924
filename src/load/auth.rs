//! Bearer tokens and the caller pool: N callers, each with its own token, used round-robin so
//! that N callers stand for N training jobs. Tokens come from an env var, a file (re-read when
//! it changes) or a token endpoint; with a lifetime, callers are retired and replaced by new
//! ones with fresh tokens. Tokens never reach a log line, an error message or a `Debug` output.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::conn::{Target, redact_url, with_host};
use crate::units::HumanDuration;

/// A secret string (a bearer token). Its `Debug` output is redacted and it has no `Display`,
/// so it cannot end up in a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `Authorization: Bearer …` header value, marked sensitive (hyper and `http` then
    /// never print it).
    fn bearer_header(&self) -> Result<HeaderValue, AuthError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0))
            .map_err(|_| AuthError::InvalidToken)?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where bearer tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// One token in this environment variable, shared by every caller.
    Env(String),
    /// A file with one token per line (blank lines and `#` comments skipped); caller `k` uses
    /// line `k mod lines`. Re-read when its modification time changes.
    File(PathBuf),
    /// An endpoint that mints a token per POST; the JSON response holds it in `field` (a
    /// top-level key, or a JSON pointer such as `/data/token`).
    Url {
        /// The endpoint.
        url: String,
        /// The response field holding the token.
        field: String,
    },
}

/// Bearer authentication for the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Where tokens come from.
    pub source: TokenSource,
    /// Number of callers, each with its own token, used round-robin.
    pub callers: usize,
    /// A caller is retired after this long and replaced by a new one with a fresh token.
    pub caller_lifetime: Option<Duration>,
}

/// Why tokens could not be obtained. Messages never contain a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The variable is missing or empty.
    #[error("environment variable `{0}` holding the bearer token is not set or empty")]
    EnvMissing(String),
    /// The token file cannot be read.
    #[error("cannot read token file {path}: {source}")]
    FileRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The token file holds no token.
    #[error("token file {0} holds no token (write one token per line)")]
    FileEmpty(PathBuf),
    /// The token endpoint failed.
    #[error("token endpoint {url}: {reason}")]
    Fetch {
        /// The endpoint.
        url: String,
        /// What went wrong (never includes the response body).
        reason: String,
    },
    /// A token cannot be sent in a header.
    #[error("a bearer token contains characters that are not allowed in an HTTP header")]
    InvalidToken,
    /// `callers` is zero.
    #[error("the caller pool needs at least one caller")]
    NoCallers,
}

/// A caller currently sending requests.
#[derive(Debug, Clone)]
pub(crate) struct ActiveCaller {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    /// Sensitive header value: its `Debug` prints `Sensitive`.
    pub(crate) authorization: HeaderValue,
}

/// The callers in use, indexed by slot.
#[derive(Debug)]
pub(crate) struct CallerTable {
    pub(crate) callers: Vec<ActiveCaller>,
}

/// The shared, versioned caller table. Workers keep a snapshot and compare one atomic per
/// request, so the hot path takes no lock unless the table changed.
#[derive(Debug)]
pub(crate) struct CallerPool {
    version: AtomicU64,
    table: RwLock<Arc<CallerTable>>,
}

impl CallerPool {
    fn new(table: CallerTable) -> Self {
        Self {
            version: AtomicU64::new(0),
            table: RwLock::new(Arc::new(table)),
        }
    }

    fn snapshot(&self) -> (u64, Arc<CallerTable>) {
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        (self.version.load(Ordering::Acquire), Arc::clone(&table))
    }

    fn publish(&self, table: CallerTable) {
        let mut current = self.table.write().unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(table);
        self.version.fetch_add(1, Ordering::Release);
    }
}

/// A worker's view of the pool.
#[derive(Debug)]
pub(crate) struct CallerView {
    pool: Arc<CallerPool>,
    seen: u64,
    table: Arc<CallerTable>,
}

impl CallerView {
    pub(crate) fn new(pool: Arc<CallerPool>) -> Self {
        let (seen, table) = pool.snapshot();
        Self { pool, seen, table }
    }

    /// The caller for request `i` (round-robin over slots).
    pub(crate) fn pick(&mut self, i: u64) -> Option<&ActiveCaller> {
        if self.pool.version.load(Ordering::Acquire) != self.seen {
            (self.seen, self.table) = self.pool.snapshot();
        }
        let len = self.table.callers.len() as u64;
        if len == 0 {
            return None;
        }
        self.table.callers.get((i % len) as usize)
    }
}

/// A caller started or was retired (offsets from the start of the load).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallerEvent {
    Started {
        slot: u32,
        generation: u32,
        at: Duration,
    },
    Ended {
        slot: u32,
        generation: u32,
        at: Duration,
    },
}

/// Produces tokens from the configured source.
#[derive(Debug)]
enum Minter {
    Fixed(Secret),
    File {
        path: PathBuf,
        modified: Option<SystemTime>,
        tokens: Vec<Secret>,
    },
    Endpoint {
        url: String,
        target: Box<Target>,
        field: String,
        timeout: Duration,
    },
}

impl Minter {
    async fn new(source: &TokenSource, timeout: Duration) -> Result<Self, AuthError> {
        match source {
            TokenSource::Env(var) => match std::env::var(var) {
                Ok(value) if !value.trim().is_empty() => {
                    Ok(Minter::Fixed(Secret::new(value.trim())))
                }
                _ => Err(AuthError::EnvMissing(var.clone())),
            },
            TokenSource::File(path) => {
                let (modified, tokens) = read_token_file(path).await?;
                Ok(Minter::File {
                    path: path.clone(),
                    modified,
                    tokens,
                })
            }
            TokenSource::Url { url, field } => {
                let target = Target::parse(url).map_err(|reason| AuthError::Fetch {
                    url: redact_url(url),
                    reason,
                })?;
                Ok(Minter::Endpoint {
                    url: url.clone(),
                    target: Box::new(target),
                    field: field.clone(),
                    timeout,
                })
            }
        }
    }

    /// A token for a (new) caller.
    async fn token_for(&self, slot: u32, generation: u32) -> Result<Secret, AuthError> {
        match self {
            Minter::Fixed(secret) => Ok(secret.clone()),
            Minter::File { tokens, path, .. } => tokens
                .get(slot as usize % tokens.len().max(1))
                .cloned()
                .ok_or_else(|| AuthError::FileEmpty(path.clone())),
            Minter::Endpoint {
                url,
                target,
                field,
                timeout,
            } => {
                let label = super::stats::CallerStats::label_for(slot, generation);
                tokio::time::timeout(*timeout, fetch_token(target, field, &label))
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!("no answer within {}", HumanDuration(*timeout)))
                    })
                    .map_err(|reason| AuthError::Fetch {
                        url: url.clone(),
                        reason,
                    })
            }
        }
    }

    /// Re-reads the token file if it changed; `true` when the tokens were replaced.
    async fn refresh_file(&mut self) -> Result<bool, AuthError> {
        let Minter::File {
            path,
            modified,
            tokens,
        } = self
        else {
            return Ok(false);
        };
        let now_modified = tokio::fs::metadata(&*path)
            .await
            .and_then(|m| m.modified())
            .ok();
        if now_modified == *modified {
            return Ok(false);
        }
        let (fresh_modified, fresh) = read_token_file(path).await?;
        *modified = fresh_modified;
        *tokens = fresh;
        Ok(true)
    }
}

async fn read_token_file(path: &PathBuf) -> Result<(Option<SystemTime>, Vec<Secret>), AuthError> {
    let read_error = |source| AuthError::FileRead {
        path: path.clone(),
        source,
    };
    let modified = tokio::fs::metadata(path)
        .await
        .map_err(read_error)?
        .modified()
        .ok();
    let text = tokio::fs::read_to_string(path).await.map_err(read_error)?;
    let tokens: Vec<Secret> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(Secret::new)
        .collect();
    if tokens.is_empty() {
        return Err(AuthError::FileEmpty(path.clone()));
    }
    Ok((modified, tokens))
}

/// POSTs `{"caller": label}` to the endpoint and takes the token from the JSON answer.
/// Errors describe the failure without quoting the body (it holds the token).
async fn fetch_token(target: &Target, field: &str, label: &str) -> Result<Secret, String> {
    const MAX_BODY: usize = 1 << 20;
    let mut sender = target.connect().await.map_err(|f| f.detail)?;
    let body = serde_json::json!({ "caller": label }).to_string();
    let mut request = Request::new(Full::new(Bytes::from(body)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = target.path.clone();
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let request = with_host(request, target);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    let bytes = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?
        .to_bytes();
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| "the answer is not JSON".to_string())?;
    let value = if field.starts_with('/') {
        json.pointer(field)
    } else {
        json.get(field)
    };
    match value.and_then(serde_json::Value::as_str) {
        Some(token) if !token.is_empty() => Ok(Secret::new(token)),
        _ => Err(format!("the answer has no string field `{field}`")),
    }
}

/// Keeps the caller pool supplied with tokens for the whole run.
#[derive(Debug)]
pub(crate) struct TokenManager {
    minter: Minter,
    lifetime: Option<Duration>,
    /// Per slot: the active caller, its token and when it started.
    slots: Vec<(ActiveCaller, Secret, Instant)>,
    pool: Arc<CallerPool>,
    /// Time zero of the load.
    zero: Instant,
    /// Token fetches that failed during the run (the old caller then stays on).
    pub(crate) fetch_failures: u64,
}

impl TokenManager {
    /// Obtains a token for every caller before the load starts.
    /// Time zero is set with [`TokenManager::begin`] once the load's start is known.
    pub(crate) async fn start(config: &AuthConfig, timeout: Duration) -> Result<Self, AuthError> {
        if config.callers == 0 {
            return Err(AuthError::NoCallers);
        }
        let callers = u32::try_from(config.callers).map_err(|_| AuthError::NoCallers)?;
        let minter = Minter::new(&config.source, timeout).await?;
        let tokens =
            futures::future::try_join_all((0..callers).map(|slot| minter.token_for(slot, 0)))
                .await?;
        let now = Instant::now();
        let mut slots = Vec::with_capacity(tokens.len());
        for (slot, secret) in (0..callers).zip(tokens) {
            let caller = ActiveCaller {
                slot,
                generation: 0,
                authorization: secret.bearer_header()?,
            };
            slots.push((caller, secret, now));
        }
        let pool = Arc::new(CallerPool::new(CallerTable {
            callers: slots.iter().map(|(c, _, _)| c.clone()).collect(),
        }));
        Ok(Self {
            minter,
            lifetime: config.caller_lifetime,
            slots,
            pool,
            zero: now,
            fetch_failures: 0,
        })
    }

    /// Sets time zero of the load: callers' lifetimes count from it (or from now if later).
    pub(crate) fn begin(&mut self, zero: Instant) {
        self.zero = zero;
        for (_, _, started) in &mut self.slots {
            *started = (*started).max(zero);
        }
    }

    /// The pool workers read from.
    pub(crate) fn pool(&self) -> Arc<CallerPool> {
        Arc::clone(&self.pool)
    }

    /// The callers that exist at the start.
    pub(crate) fn initial_events(&self) -> Vec<CallerEvent> {
        self.slots
            .iter()
            .map(|(caller, _, started)| CallerEvent::Started {
                slot: caller.slot,
                generation: caller.generation,
                at: started.saturating_duration_since(self.zero),
            })
            .collect()
    }

    /// Rotates tokens (file changes) and replaces callers whose lifetime is over, until
    /// cancelled. Needs nothing to do when the source is fixed and callers live forever.
    pub(crate) async fn run(
        mut self,
        cancel: CancellationToken,
        mut on_event: impl FnMut(CallerEvent),
    ) -> Self {
        let watches_file = matches!(self.minter, Minter::File { .. });
        if !watches_file && self.lifetime.is_none() {
            cancel.cancelled().await;
            return self;
        }
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return self,
                _ = tick.tick() => {}
            }
            if watches_file {
                self.rotate_file_tokens().await;
            }
            if let Some(lifetime) = self.lifetime {
                self.replace_expired(lifetime, &mut on_event).await;
            }
        }
    }

    async fn rotate_file_tokens(&mut self) {
        match self.minter.refresh_file().await {
            Ok(false) => {}
            Ok(true) => {
                let mut updated = 0;
                for index in 0..self.slots.len() {
                    let slot = self.slots[index].0.slot;
                    let generation = self.slots[index].0.generation;
                    if let Ok(secret) = self.minter.token_for(slot, generation).await
                        && let Ok(header) = secret.bearer_header()
                    {
                        self.slots[index].0.authorization = header;
                        self.slots[index].1 = secret;
                        updated += 1;
                    }
                }
                tracing::info!(callers = updated, "token file changed; tokens rotated");
                self.publish();
            }
            // A file being rewritten may be briefly empty: keep the old tokens.
            Err(error) => tracing::warn!(%error, "token file not re-read; keeping the old tokens"),
        }
    }

    async fn replace_expired(
        &mut self,
        lifetime: Duration,
        on_event: &mut impl FnMut(CallerEvent),
    ) {
        let mut changed = false;
        for index in 0..self.slots.len() {
            let (caller, _, started) = &self.slots[index];
            if started.elapsed() < lifetime {
                continue;
            }
            let (slot, generation) = (caller.slot, caller.generation + 1);
            let fresh = match self.minter.token_for(slot, generation).await {
                Ok(secret) => secret.bearer_header().map(|header| (secret, header)),
                Err(error) => Err(error),
            };
            match fresh {
                Ok((secret, authorization)) => {
                    let now = Instant::now();
                    let at = now.saturating_duration_since(self.zero);
                    on_event(CallerEvent::Ended {
                        slot,
                        generation: generation - 1,
                        at,
                    });
                    on_event(CallerEvent::Started {
                        slot,
                        generation,
                        at,
                    });
                    tracing::debug!(slot, generation, "caller replaced");
                    self.slots[index] = (
                        ActiveCaller {
                            slot,
                            generation,
                            authorization,
                        },
                        secret,
                        now,
                    );
                    changed = true;
                }
                Err(error) => {
                    // The old caller keeps going; the next tick tries again.
                    self.fetch_failures += 1;
                    tracing::warn!(%error, slot, "cannot get a token for a new caller");
                }
            }
        }
        if changed {
            self.publish();
        }
    }

    fn publish(&self) {
        self.pool.publish(CallerTable {
            callers: self.slots.iter().map(|(c, _, _)| c.clone()).collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("s3cr3t-token");
        assert!(!format!("{secret:?}").contains("s3cr3t"));
        let header = secret.bearer_header().unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{header:?}").contains("s3cr3t"));
        let caller = ActiveCaller {
            slot: 0,
            generation: 0,
            authorization: header,
        };
        assert!(!format!("{caller:?}").contains("s3cr3t"));
        assert_eq!(secret.expose(), "s3cr3t-token");
    }

    #[tokio::test]
    async fn token_file_is_read_per_line_and_rotated() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# comment\na\n\nb\n").unwrap_or_else(|e| panic!("{e}"));
        let config = AuthConfig {
            source: TokenSource::File(path.clone()),
            callers: 3,
            caller_lifetime: None,
        };
        let mut manager = TokenManager::start(&config, Duration::from_secs(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let tokens: Vec<_> = manager
            .slots
            .iter()
            .map(|s| s.1.expose().to_string())
            .collect();
        assert_eq!(tokens, ["a", "b", "a"]);
        // Make sure the modification time moves even on coarse-grained file systems.
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::write(&path, "c\n").unwrap_or_else(|e| panic!("{e}"));
        let file = std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        file.set_modified(later).unwrap_or_else(|e| panic!("{e}"));
        let version_before = manager.pool.version.load(Ordering::Acquire);
        manager.rotate_file_tokens().await;
        assert!(manager.pool.version.load(Ordering::Acquire) > version_before);
        assert!(manager.slots.iter().all(|s| s.1.expose() == "c"));
    }

    #[tokio::test]
    async fn missing_env_var_is_an_error_naming_the_variable() {
        let config = AuthConfig {
            source: TokenSource::Env("DRILLBOOK_TEST_SURELY_UNSET_VAR".into()),
            callers: 1,
            caller_lifetime: None,
        };
        let error = TokenManager::start(&config, Duration::from_secs(1))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("DRILLBOOK_TEST_SURELY_UNSET_VAR"), "{error}");
    }
}
