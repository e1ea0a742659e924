//! The fault proxy: listens on one address per route and forwards to the route's upstream,
//! applying the current [`FaultSpec`] on the way. HTTP routes are handled per request (hyper
//! on both sides, one upstream connection per downstream connection, so the caller's
//! connection pattern is what the backends see); TCP routes per connection, with latency per
//! chunk sent upstream. The spec can change while it runs ([`Faults::set`]): the local target
//! switches a fault on and off this way, the pod's SIGTERM handler switches it off.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{BlackholeMode, Decision, FaultSpec, Protocol, now_ms};

/// How long an upstream connect may take before the request fails with 502.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One listening address and where its traffic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// The fault currently applied (none: forward untouched), shared by every connection, and
/// how the proxy reads its connections. The protocol is fixed when the proxy starts, so a
/// connection opened before a fault is applied is read the same way as one opened after it,
/// and an HTTP fault reaches requests on kept-alive connections too.
#[derive(Debug, Clone)]
pub struct Faults {
    protocol: Protocol,
    spec: Arc<RwLock<Option<Arc<FaultSpec>>>>,
    throttle: Arc<Throttle>,
}

/// A bandwidth cap shared by every connection, like a link's: each chunk sent to a caller
/// books its transmission time on one clock and is sent when its slot ends.
#[derive(Debug)]
struct Throttle {
    next_free: std::sync::Mutex<tokio::time::Instant>,
}

impl Throttle {
    fn new() -> Self {
        Self {
            next_free: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// How long to hold `bytes` so that, with everything booked before, no more than `rate`
    /// bytes per second leave.
    fn book(&self, bytes: usize, rate: u64) -> Duration {
        let now = tokio::time::Instant::now();
        let mut next_free = self
            .next_free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let end =
            (*next_free).max(now) + Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64);
        *next_free = end;
        end - now
    }
}

/// The largest chunk sent at once under a cap of `rate`: a tenth of a second's worth (at
/// least 1 KiB), so a capped stream flows evenly instead of in bursts.
fn capped_chunk(rate: u64) -> usize {
    usize::try_from(rate / 10)
        .unwrap_or(usize::MAX)
        .clamp(1024, 16 * 1024)
}

impl Faults {
    pub fn new(protocol: Protocol, spec: Option<FaultSpec>) -> Self {
        Self {
            protocol,
            spec: Arc::new(RwLock::new(spec.map(Arc::new))),
            throttle: Arc::new(Throttle::new()),
        }
    }

    /// The bandwidth cap in force now, if any.
    fn cap(&self) -> Option<u64> {
        self.current().and_then(|s| s.cap_at(now_ms()))
    }

    /// Holds `bytes` as long as the cap in force requires; whether it held them.
    async fn hold_for_cap(&self, bytes: usize) -> bool {
        match self.cap() {
            Some(rate) => {
                tokio::time::sleep(self.throttle.book(bytes, rate)).await;
                true
            }
            None => false,
        }
    }

    /// Applies `spec` from now on (`None`: forward untouched); connections held by a blackhole
    /// are released within a second.
    pub fn set(&self, spec: Option<FaultSpec>) {
        let mut current = self
            .spec
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = spec.map(Arc::new);
    }

    fn current(&self) -> Option<Arc<FaultSpec>> {
        self.spec
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether a fault still applies at this moment (a blackhole's hold ends when it does not).
    fn holding(&self) -> bool {
        self.current().is_some_and(|s| s.active(now_ms()))
    }
}

/// What the proxy did, counted since it started.
#[derive(Debug, Default)]
pub struct Counters {
    pub seen: AtomicU64,
    pub delayed: AtomicU64,
    pub aborted: AtomicU64,
    pub reset: AtomicU64,
    pub blackholed: AtomicU64,
    /// Responses (HTTP) or connections (TCP) slowed by the bandwidth cap.
    pub throttled: AtomicU64,
    pub upstream_errors: AtomicU64,
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counts {
    pub seen: u64,
    pub delayed: u64,
    pub aborted: u64,
    pub reset: u64,
    pub blackholed: u64,
    #[serde(default)]
    pub throttled: u64,
    pub upstream_errors: u64,
}

impl Counts {
    /// Requests (or connections) the fault changed: delayed, aborted, reset or blackholed.
    pub fn faulted(&self) -> u64 {
        self.delayed + self.aborted + self.reset + self.blackholed + self.throttled
    }

    /// What was counted since `earlier` (both totals since the proxy started).
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            seen: self.seen.saturating_sub(earlier.seen),
            delayed: self.delayed.saturating_sub(earlier.delayed),
            aborted: self.aborted.saturating_sub(earlier.aborted),
            reset: self.reset.saturating_sub(earlier.reset),
            blackholed: self.blackholed.saturating_sub(earlier.blackholed),
            throttled: self.throttled.saturating_sub(earlier.throttled),
            upstream_errors: self.upstream_errors.saturating_sub(earlier.upstream_errors),
        }
    }
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.seen += other.seen;
        self.delayed += other.delayed;
        self.aborted += other.aborted;
        self.reset += other.reset;
        self.blackholed += other.blackholed;
        self.throttled += other.throttled;
        self.upstream_errors += other.upstream_errors;
    }
}

impl Counters {
    pub fn snapshot(&self) -> Counts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            seen: get(&self.seen),
            delayed: get(&self.delayed),
            aborted: get(&self.aborted),
            reset: get(&self.reset),
            blackholed: get(&self.blackholed),
            throttled: get(&self.throttled),
            upstream_errors: get(&self.upstream_errors),
        }
    }

    fn count(&self, decision: Decision) {
        let counter = match decision {
            Decision::Forward { delay: Some(_) } => &self.delayed,
            Decision::Forward { delay: None } => return,
            Decision::Abort { .. } => &self.aborted,
            Decision::Reset => &self.reset,
            Decision::Blackhole(_) => &self.blackholed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Binds every route's address, then serves until `stop`. Binding happens before this returns
/// its future's first poll completes, so a caller that awaits [`bind`] knows the ports listen.
pub async fn bind(routes: &[Route]) -> Result<Vec<(Route, TcpListener)>, ProxyError> {
    let mut bound = Vec::with_capacity(routes.len());
    for route in routes {
        let listener =
            TcpListener::bind(route.listen)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr: route.listen,
                    source,
                })?;
        bound.push((*route, listener));
    }
    Ok(bound)
}

