//! Alertmanager's API v2, as a drill uses it: silences (created, found by the run's marker,
//! expired) and the alerts Alertmanager holds (which receivers they route to, whether a
//! silence suppresses them). Below both the engine (which creates the silence and watches
//! alerts) and the targets (whose undo removes the silence, also from `recover`).

use std::time::Duration;

use prometheus_http_query::reqwest;
use serde::{Deserialize, Serialize};

use crate::units::AlertMatcher;

/// Every request is bounded: an Alertmanager that hangs must not hold the drill or its undo.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Who creates drillbook's silences (`createdBy`): the undo only ever removes these.
pub const CREATED_BY: &str = "drillbook";

/// Why Alertmanager could not be asked, or what it refused.
#[derive(Debug, thiserror::Error)]
pub enum AlertmanagerError {
    #[error("bad Alertmanager URL `{url}`: {why}")]
    Url { url: String, why: String },
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("Alertmanager at {url} did not answer: {source}")]
    NoAnswer {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Alertmanager at {url} answered HTTP {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Alertmanager at {url} answered something that is not API v2: {source}")]
    Unreadable {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The way back from a drill's silence, written to the undo journal before the silence
/// exists: it names the silence by the run's marker in its comment (its id is only known once
/// it is created), so `recover` finds it after a crash at any moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceUndo {
    /// Alertmanager base URL.
    pub alertmanager: String,
    /// Text in the comment of this run's silence, e.g. `[drillbook run ab12cd34]`.
    pub marker: String,
}

impl SilenceUndo {
    pub fn for_run(alertmanager: &str, run_id: &str) -> Self {
        Self {
            alertmanager: alertmanager.to_string(),
            marker: format!("[drillbook run {run_id}]"),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "expire the silence {} at {}",
            self.marker, self.alertmanager
        )
    }

    /// Expires every active or pending drillbook silence carrying the marker; returns how
    /// many. None found is success: the silence was never created, or already expired.
    pub async fn apply(&self) -> Result<usize, AlertmanagerError> {
        let am = Alertmanager::new(&self.alertmanager)?;
        let mut expired = 0;
        for silence in am.silences().await? {
            if silence.created_by == CREATED_BY
                && silence.comment.contains(&self.marker)
                && silence.status.state != "expired"
            {
                am.expire(&silence.id).await?;
                expired += 1;
            }
        }
        Ok(expired)
    }
}

/// A silence to create.
#[derive(Debug, Clone)]
pub struct NewSilence {
    pub matchers: Vec<AlertMatcher>,
    pub ends_at: jiff::Timestamp,
    pub comment: String,
}

/// A silence as Alertmanager lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub status: SilenceStatus,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
    pub ends_at: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SilenceStatus {
    /// `active`, `pending` or `expired`.
    pub state: String,
}

/// An alert as Alertmanager holds it (`GET /api/v2/alerts`).
#[derive(Debug, Clone, Deserialize)]
pub struct HeldAlert {
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub receivers: Vec<Receiver>,
    pub status: AlertStatus,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Receiver {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertStatus {
    /// `active`, `suppressed` (silenced or inhibited) or `unprocessed`.
    pub state: String,
    #[serde(default)]
    pub silenced_by: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MatcherBody<'a> {
    name: &'a str,
    value: &'a str,
    is_regex: bool,
    is_equal: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SilenceBody<'a> {
    matchers: Vec<MatcherBody<'a>>,
    starts_at: String,
    ends_at: String,
    created_by: &'a str,
    comment: &'a str,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

/// One Alertmanager, asked through API v2.
#[derive(Debug, Clone)]
pub struct Alertmanager {
    base: String,
    http: reqwest::Client,
}

impl Alertmanager {
    pub fn new(url: &str) -> Result<Self, AlertmanagerError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| AlertmanagerError::Url {
            url: url.to_string(),
            why: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(AlertmanagerError::Url {
                url: url.to_string(),
                why: "not http(s)".into(),
            });
        }
        // Proxies from the environment are honoured (a staging Alertmanager is often behind
        // one), except for this machine's loopback, which no proxy can reach.
        let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
        if super::http::is_loopback(&parsed) {
            builder = builder.no_proxy();
        }
        Ok(Self {
            base: url.trim_end_matches('/').to_string(),
            http: builder.build().map_err(AlertmanagerError::Client)?,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Creates the silence; returns its id.
    pub async fn create_silence(&self, silence: &NewSilence) -> Result<String, AlertmanagerError> {
        let body = SilenceBody {
            matchers: silence
                .matchers
                .iter()
                .map(|m| MatcherBody {
                    name: &m.name,
                    value: &m.value,
                    is_regex: m.is_regex,
                    is_equal: m.is_equal,
                })
                .collect(),
            starts_at: jiff::Timestamp::now().to_string(),
            ends_at: silence.ends_at.to_string(),
            created_by: CREATED_BY,
            comment: &silence.comment,
        };
        let request = self
            .http
            .post(format!("{}/api/v2/silences", self.base))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default());
        let created: Created = self.read(request).await?;
        Ok(created.silence_id)
    }

    /// Every silence Alertmanager keeps (active, pending and recently expired).
    pub async fn silences(&self) -> Result<Vec<Silence>, AlertmanagerError> {
        self.read(self.http.get(format!("{}/api/v2/silences", self.base)))
            .await
    }

    /// Expires one silence now.
    pub async fn expire(&self, id: &str) -> Result<(), AlertmanagerError> {
        let mut url =
            reqwest::Url::parse(&format!("{}/api/v2/silence/", self.base)).map_err(|e| {
                AlertmanagerError::Url {
                    url: self.base.clone(),
                    why: e.to_string(),
                }
            })?;
        // The id is one path segment, whatever it contains.
        url.path_segments_mut()
            .map_err(|()| AlertmanagerError::Url {
                url: self.base.clone(),
                why: "cannot hold a path".into(),
            })?
            .pop_if_empty()
            .push(id);
        self.send(self.http.delete(url)).await.map(drop)
    }

    /// The alerts Alertmanager holds now: active, silenced, inhibited and unprocessed ones.
    pub async fn alerts(&self) -> Result<Vec<HeldAlert>, AlertmanagerError> {
        self.read(self.http.get(format!("{}/api/v2/alerts", self.base)))
            .await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<String, AlertmanagerError> {
        let response = request
            .send()
            .await
            .map_err(|source| AlertmanagerError::NoAnswer {
                url: self.base.clone(),
                source,
            })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|source| AlertmanagerError::NoAnswer {
                url: self.base.clone(),
                source,
            })?;
        if !status.is_success() {
            return Err(AlertmanagerError::Refused {
                url: self.base.clone(),
                status: status.as_u16(),
                body: body.trim().chars().take(300).collect(),
            });
        }
        Ok(body)
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, AlertmanagerError> {
        let body = self.send(request).await?;
        serde_json::from_str(&body).map_err(|source| AlertmanagerError::Unreadable {
            url: self.base.clone(),
            source,
        })
    }
}
