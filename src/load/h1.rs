//! A lean HTTP/1.1 client for the load loop over plain TCP. The request head is serialised once
//! per run; each request copies it (plus the caller's `Authorization`) into the connection's
//! reused buffer, writes it, and parses the response head in place with `httparse`, reading and
//! dropping the body by its framing (`Content-Length`, chunked, or to the close). No task, no
//! channel and no allocation per request: hyper's client costs a connection task, a dispatch
//! channel and a response object per request, which was most of the engine's user-space CPU
//! (`bench/README.md`). https keeps hyper and rustls (see `conn.rs`).

use std::future::Future as _;
use std::io;
use std::task::{Context, Poll, Waker};

use http::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap, HeaderValue};
use http::{Method, Uri};
use tokio::io::{AsyncWriteExt as _, Interest};
use tokio::net::TcpStream;

use super::exchange::{Exchange, Failure, classify_io};
use super::stats::ErrorKind;

/// First size of a connection's read buffer; a response head that does not fit makes it grow
/// up to [`MAX_HEAD`].
const READ_BUFFER: usize = 16 * 1024;
/// The largest response head accepted (hyper's default limit is about the same).
const MAX_HEAD: usize = 400 * 1024;
/// Response headers parsed; more is an error, as in hyper.
const MAX_HEADERS: usize = 100;

/// The parts of every request that do not change: `METHOD path HTTP/1.1`, the headers
/// (`Host` among them; a per-caller `Authorization` is added per request) and the body.
#[derive(Debug)]
pub(crate) struct RequestTemplate {
    /// Everything up to, not including, the blank line that ends the head.
    head: Vec<u8>,
    body: bytes::Bytes,
    /// No body comes back (HEAD).
    head_only: bool,
}