/// Serves bound routes until `stop`; each connection is one task. `seed` seeds the random
/// choices (which request is aborted), per connection.
pub async fn serve(
    bound: Vec<(Route, TcpListener)>,
    faults: Faults,
    counters: Arc<Counters>,
    stop: CancellationToken,
    seed: u64,
) {
    let tracker = tokio_util::task::TaskTracker::new();
    for (index, (route, listener)) in bound.into_iter().enumerate() {
        let (faults, counters, stop, inner) = (
            faults.clone(),
            counters.clone(),
            stop.clone(),
            tracker.clone(),
        );
        tracker.spawn(async move {
            let mut connection = 0u64;
            loop {
                let accepted = tokio::select! {
                    () = stop.cancelled() => break,
                    a = listener.accept() => a,
                };
                let Ok((client, _)) = accepted else {
                    // EMFILE and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                connection += 1;
                let rng = StdRng::seed_from_u64(seed ^ ((index as u64) << 48) ^ connection);
                let (faults, counters, stop) = (faults.clone(), counters.clone(), stop.clone());
                inner.spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = handle(client, route.upstream, faults, counters, rng) => {}
                    }
                });
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

async fn handle(
    client: TcpStream,
    upstream: SocketAddr,
    faults: Faults,
    counters: Arc<Counters>,
    rng: StdRng,
) {
    let _ = client.set_nodelay(true);
    match faults.protocol {
        Protocol::Http => http_connection(client, upstream, faults, counters, rng).await,
        Protocol::Tcp => tcp_connection(client, upstream, faults, counters, rng).await,
    }
}

/// Reads and discards from `client` while the fault holds, then closes it.
async fn hold<S: AsyncRead + Unpin>(client: &mut S, faults: &Faults) {
    let mut sink = [0u8; 4096];
    while faults.holding() {
        let read = tokio::time::timeout(Duration::from_secs(1), client.read(&mut sink)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return;
        }
    }
}

async fn tcp_connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    faults: Faults,
    counters: Arc<Counters>,
    mut rng: StdRng,
) {
    counters.seen.fetch_add(1, Ordering::Relaxed);
    let decision = faults
        .current()
        .map_or(Decision::Forward { delay: None }, |s| {
            s.decide(now_ms(), true, &mut rng)
        });
    counters.count(decision);
    match decision {
        Decision::Reset | Decision::Blackhole(BlackholeMode::Refuse) => {
            // A zero linger makes close send RST instead of FIN.
            let _ = client.set_zero_linger();
            return;
        }
        Decision::Blackhole(BlackholeMode::Hang) => {
            hold(&mut client, &faults).await;
            return;
        }
        Decision::Abort { .. } | Decision::Forward { .. } => {}
    }
    let Ok(Ok(mut server)) =
        tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await
    else {
        counters.upstream_errors.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_zero_linger();
        return;
    };
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let upstream_direction = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Latency per chunk sent upstream: for request/response protocols, per request.
            let delay = faults
                .current()
                .and_then(|s| match s.decide(now_ms(), true, &mut rng) {
                    Decision::Forward { delay } => delay,
                    _ => None,
                });
            if let Some(delay) = delay {
                counters.delayed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream_direction = async {
        let mut buffer = vec![0u8; 16 * 1024];
        let mut throttled = false;
        loop {
            let limit = faults
                .cap()
                .map_or(buffer.len(), capped_chunk)
                .min(buffer.len());
            let n = match server_read.read(&mut buffer[..limit]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if faults.hold_for_cap(n).await && !throttled {
                throttled = true;
                counters.throttled.fetch_add(1, Ordering::Relaxed);
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream_direction, downstream_direction);
}

/// The downstream connection of an HTTP route: a TCP stream that, once `reset` is set, fails
/// every read and write and closes with RST (zero linger) when hyper drops it.
struct ResettableStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl ResettableStream {
    fn gone(&self) -> Option<io::Error> {
        self.reset
            .load(Ordering::Relaxed)
            .then(|| io::Error::new(io::ErrorKind::ConnectionReset, "fault: reset"))
    }
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.gone() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.gone() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

/// Why an HTTP request got no answer on purpose.
#[derive(Debug, thiserror::Error)]
#[error("fault: connection reset")]
struct ResetOnPurpose;

fn plain(status: u16, text: &'static str) -> hyper::Response<Body> {
    let mut response = hyper::Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
    response
}

/// A response body sent no faster than the bandwidth cap: data frames are cut into pieces
/// of at most 16 KiB, each held for its slot.
fn capped(body: Incoming, faults: Faults) -> Body {
    use futures::StreamExt;
    let pieces = http_body_util::BodyStream::new(body).flat_map(|frame| {
        let pieces: Vec<Result<hyper::body::Frame<Bytes>, hyper::Error>> = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(mut data) => {
                    let mut pieces = Vec::new();
                    while !data.is_empty() {
                        let size = data.len().min(16 * 1024);
                        pieces.push(Ok(hyper::body::Frame::data(data.split_to(size))));
                    }
                    pieces
                }
                Err(trailers) => vec![Ok(trailers)],
            },
            Err(e) => vec![Err(e)],
        };
        futures::stream::iter(pieces)
    });
    let paced = pieces.then(move |piece| {
        let faults = faults.clone();
        async move {
            let len = piece
                .as_ref()
                .ok()
                .and_then(|f| f.data_ref().map(Bytes::len))
                .unwrap_or(0);
            if len > 0 {
                faults.hold_for_cap(len).await;
            }
            piece
        }
    });
    BodyExt::boxed(http_body_util::StreamBody::new(paced))
}

/// One upstream HTTP/1 connection per downstream connection, opened on first use and again
/// after the upstream closed it.
struct Upstream {
    addr: SocketAddr,
    sender: Option<SendRequest<Incoming>>,
}

impl Upstream {
    async fn send(
        &mut self,
        request: hyper::Request<Incoming>,
    ) -> Result<hyper::Response<Incoming>, ()> {
        if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr))
                .await
                .map_err(|_| ())?
                .map_err(|_| ())?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|_| ())?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().ok_or(())?;
        sender.ready().await.map_err(|_| ())?;
        sender.send_request(request).await.map_err(|_| ())
    }
}

async fn http_connection(
    client: TcpStream,
    upstream: SocketAddr,
    faults: Faults,
    counters: Arc<Counters>,
    rng: StdRng,
) {
    let reset = Arc::new(AtomicBool::new(false));
    let stream = ResettableStream {
        inner: client,
        reset: reset.clone(),
    };
    let state = Arc::new(tokio::sync::Mutex::new((
        Upstream {
            addr: upstream,
            sender: None,
        },
        rng,
    )));
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let (faults, counters, reset, state) = (
            faults.clone(),
            counters.clone(),
            reset.clone(),
            state.clone(),
        );
        async move {
            counters.seen.fetch_add(1, Ordering::Relaxed);
            // HTTP/1 serves one request at a time per connection: the lock is never contended.
            let mut state = state.lock().await;
            let (upstream, rng) = &mut *state;
            let decision = faults
                .current()
                .map_or(Decision::Forward { delay: None }, |s| {
                    let headers = request.headers();
                    let matched = s.matcher.matches(
                        request.method().as_str(),
                        request.uri().path(),
                        |name| {
                            headers
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(String::from)
                        },
                    );
                    s.decide(now_ms(), matched, rng)
                });
            counters.count(decision);
            match decision {
                Decision::Abort { status } => {
                    return Ok(plain(status, "injected by drillbook fault-proxy\n"));
                }
                Decision::Reset | Decision::Blackhole(BlackholeMode::Refuse) => {
                    reset.store(true, Ordering::Relaxed);
                    return Err(ResetOnPurpose);
                }
                Decision::Blackhole(BlackholeMode::Hang) => {
                    while faults.holding() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                Decision::Forward { delay: Some(delay) } => tokio::time::sleep(delay).await,
                Decision::Forward { delay: None } => {}
            }
            match upstream.send(request).await {
                Ok(response) if faults.cap().is_some() => {
                    counters.throttled.fetch_add(1, Ordering::Relaxed);
                    Ok(response.map(|body| capped(body, faults.clone())))
                }
                Ok(response) => Ok(response.map(BodyExt::boxed)),
                Err(()) => {
                    counters.upstream_errors.fetch_add(1, Ordering::Relaxed);
                    Ok(plain(502, "fault-proxy: upstream unreachable\n"))
                }
            }
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
