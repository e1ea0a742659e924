//! The HTTP status of a GET, for `http_ok` pre-flight checks of both targets.

use std::time::Duration;

/// Why a URL gave no status.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Client(String),
    #[error("no answer: {0}")]
    NoAnswer(String),
}

/// Status of a GET to `url` (loopback-only use in the lab; 5 s timeout).
pub async fn status(url: &str) -> Result<u16, HttpError> {
    let client = prometheus_http_query::reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .map_err(|e| HttpError::Client(e.to_string()))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| HttpError::NoAnswer(e.to_string()))?;
    Ok(response.status().as_u16())
}

/// Whether `url` names this machine's loopback (`localhost`, 127.0.0.0/8, `[::1]`).
pub fn is_loopback(url: &prometheus_http_query::reqwest::Url) -> bool {
    match url.host_str() {
        Some(host) if host.eq_ignore_ascii_case("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_skip_the_proxy_and_others_do_not() {
        let loopback = |url: &str| {
            prometheus_http_query::reqwest::Url::parse(url).is_ok_and(|u| is_loopback(&u))
        };
        for url in [
            "http://127.0.0.1:9090",
            "http://127.5.0.1",
            "http://localhost:9090",
            "http://[::1]:9090/",
        ] {
            assert!(loopback(url), "{url}");
        }
        for url in [
            "http://10.250.0.2:9090",
            "https://prometheus.example",
            "not a url",
        ] {
            assert!(!loopback(url), "{url}");
        }
    }
}
