//! `drillbook fault-proxy` as a process on loopback (issue #23): a real upstream (a tiny HTTP
//! server on a thread), the proxy in between, and real sockets to see what a caller sees —
//! statuses, resets (RST, not FIN), a blackhole that holds, the fail-open deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common;
use common::base::{block_until, free_port};
use common::cli::drillbook;

/// An upstream on loopback that hands each connection to `answer` on a thread of its own,
/// for the test's lifetime.
fn upstream_with(answer: fn(TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    port
}

/// An upstream answering every request `200 ok` (keep-alive).
fn upstream() -> u16 {
    upstream_with(|mut stream| {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buffer) {
            if n == 0
                || stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .is_err()
            {
                break;
            }
        }
    })
}

struct Proxy {
    child: Child,
    port: u16,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The proxy with `faults` (JSON fields of the spec), failing open `open_in` from now.
fn proxy(faults: &str, open_in: Duration) -> Proxy {
    proxy_to(upstream(), "http", faults, open_in)
}

/// The proxy in front of `upstream`, reading it as `protocol`.
fn proxy_to(upstream: u16, protocol: &str, faults: &str, open_in: Duration) -> Proxy {
    let port = free_port();
    let spec = format!(
        "{{\"protocol\":\"{protocol}\",{faults},\"fail_open_at_ms\":{}}}",
        now_ms() + open_in.as_millis() as i64
    );
    let child = drillbook()
        .arg("fault-proxy")
        .arg(format!("--spec={spec}"))
        .arg(format!("--route=127.0.0.1:{port}=127.0.0.1:{upstream}"))
        .stdout(std::process::Stdio::null())
        .spawn();
    block_until("the fault proxy listens", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Proxy { child, port }
}

/// One request on a new connection: the status, or the io error kind.
fn get(port: u16, timeout: Duration) -> Result<u16, ErrorKind> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.kind())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.kind())?;
    stream
        .write_all(b"GET /v1/x HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .map_err(|e| e.kind())?;
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Err(e) => Err(e.kind()),
        Ok(_) if answer.is_empty() => Err(ErrorKind::UnexpectedEof),
        Ok(_) => String::from_utf8_lossy(&answer)
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(ErrorKind::InvalidData),
    }
}

#[test]
fn an_abort_share_answers_its_status_and_the_rest_is_forwarded() {
    let p = proxy(
        r#""abort":{"status":503,"share":0.3}"#,
        Duration::from_secs(60),
    );
    let statuses: Vec<u16> = (0..200)
        .map(|_| get(p.port, Duration::from_secs(2)).expect("an answer"))
        .collect();
    let aborted = statuses.iter().filter(|s| **s == 503).count();
    assert!(
        statuses.iter().all(|s| *s == 503 || *s == 200),
        "{statuses:?}"
    );
    // 30 % of 200 = 60, σ ≈ 6.5.
    assert!((35..85).contains(&aborted), "{aborted} of 200 aborted");
}

#[test]
fn a_reset_is_a_real_rst_and_latency_is_added() {
    let p = proxy(r#""reset":1.0"#, Duration::from_secs(60));
    assert_eq!(
        get(p.port, Duration::from_secs(2)),
        Err(ErrorKind::ConnectionReset)
    );
    let slow = proxy(
        r#""latency":{"fixed":{"ms":200.0}}"#,
        Duration::from_secs(60),
    );
    let start = Instant::now();
    assert_eq!(get(slow.port, Duration::from_secs(2)), Ok(200));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(800),
        "{took:?}"
    );
}

#[test]
fn a_blackhole_holds_until_the_fail_open_deadline_then_everything_passes() {
    let p = proxy(r#""blackhole":"hang""#, Duration::from_secs(3));
    assert_eq!(
        get(p.port, Duration::from_millis(800)),
        Err(ErrorKind::WouldBlock)
    );
    std::thread::sleep(Duration::from_secs(3));
    // Past the deadline: forwarded untouched, whatever the spec says.
    assert_eq!(get(p.port, Duration::from_secs(2)), Ok(200));
}

/// Bytes of the bulk upstream's answer.
const BULK: usize = 256 * 1024;

/// An upstream answering every request with `BULK` bytes, then closing.
fn bulk_upstream() -> u16 {
    upstream_with(|mut stream| {
        let mut buffer = [0u8; 4096];
        if stream.read(&mut buffer).unwrap_or(0) > 0 {
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {BULK}\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&vec![b'x'; BULK]);
        }
    })
}

/// Downloads the bulk answer through `port` on `callers` connections at once: the bytes each
/// got and the time until the last finished.
fn download(port: u16, callers: usize) -> (Vec<usize>, Duration) {
    let started = Instant::now();
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                stream
                    .set_read_timeout(Some(Duration::from_secs(15)))
                    .expect("timeout");
                stream
                    .write_all(b"GET /bulk HTTP/1.1\r\nhost: x\r\n\r\n")
                    .expect("send");
                let mut body = Vec::new();
                let _ = stream.read_to_end(&mut body);
                body.len()
            })
        })
        .collect();
    let got = threads.into_iter().map(|t| t.join().unwrap_or(0)).collect();
    (got, started.elapsed())
}

#[test]
fn a_bandwidth_cap_is_shared_by_every_connection_like_a_links() {
    // 128 KiB/s for the whole proxy: two callers of 256 KiB each need about 4 s together.
    for protocol in ["http", "tcp"] {
        let upstream = bulk_upstream();
        let proxy = proxy_to(
            upstream,
            protocol,
            "\"bandwidth\":131072",
            Duration::from_secs(60),
        );
        let (got, took) = download(proxy.port, 2);
        assert!(
            got.iter().all(|n| *n > BULK),
            "{protocol}: whole answers {got:?}"
        );
        // 512 KiB at 128 KiB/s is 4 s; the first tenth of a second may pass unbooked.
        assert!(
            took >= Duration::from_millis(3_600),
            "{protocol}: two capped downloads took {took:?}"
        );
        // Past the fail-open deadline, or with no cap, the same download is not held.
        let open = proxy_to(upstream, protocol, "\"bandwidth\":131072", Duration::ZERO);
        let (got, took) = download(open.port, 2);
        assert!(got.iter().all(|n| *n > BULK), "{protocol}: {got:?}");
        assert!(
            took < Duration::from_secs(2),
            "{protocol}: failed open, took {took:?}"
        );
    }
}
