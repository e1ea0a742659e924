//! The one place the lab talks HTTP: a hyper 1 server loop with graceful shutdown, response
//! builders, JSON body reading, and a tiny HTTP/1 client for lab-internal calls.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Response type of every lab handler: the whole body is in memory.
pub type Response = hyper::Response<Full<Bytes>>;

/// Request bodies larger than this are refused; lab bodies are a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long in-flight requests get to finish after a shutdown signal before we stop waiting.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the lab's HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address from `--listen`.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Installing the SIGTERM handler failed.
    #[error("cannot install the SIGTERM handler")]
    Signal(#[source] std::io::Error),
    /// A URL given to the client is not `http://host:port/...`.
    #[error("`{url}` is not a plain http:// URL with a host")]
    BadUrl {
        /// The offending URL.
        url: String,
    },
    /// The TCP connection could not be opened.
    #[error("cannot connect to {authority}")]
    Connect {
        /// `host:port` we tried.
        authority: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed (connection reset, malformed response...).
    #[error("HTTP exchange with {authority} failed")]
    Exchange {
        /// `host:port` we talked to.
        authority: String,
        /// The hyper error.
        #[source]
        source: hyper::Error,
    },
    /// The request could not be built (invalid header value...).
    #[error("cannot build the request")]
    Request(#[from] http::Error),
    /// The whole call took longer than the client timeout.
    #[error("no answer from {authority} within {}", crate::units::HumanDuration(*.timeout))]
    Timeout {
        /// `host:port` we talked to.
        authority: String,
        /// The limit that was hit.
        timeout: Duration,
    },
    /// A request body was too large or could not be read.
    #[error("cannot read the request body: {0}")]
    Body(String),
    /// A request body was not the JSON we expected.
    #[error("request body is not valid JSON for this endpoint")]
    Json(#[from] serde_json::Error),
}

/// Binds `addr`. Tokio sets `SO_REUSEADDR`, so a restarted lab process gets its port back at
/// once even with connections of the previous process in TIME_WAIT.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serves HTTP/1 on `listener` with `handler` until `shutdown` resolves, then stops accepting,
/// lets in-flight requests finish (bounded by [`DRAIN_TIMEOUT`]) and returns.
pub async fn serve<H, F>(listener: TcpListener, handler: H, shutdown: impl Future<Output = ()>)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let connections = TaskTracker::new();
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Usually EMFILE or a reset during the handshake: keep serving the others.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let handler = handler.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let response = handler(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop.cancelled() => {
                    // Finish the request in flight, then close instead of keeping alive.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    stop.cancel();
    connections.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "in-flight requests did not finish within {}; exiting anyway",
            crate::units::HumanDuration(DRAIN_TIMEOUT)
        );
    }
}

/// Resolves on SIGTERM (what Kubernetes and the local supervisor send) or Ctrl-C.
pub fn shutdown_signal() -> Result<impl Future<Output = ()>, HttpError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate()).map_err(HttpError::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted, shutting down"),
        }
    })
}

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    // Serializing our own plain structs and `json!` values cannot fail; fall back to `{}`.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    with_content_type(status, "application/json", bytes.into())
}

/// A `{"error": ..., "reason": ...}` JSON response.
pub fn error_response(status: StatusCode, error: &str, reason: &str) -> Response {
    json_response(
        status,
        &serde_json::json!({ "error": error, "reason": reason }),
    )
}

/// A plain-text response (health checks, Prometheus exposition).
pub fn text_response(status: StatusCode, content_type: &'static str, body: String) -> Response {
    with_content_type(status, content_type, body.into())
}

fn with_content_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Response {
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Reads a size-limited JSON request body.
pub async fn read_json<T: DeserializeOwned>(request: Request<Incoming>) -> Result<T, HttpError> {
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|error| HttpError::Body(error.to_string()))?
        .to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

/// The bearer token of a request, if it has one.
pub fn bearer_token<B>(request: &Request<B>) -> Option<&str> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `error: cause: cause`, for messages that travel in a response body or a progress line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The answer of a [`Client`] call: status and whole body.
#[derive(Debug, Clone)]
pub struct ClientResponse {
    /// HTTP status code.
    pub status: StatusCode,
    /// Response body.
    pub body: Bytes,
}

/// A minimal HTTP/1 client for lab-internal calls (jobs-manager → proxy, trainer → proxy).
/// One connection per call: the callers are slow and must notice a restarted peer at once.
#[derive(Debug, Clone)]
pub struct Client {
    timeout: Duration,
}

impl Client {
    /// A client whose calls (connect + request + whole body) give up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    /// `GET url` with an optional bearer token.
    pub async fn get(&self, url: &str, bearer: Option<&str>) -> Result<ClientResponse, HttpError> {
        self.call(Method::GET, url, bearer, Bytes::new()).await
    }

    /// `POST url` with a JSON body.
    pub async fn post_json(
        &self,
        url: &str,
        body: &impl Serialize,
    ) -> Result<ClientResponse, HttpError> {
        let bytes = serde_json::to_vec(body)?;
        self.call(Method::POST, url, None, bytes.into()).await
    }

    async fn call(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        body: Bytes,
    ) -> Result<ClientResponse, HttpError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| HttpError::BadUrl { url: url.into() })?;
        let (authority, path) = match (uri.scheme_str(), uri.authority()) {
            (Some("http"), Some(authority)) => (
                format!(
                    "{}:{}",
                    authority.host(),
                    authority.port_u16().unwrap_or(80)
                ),
                uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
            ),
            _ => return Err(HttpError::BadUrl { url: url.into() }),
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, authority.as_str())
            .header(CONTENT_TYPE, "application/json");
        if let Some(token) = bearer {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = builder.body(Full::new(body))?;
        let timeout = self.timeout;
        tokio::time::timeout(timeout, exchange(&authority, request))
            .await
            .unwrap_or(Err(HttpError::Timeout { authority, timeout }))
    }
}

async fn exchange(
    authority: &str,
    request: Request<Full<Bytes>>,
) -> Result<ClientResponse, HttpError> {
    let exchange_error = |source| HttpError::Exchange {
        authority: authority.to_owned(),
        source,
    };
    let stream = TcpStream::connect(authority)
        .await
        .map_err(|source| HttpError::Connect {
            authority: authority.to_owned(),
            source,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(exchange_error)?;
    // The connection task ends when `sender` is dropped at the end of this call.
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "client connection ended with an error");
        }
    });
    let response = sender.send_request(request).await.map_err(exchange_error)?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(exchange_error)?
        .to_bytes();
    Ok(ClientResponse { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(header: &str) -> Request<()> {
        Request::builder()
            .header(AUTHORIZATION, header)
            .body(())
            .expect("request")
    }

    #[test]
    fn bearer_token_accepts_any_case_scheme_and_rejects_others() {
        assert_eq!(bearer_token(&request_with("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&request_with("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&request_with("Basic abc")), None);
        assert_eq!(bearer_token(&request_with("Bearer ")), None);
        assert_eq!(bearer_token(&Request::new(())), None);
    }
}
