//! The one list of fields that take `${drillbook}` and `${port.NAME}`: validation reads it to
//! check every reference, and a run reads it to choose every port once, before anything
//! starts, and expands every field once, as soon as they are chosen. A field missing here is
//! neither checked nor expanded, so it is the only place that says what may be templated.

use super::http_fault::{FaultProtocol, HttpFault};
use super::model::{Action, CheckKind, PreflightCheck, ProcessSpec, Scenario, TargetSpec};
use super::spanned::Pos;
use super::spanned::Sp;
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
    visit(&mut s.clone(), &mut |site, _, text, pos| {
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
/// A process that listens behind a local `http_fault` reads its private port in its own
/// command, env and readiness URL; everyone else reads the public one.
pub fn expand(s: &Scenario, vars: &Vars) -> Result<Scenario, VarError> {
    let mut expanded = s.clone();
    let mut first_error = None;
    visit(&mut expanded, &mut |_, process, text, _| {
        if first_error.is_none() {
            match vars.expand_for(process, text) {
                Ok(done) => *text = done,
                Err(e) => first_error = Some(e),
            }
        }
    });
    first_error.map_or(Ok(expanded), Err)
}

/// Why the process listening on a faulted local port is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenerError {
    #[error("no process `{0}` to put a fault in front of")]
    UnknownProcess(String),
    #[error(
        "no process's `ready:` URL names `${{port.{0}}}`: say which process listens on it with \
         `process:`"
    )]
    NoListener(String),
    #[error(
        "{} all name `${{port.{port}}}` in `ready:`: say which one listens on it with `process:`",
        .candidates.join(", ")
    )]
    Ambiguous {
        port: String,
        candidates: Vec<String>,
    },
}

/// A local `http_fault`'s place: drillbook listens on `port` (what every caller is given)
/// and forwards to `listener`, which alone is handed a private port in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalInterposition {
    pub port: String,
    pub listener: String,
    pub protocol: FaultProtocol,
}

/// The local process that listens on `fault`'s `port`: `process:`, or the one process whose
/// readiness URL names the port (a readiness probe is sent to the listener itself).
pub fn listener(
    fault: &HttpFault,
    processes: &[Sp<ProcessSpec>],
) -> Result<Option<String>, ListenerError> {
    let Some(port) = &fault.port else {
        return Ok(None);
    };
    if let Some(named) = &fault.process {
        return processes
            .iter()
            .any(|p| p.value.name.value == named.value)
            .then(|| Some(named.value.clone()))
            .ok_or_else(|| ListenerError::UnknownProcess(named.value.clone()));
    }
    let reference = format!("${{port.{}}}", port.value);
    let candidates: Vec<String> = processes
        .iter()
        .filter(|p| {
            p.value
                .ready
                .as_ref()
                .is_some_and(|r| r.contains(&reference))
        })
        .map(|p| p.value.name.value.clone())
        .collect();
    match candidates.as_slice() {
        [] => Err(ListenerError::NoListener(port.value.clone())),
        [one] => Ok(Some(one.clone())),
        _ => Err(ListenerError::Ambiguous {
            port: port.value.clone(),
            candidates,
        }),
    }
}

/// Every local `http_fault`'s place, in step order (empty on a Kubernetes target). The run
/// chooses a private port for each listener from this list (before expanding), and the local
/// target listens on the public one.
pub fn local_interpositions(s: &Scenario) -> Result<Vec<LocalInterposition>, ListenerError> {
    let processes = s.local_processes();
    if processes.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for step in &s.steps {
        let Action::HttpFault(fault) = &step.value.action else {
            continue;
        };
        if let (Some(port), Some(listener)) = (&fault.port, listener(fault, processes)?) {
            out.push(LocalInterposition {
                port: port.value.clone(),
                listener,
                protocol: fault.protocol,
            });
        }
    }
    Ok(out)
}

/// Called with a field's site, the local process it belongs to, its text and its position.
type Visitor<'a> = dyn FnMut(Site, Option<&str>, &mut String, Pos) + 'a;

/// The one list: calls `f` on every templated field of `s`, with the local process whose
/// field it is (`None` for the load, the checks and the rest).
fn visit(s: &mut Scenario, f: &mut Visitor<'_>) {
    if let TargetSpec::Local(local) = &mut s.target {
        for p in &mut local.processes {
            let at = p.name.pos;
            let name = p.value.name.value.clone();
            let owner = Some(name.as_str());
            for arg in &mut p.value.command {
                f(Site::ProcessCommand, owner, arg, at);
            }
            for value in p.value.env.values_mut() {
                f(Site::ProcessEnv, owner, value, at);
            }
            if let Some(ready) = &mut p.value.ready {
                f(Site::ProcessReady, owner, ready, at);
            }
        }
    }
    let mut f = |site, text: &mut String, pos| f(site, None, text, pos);
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
