//! Pre-flight for a Kubernetes drill: refuse before the first fault rather than fail half-way.
//! The API server answers, the namespace exists, every verb the scenario needs is allowed
//! (SelfSubjectAccessReview), each selector matches pods, active Jobs are listed, helm releases
//! exist, and the scenario's own pre-flight checks hold.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ListParams, PostParams};

use super::KubeTarget;
use super::retry::retrying;
use crate::report::model::{PreflightResult, PreflightStatus};
use crate::scenario::{Action, CheckKind, OnFound, PreflightCheck, Scenario};
use crate::units::LabelSelector;

/// One API permission a drill needs: `verb` on `group`/`resource`[/`subresource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Resource, plural.
    pub resource: &'static str,
    /// Subresource (`eviction`), if any.
    pub subresource: Option<&'static str>,
    /// Verb (`get`, `list`, `watch`, `delete`, `patch`, `create`).
    pub verb: &'static str,
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if let Some(sub) = self.subresource {
            write!(f, "/{sub}")?;
        }
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        Ok(())
    }
}

/// A permission to review: a [`Need`], or one on a resource found by discovery (`patch` and
/// `wait_for` name any kind, a CRD's included).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Permission {
    group: String,
    resource: String,
    subresource: Option<String>,
    verb: &'static str,
}

impl From<&Need> for Permission {
    fn from(need: &Need) -> Self {
        Self {
            group: need.group.to_string(),
            resource: need.resource.to_string(),
            subresource: need.subresource.map(str::to_string),
            verb: need.verb,
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if let Some(sub) = &self.subresource {
            write!(f, "/{sub}")?;
        }
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        Ok(())
    }
}

const fn need(group: &'static str, resource: &'static str, verb: &'static str) -> Need {
    Need {
        group,
        resource,
        subresource: None,
        verb,
    }
}

const WATCH_PODS: [Need; 2] = [need("", "pods", "list"), need("", "pods", "watch")];
const READ_POD_LOGS: Need = Need {
    subresource: Some("log"),
    ..need("", "pods", "get")
};
const READ_DEPLOYMENTS: [Need; 2] = [
    need("apps", "deployments", "get"),
    need("apps", "deployments", "watch"),
];

/// What a scenario asks of the cluster: permissions, pod selectors and helm releases.
#[derive(Debug, Default)]
pub struct Needs {
    /// Every permission used by the steps, `finally`, checks and observers.
    pub permissions: BTreeSet<Need>,
    /// Selector → the minimum number of pods it must match.
    pub selectors: BTreeMap<String, (LabelSelector, u32)>,
    /// Job selectors (checks and the Job observer).
    pub job_selectors: Vec<LabelSelector>,
    /// Releases that `helm_upgrade` steps or `helm_release` checks name.
    pub helm_releases: BTreeSet<String>,
}

impl Needs {
    fn selector(&mut self, selector: &LabelSelector, min: u32) {
        let entry = self
            .selectors
            .entry(selector.to_string())
            .or_insert_with(|| (selector.clone(), min));
        entry.1 = entry.1.max(min);
    }

