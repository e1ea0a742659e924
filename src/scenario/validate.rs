//! Semantic validation: everything that parses but cannot work. All problems are collected,
//! not just the first, and each points at the value at fault.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use super::diagnostic::Diagnostic;
use super::model::*;
use super::parsed::{HttpFormula, Parsed};
use super::spanned::{Pos, Sp};
use super::tagged::did_you_mean;
use super::templated;
use super::vars;
use crate::scenario::expr::{ExprError, Metric};
use crate::units::{Rate, limits};

/// The phases every scenario has unless it declares its own.
pub const DEFAULT_PHASES: &[&str] = &["baseline", "fault", "recovery"];
/// A phase name that always means the whole drill.
pub const WHOLE_RUN: &str = "all";
const BOUNDARY_WORDS: &[&str] = &["start", "end", "first_fault", "recovered"];

struct Validator<'a> {
    scenario: &'a Scenario,
    scenario_path: &'a Path,
    source: &'a str,
    out: Vec<Diagnostic>,
    step_names: BTreeSet<String>,
    process_names: BTreeSet<String>,
    phase_names: Vec<String>,
    is_local: bool,
}

/// Validates a parsed scenario. Errors and warnings come back together.
pub fn validate(scenario: &Scenario, scenario_path: &Path, source: &str) -> Vec<Diagnostic> {
    let is_local = matches!(scenario.target, TargetSpec::Local(_));
    let process_names = match &scenario.target {
        TargetSpec::Local(local) => local
            .processes
            .iter()
            .map(|p| p.name.value.clone())
            .collect(),
        TargetSpec::Kubernetes(_) => BTreeSet::new(),
    };
    let mut v = Validator {
        scenario,
        scenario_path,
        source,
        out: Vec::new(),
        step_names: BTreeSet::new(),
        process_names,
        phase_names: Vec::new(),
        is_local,
    };
    v.header();
    v.target();
    v.templated();
    v.ports_nobody_gets();
    v.load();
    v.cluster_load();
    v.steps();
    v.phases();
    v.checks();
    v.guards();
    v.preflight();
    v.silence();
    v.out
        .extend(super::http_fault_checks::diagnostics(scenario, v.is_local));
    v.out
}

