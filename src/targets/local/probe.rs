//! Readiness probe: a plain HTTP/1.1 GET that must answer 2xx, like a Kubernetes httpGet probe.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Pause between two probes of a not-yet-ready instance.
pub(super) const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// Longest one probe may take (connect, request, response head).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A parsed `http://host:port/path` readiness URL.
#[derive(Debug, Clone)]
pub(super) struct ReadyProbe {
    host: String,
    port: u16,
    authority: String,
    path_and_query: String,
}

impl ReadyProbe {
    /// Accepts `http://` URLs only: probes target processes on this machine, TLS adds nothing.
    pub(super) fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err("only http:// readiness URLs are supported".into());
        }
        let authority = uri.authority().ok_or("the URL has no host")?;
        // `Uri::host` keeps the brackets of an IPv6 literal; the resolver wants them gone.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Self {
            host,
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_string(),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        })
    }

    /// Probes until the URL answers 2xx. Never returns otherwise: callers race it against the
    /// process exiting or a deadline.
    pub(super) async fn wait_until_ready(&self) {
        loop {
            if self.check().await {
                return;
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// One probe: true when the URL answered 2xx within [`PROBE_TIMEOUT`].
    pub(super) async fn check(&self) -> bool {
        tokio::time::timeout(PROBE_TIMEOUT, self.get())
            .await
            .unwrap_or(false)
    }

    async fn get(&self) -> bool {
        let Ok(stream) = TcpStream::connect((self.host.as_str(), self.port)).await else {
            return false;
        };
        let Ok((mut sender, connection)) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
        else {
            return false;
        };
        let Ok(request) = Request::get(self.path_and_query.as_str())
            .header(header::HOST, self.authority.as_str())
            .header(header::USER_AGENT, "drillbook-probe")
            .body(Empty::new())
        else {
            return false;
        };
        // The connection future must be driven while the request is in flight; it ends (and the
        // socket closes) when this function returns.
        tokio::select! {
            response = sender.send_request(request) => {
                response.is_ok_and(|r| r.status().is_success())
            }
            _ = connection => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_urls_only() {
        let probe = ReadyProbe::parse("http://[::1]:8080/healthz?x=1").expect("valid URL");
        assert_eq!(probe.host, "::1");
        assert_eq!(probe.port, 8080);
        assert_eq!(probe.path_and_query, "/healthz?x=1");
        let probe = ReadyProbe::parse("http://127.0.0.1").expect("valid URL");
        assert_eq!((probe.port, probe.path_and_query.as_str()), (80, "/"));
        assert!(ReadyProbe::parse("https://127.0.0.1/").is_err());
        assert!(ReadyProbe::parse("not a url").is_err());
    }
}