    /// Collects what `scenario` needs.
    pub fn of(scenario: &Scenario) -> Self {
        let mut needs = Self::default();
        // The observer always watches pods and Warning events.
        needs.permissions.extend(WATCH_PODS);
        needs
            .permissions
            .extend([need("", "events", "list"), need("", "events", "watch")]);
        for step in scenario.every_step() {
            needs.action(&step.action);
        }
        for check in &scenario.checks {
            match &check.kind {
                CheckKind::Restarts(r) => needs.selector(&r.selector, 1),
                CheckKind::ReadyWithin(r) => needs.selector(&r.selector, 1),
                CheckKind::Jobs(j) => needs.job_selectors.push(j.selector.value.clone()),
                CheckKind::Logs(l) => {
                    needs.permissions.extend(WATCH_PODS);
                    needs.permissions.insert(READ_POD_LOGS);
                    needs.selector(&l.selector, 1);
                }
                CheckKind::Configmap(_) => {
                    needs.permissions.insert(need("", "configmaps", "get"));
                }
                CheckKind::Version(v) => {
                    needs.permissions.extend(WATCH_PODS);
                    needs.selector(&v.selector, 1);
                }
                CheckKind::Rolled(_) => {
                    needs.permissions.extend(READ_DEPLOYMENTS);
                    needs.permissions.extend(WATCH_PODS);
                }
                _ => {}
            }
        }
        for guard in &scenario.abort_when {
            let selector = guard
                .not_ready
                .as_ref()
                .map(|n| &n.selector)
                .or(guard.restarts.as_ref().map(|r| &r.selector));
            if let Some(selector) = selector {
                needs.selector(selector, 1);
            }
        }
        for item in &scenario.preflight {
            match &item.value {
                PreflightCheck::PodsMatch(p) => needs.selector(&p.selector, p.min),
                PreflightCheck::HelmRelease(h) => {
                    needs.helm_releases.insert(h.release.value.clone());
                }
                _ => {}
            }
        }
        if scenario
            .load
            .as_ref()
            .is_some_and(|l| l.from == crate::scenario::LoadFrom::Cluster)
        {
            // Cluster load: one Job per worker, their pods' logs followed, all removed at the end.
            needs.permissions.extend([
                need("batch", "jobs", "create"),
                need("batch", "jobs", "delete"),
                need("", "pods", "list"),
                need("", "pods", "deletecollection"),
                READ_POD_LOGS,
            ]);
        }
        needs.permissions.insert(need("batch", "jobs", "list"));
        if !needs.job_selectors.is_empty() {
            needs.permissions.insert(need("batch", "jobs", "watch"));
        }
        needs
    }

