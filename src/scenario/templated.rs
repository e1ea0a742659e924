//! The one list of fields that take `${drillbook}` and `${port.NAME}`: validation reads it to
//! check every reference, and a run reads it to choose every port once, before anything
//! starts, and expands every field once, as soon as they are chosen. A field missing here is
//! neither checked nor expanded, so it is the only place that says what may be templated.

use super::model::{CheckKind, PreflightCheck, Scenario, TargetSpec};
use super::spanned::Pos;
use super::vars::{VarError, Vars};

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
#[derive(Debug, Clone)]
pub struct Templated {
    pub site: Site,
    pub text: String,
    pub pos: Pos,
}

/// Every templated text of `s`, in file order by section.
pub fn texts(s: &Scenario) -> Vec<Templated> {
    let mut out = Vec::new();
    // The list is written once, over mutable fields (for `expand`); reading walks a copy.
    visit(&mut s.clone(), &mut |site, text, pos| {
        out.push(Templated {
            site,
            text: text.clone(),
            pos,
        });
    });
    out
}

/// `s` with `${drillbook}` and every `${port.NAME}` replaced, once, right after the run chose
/// its ports: what the target, the load, the guards and the checks read afterwards is final.
pub fn expand(s: &Scenario, vars: &Vars) -> Result<Scenario, VarError> {
    let mut expanded = s.clone();
    let mut first_error = None;
    visit(&mut expanded, &mut |_, text, _| {
        if first_error.is_none() {
            match vars.expand(text) {
                Ok(done) => *text = done,
                Err(e) => first_error = Some(e),
            }
        }
    });
    first_error.map_or(Ok(expanded), Err)
}

/// The one list: calls `f` on every templated field of `s`.
fn visit(s: &mut Scenario, f: &mut dyn FnMut(Site, &mut String, Pos)) {
    if let TargetSpec::Local(local) = &mut s.target {
        for p in &mut local.processes {
            let at = p.name.pos;
            for arg in &mut p.value.command {
                f(Site::ProcessCommand, arg, at);
            }
            for value in p.value.env.values_mut() {
                f(Site::ProcessEnv, value, at);
            }
            if let Some(ready) = &mut p.value.ready {
                f(Site::ProcessReady, ready, at);
            }
        }
    }
    if let Some(load) = &mut s.load {
        let at = load.url.pos;
        f(Site::LoadUrl, &mut load.url.value, at);
        for stream in load.streams.values_mut() {
            f(Site::StreamUrl, &mut stream.url.value, stream.url.pos);
        }
        for value in load.headers.values_mut() {
            f(Site::LoadHeader, value, at);
        }
        if let Some(token_url) = load.auth.as_mut().and_then(|a| a.token_url.as_mut()) {
            f(Site::TokenUrl, token_url, at);
        }
    }
    for check in &mut s.checks {
        let at = check.pos;
        match &mut check.value.kind {
            CheckKind::Prometheus(p) => f(Site::PrometheusCheckUrl, &mut p.url, at),
            CheckKind::Alerts(a) => {
                f(Site::AlertsCheckUrl, &mut a.url, at);
                if let Some(url) = &mut a.alertmanager {
                    f(Site::AlertmanagerUrl, url, at);
                }
            }
            _ => {}
        }
    }
    for guard in &mut s.abort_when {
        if let Some(p) = &mut guard.value.prometheus {
            f(Site::PrometheusGuardUrl, &mut p.url, guard.pos);
        }
    }
    if let Some(silence) = &mut s.silence {
        let at = silence.pos;
        f(Site::AlertmanagerUrl, &mut silence.value.alertmanager, at);
    }
    for item in &mut s.preflight {
        if let PreflightCheck::HttpOk(h) = &mut item.value {
            f(Site::PreflightUrl, &mut h.url, item.pos);
        }
    }
}