impl Validator<'_> {
    fn error(&mut self, pos: Pos, message: impl Into<String>) -> &mut Diagnostic {
        self.out.push(Diagnostic::error(pos, message));
        self.out.last_mut().expect("just pushed")
    }

    /// A count above its sanity limit is an error unless the scenario says `allow_large`.
    fn limit(&mut self, what: &str, value: u32, max: u64, pos: Pos) {
        if self.scenario.allow_large {
            return;
        }
        if let Some(message) = limits::exceeded(what, f64::from(value), max as f64, "", LIFT) {
            self.error(pos, message);
        }
    }

    fn warn(&mut self, pos: Pos, message: impl Into<String>) {
        self.out.push(Diagnostic::warning(pos, message));
    }

    fn header(&mut self) {
        let s = self.scenario;
        if s.api_version.value != API_VERSION {
            self.error(
                s.api_version.pos,
                format!("unsupported apiVersion `{}`", s.api_version.value),
            )
            .help = Some(format!("this drillbook reads `apiVersion: {API_VERSION}`"));
        }
        let name = &s.name;
        if name.value.is_empty()
            || name.value.len() > 63
            || !name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.error(
                name.pos,
                format!(
                    "scenario name `{}` must be 1-63 letters, digits, `-` or `_`",
                    name.value
                ),
            )
            .help = Some("the name is used in report paths and the drill log".into());
        }
        if let Some(runbook) = &s.runbook {
            let base = self.scenario_path.parent().unwrap_or(Path::new("."));
            if !base.join(&runbook.value).is_file() {
                self.warn(runbook.pos, format!("runbook `{}` does not exist (relative to this file); `run` would create it", runbook.value));
            }
        }
    }

    fn target(&mut self) {
        match &self.scenario.target {
            TargetSpec::Kubernetes(k) => {
                let allowed: Vec<&str> = k
                    .allowed_contexts
                    .iter()
                    .map(|c| c.value.as_str())
                    .collect();
                if allowed.is_empty() {
                    self.error(
                        k.context.pos,
                        "`allowed_contexts` is empty: list the contexts this drill may run in",
                    );
                } else if !allowed.contains(&k.context.value.as_str()) {
                    let hint = format!(
                        "add `{}` to `allowed_contexts` or fix the context name",
                        k.context.value
                    );
                    self.error(
                        k.context.pos,
                        format!(
                            "context `{}` is not in allowed_contexts [{}]",
                            k.context.value,
                            allowed.join(", ")
                        ),
                    )
                    .help = Some(hint);
                }
                if !k.allowed_namespaces.is_empty()
                    && !k
                        .allowed_namespaces
                        .iter()
                        .any(|n| n.value == k.namespace.value)
                {
                    self.error(
                        k.namespace.pos,
                        format!(
                            "namespace `{}` is not in allowed_namespaces",
                            k.namespace.value
                        ),
                    );
                }
                if k.max_pods == 0 {
                    self.error(k.context.pos, "`max_pods: 0` forbids every pod action");
                }
            }
            TargetSpec::Local(local) => {
                let mut seen = BTreeSet::new();
                for p in &local.processes {
                    if !seen.insert(p.name.value.clone()) {
                        self.error(
                            p.name.pos,
                            format!("two processes are named `{}`", p.name.value),
                        );
                    }
                    if p.command.is_empty() {
                        self.error(
                            p.name.pos,
                            format!("process `{}` has an empty command", p.name.value),
                        );
                    }
                    self.limit(
                        "replicas",
                        p.replicas.value,
                        limits::REPLICAS,
                        p.replicas.pos,
                    );
                    if p.replicas.value == 0 && p.start == StartPolicy::Immediately {
                        self.warn(
                            p.replicas.pos,
                            format!("process `{}` has 0 replicas and never runs", p.name.value),
                        );
                    }
                }
                if local.processes.is_empty() {
                    self.error(Pos::default(), "a local target needs at least one process");
                }
            }
        }
    }

    /// Every `${...}` in the fields that take them ([`templated::texts`], the one list a run
    /// expands too) must be `${drillbook}` or `${port.NAME}`, well formed.
    fn templated(&mut self) {
        for t in templated::texts(self.scenario) {
            if let Err(e) = vars::names(&t.text) {
                self.error(t.pos, e.to_string());
            }
        }
    }

    /// A `${port.NAME}` used in a URL, header or guard that no process's command or env is
    /// given: nothing will listen on that port (most often a typo of a process's port name).
    fn ports_nobody_gets(&mut self) {
        let port_names = |text: &str| -> Vec<String> {
            vars::names(text)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|name| name.strip_prefix("port.").map(str::to_string))
                .collect()
        };
        let texts = templated::texts(self.scenario);
        let given: BTreeSet<String> = texts
            .iter()
            .filter(|t| t.site.gives_port())
            .flat_map(|t| port_names(&t.text))
            .collect();
        let mut unknown = Vec::new();
        for t in texts.iter().filter(|t| !t.site.gives_port()) {
            for name in port_names(&t.text) {
                if !given.contains(&name) {
                    unknown.push((t.pos, name));
                }
            }
        }
        for (pos, name) in unknown {
            let hint = did_you_mean(&name, given.iter().map(String::as_str))
                .map(|close| format!(" (did you mean `${{port.{close}}}`?)"))
                .unwrap_or_default();
            let mut known: Vec<String> = given.iter().map(|n| format!("`${{port.{n}}}`")).collect();
            if known.is_empty() {
                known.push("none".into());
            }
            self.error(
                pos,
                format!(
                    "`${{port.{name}}}` is given to no process, so nothing listens on it{hint}; \
                     ports the processes get: {}",
                    known.join(", ")
                ),
            );
        }
    }

    fn load_duration(&self) -> Option<Duration> {
        let load = self.scenario.load.as_ref()?;
        if let Some(d) = &load.duration {
            return Some(d.value.0);
        }
        (!load.stages.is_empty()).then(|| load.stages.iter().map(|s| s.value.duration.0).sum())
    }

    fn load(&mut self) {
        let Some(load) = &self.scenario.load else {
            return;
        };
        // A bad reference in the URL is reported with every templated text.
        match vars::names(&load.url.value) {
            Err(_) => {}
            Ok(_) => {
                let url = &load.url.value;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    self.error(
                        load.url.pos,
                        format!("load url `{url}` must start with http:// or https://"),
                    );
                }
            }
        }
        if http::Method::from_bytes(load.method.as_bytes()).is_err() {
            self.error(
                load.url.pos,
                format!("`{}` is not an HTTP method", load.method),
            );
        }
        match (&load.rate, load.stages.is_empty()) {
            (Some(rate), false) => {
                self.error(rate.pos, "use either `rate` or `stages`, not both");
            }
            (None, true) => {
                self.error(
                    load.url.pos,
                    "the load has no rate: add `rate: 100/s` or `stages:`",
                );
            }
            (Some(rate), true) => {
                if load.duration.is_none() {
                    self.error(
                        rate.pos,
                        "a constant rate needs `duration:` (e.g. `duration: 60s`)",
                    );
                }
                if rate.value == Rate::PerSecond(0.0) {
                    self.warn(rate.pos, "a rate of 0/s sends nothing");
                }
            }
            (None, false) => {
                for stage in &load.stages {
                    if stage.value.duration.0.is_zero() {
                        self.error(stage.pos, "a stage needs a duration above 0s");
                    }
                    if stage.value.target == Rate::Max {
                        self.error(
                            stage.pos,
                            "stages ramp between fixed rates; `max` is only for `rate:`",
                        );
                    }
                }
            }
        }
        if let Some(d) = &load.duration
            && d.value.0.is_zero()
        {
            self.error(d.pos, "the load duration must be above 0s");
        }
        if load.connections.value == 0 {
            self.error(load.connections.pos, "`connections` must be at least 1");
        }
        self.limit(
            "connections",
            load.connections.value,
            limits::CONNECTIONS,
            load.connections.pos,
        );
        let rates = load.rate.iter().map(|r| (r.value, r.pos)).chain(
            load.stages
                .iter()
                .map(|stage| (stage.value.target, stage.pos)),
        );
        for (rate, pos) in rates {
            if let Some(per_second) = rate.per_second()
                && !self.scenario.allow_large
                && let Some(message) =
                    limits::exceeded("a rate of", per_second, limits::RATE_PER_SECOND, "/s", LIFT)
            {
                self.error(pos, message);
            }
        }
        if load.requests_per_connection == Some(0) {
            self.error(
                load.url.pos,
                "requests_per_connection must be at least 1 (leave it out to keep connections alive)",
            );
        }
        if load.body.is_some() && load.body_file.is_some() {
            self.error(load.url.pos, "use either `body` or `body_file`, not both");
        }
        if let Some(auth) = &load.auth {
            let sources = [
                auth.bearer_env.is_some(),
                auth.bearer_file.is_some(),
                auth.token_url.is_some(),
                auth.bearer_secret.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                self.error(
                    load.url.pos,
                    "`auth` needs exactly one of `bearer_env`, `bearer_file`, `token_url` or \
                     `bearer_secret`",
                );
            }
            if auth.callers.value == 0 {
                self.error(auth.callers.pos, "`auth.callers` must be at least 1");
            }
            self.limit(
                "callers",
                auth.callers.value,
                limits::CALLERS,
                auth.callers.pos,
            );
            if auth.caller_lifetime.is_some() && auth.token_url.is_none() {
                self.error(
                    load.url.pos,
                    "`caller_lifetime` needs `token_url`: a new caller fetches a new token",
                );
            }
        }
    }

    fn steps(&mut self) {
        let load_len = self.load_duration();
        let mut previous_at: Option<Sp<crate::units::HumanDuration>> = None;
        // The section a step is in, when it runs in order after the timeline rather than at a time.
        let all: Vec<(&Sp<Step>, Option<&str>)> = self
            .scenario
            .steps
            .iter()
            .map(|s| (s, None))
            .chain(self.scenario.on_abort.iter().map(|s| (s, Some("on_abort"))))
            .chain(self.scenario.finally.iter().map(|s| (s, Some("finally"))))
            .collect();
        for (step, after_the_timeline) in &all {
            if let Some(name) = &step.value.name {
                if !self.step_names.insert(name.value.clone()) {
                    self.error(name.pos, format!("two steps are named `{}`", name.value));
                }
                if BOUNDARY_WORDS.contains(&name.value.as_str()) || name.value.contains('.') {
                    self.error(
                        name.pos,
                        format!(
                            "`{}` cannot name a step: it is a phase boundary word or has a `.`",
                            name.value
                        ),
                    );
                }
            }
            if let (Some(section), Some(at)) = (after_the_timeline, &step.value.at) {
                self.error(
                    at.pos,
                    format!("`{section}` steps run in order after the drill; remove `at:`"),
                );
            }
        }
        for step in &self.scenario.steps {
            if let Some(at) = &step.value.at {
                if let Some(len) = load_len
                    && at.value.0 > len
                {
                    let msg = format!(
                        "step at {} runs after the load ends ({}): nothing would measure its effect",
                        at.value,
                        crate::units::HumanDuration(len)
                    );
                    self.error(at.pos, msg).help =
                        Some("move the step earlier or make the load longer".into());
                }
                if let Some(prev) = &previous_at
                    && at.value < prev.value
                {
                    let msg = format!(
                        "steps run in order, but this one is at {} and an earlier one at {}",
                        at.value, prev.value
                    );
                    self.error(at.pos, msg).help = Some("reorder the steps by their `at:`".into());
                }
                previous_at = Some(at.clone());
            }
        }
        for (step, _) in all {
            self.action(&step.value);
        }
    }

    fn require_target(&mut self, step: &Step) {
        let Some(needs) = step.action.only_on() else {
            return;
        };
        let here = self.scenario.target.kind();
        if needs != here {
            let alternative = match step.action.kind() {
                "kill_pods" | "evict" => " (use `kill_process`)",
                "kill_process" => " (use `kill_pods`)",
                "helm_upgrade" => " (use `patch_env` to flip a flag)",
                _ => "",
            };
            self.error(
                step.action_at,
                format!(
                    "`{}` needs a {needs} target, but this scenario's target is {here}{alternative}",
                    step.action.kind()
                ),
            );
        }
    }

    fn process_ref(&mut self, name: &Sp<String>) {
        if self.is_local && !self.process_names.contains(&name.value) {
            let suggestion =
                did_you_mean(&name.value, self.process_names.iter().map(String::as_str))
                    .map(str::to_string);
            let msg = format!(
                "no process named `{}` in target.local.processes",
                name.value
            );
            let d = self.error(name.pos, msg);
            if let Some(s) = suggestion {
                d.help = Some(format!("did you mean `{s}`?"));
            }
        }
    }

    fn action(&mut self, step: &Step) {
        let max_pods = match &self.scenario.target {
            TargetSpec::Kubernetes(k) => k.max_pods,
            TargetSpec::Local(_) => u32::MAX,
        };
        self.require_target(step);
        match &step.action {
            Action::KillPods(k) => {
                if k.count.is_some() && k.percent.is_some() {
                    self.error(step.action_at, "use either `count` or `percent`, not both");
                }
                if k.count == Some(0) {
                    self.error(step.action_at, "`count: 0` kills nothing");
                }
                if let Some(p) = &k.percent
                    && (p.value == 0 || p.value > 100)
                {
                    self.error(p.pos, format!("percent must be 1-100, not {}", p.value));
                }
                if let Some(count) = k.count.filter(|c| *c > max_pods) {
                    self.error(
                        step.action_at,
                        format!("kills {count} pods, above the target's max_pods ({max_pods})"),
                    );
                }
            }
            Action::Evict(e) => {
                if let Some(count) = e.count.filter(|c| *c > max_pods) {
                    self.error(
                        step.action_at,
                        format!("evicts {count} pods, above the target's max_pods ({max_pods})"),
                    );
                }
            }
            Action::Scale(_)
            | Action::PatchConfigmap(_)
            | Action::HelmUpgrade(_)
            | Action::WaitRollout(_) => {}
            Action::KillProcess(k) => {
                self.process_ref(&k.name);
                if k.count == 0 {
                    self.error(step.action_at, "`count: 0` kills nothing");
                }
            }
            Action::StartProcess(p) => {
                self.process_ref(&p.name);
                if let TargetSpec::Local(local) = &self.scenario.target {
                    let immediate = local.processes.iter().any(|s| {
                        s.name.value == p.name.value && s.start == StartPolicy::Immediately
                    });
                    if immediate {
                        self.error(p.name.pos, format!("process `{}` already starts with the drill; give it `start: on_demand`", p.name.value));
                    }
                }
            }
            Action::RolloutRestart(w) => self.process_ref(&w.deployment),
            Action::PatchEnv(p) => {
                self.process_ref(&p.deployment);
                if p.env.is_empty() {
                    self.error(step.action_at, "`patch_env` with no `env` changes nothing");
                }
            }
            Action::WaitReady(w) => match (&w.selector, &w.name) {
                (None, None) | (Some(_), Some(_)) => {
                    self.error(
                        step.action_at,
                        "`wait_ready` needs exactly one of `selector` or `name`",
                    );
                }
                (None, Some(name)) => self.process_ref(name),
                (Some(_), None) => {}
            },
            Action::Command(c) => {
                if c.argv.is_empty() {
                    self.error(step.action_at, "`command` needs a non-empty argv");
                }
            }
            Action::Wait(_) | Action::HttpFault(_) => {}
            Action::SetImage(i) => {
                if i.workload().is_none() {
                    self.error(
                        step.action_at,
                        "`set_image` needs exactly one of `deployment`, `statefulset` or `daemonset`",
                    );
                }
                if i.image.value.trim().is_empty() {
                    self.error(i.image.pos, "empty image");
                }
            }
            Action::RolloutUndo(_) => {}
            Action::Patch(p) => {
                self.resource_ref(&p.api_version, &p.name);
                match (&p.merge, &p.json) {
                    (Some(merge), None) => {
                        if !merge.is_object() {
                            self.error(step.action_at, "a merge patch is a mapping");
                        }
                    }
                    (None, Some(ops)) => {
                        if let Some(why) = ops.iter().find_map(json_patch_op_problem) {
                            self.error(step.action_at, why);
                        }
                    }
                    _ => {
                        self.error(
                            step.action_at,
                            "`patch` needs exactly one of `merge` or `json`",
                        );
                    }
                }
            }
            Action::WaitFor(w) => {
                self.resource_ref(&w.api_version, &w.name);
                if w.condition.get().is_err() {
                    self.error(
                        w.condition.pos,
                        "not a condition: write `path == value` or `path != value`, e.g. `status.phase == Healthy`",
                    );
                }
            }
        }
    }

    fn resource_ref(&mut self, api_version: &Sp<String>, name: &Sp<String>) {
        if api_version.value.split('/').count() > 2 || api_version.value.is_empty() {
            self.error(api_version.pos, "`apiVersion` is `v1` or `group/version`");
        }
        if name.value.is_empty() {
            self.error(name.pos, "empty name");
        }
    }

    fn phases(&mut self) {
        let Some(phases) = &self.scenario.phases else {
            self.phase_names = DEFAULT_PHASES.iter().map(|s| s.to_string()).collect();
            return;
        };
        for phase in phases {
            if self.phase_names.contains(&phase.name.value) || phase.name.value == WHOLE_RUN {
                self.error(
                    phase.name.pos,
                    format!("phase name `{}` is already taken", phase.name.value),
                );
            }
            self.phase_names.push(phase.name.value.clone());
            for boundary in [&phase.from, &phase.to] {
                self.boundary(boundary);
            }
            self.phase_span(phase);
        }
    }

    /// A phase that is empty by its own boundaries, or starts after the load has ended.
    fn phase_span(&mut self, phase: &Sp<PhaseSpec>) {
        let offset = |b: &Sp<String>| match b.value.as_str() {
            "start" => Some(Duration::ZERO),
            text => text
                .parse::<crate::units::HumanDuration>()
                .ok()
                .map(|d| d.0),
        };
        let (name, from, to) = (&phase.value.name.value, &phase.value.from, &phase.value.to);
        let empty = match (offset(from), offset(to)) {
            (Some(start), Some(end)) => start >= end,
            _ => from.value == "end" || to.value == "start",
        };
        if empty {
            self.error(
                from.pos,
                format!(
                    "phase `{name}` runs from `{}` to `{}`: it holds no time, so nothing in it \
                     can be measured",
                    from.value, to.value
                ),
            );
            return;
        }
        if let (Some(start), Some(length)) = (offset(from), self.load_duration())
            && start >= length
        {
            self.warn(
                from.pos,
                format!(
                    "phase `{name}` starts at {} but the load ends at {}: no request is \
                     measured in it",
                    crate::units::HumanDuration(start),
                    crate::units::HumanDuration(length)
                ),
            );
        }
    }

    fn boundary(&mut self, boundary: &Sp<String>) {
        let b = boundary.value.as_str();
        if BOUNDARY_WORDS.contains(&b) || b.parse::<crate::units::HumanDuration>().is_ok() {
            return;
        }
        let step = b.strip_suffix(".end").unwrap_or(b);
        if !self.step_names.contains(step) {
            let candidates: Vec<&str> = BOUNDARY_WORDS
                .iter()
                .copied()
                .chain(self.step_names.iter().map(String::as_str))
                .collect();
            let hint = did_you_mean(step, candidates.iter().copied())
                .map(|s| format!("did you mean `{s}`?"));
            let d = self.error(boundary.pos, format!("`{b}` is not a phase boundary: use start, end, first_fault, recovered, an offset like 20s, or a step name"));
            d.help = hint;
        }
    }

    fn alerts_check(&mut self, a: &AlertsCheck, at: Pos) {
        if let Some(pattern) = &a.pattern
            && let Err(e) = pattern.get()
        {
            self.error(pattern.pos, format!("invalid regular expression: {e}"));
        }
        if a.pattern.is_none() && a.fire.is_empty() {
            self.error(at, "an alerts check needs `pattern` (alerts that must not fire) or `fire` (alerts that must)");
        }
        if !a.fire.is_empty() && a.within.is_none() {
            self.error(
                at,
                "`fire` needs `within`: how soon after `after` the alerts must fire",
            );
        }
        if a.fire.is_empty()
            && (a.within.is_some() || a.resolve_within.is_some() || a.alertmanager.is_some())
        {
            self.error(at, "`within`, `resolve_within` and `alertmanager` apply to the alerts of `fire`, which is empty");
        }
        for name in &a.fire {
            let valid = name
                .value
                .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            if !valid {
                self.error(
                    name.pos,
                    format!(
                        "`{}` is not an alert name (letters, digits, `_`, `:`)",
                        name.value
                    ),
                );
            }
        }
        for boundary in a.after.iter().chain(&a.resolve_after) {
            self.boundary(boundary);
        }
        if a.resolve_after.is_some() && a.resolve_within.is_none() {
            self.error(at, "`resolve_after` needs `resolve_within`");
        }
    }

    fn silence(&mut self) {
        let Some(silence) = &self.scenario.silence else {
            return;
        };
        if silence.value.matchers.is_empty() {
            self.error(silence.pos, "a silence needs at least one matcher, e.g. `namespace=\"tracebloc\"`: without one it would silence everything");
        }
        if silence.value.margin.0.is_zero() {
            self.error(
                silence.pos,
                "`margin` must be above 0s: the silence would expire while the drill runs",
            );
        }
    }

    fn phase_ref(&mut self, phase: &Sp<String>) {
        if phase.value == WHOLE_RUN || self.phase_names.contains(&phase.value) {
            return;
        }
        let hint = did_you_mean(&phase.value, self.phase_names.iter().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"));
        let known = self.phase_names.join(", ");
        let d = self.error(
            phase.pos,
            format!(
                "unknown phase `{}`: phases are {known} and `{WHOLE_RUN}`",
                phase.value
            ),
        );
        d.help = hint;
    }

    fn step_ref(&mut self, name: &Sp<String>) {
        if self.step_names.contains(&name.value) {
            return;
        }
        let hint = did_you_mean(&name.value, self.step_names.iter().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"));
        let d = self.error(name.pos, format!("no step named `{}`", name.value));
        d.help = hint.or_else(|| Some("give the step a `name:` and refer to it here".into()));
    }

    /// Reports an expression error at the character it refers to (single-line values).
    /// An error inside a formula, at the offending character.
    fn expr_error(&mut self, at: Pos, error: &ExprError) {
        let offset = u32::try_from(error.offset).unwrap_or(0);
        let pos = Pos::new(at.line, at.column + self.quote_offset(at) + offset);
        self.error(pos, error.message.clone());
    }

    fn checks(&mut self) {
        let mut names = BTreeSet::new();
        let has_baseline = self.phase_names.iter().any(|p| p == "baseline");
        for check in &self.scenario.checks {
            let c = &check.value;
            if !names.insert(c.name.value.clone()) {
                self.error(
                    c.name.pos,
                    format!("two checks are named `{}`", c.name.value),
                );
            }
            if let Some(phase) = &c.phase {
                self.phase_ref(phase);
            }
            match &c.kind {
                CheckKind::Http(text) => match text.get() {
                    Err(e) => self.expr_error(text.pos, e),
                    Ok(parsed) => {
                        if let Some(why) = parsed.foregone() {
                            self.error(text.pos, why);
                        }
                        if parsed.uses_baseline() && !has_baseline {
                            self.error(text.pos, "`baseline` needs a phase named baseline");
                        }
                        if parsed.uses_baseline()
                            && c.phase.as_ref().is_some_and(|p| p.value == "baseline")
                        {
                            self.error(
                                text.pos,
                                "a baseline check cannot compare the baseline with itself",
                            );
                        }
                        if self.scenario.load.is_none() {
                            self.error(check.pos, "http checks need a `load:` section to measure");
                        }
                    }
                },
                CheckKind::Prometheus(p) => {
                    if p.success_condition.is_none() && p.failure_condition.is_none() {
                        self.error(
                            c.kind_at,
                            "a prometheus check needs `success_condition` or `failure_condition`",
                        );
                    }
                    for cond in [&p.success_condition, &p.failure_condition]
                        .into_iter()
                        .flatten()
                    {
                        if let Err(e) = cond.get() {
                            self.expr_error(cond.pos, e);
                        }
                    }
                    if p.query.value.trim().is_empty() {
                        self.error(p.query.pos, "empty PromQL query");
                    }
                    if p.count == 0 {
                        self.error(c.kind_at, "`count` must be at least 1");
                    }
                    if p.interval.is_none() && p.count > 1 {
                        self.error(c.kind_at, "sampling `count` times needs an `interval`");
                    }
                }
                CheckKind::Jobs(j) => {
                    for step in [&j.started_after, &j.started_before].into_iter().flatten() {
                        self.step_ref(step);
                    }
                    if j.max_failed.is_none() && j.min_succeeded.is_none() && j.min_failed.is_none()
                    {
                        self.error(
                            c.kind_at,
                            "a jobs check needs `max_failed`, `min_succeeded` or `min_failed`",
                        );
                    }
                }
                CheckKind::Rolled(r) => {
                    self.step_ref(&r.after);
                    self.process_ref(&r.deployment);
                }
                CheckKind::ExpectedFailure(e) => {
                    self.step_ref(&e.callers_started_before);
                    if let Err(unknown) = e.status.get() {
                        self.error(e.status.pos, unknown.to_string());
                    }
                    let has_callers = self
                        .scenario
                        .load
                        .as_ref()
                        .and_then(|l| l.auth.as_ref())
                        .is_some_and(|a| a.token_url.is_some());
                    if !has_callers {
                        self.error(c.kind_at, "`expected_failure` needs `load.auth.token_url`: callers are told apart by their tokens");
                    }
                }
                CheckKind::Command(cmd) => {
                    if cmd.argv.is_empty() {
                        self.error(c.kind_at, "`command` needs a non-empty argv");
                    }
                    if let Some(re) = &cmd.stdout
                        && let Err(e) = re.get()
                    {
                        self.error(re.pos, format!("invalid regular expression: {e}"));
                    }
                }
                CheckKind::Restarts(_) | CheckKind::ReadyWithin(_) => {}
                CheckKind::Compare(text) => match text.get() {
                    Err(e) => self.expr_error(text.pos, e),
                    Ok(parsed) => {
                        let streams = self.scenario.load.as_ref().map(|l| &l.streams);
                        for side in [&parsed.left, &parsed.right] {
                            if !streams.is_some_and(|s| s.contains_key(&side.stream)) {
                                let known = streams
                                    .map(|s| s.keys().cloned().collect::<Vec<_>>().join(", "))
                                    .unwrap_or_default();
                                let error = ExprError {
                                    offset: side.at,
                                    message: format!(
                                        "no load stream named `{}` (declared: [{known}]); declare it under `load.streams`",
                                        side.stream
                                    ),
                                };
                                self.expr_error(text.pos, &error);
                            }
                        }
                    }
                },
                CheckKind::Alerts(a) => self.alerts_check(a, c.kind_at),
                CheckKind::Logs(l) => {
                    if let Err(e) = l.pattern.get() {
                        self.error(l.pattern.pos, format!("invalid regular expression: {e}"));
                    }
                    if l.min.is_none() && l.max.is_none() {
                        self.error(c.kind_at, "a logs check needs `min` or `max`");
                    }
                }
                CheckKind::Configmap(m) => {
                    if m.max_bytes.is_none() && m.max_keys.is_none() {
                        self.error(
                            c.kind_at,
                            "a configmap check needs `max_bytes` or `max_keys`",
                        );
                    }
                    if m.interval.0.is_zero() {
                        self.error(c.kind_at, "`interval` must be above 0s");
                    }
                }
                CheckKind::Regression(r) => self.regression(c, r),
                CheckKind::Version(v) => {
                    if v.image.is_none() && v.label.as_ref().is_none_or(BTreeMap::is_empty) {
                        self.error(c.kind_at, "a version check needs `image` or `label`");
                    }
                }
            }
            let kube_only = matches!(
                c.kind,
                CheckKind::Logs(_) | CheckKind::Configmap(_) | CheckKind::Version(_)
            );
            if kube_only && self.is_local {
                self.error(
                    c.kind_at,
                    format!("`{}` checks need a kubernetes target", c.kind.kind()),
                );
            }
        }
        let has_fault = self.scenario.steps.iter().any(|s| {
            !matches!(
                s.value.action,
                Action::Wait(_) | Action::WaitReady(_) | Action::WaitRollout(_)
            )
        });
        if has_fault && self.scenario.checks.is_empty() {
            self.warn(
                Pos::default(),
                "this drill injects faults but has no checks: its verdict can only be inconclusive",
            );
        }
    }

    fn regression(&mut self, c: &Check, r: &super::regression::RegressionCheck) {
        if r.limits.is_empty() {
            self.error(c.kind_at, "a regression check needs at least one limit");
        }
        if r.runs == 0 || r.min_runs == 0 || r.min_runs > r.runs {
            self.error(
                c.kind_at,
                format!(
                    "`min_runs` ({}) must be between 1 and `runs` ({})",
                    r.min_runs, r.runs
                ),
            );
        }
        for limit in &r.limits {
            if let Err(e) = limit.value.allowance() {
                self.error(limit.pos, e.to_string());
            }
            if let Some(phase) = &limit.value.phase {
                self.phase_ref(phase);
            }
        }
    }

    fn guards(&mut self) {
        for guard in &self.scenario.abort_when {
            let g = &guard.value;
            let kinds = usize::from(g.http.is_some())
                + usize::from(g.prometheus.is_some())
                + usize::from(g.not_ready.is_some())
                + usize::from(g.restarts.is_some());
            if kinds != 1 {
                self.error(
                    guard.pos,
                    "a guard needs exactly one of `http`, `prometheus`, `not_ready` or `restarts`",
                );
            }
            if let Some(http) = &g.http {
                self.http_guard(guard.pos, http);
            }
            if let Some(p) = &g.prometheus {
                if let Err(e) = p.condition.get() {
                    self.expr_error(p.condition.pos, e);
                }
                if p.query.value.trim().is_empty() {
                    self.error(p.query.pos, "empty PromQL query");
                }
                if p.interval.0.is_zero() {
                    self.error(
                        guard.pos,
                        "a prometheus guard's `interval` must be above 0s",
                    );
                }
            }
            if let Some(n) = &g.not_ready
                && let Err(e) = n.above.get()
            {
                self.error(n.above.pos, e.to_string());
            }
            if (g.not_ready.is_some() || g.restarts.is_some()) && self.is_local {
                self.error(
                    guard.pos,
                    "`not_ready` and `restarts` guards need a kubernetes target",
                );
            }
        }
    }

    fn http_guard(&mut self, guard_at: Pos, http: &Sp<Parsed<HttpFormula>>) {
        match http.get() {
            Err(e) => self.expr_error(http.pos, e),
            Ok(parsed) => {
                if let Some(why) = parsed.foregone() {
                    self.error(http.pos, why);
                }
                if matches!(parsed.metric, Metric::Dropped | Metric::Requests)
                    || parsed.uses_baseline()
                {
                    self.error(http.pos, "guards are judged per 1-second window: use rate(...), count(...), p(...) or rps, against a fixed value");
                }
            }
        }
        if self.scenario.load.is_none() {
            self.error(
                guard_at,
                "`abort_when` guards need a `load:` section to watch",
            );
        }
    }

    fn preflight(&mut self) {
        for item in &self.scenario.preflight {
            let local_ok = matches!(
                item.value,
                PreflightCheck::HttpOk(_) | PreflightCheck::Command(_)
            );
            if self.is_local && !local_ok {
                self.error(item.pos, "this pre-flight check needs a kubernetes target");
            }
        }
    }
}

impl Validator<'_> {
    /// 1 when the scalar at `pos` is quoted (`"rate(401) == 0"`): positions count from the quote.
    fn quote_offset(&self, pos: Pos) -> u32 {
        let line = self
            .source
            .lines()
            .nth(pos.line.saturating_sub(1) as usize)
            .unwrap_or("");
        let first = line.chars().nth(pos.column.saturating_sub(1) as usize);
        u32::from(matches!(first, Some('"' | '\'')))
    }
}