    fn action(&mut self, action: &Action) {
        let perms = &mut self.permissions;
        match action {
            Action::KillPods(k) => {
                perms.extend(WATCH_PODS);
                perms.insert(need("", "pods", "delete"));
                self.selector(&k.selector, 1);
            }
            Action::Evict(e) => {
                perms.extend(WATCH_PODS);
                perms.insert(Need {
                    subresource: Some("eviction"),
                    ..need("", "pods", "create")
                });
                self.selector(&e.selector, 1);
            }
            Action::RolloutRestart(_) | Action::Scale(_) | Action::PatchEnv(_) => {
                perms.extend(READ_DEPLOYMENTS);
                perms.insert(need("apps", "deployments", "patch"));
            }
            Action::PatchConfigmap(_) => {
                perms.insert(need("", "configmaps", "get"));
                perms.insert(need("", "configmaps", "patch"));
            }
            Action::WaitRollout(_) => perms.extend(READ_DEPLOYMENTS),
            Action::WaitReady(w) => {
                perms.extend(WATCH_PODS);
                perms.insert(need("apps", "replicasets", "get"));
                if let Some(selector) = &w.selector {
                    self.selector(selector, 1);
                }
            }
            Action::HelmUpgrade(h) => {
                self.helm_releases.insert(h.release.value.clone());
                // helm keeps release state in Secrets of the namespace.
                perms.insert(need("", "secrets", "list"));
                perms.insert(need("", "secrets", "create"));
            }
            Action::SetImage(_) => {
                perms.extend(READ_DEPLOYMENTS);
                perms.insert(need("apps", "deployments", "patch"));
            }
            Action::RolloutUndo(_) => {
                perms.extend(READ_DEPLOYMENTS);
                perms.insert(need("apps", "deployments", "patch"));
                perms.insert(need("apps", "replicasets", "list"));
            }
            // The patched or awaited resource is known only after discovery: the pre-flight
            // resolves it (`discovered_permissions`), `rbac` renders its rule offline.
            Action::Patch(_) | Action::WaitFor(_) => {}
            // Interposition (`interpose.rs`): the Service read and its selector switched and
            // restored; a temporary Service and the fault proxy Deployment created, awaited and
            // deleted; the Service's Endpoints read to see each switch take effect; the
            // proxies' logs read for their counts.
            Action::HttpFault(_) => perms.extend([
                need("", "pods", "list"),
                READ_POD_LOGS,
                need("", "services", "get"),
                need("", "services", "create"),
                need("", "services", "patch"),
                need("", "services", "delete"),
                need("apps", "deployments", "get"),
                need("apps", "deployments", "create"),
                need("apps", "deployments", "delete"),
                need("", "endpoints", "get"),
            ]),
            Action::KillProcess(_)
            | Action::StartProcess(_)
            | Action::Command(_)
            | Action::Wait(_) => {}
        }
    }
}

fn result(name: String, status: PreflightStatus, detail: String) -> PreflightResult {
    PreflightResult {
        name,
        status,
        detail,
    }
}

impl KubeTarget {
    /// Runs every pre-flight check for `scenario` (see the module docs). The drill must not
    /// start when any result is `Fail`. When the API server does not answer, that is the only
    /// result.
    pub async fn preflight(&self, scenario: &Scenario) -> Vec<PreflightResult> {
        let needs = Needs::of(scenario);
        let mut results = Vec::new();
        let context_name = format!("context {}", self.context);
        match retrying("server version", || self.client.apiserver_version()).await {
            Ok(info) => results.push(result(
                context_name,
                PreflightStatus::Ok,
                format!("allowed; API server {} answers", info.git_version),
            )),
            Err(e) => {
                results.push(result(
                    context_name,
                    PreflightStatus::Fail,
                    self.api_error("reach the API server", e).to_string(),
                ));
                return results;
            }
        }
        results.push(self.namespace_check().await);
        let mut permissions: Vec<Permission> =
            needs.permissions.iter().map(Permission::from).collect();
        for found in self.discovered_permissions(scenario).await {
            match found {
                Ok(extra) => permissions.extend(extra),
                Err(unknown) => results.push(unknown),
            }
        }
        results.push(self.permissions_check(&permissions).await);
        for (selector, min) in needs.selectors.values() {
            results.push(self.selector_check(selector, *min).await);
        }
        let active_jobs_items: Vec<_> = scenario
            .preflight
            .iter()
            .filter_map(|item| match &item.value {
                PreflightCheck::ActiveJobs(a) => Some(a),
                _ => None,
            })
            .collect();
        if active_jobs_items.is_empty() {
            // The helm lessons' item 7: always list in-flight Jobs, as a warning by default.
            results.push(self.active_jobs_check(None, OnFound::Warn).await);
        }
        for a in active_jobs_items {
            let selector = a.selector.as_ref().map(|s| &s.value);
            results.push(self.active_jobs_check(selector, a.on_found).await);
        }
        for release in &needs.helm_releases {
            results.push(self.helm_release_check(release).await);
        }
        for step in scenario.every_step() {
            if let Action::HttpFault(f) = &step.action
                && let Some(service) = &f.service
            {
                results.push(self.interposition_check(&service.value, f.protocol).await);
            }
        }
        for item in &scenario.preflight {
            match &item.value {
                PreflightCheck::HttpOk(h) => results.push(http_check(&h.url, h.status).await),
                PreflightCheck::Command(c) => results.push(self.command_check(c).await),
                PreflightCheck::ActiveJobs(_)
                | PreflightCheck::PodsMatch(_)
                | PreflightCheck::HelmRelease(_) => {}
            }
        }
        results
    }

