//! One HTTP/1.1 keep-alive connection per worker (the lean client of `h1.rs` for http, hyper
//! `client::conn` with rustls for https).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::exchange::{Exchange, Failure, classify_io};
use super::h1;
use super::stats::ErrorKind;

/// Where requests go: parsed once from the URL.
#[derive(Clone)]
pub(crate) struct Target {
    host: String,
    port: u16,
    /// The `Host` header.
    pub(crate) host_header: HeaderValue,
    /// The request target in origin form (`/path?query`).
    pub(crate) path: Uri,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// `url` with the password of a `user:password@` part shown as `***` (a bare `name@` too, as
/// tokens are put there): URLs with credentials are refused, and the refusal quotes the URL.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let user = authority[..at].split_once(':').map_or("", |(user, _)| user);
    let user = if user.is_empty() {
        String::new()
    } else {
        format!("{user}:")
    };
    format!("{}{user}***{}", &url[..start], &rest[at..])
}

impl Target {
    /// Parses an `http://` or `https://` URL. The error says what is wrong, for users.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        Self::parse_trusting(url, None)
    }

    /// [`Target::parse`], also trusting the CA certificates (PEM) in `ca_file` for https.
    pub(crate) fn parse_trusting(url: &str, ca_file: Option<&Path>) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("not a valid URL ({e})"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => {
                return Err(format!(
                    "scheme `{other}` is not supported: use http or https"
                ));
            }
            None => return Err("the URL needs a scheme: http:// or https://".to_string()),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| "the URL has no host".to_string())?;
        if authority.as_str().contains('@') {
            return Err(
                "credentials in the URL are not supported: use a bearer token option instead"
                    .to_string(),
            );
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host_header = HeaderValue::from_str(authority.as_str())
            .map_err(|_| "the URL's host is not a valid Host header".to_string())?;
        let path: Uri = uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .parse()
            .map_err(|e| format!("the URL's path is not valid ({e})"))?;
        let tls = if https {
            let name = ServerName::try_from(host.clone())
                .map_err(|_| format!("`{host}` is not a valid TLS server name"))?;
            let config = match ca_file {
                None => tls_config()?,
                Some(path) => Arc::new(build_tls_config(Some(path))?),
            };
            Some((TlsConnector::from(config), name))
        } else {
            None
        };
        Ok(Self {
            host,
            port,
            host_header,
            path,
            tls,
        })
    }

    /// Opens a load connection: the lean client for http, hyper over TLS for https.
    pub(crate) async fn open(&self) -> Result<Connection, Failure> {
        if self.tls.is_some() {
            return self.connect().await.map(Connection::Hyper);
        }
        let stream = self.connect_tcp().await?;
        let _ = stream.set_nodelay(true);
        Ok(Connection::Lean(h1::Connection::new(stream)))
    }

    /// Opens a hyper connection and performs the HTTP/1.1 handshake. The connection task runs
    /// in the background and ends when the connection closes.
    pub(crate) async fn connect(&self) -> Result<Sender, Failure> {
        let stream = self.connect_tcp().await?;
        // Small requests must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => handshake(stream).await,
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), stream).await.map_err(|e| {
                    let kind = match classify_io(&e) {
                        ErrorKind::Reset => ErrorKind::Reset,
                        _ => ErrorKind::Tls,
                    };
                    Failure::new(kind, format!("TLS handshake: {e}"))
                })?;
                handshake(tls).await
            }
        }
    }

    async fn connect_tcp(&self) -> Result<TcpStream, Failure> {
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| Failure::new(ErrorKind::Other, format!("resolve {}: {e}", self.host)))?;
        let mut last = Failure::new(
            ErrorKind::Other,
            format!("{} resolved to no address", self.host),
        );
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Failure::new(classify_io(&e), format!("connect {addr}: {e}")),
            }
        }
        Err(last)
    }
}

/// One TLS client configuration for the process without a CA file (see [`build_tls_config`]).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| build_tls_config(None).map(Arc::new))
        .clone()
}

/// The system trust store: `$SSL_CERT_FILE`, else Debian's (and most distributions') bundle.
fn system_bundle() -> Option<std::path::PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            Some(std::path::PathBuf::from(
                "/etc/ssl/certs/ca-certificates.crt",
            ))
        })
        .filter(|path| path.is_file())
}

