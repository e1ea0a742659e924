//! A scripted API server for unit tests (the kube-rs `ApiServerVerifier` pattern): the test
//! receives each request the client sends, checks its exact shape and answers it.

use std::path::PathBuf;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::Value;
use tower_test::mock::{Handle, SendResponse};

use super::{KubeTarget, Pinned};

/// The server side of a mocked client.
pub struct ApiServer(Handle<Request<Body>, Response<Body>>);

/// A request as the server saw it.
#[derive(Debug)]
pub struct Seen {
    pub method: http::Method,
    /// Path and query, e.g. `/api/v1/namespaces/ns/pods?&labelSelector=app%3Dproxy`.
    pub uri: String,
    pub content_type: Option<String>,
    /// The JSON body (`Value::Null` when empty).
    pub body: Value,
}

/// A target pinned to context `test`, namespace `ns`, with `max_pods`, on a mocked client.
pub fn target(max_pods: u32) -> (KubeTarget, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "ns");
    let pinned = Pinned {
        context: "test".into(),
        namespace: "ns".into(),
        allowed_namespaces: vec!["ns".into()],
    };
    (
        KubeTarget::from_parts(client, pinned, max_pods, None::<PathBuf>),
        ApiServer(handle),
    )
}

impl ApiServer {
    /// The next request; panics when the client sent none (the tests rely on that).
    pub async fn next(&mut self) -> (Seen, SendResponse<Response<Body>>) {
        let (request, send) =
            tokio::time::timeout(std::time::Duration::from_secs(5), self.0.next_request())
                .await
                .unwrap_or(None)
                .unwrap_or_else(|| panic!("the client sent no request"));
        let (parts, body) = request.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        let seen = Seen {
            method: parts.method,
            uri: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body,
        };
        (seen, send)
    }

    /// Receives the next request and answers it with `status` and `answer`.
    pub async fn answer(&mut self, status: u16, answer: Value) -> Seen {
        let (seen, send) = self.next().await;
        respond(send, status, &answer);
        seen
    }

    /// Whether the client is done (dropped) without sending anything more.
    pub async fn sent_nothing_more(mut self) -> bool {
        self.0.next_request().await.is_none()
    }
}

/// Sends a JSON answer.
pub fn respond(send: SendResponse<Response<Body>>, status: u16, answer: &Value) {
    let response = Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(answer).unwrap()))
        .unwrap();
    send.send_response(response);
}

/// A Status object as the API server sends with an error.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "code": code, "reason": reason, "message": message,
    })
}