/// Most load workers one drill may start: each is a pod and a followed log.
pub const MAX_LOAD_WORKERS: u32 = 64;

/// How a scenario lifts the sanity limits.
const LIFT: &str = "set `allow_large: true` at the top of the scenario";

impl Validator<'_> {
    /// `load.from: cluster`: a Kubernetes target, an image, tokens a pod can get.
    fn cluster_load(&mut self) {
        let Some(load) = &self.scenario.load else {
            return;
        };
        let pos = load.cluster.as_ref().map_or(load.url.pos, |c| c.pos);
        let secret_tokens = load
            .auth
            .as_ref()
            .is_some_and(|a| a.bearer_secret.is_some());
        if load.from == LoadFrom::Local {
            if load.cluster.is_some() {
                self.error(
                    pos,
                    "`load.cluster` describes load workers: add `from: cluster`",
                );
            }
            if secret_tokens {
                self.error(
                    load.url.pos,
                    "`auth.bearer_secret` is read by load workers in the cluster: add \
                     `from: cluster`, or use `bearer_env`/`bearer_file` for local load",
                );
            }
            return;
        }
        if self.is_local {
            self.error(
                load.url.pos,
                "`from: cluster` runs load workers as pods: it needs a kubernetes target",
            );
        }
        let Some(cluster) = &load.cluster else {
            self.error(
                load.url.pos,
                "`from: cluster` needs `cluster:` with at least the workers' `image`",
            )
            .help = Some("e.g. `cluster: {workers: 2, image: ghcr.io/you/drillbook:0.1}`".into());
            return;
        };
        let workers = cluster.value.workers;
        if workers == 0 || workers > MAX_LOAD_WORKERS {
            self.error(
                cluster.pos,
                format!("`workers: {workers}` must be between 1 and {MAX_LOAD_WORKERS}"),
            );
        }
        if cluster.value.image.trim().is_empty() {
            self.error(cluster.pos, "`cluster.image` is empty");
        }
        if let Some(auth) = &load.auth {
            if auth.bearer_file.is_some() || auth.bearer_env.is_some() {
                self.error(
                    load.url.pos,
                    "load workers in the cluster cannot read this machine's environment or \
                     files: put the token in a Secret and use `auth.bearer_secret: {name, key}`",
                );
            }
            if auth.callers.value < workers {
                self.error(
                    cluster.pos,
                    format!(
                        "{} caller(s) cannot be spread over {workers} workers: every worker \
                         needs at least one caller",
                        auth.callers.value
                    ),
                );
            }
        }
        if load.body_file.is_some() || load.body.as_deref().is_some_and(|b| b.starts_with('@')) {
            self.error(
                load.url.pos,
                "cluster load passes the body on the workers' command line: write it inline in \
                 `body` (not starting with `@`)",
            );
        }
        if load.ca_file.is_some() {
            self.error(
                load.url.pos,
                "`ca_file` is read on this machine; the cluster's workers trust their image's \
                 trust store: add the CA there, or use `from: local`",
            );
        }
        if !load.streams.is_empty() {
            self.error(
                pos,
                "`load.streams` are sent by this process, not by the cluster's workers: compare \
                 canary and stable with local load, or with a prometheus check",
            );
        }
        let url = &load.url.value;
        if ["://127.", "://localhost", "://[::1]"]
            .iter()
            .any(|loopback| url.contains(loopback))
        {
            self.warn(
                load.url.pos,
                format!(
                    "`{url}` is the worker pod itself: cluster load calls the Service from \
                     inside the cluster (its ClusterIP or DNS name)"
                ),
            );
        }
    }
}