    /// `http_fault`: the Service exists and can be interposed (not headless, has a selector,
    /// no privileged target port, not left interposed by an earlier drill).
    async fn interposition_check(
        &self,
        service: &str,
        protocol: crate::scenario::http_fault::FaultProtocol,
    ) -> PreflightResult {
        let name = format!("fault at service {service}");
        match self.interposition_plan(service).await {
            Ok(plan)
                if protocol == crate::scenario::http_fault::FaultProtocol::Http
                    && !plan.encrypted_ports.is_empty() =>
            {
                result(
                    name,
                    PreflightStatus::Fail,
                    format!(
                        "port(s) {} look like TLS or gRPC (name or appProtocol): an http fault \
                         would read encrypted bytes as HTTP; use `protocol: tcp` (latency, \
                         reset, blackhole)",
                        plan.encrypted_ports.join(", ")
                    ),
                )
            }
            Ok(plan) => result(name, PreflightStatus::Ok, plan.words(service)),
            Err(e) => result(name, PreflightStatus::Fail, e.to_string()),
        }
    }

    async fn namespace_check(&self) -> PreflightResult {
        let name = format!("namespace {}", self.namespace);
        let api = kube::Api::<Namespace>::all(self.client.clone());
        match retrying("get namespace", || api.get_opt(&self.namespace)).await {
            Ok(Some(_)) => result(name, PreflightStatus::Ok, "exists and is allowed".into()),
            Ok(None) => result(
                name,
                PreflightStatus::Fail,
                format!("does not exist in context `{}`", self.context),
            ),
            Err(e) => result(
                name,
                PreflightStatus::Fail,
                self.api_error("get the namespace", e).to_string(),
            ),
        }
    }

    /// The permissions of each `patch` and `wait_for` step on the resource discovery finds for
    /// its apiVersion and kind, or a failed result when the cluster does not serve that kind
    /// (a CRD not installed): refused before the first fault, not half-way.
    async fn discovered_permissions(
        &self,
        scenario: &Scenario,
    ) -> Vec<Result<Vec<Permission>, PreflightResult>> {
        let mut found = Vec::new();
        for step in scenario.every_step() {
            let (api_version, kind, verbs, status) = match &step.value.action {
                Action::Patch(p) => (
                    &p.api_version.value,
                    &p.kind.value,
                    &["get", "patch"][..],
                    p.subresource_status,
                ),
                Action::WaitFor(w) => (&w.api_version.value, &w.kind.value, &["get"][..], false),
                _ => continue,
            };
            found.push(match self.discover(api_version, kind).await {
                Ok(resource) => Ok(verbs
                    .iter()
                    .map(|verb| Permission {
                        group: resource.group.clone(),
                        resource: resource.plural.clone(),
                        // A status patch is a patch of the `status` subresource; its undo
                        // reads the object itself.
                        subresource: (status && *verb == "patch").then(|| "status".to_string()),
                        verb,
                    })
                    .collect()),
                Err(e) => Err(result(
                    format!("resource {kind} ({api_version})"),
                    PreflightStatus::Fail,
                    e.to_string(),
                )),
            });
        }
        found
    }

    /// One SelfSubjectAccessReview per permission; one result listing what is denied.
    async fn permissions_check(&self, permissions: &[Permission]) -> PreflightResult {
        let api = kube::Api::<SelfSubjectAccessReview>::all(self.client.clone());
        let mut denied = Vec::new();
        for need in permissions {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(self.namespace.clone()),
                        group: Some(need.group.clone()),
                        resource: Some(need.resource.clone()),
                        subresource: need.subresource.clone(),
                        verb: Some(need.verb.to_string()),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            // Creating a review has no side effect, so it may be retried.
            let post = PostParams::default();
            let answer = retrying("access review", || api.create(&post, &review));
            match answer.await {
                Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => {}
                Ok(_) => denied.push(need.to_string()),
                Err(e) => {
                    return result(
                        "permissions".into(),
                        PreflightStatus::Fail,
                        self.api_error("review access", e).to_string(),
                    );
                }
            }
        }
        if denied.is_empty() {
            result(
                "permissions".into(),
                PreflightStatus::Ok,
                format!(
                    "all {} verbs the drill needs are allowed",
                    permissions.len()
                ),
            )
        } else {
            result(
                "permissions".into(),
                PreflightStatus::Fail,
                format!(
                    "denied in namespace `{}`: {}",
                    self.namespace,
                    denied.join(", ")
                ),
            )
        }
    }

