//! A small in-test HTTP server on a loopback ephemeral port, with a pluggable handler, that
//! can be killed (listener and every connection dropped) and restarted on the same port.

#![allow(clippy::unwrap_used)] // Test support fails loudly on purpose.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the handler sees of a request (body already read).
#[derive(Debug)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    /// The bearer token, if any.
    pub fn bearer(&self) -> Option<&str> {
        self.headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
    }
}

pub type Reply = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;
pub type Handler = Arc<dyn Fn(Req) -> Reply + Send + Sync>;

/// A response with a status and a text body.
pub fn respond(status: u16, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
}

/// Wraps a synchronous handler.
pub fn sync_handler(f: impl Fn(Req) -> Response<Full<Bytes>> + Send + Sync + 'static) -> Handler {
    let f = Arc::new(f);
    Arc::new(move |req| {
        let f = Arc::clone(&f);
        Box::pin(async move { f(req) })
    })
}

pub struct TestServer {
    pub addr: SocketAddr,
    handler: Handler,
    accept: Option<JoinHandle<()>>,
}

// By hand: the handler is a closure.
impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts on 127.0.0.1 with an ephemeral port.
    pub async fn start(handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, handler)
    }

    fn serve(listener: TcpListener, handler: Handler) -> Self {
        let addr = listener.local_addr().unwrap();
        let accept_handler = Arc::clone(&handler);
        let accept = tokio::spawn(async move {
            // Connection tasks live in this set, so aborting the accept task drops them all.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    continue;
                };
                let handler = Arc::clone(&accept_handler);
                connections.spawn(async move {
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let handler = Arc::clone(&handler);
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let req = Req {
                                method: parts.method,
                                path: parts.uri.path().to_string(),
                                headers: parts.headers,
                                body,
                            };
                            Ok::<_, std::convert::Infallible>(handler(req).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Reap finished connections so the set stays small.
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            handler,
            accept: Some(accept),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Closes the listener and every open connection, like a killed pod.
    pub async fn kill(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.kill().await;
        let listener = TcpListener::bind(self.addr).await.unwrap();
        let restarted = Self::serve(listener, Arc::clone(&self.handler));
        let mut restarted = restarted;
        self.accept = restarted.accept.take();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
    }
}

/// A token endpoint (`POST /token`) handing out `tok-<n>` in order and remembering which
/// caller label asked for each, plus a resource (`GET /`) answering 401 for revoked tokens,
/// 403 for unknown ones and 200 otherwise.
#[derive(Debug, Default)]
pub struct TokenAuthority {
    pub issued: std::sync::Mutex<Vec<(String, String)>>,
    pub revoked: std::sync::Mutex<Vec<String>>,
    /// Revoke the n-th issued token (0-based) as soon as it is issued.
    pub revoke_index: Option<usize>,
}

impl TokenAuthority {
    pub fn handler(self: &Arc<Self>) -> Handler {
        let authority = Arc::clone(self);
        sync_handler(move |req| authority.handle(&req))
    }

    fn handle(&self, req: &Req) -> Response<Full<Bytes>> {
        if req.method == Method::POST && req.path == "/token" {
            let json: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let label = json["caller"].as_str().unwrap_or("?").to_string();
            let mut issued = self.issued.lock().unwrap();
            let token = format!("tok-{}-{}", issued.len(), "s3cr3t");
            if self.revoke_index == Some(issued.len()) {
                self.revoked.lock().unwrap().push(token.clone());
            }
            issued.push((token.clone(), label));
            return respond(200, serde_json::json!({ "token": token }).to_string());
        }
        let Some(token) = req.bearer() else {
            return respond(401, "no token");
        };
        if self.revoked.lock().unwrap().iter().any(|t| t == token) {
            return respond(401, "revoked");
        }
        if self.issued.lock().unwrap().iter().any(|(t, _)| t == token) {
            respond(200, "ok")
        } else {
            respond(403, "unknown token")
        }
    }

    /// The caller label that asked for a token.
    pub fn label_of(&self, token: &str) -> Option<String> {
        self.issued
            .lock()
            .unwrap()
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, label)| label.clone())
    }

    pub fn tokens(&self) -> Vec<String> {
        self.issued
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }
}