/// Why one JSON patch operation cannot be applied (or undone), if it cannot.
fn json_patch_op_problem(op: &serde_json::Value) -> Option<String> {
    let kind = op.get("op").and_then(serde_json::Value::as_str);
    let path = op.get("path").and_then(serde_json::Value::as_str);
    match (kind, path) {
        (Some("add" | "replace" | "test"), Some(_)) if op.get("value").is_none() => {
            Some("a json patch `add`, `replace` or `test` needs a `value`".into())
        }
        (Some("move" | "copy"), Some(_)) if op.get("from").is_none() => {
            Some("a json patch `move` or `copy` needs a `from`".into())
        }
        (Some("add" | "replace" | "remove" | "test" | "move" | "copy"), Some(p))
            if p.starts_with('/') =>
        {
            None
        }
        (Some(other), Some(_))
            if !["add", "replace", "remove", "test", "move", "copy"].contains(&other) =>
        {
            Some(format!("`{other}` is not a json patch operation"))
        }
        _ => Some("each json patch operation needs `op` and a `path` starting with `/`".into()),
    }
}

#[cfg(test)]
mod canary_tests {
    use std::path::Path;

    /// The errors of a kubernetes scenario with `body` after its target.
    fn errors(body: &str) -> String {
        let source = format!(
            "apiVersion: drillbook/v1\nname: t\ntarget:\n  kubernetes:\n    context: box\n    \
             namespace: ns\n    allowed_contexts: [box]\n{body}"
        );
        match crate::scenario::load_source(Path::new("t.yaml"), source) {
            Ok(_) => String::new(),
            Err(diagnostics) => diagnostics.to_string(),
        }
    }

