//! What one request on a connection came to ([`Exchange`]), and transport failures mapped to
//! their [`ErrorKind`]; shared by both clients (`conn.rs` for hyper, `h1.rs` the lean one).

use std::error::Error as _;
use std::io;

use super::stats::ErrorKind;

/// What happened to one request on a connection.
pub(crate) enum Exchange {
    /// An answer, body fully read; `reusable` is false when the server closes the connection
    /// (asked to, or framed the body by closing).
    Answered { status: u16, reusable: bool },
    /// The connection was already closed before the request was written; nothing was sent,
    /// so the request may be retried on a fresh connection.
    NotSent,
    /// The request failed after it may have been sent.
    Failed(Failure),
}

/// A transport failure: its kind and a description for debug logs (never contains a token:
/// it is built from I/O and protocol errors only).
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) kind: ErrorKind,
    pub(crate) detail: String,
}

impl Failure {
    pub(crate) fn new(kind: ErrorKind, detail: String) -> Self {
        Self { kind, detail }
    }

    pub(crate) fn from_hyper(error: &hyper::Error) -> Self {
        let kind = if error.is_timeout() {
            ErrorKind::Timeout
        } else if let Some(io) = io_source(error) {
            classify_io(io)
        } else if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
            ErrorKind::Reset
        } else {
            ErrorKind::Other
        };
        Self::new(kind, error.to_string())
    }
}

fn io_source(error: &hyper::Error) -> Option<&io::Error> {
    let mut source = error.source();
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<io::Error>() {
            return Some(io);
        }
        source = current.source();
    }
    None
}

pub(crate) fn classify_io(error: &io::Error) -> ErrorKind {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::NotConnected => ErrorKind::Reset,
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    }
}