/// The PEM certificates of `path`.
fn pem_certificates(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read CA certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// HTTP/1.1 over TLS trusting the Mozilla roots, the system trust store (when readable) and
/// `ca_file` (which must be readable: it was asked for).
fn build_tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // The system bundle is a convenience: an unreadable one leaves the Mozilla roots.
    if let Some(certs) = system_bundle().and_then(|bundle| pem_certificates(&bundle).ok()) {
        roots.add_parsable_certificates(certs);
    }
    if let Some(path) = ca_file {
        for cert in pem_certificates(path)? {
            roots.add(cert).map_err(|e| {
                format!(
                    "a certificate in {} is not usable as a CA: {e}",
                    path.display()
                )
            })?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The request half of a connection.
pub(crate) type Sender = SendRequest<Full<Bytes>>;

async fn handshake<S>(stream: S) -> Result<Sender, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure::from_hyper(&e))?;
    tokio::spawn(async move {
        // Errors surface on the request side; the driver just ends with the connection.
        let _ = connection.await;
    });
    Ok(sender)
}

/// A worker's connection.
pub(crate) enum Connection {
    /// Plain http: the lean HTTP/1.1 client.
    Lean(h1::Connection),
    /// https: hyper over rustls.
    Hyper(Sender),
}

impl Connection {
    /// Known closed (hyper tracks it; the lean client finds out when it next sends).
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Self::Lean(_) => false,
            Self::Hyper(sender) => sender.is_closed(),
        }
    }

    /// Sends one request, `authorization` being the caller's token when callers are used, and
    /// reads the whole response. `hyper_request` builds the request for the hyper path.
    pub(crate) async fn exchange(
        &mut self,
        template: &h1::RequestTemplate,
        authorization: Option<&HeaderValue>,
        hyper_request: impl FnOnce() -> Request<Full<Bytes>>,
    ) -> Exchange {
        match self {
            Self::Lean(connection) => connection.exchange(template, authorization).await,
            Self::Hyper(sender) => {
                let mut request = hyper_request();
                if let Some(value) = authorization {
                    request
                        .headers_mut()
                        .insert(http::header::AUTHORIZATION, value.clone());
                }
                exchange(sender, request).await
            }
        }
    }
}

/// Sends one request on a hyper connection and reads the whole response body (dropping it
/// chunk by chunk).
async fn exchange(sender: &mut Sender, request: Request<Full<Bytes>>) -> Exchange {
    if sender.ready().await.is_err() {
        return Exchange::NotSent;
    }
    let response = match sender.try_send_request(request).await {
        Ok(response) => response,
        Err(mut error) => {
            if error.take_message().is_some() {
                return Exchange::NotSent;
            }
            return Exchange::Failed(Failure::from_hyper(error.error()));
        }
    };
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        if let Err(e) = frame {
            return Exchange::Failed(Failure::from_hyper(&e));
        }
    }
    // hyper keeps the connection or closes it itself; `is_closed` tells.
    Exchange::Answered {
        status,
        reusable: true,
    }
}

/// Adds the `Host` header hyper's low-level client does not add by itself.
pub(crate) fn with_host(
    mut request: Request<Full<Bytes>>,
    target: &Target,
) -> Request<Full<Bytes>> {
    request
        .headers_mut()
        .entry(HOST)
        .or_insert_with(|| target.host_header.clone());
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_targets() {
        let target =
            Target::parse("http://127.0.0.1:8080/api/v1?x=1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(target.port, 8080);
        assert_eq!(target.path.to_string(), "/api/v1?x=1");
        assert_eq!(target.host_header, "127.0.0.1:8080");
        let https = Target::parse("https://example.com").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(https.port, 443);
        assert_eq!(https.path.to_string(), "/");
        assert!(Target::parse("ftp://x/").is_err());
        assert!(Target::parse("example.com/").is_err());
        assert!(Target::parse("http://user:pw@example.com/").is_err());
        assert_eq!(
            redact_url("http://user:pw@example.com/a@b"),
            "http://user:***@example.com/a@b"
        );
        assert_eq!(redact_url("https://tok@h:1"), "https://***@h:1");
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
        let v6 = Target::parse("http://[::1]:9/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v6.host, "::1");
    }
}