    #[test]
    fn the_new_steps_guards_and_checks_validate_when_well_formed() {
        let ok = errors(
            "steps:\n  - set_image: {deployment: web, container: main, image: \"web:2\"}\n  \
             - rollout_undo: {deployment: web}\n  \
             - patch: {apiVersion: example.com/v1, kind: Rollout, name: r, json: [{op: remove, path: /spec/paused}]}\n  \
             - wait_for: {apiVersion: example.com/v1, kind: Rollout, name: r, condition: \"status.phase == Healthy\"}\n\
             abort_when:\n  - not_ready: {selector: \"app=web\", above: \"50%\"}\n    for: 2m\n  \
             - restarts: {selector: \"app=web\"}\n\
             checks:\n  - name: logs\n    logs: {selector: \"app=web\", pattern: ERROR, max: 0}\n  \
             - name: cm\n    configmap: {name: revoke, max_bytes: 1024}\n  \
             - name: v\n    version: {selector: \"app=web\", image: \"web:2\"}\n",
        );
        assert_eq!(ok, "");
    }

    #[test]
    fn malformed_new_constructs_are_refused_with_a_reason() {
        let cases = [
            (
                "steps:\n  - set_image: {deployment: a, daemonset: b, container: c, image: i}\n",
                "exactly one of `deployment`",
            ),
            (
                "steps:\n  - patch: {apiVersion: v1, kind: ConfigMap, name: c}\n",
                "exactly one of `merge` or `json`",
            ),
            (
                "steps:\n  - patch: {apiVersion: v1, kind: ConfigMap, name: c, json: [{op: put, path: /a}]}\n",
                "not a json patch operation",
            ),
            (
                "steps:\n  - wait_for: {apiVersion: v1, kind: Pod, name: p, condition: \"status.phase\"}\n",
                "not a condition",
            ),
            (
                "abort_when:\n  - not_ready: {selector: \"app=web\", above: \"150%\"}\n",
                "share such as `50%`",
            ),
            (
                "abort_when:\n  - for: 1s\n",
                "exactly one of `http`, `prometheus`, `not_ready` or `restarts`",
            ),
            (
                "checks:\n  - name: l\n    logs: {selector: \"app=web\", pattern: \"(\"}\n",
                "invalid regular expression",
            ),
            (
                "checks:\n  - name: c\n    configmap: {name: revoke}\n",
                "`max_bytes` or `max_keys`",
            ),
            (
                "checks:\n  - name: v\n    version: {selector: \"app=web\"}\n",
                "`image` or `label`",
            ),
        ];
        for (body, why) in cases {
            let found = errors(body);
            assert!(found.contains(why), "{body}: expected `{why}` in:\n{found}");
        }
    }
}

