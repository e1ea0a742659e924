//! The one list of fields that take `${drillbook}` and `${port.NAME}`: validation reads it to
//! check every reference, and a run reads it to choose every port once, before anything
//! starts. A field missing here is neither checked nor expanded, so it is the only place that
//! says what may be templated.

use super::model::{CheckKind, PreflightCheck, Scenario, TargetSpec};
use super::spanned::Pos;

/// What a templated text is: who gives a port (a process's command and env) or who uses one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// A local process's argv element: where a port is handed to the process.
    ProcessCommand,
    /// A local process's environment value: also hands a port over.
    ProcessEnv,
    /// A local process's readiness URL.
    ProcessReady,
    LoadUrl,
    StreamUrl,
    LoadHeader,
    TokenUrl,
    PrometheusCheckUrl,
    AlertsCheckUrl,
    /// An Alertmanager URL: an `alerts` check's or the silence's.
    AlertmanagerUrl,
    PrometheusGuardUrl,
    PreflightUrl,
}

impl Site {
    /// Whether a port named here is given to a process (rather than only used).
    pub fn gives_port(self) -> bool {
        matches!(self, Site::ProcessCommand | Site::ProcessEnv)
    }
}

/// One templated text and where it is written (`0:0` where the model keeps no position).
#[derive(Debug, Clone, Copy)]
pub struct Templated<'a> {
    pub site: Site,
    pub text: &'a str,
    pub pos: Pos,
}

impl<'a> Templated<'a> {
    fn new(site: Site, text: &'a str, pos: Pos) -> Self {
        Self { site, text, pos }
    }
}

/// Every templated text of `s`, in file order by section.
pub fn texts(s: &Scenario) -> Vec<Templated<'_>> {
    let mut out = Vec::new();
    if let TargetSpec::Local(local) = &s.target {
        for p in &local.processes {
            for arg in &p.command {
                out.push(Templated::new(Site::ProcessCommand, arg, p.name.pos));
            }
            for value in p.env.values() {
                out.push(Templated::new(Site::ProcessEnv, value, p.name.pos));
            }
            if let Some(ready) = &p.ready {
                out.push(Templated::new(Site::ProcessReady, ready, p.name.pos));
            }
        }
    }
    if let Some(load) = &s.load {
        out.push(Templated::new(Site::LoadUrl, &load.url.value, load.url.pos));
        for stream in load.streams.values() {
            out.push(Templated::new(
                Site::StreamUrl,
                &stream.url.value,
                stream.url.pos,
            ));
        }
        for value in load.headers.values() {
            out.push(Templated::new(Site::LoadHeader, value, load.url.pos));
        }
        if let Some(token_url) = load.auth.as_ref().and_then(|a| a.token_url.as_ref()) {
            out.push(Templated::new(Site::TokenUrl, token_url, load.url.pos));
        }
    }
    for check in &s.checks {
        match &check.value.kind {
            CheckKind::Prometheus(p) => {
                out.push(Templated::new(Site::PrometheusCheckUrl, &p.url, check.pos));
            }
            CheckKind::Alerts(a) => {
                out.push(Templated::new(Site::AlertsCheckUrl, &a.url, check.pos));
                if let Some(url) = &a.alertmanager {
                    out.push(Templated::new(Site::AlertmanagerUrl, url, check.pos));
                }
            }
            _ => {}
        }
    }
    for guard in &s.abort_when {
        if let Some(p) = &guard.value.prometheus {
            out.push(Templated::new(Site::PrometheusGuardUrl, &p.url, guard.pos));
        }
    }
    if let Some(silence) = &s.silence {
        let url = &silence.value.alertmanager;
        out.push(Templated::new(Site::AlertmanagerUrl, url, silence.pos));
    }
    for item in &s.preflight {
        if let PreflightCheck::HttpOk(h) = &item.value {
            out.push(Templated::new(Site::PreflightUrl, &h.url, item.pos));
        }
    }
    out
}