impl RequestTemplate {
    /// Serialises the request line and `headers`; `per_caller_auth` leaves out any
    /// `Authorization` header (each caller's own is added per request).
    pub(crate) fn new(
        method: &Method,
        path: &Uri,
        headers: &HeaderMap,
        body: bytes::Bytes,
        per_caller_auth: bool,
    ) -> Self {
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(method.as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(
            path.path_and_query()
                .map_or("/", |pq| pq.as_str())
                .as_bytes(),
        );
        head.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in headers {
            if per_caller_auth && name == AUTHORIZATION {
                continue;
            }
            push_header(&mut head, name.as_str().as_bytes(), value.as_bytes());
        }
        // As hyper does: a length for any body, and an explicit 0 for methods that carry one.
        let carries_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
        if !headers.contains_key(CONTENT_LENGTH) && (!body.is_empty() || carries_body) {
            push_header(
                &mut head,
                b"content-length",
                body.len().to_string().as_bytes(),
            );
        }
        Self {
            head,
            body,
            head_only: *method == Method::HEAD,
        }
    }

    /// The whole request, with `authorization` when a caller is used, into `out`.
    fn write_into(&self, out: &mut Vec<u8>, authorization: Option<&HeaderValue>) {
        out.clear();
        out.extend_from_slice(&self.head);
        if let Some(value) = authorization {
            push_header(out, b"authorization", value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// One keep-alive connection with its reused buffers.
pub(crate) struct Connection {
    stream: TcpStream,
    /// Response bytes read and not yet consumed are `read[start..end]`.
    read: Vec<u8>,
    start: usize,
    end: usize,
    write: Vec<u8>,
    /// At least one exchange completed: a close seen now is the keep-alive race, not an
    /// answer to this request.
    used: bool,
}

impl Connection {
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            read: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            write: Vec::with_capacity(512),
            used: false,
        }
    }

    /// Sends one request and reads its whole response.
    pub(crate) async fn exchange(
        &mut self,
        request: &RequestTemplate,
        authorization: Option<&HeaderValue>,
    ) -> Exchange {
        if self.used && self.closed_by_peer() {
            return Exchange::NotSent;
        }
        request.write_into(&mut self.write, authorization);
        if let Err(e) = self.stream.write_all(&self.write).await {
            return Exchange::Failed(io_failure("write", &e));
        }
        match self.read_response(request.head_only).await {
            Ok((status, reusable)) => {
                self.used = true;
                if self.start == self.end {
                    self.forget_readable();
                }
                Exchange::Answered { status, reusable }
            }
            Err(failure) => Exchange::Failed(failure),
        }
    }

    /// Whether the server closed (or reset) this connection while it was idle, from the
    /// readiness the runtime already holds (a FIN or an error seen by epoll): no system call,
    /// as precise as hyper's check. Unread bytes nobody asked for make it unusable too.
    fn closed_by_peer(&mut self) -> bool {
        if self.start != self.end {
            return true;
        }
        let ready = std::pin::pin!(self.stream.ready(Interest::READABLE));
        match ready.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Pending => false,
            Poll::Ready(Ok(ready)) => ready.is_read_closed() || ready.is_error(),
            Poll::Ready(Err(_)) => true,
        }
    }

    /// Forgets the readable state of the response just read: nothing more is due until the
    /// next request, so the next read waits for epoll instead of first trying (and failing
    /// with `EAGAIN`) — one system call less per request. An end of stream is never forgotten
    /// (tokio keeps the closed state), so [`Self::closed_by_peer`] still sees it.
    fn forget_readable(&self) {
        let _ = self.stream.try_io(Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }

    async fn read_response(&mut self, head_only: bool) -> Result<(u16, bool), Failure> {
        loop {
            let head = self.parse_head().await?;
            // 1xx answers (100 Continue, 103 Early Hints) precede the real one.
            if (100..200).contains(&head.status) && head.status != 101 {
                continue;
            }
            let no_body = head_only || head.status == 204 || head.status == 304;
            let reusable = match head.framing {
                _ if no_body => {
                    // Nothing follows the head; a length header describes the GET answer.
                    head.keep_alive
                }
                Framing::Length(length) => {
                    self.skip(length).await?;
                    head.keep_alive
                }
                Framing::Chunked => {
                    self.skip_chunked().await?;
                    head.keep_alive
                }
                Framing::UntilClose => {
                    self.skip_to_close().await?;
                    false
                }
            };
            return Ok((head.status, reusable));
        }
    }

    /// Reads until a whole response head is buffered, parses it and consumes it.
    async fn parse_head(&mut self) -> Result<Head, Failure> {
        loop {
            if self.start < self.end {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(&self.read[self.start..self.end]) {
                    Ok(httparse::Status::Complete(length)) => {
                        let head = Head::of(&response)?;
                        self.start += length;
                        return Ok(head);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => {
                        return Err(Failure::new(
                            ErrorKind::Other,
                            format!("invalid response head: {e}"),
                        ));
                    }
                }
            }
            if self.fill().await? == 0 {
                return Err(eof_failure());
            }
        }
    }

    /// Reads more bytes after the unread ones, making room first; `0` is the end of stream.
    async fn fill(&mut self) -> Result<usize, Failure> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.read.len() {
            if self.start > 0 {
                self.read.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else if self.read.len() < MAX_HEAD {
                self.read.resize((self.read.len() * 2).min(MAX_HEAD), 0);
            } else {
                return Err(Failure::new(
                    ErrorKind::Other,
                    format!("response head larger than {MAX_HEAD} bytes"),
                ));
            }
        }
        loop {
            self.stream
                .readable()
                .await
                .map_err(|e| io_failure("read", &e))?;
            match self.stream.try_read(&mut self.read[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(io_failure("read", &e)),
            }
        }
    }

    /// Consumes `length` body bytes.
    async fn skip(&mut self, mut length: u64) -> Result<(), Failure> {
        loop {
            let buffered = (self.end - self.start) as u64;
            if buffered >= length {
                // `length` fits in usize: it is at most what is buffered.
                self.start += usize::try_from(length).unwrap_or(usize::MAX);
                return Ok(());
            }
            length -= buffered;
            self.start = self.end;
            if self.fill().await? == 0 {
                return Err(eof_failure());
            }
        }
    }

    /// Consumes a chunked body: `size[;ext]CRLF data CRLF`…, `0CRLF`, trailers, `CRLF`.
    async fn skip_chunked(&mut self) -> Result<(), Failure> {
        loop {
            let line = self.line().await?;
            let size = line.split(|b| *b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size)
                .ok()
                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| Failure::new(ErrorKind::Other, "invalid chunk size".into()))?;
            if size == 0 {
                // Trailers, then the empty line.
                while !self.line().await?.is_empty() {}
                return Ok(());
            }
            self.skip(size).await?;
            if !self.line().await?.is_empty() {
                return Err(Failure::new(
                    ErrorKind::Other,
                    "chunk data longer than its size".into(),
                ));
            }
        }
    }

    /// The next CRLF-terminated line of the body (without the CRLF), consumed.
    async fn line(&mut self) -> Result<Vec<u8>, Failure> {
        loop {
            let unread = &self.read[self.start..self.end];
            if let Some(at) = unread.windows(2).position(|w| w == b"\r\n") {
                let line = unread[..at].to_vec();
                self.start += at + 2;
                return Ok(line);
            }
            if self.end - self.start > 4096 {
                return Err(Failure::new(
                    ErrorKind::Other,
                    "chunk line longer than 4096 bytes".into(),
                ));
            }
            if self.fill().await? == 0 {
                return Err(eof_failure());
            }
        }
    }

    async fn skip_to_close(&mut self) -> Result<(), Failure> {
        loop {
            self.start = self.end;
            if self.fill().await? == 0 {
                return Ok(());
            }
        }
    }
}

/// How a response body is delimited.
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// What the load needs of a response head.
struct Head {
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

impl Head {
    fn of(response: &httparse::Response<'_, '_>) -> Result<Self, Failure> {
        let invalid =
            |what: &str| Failure::new(ErrorKind::Other, format!("invalid response: {what}"));
        let status = response.code.ok_or_else(|| invalid("no status"))?;
        // HTTP/1.0 closes unless asked not to; HTTP/1.1 keeps alive unless asked to close.
        let mut keep_alive = response.version == Some(1);
        let mut framing = Framing::UntilClose;
        for header in response.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                if matches!(framing, Framing::UntilClose) {
                    let length = std::str::from_utf8(header.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or_else(|| invalid("bad content-length"))?;
                    framing = Framing::Length(length);
                }
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                // Chunked wins over a length (RFC 9112 §6.3).
                if last_token_is(header.value, b"chunked") {
                    framing = Framing::Chunked;
                }
            } else if header.name.eq_ignore_ascii_case("connection") {
                if has_token(header.value, b"close") {
                    keep_alive = false;
                } else if has_token(header.value, b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
        Ok(Self {
            status,
            framing,
            keep_alive,
        })
    }
}

fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    tokens(value).any(|t| t.eq_ignore_ascii_case(token))
}

fn last_token_is(value: &[u8], token: &[u8]) -> bool {
    tokens(value)
        .last()
        .is_some_and(|t| t.eq_ignore_ascii_case(token))
}

fn io_failure(what: &str, error: &io::Error) -> Failure {
    Failure::new(classify_io(error), format!("{what}: {error}"))
}

fn eof_failure() -> Failure {
    Failure::new(
        ErrorKind::Reset,
        "the connection closed before the response was complete".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;
    use tokio::net::TcpListener;

    /// A server on an ephemeral loopback port that answers each request (read up to the blank
    /// line) with the next canned response, then closes after the last.
    async fn serve(
        responses: Vec<&'static [u8]>,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
            let mut seen = Vec::new();
            for response in responses {
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while !request.ends_with(b"\r\n\r\n") {
                    if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                        return seen;
                    }
                    request.push(byte[0]);
                }
                seen.push(request);
                socket
                    .write_all(response)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            seen
        });
        (addr, task)
    }

    fn get() -> RequestTemplate {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_static("svc:80"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer shared"));
        RequestTemplate::new(
            &Method::GET,
            &"/v1/x?y=1".parse().unwrap_or_else(|e| panic!("{e}")),
            &headers,
            bytes::Bytes::new(),
            true,
        )
    }

    async fn answered(connection: &mut Connection, request: &RequestTemplate) -> (u16, bool) {
        match connection
            .exchange(request, Some(&HeaderValue::from_static("Bearer caller-1")))
            .await
        {
            Exchange::Answered { status, reusable } => (status, reusable),
            Exchange::NotSent => panic!("not sent"),
            Exchange::Failed(f) => panic!("failed: {}", f.detail),
        }
    }

    #[tokio::test]
    async fn reads_length_chunked_and_empty_bodies_on_one_connection() {
        let (addr, server) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nTrailer: t\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nConnection: close\r\n\r\n",
        ])
        .await;
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut connection = Connection::new(stream);
        let request = get();
        assert_eq!(answered(&mut connection, &request).await, (200, true));
        assert_eq!(answered(&mut connection, &request).await, (503, true));
        assert_eq!(answered(&mut connection, &request).await, (204, true));
        assert_eq!(answered(&mut connection, &request).await, (401, false));
        let seen = server.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen.len(), 4);
        let first = String::from_utf8_lossy(&seen[0]);
        assert!(first.starts_with("GET /v1/x?y=1 HTTP/1.1\r\n"), "{first}");
        assert!(first.contains("host: svc:80\r\n"), "{first}");
        // The caller's token replaces the shared one.
        assert!(
            first.contains("authorization: Bearer caller-1\r\n"),
            "{first}"
        );
        assert!(!first.contains("shared"), "{first}");
    }

    #[tokio::test]
    async fn a_body_framed_by_the_close_ends_the_connection() {
        let (addr, _server) = serve(vec![b"HTTP/1.0 200 OK\r\n\r\nall of it"]).await;
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut connection = Connection::new(stream);
        assert_eq!(answered(&mut connection, &get()).await, (200, false));
    }

    #[tokio::test]
    async fn an_idle_connection_the_server_closed_is_not_sent_on() {
        let (addr, server) = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]).await;
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut connection = Connection::new(stream);
        assert_eq!(answered(&mut connection, &get()).await, (200, true));
        // The server task ends after its one response and drops the socket.
        let _ = server.await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(matches!(
            connection.exchange(&get(), None).await,
            Exchange::NotSent
        ));
    }

    #[tokio::test]
    async fn a_response_cut_short_is_a_reset() {
        let (addr, _server) =
            serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut connection = Connection::new(stream);
        match connection.exchange(&get(), None).await {
            Exchange::Failed(failure) => {
                assert_eq!(failure.kind, ErrorKind::Reset, "{}", failure.detail);
            }
            _ => panic!("a truncated body must fail"),
        }
    }

    #[test]
    fn a_post_carries_its_length_and_body() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_static("h"));
        let template = RequestTemplate::new(
            &Method::POST,
            &"/token".parse().unwrap_or_else(|e| panic!("{e}")),
            &headers,
            bytes::Bytes::from_static(b"{\"a\":1}"),
            false,
        );
        let mut out = Vec::new();
        template.write_into(&mut out, None);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "POST /token HTTP/1.1\r\nhost: h\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
        );
    }
}