    async fn selector_check(&self, selector: &LabelSelector, min: u32) -> PreflightResult {
        let name = format!("pods match {selector}");
        match self.matching_pods(selector).await {
            Ok(pods) => {
                let live: Vec<_> = pods.iter().filter(|p| !p.terminating).collect();
                let ready = live.iter().filter(|p| p.ready).count();
                let detail = format!("{} pods ({ready} ready)", live.len());
                if live.len() >= min as usize {
                    result(name, PreflightStatus::Ok, detail)
                } else {
                    result(
                        name,
                        PreflightStatus::Fail,
                        format!("{detail}; at least {min} needed"),
                    )
                }
            }
            Err(e) => result(name, PreflightStatus::Fail, e.to_string()),
        }
    }

    /// Jobs still running (active pods, not finished), named in the detail.
    async fn active_jobs_check(
        &self,
        selector: Option<&LabelSelector>,
        on_found: OnFound,
    ) -> PreflightResult {
        let name = match selector {
            Some(s) => format!("active jobs {s}"),
            None => "active jobs".to_string(),
        };
        let mut params = ListParams::default();
        if let Some(s) = selector {
            params = params.labels(&s.to_string());
        }
        let api = self.api::<Job>();
        let jobs = match retrying("list jobs", || api.list(&params)).await {
            Ok(list) => list.items,
            Err(e) => {
                return result(
                    name,
                    PreflightStatus::Fail,
                    self.api_error("list jobs", e).to_string(),
                );
            }
        };
        let active: Vec<String> = jobs
            .iter()
            .filter(|j| j.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0)
            .filter_map(|j| j.metadata.name.clone())
            .collect();
        if active.is_empty() {
            return result(
                name,
                PreflightStatus::Ok,
                format!("no active Job in namespace `{}`", self.namespace),
            );
        }
        let status = match on_found {
            OnFound::Warn => PreflightStatus::Warn,
            OnFound::Fail => PreflightStatus::Fail,
        };
        result(
            name,
            status,
            format!(
                "{} active Job(s) in namespace `{}`: {}",
                active.len(),
                self.namespace,
                active.join(", ")
            ),
        )
    }

    async fn helm_release_check(&self, release: &str) -> PreflightResult {
        let name = format!("helm release {release}");
        match self.helm_revision(release).await {
            Ok(revision) => result(
                name,
                PreflightStatus::Ok,
                format!("exists at revision {revision}"),
            ),
            Err(e) => result(name, PreflightStatus::Fail, e.to_string()),
        }
    }

    async fn command_check(&self, c: &crate::scenario::CommandAction) -> PreflightResult {
        let name = format!("command {}", c.argv.join(" "));
        let outcome = match self.pin_command(&c.argv) {
            Ok(argv) => self.run_tool(&argv, &c.env, c.timeout.0).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(out) if out.status == Some(0) => result(name, PreflightStatus::Ok, "exit 0".into()),
            Ok(out) => result(
                name,
                PreflightStatus::Fail,
                format!("{}: {}", out.status_text(), out.stderr_tail()),
            ),
            Err(e) => result(name, PreflightStatus::Fail, e.to_string()),
        }
    }
}

async fn http_check(url: &str, expected: u16) -> PreflightResult {
    let name = format!("http_ok {url}");
    match crate::support::http::status(url).await {
        Ok(status) if status == expected => {
            result(name, PreflightStatus::Ok, format!("answered {status}"))
        }
        Ok(status) => result(
            name,
            PreflightStatus::Fail,
            format!("answered {status}, expected {expected}"),
        ),
        Err(e) => result(name, PreflightStatus::Fail, e.to_string()),
    }
}