#[cfg(test)]
mod templated_tests {
    use std::path::Path;

    use super::templated::{Site, Templated, expand, texts};
    use crate::scenario::Scenario;
    use crate::scenario::vars::{VarError, Vars};

    const LOCAL: &str = "apiVersion: drillbook/v1\nname: t\ntarget:\n  local:\n    processes:\n    \
        - {name: api, command: [\"${drillbook}\", \"--listen=127.0.0.1:${port.api}\"]}\n\
        load: {url: \"http://127.0.0.1:${port.api}/\", rate: 5/s, duration: 5s}\n\
        abort_when:\n  - prometheus: {url: \"http://127.0.0.1:${port.prom}\", query: up, condition: \"result < 1\"}\n\
        checks:\n  - name: ok\n    http: \"rate(5xx) == 0\"\n";

    #[test]
    fn every_field_that_takes_a_port_is_listed() {
        let s = crate::scenario::parse_str(LOCAL).expect("parses");
        let sites: Vec<Site> = texts(&s).iter().map(|t| t.site).collect();
        assert_eq!(
            sites,
            [
                Site::ProcessCommand,
                Site::ProcessCommand,
                Site::LoadUrl,
                Site::PrometheusGuardUrl
            ]
        );
    }

    /// A guard's URL was not in the run's list, so `${port.prom}` was never given a port and the
    /// guard quietly asked nothing; now validation names it.
    #[test]
    fn a_port_used_only_by_a_guard_is_refused_at_its_line() {
        let s = crate::scenario::parse_str(LOCAL).expect("parses");
        let items = super::validate(&s, Path::new("t.yaml"), LOCAL);
        let errors: Vec<String> = items
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{}: {}", d.pos, d.message))
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("9:"), "{errors:?}");
        assert!(
            errors[0].contains("`${port.prom}` is given to no process"),
            "{errors:?}"
        );
    }

    fn scenario(source: &str) -> Scenario {
        match crate::scenario::parse_str(source) {
            Ok(s) => s,
            Err(d) => panic!("the fixture does not parse: {d:?}"),
        }
    }

    const LAB: &str = "apiVersion: drillbook/v1\nname: t\ntarget:\n  local:\n    processes:\n    \
        - {name: api, command: [\"${drillbook}\", \"--port\", \"${port.api}\"], ready: \"http://127.0.0.1:${port.api}/\"}\n\
        load: {url: \"http://127.0.0.1:${port.api}/x\", rate: 1/s, duration: 1s}\n\
        steps:\n  - wait: 1s\npreflight:\n  - http_ok: {url: \"http://127.0.0.1:${port.api}/\"}\n";

    #[test]
    fn every_listed_field_is_expanded_once_with_the_ports_chosen() -> Result<(), VarError> {
        let s = scenario(LAB);
        let listed = texts(&s);
        let vars = Vars::allocate(listed.iter().map(|t| t.text.as_str()), &[])?;
        let expanded = expand(&s, &vars)?;
        let port = vars.ports["api"].to_string();
        let left: Vec<Templated> = texts(&expanded)
            .into_iter()
            .filter(|t| t.text.contains("${"))
            .collect();
        assert!(left.is_empty(), "left unexpanded: {left:?}");
        let api = &expanded.local_processes()[0].value;
        assert_eq!(api.command[2], port);
        assert_ne!(api.command[0], "${drillbook}");
        let load = expanded.load.as_ref().map(|l| l.url.value.clone());
        assert_eq!(load, Some(format!("http://127.0.0.1:{port}/x")));
        Ok(())
    }

    #[test]
    fn a_text_that_does_not_expand_is_an_error_not_the_raw_text() {
        let s = scenario(&LAB.replace("${port.api}/x", "${port.nobody}/x"));
        let vars = Vars::allocate(["${port.api}"], &[]).expect("a port");
        let e = expand(&s, &vars).expect_err("port.nobody has no port");
        assert!(e.to_string().contains("port.nobody"), "{e}");
    }
}
