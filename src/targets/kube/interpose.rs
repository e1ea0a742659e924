//! `http_fault` on a Service, by interposition (issue #23): no privileges, no tc or iptables.
//!
//! 1. The Service is read (the undo: its selector) and refused if headless, selector-less or
//!    already interposed; the undo is journaled before anything changes.
//! 2. A temporary "origin" Service carries the original selector and ports: the real backends.
//! 3. A fault proxy Deployment (the drillbook image, `drillbook fault-proxy`, non-root, no
//!    capabilities, read-only root) listens on the Service's target ports and forwards to the
//!    origin Service's cluster IP.
//! 4. When its pods are ready, the Service's selector is switched to them (a JSON patch that
//!    first tests the selector is still the one read), and the step waits until the Service's
//!    Endpoints list only fault proxies.
//!
//! The undo restores the selector, waits until the Endpoints list real backends again, then
//! deletes the proxies and the origin Service; each part tolerates the part already done, so
//! `recover` finishes a half-done undo. The proxies fail open at their deadline.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::retry::{retrying, status_code};
use super::undo::KubeUndo;
use super::{KubeError, KubeTarget};
use crate::fault::FaultSpec;
use crate::fault::proxy::Counts;
use crate::units::{LabelSelector, Requirement};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;

/// Label on the fault proxy pods (and the switched selector): the Service they stand in for.
pub const FAULT_LABEL: &str = "drillbook.dev/fault-for";
/// The proxy pods run as this non-root user (the drillbook image's user).
const PROXY_UID: i64 = 65532;
/// How long the proxies may take to become ready, and a switch to show in the Endpoints.
const READY_WITHIN: Duration = Duration::from_secs(90);
const SWITCH_WITHIN: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(250);
/// Container ports a named target port gets on the proxy (the name is what the Service uses).
const NAMED_PORT_BASE: i32 = 18_080;

/// The objects one interposition creates for `service`.
pub fn proxy_name(service: &str) -> String {
    format!("{}-dbk-fault", truncated(service))
}

pub fn origin_name(service: &str) -> String {
    format!("{}-dbk-origin", truncated(service))
}

/// Service names are DNS labels (≤ 63); the suffixes take 11.
fn truncated(service: &str) -> &str {
    let end = service.len().min(52);
    service.get(..end).unwrap_or(service).trim_end_matches('-')
}

/// Why a Service cannot be interposed.
#[derive(Debug, thiserror::Error)]
pub enum InterposeRefusal {
    #[error(
        "service `{0}` is headless (clusterIP: None): callers resolve its pods' IPs directly, so \
         switching its selector would not put a proxy in their way"
    )]
    Headless(String),
    #[error(
        "service `{0}` has no selector (its Endpoints are managed by hand): there is no selector \
         to switch to a fault proxy"
    )]
    NoSelector(String),
    #[error(
        "service `{0}` already points at drillbook fault proxies: a previous drill did not \
         finish its undo (run `drillbook recover`)"
    )]
    AlreadyInterposed(String),
    #[error(
        "port {port} of service `{service}` targets port {target} below 1024, which a non-root \
         proxy without capabilities cannot listen on"
    )]
    PrivilegedPort {
        service: String,
        port: i32,
        target: i32,
    },
    #[error("port {port} of service `{service}` is {protocol}: only TCP can be interposed")]
    NotTcp {
        service: String,
        port: i32,
        protocol: String,
    },
}

/// How the Service is routed now and after the switch, and what is created (for `plan`).
#[derive(Debug, Clone)]
pub struct InterposePlan {
    pub selector: BTreeMap<String, String>,
    pub switched: BTreeMap<String, String>,
    pub ports: Vec<String>,
    pub created: Vec<String>,
    /// Ports whose name or appProtocol says TLS or gRPC: an `http` fault would read them as
    /// plain HTTP (use `protocol: tcp`).
    pub encrypted_ports: Vec<String>,
}

impl InterposePlan {
    /// One line for `plan` and pre-flight.
    pub fn words(&self, service: &str) -> String {
        let pairs = |m: &BTreeMap<String, String>| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "service `{service}`: selector {} → {}; ports {}; creates {}",
            pairs(&self.selector),
            pairs(&self.switched),
            self.ports.join(", "),
            self.created.join(" and ")
        )
    }
}

fn switched_selector(service: &str) -> BTreeMap<String, String> {
    [(FAULT_LABEL.to_string(), truncated(service).to_string())].into()
}

/// One listening port of the proxy: the container port, its name (for named target ports),
/// and the Service port its upstream (the origin Service) serves on.
struct ProxyPort {
    listen: i32,
    name: Option<String>,
    upstream: i32,
}

fn proxy_ports(service: &str, svc: &Service) -> Result<Vec<ProxyPort>, InterposeRefusal> {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (index, port) in ports.iter().enumerate() {
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        if protocol != "TCP" {
            return Err(InterposeRefusal::NotTcp {
                service: service.into(),
                port: port.port,
                protocol,
            });
        }
        let offset = i32::try_from(index).unwrap_or(0);
        out.push(match &port.target_port {
            Some(IntOrString::String(name)) => ProxyPort {
                listen: NAMED_PORT_BASE + offset,
                name: Some(name.clone()),
                upstream: port.port,
            },
            Some(IntOrString::Int(target)) if *target < 1024 => {
                return Err(InterposeRefusal::PrivilegedPort {
                    service: service.into(),
                    port: port.port,
                    target: *target,
                });
            }
            Some(IntOrString::Int(target)) => ProxyPort {
                listen: *target,
                name: None,
                upstream: port.port,
            },
            // No targetPort means the same number as the port.
            None if port.port < 1024 => {
                return Err(InterposeRefusal::PrivilegedPort {
                    service: service.into(),
                    port: port.port,
                    target: port.port,
                });
            }
            None => ProxyPort {
                listen: port.port,
                name: None,
                upstream: port.port,
            },
        });
    }
    Ok(out)
}

/// The selector `svc` routes by, after the refusals.
fn routable_selector(
    service: &str,
    svc: &Service,
) -> Result<BTreeMap<String, String>, InterposeRefusal> {
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.cluster_ip.as_deref() == Some("None") {
        return Err(InterposeRefusal::Headless(service.into()));
    }
    let selector = spec.selector.unwrap_or_default();
    if selector.is_empty() {
        return Err(InterposeRefusal::NoSelector(service.into()));
    }
    if selector.contains_key(FAULT_LABEL) {
        return Err(InterposeRefusal::AlreadyInterposed(service.into()));
    }
    Ok(selector)
}

/// The proxy Deployment: restricted PodSecurity (non-root, no capabilities, no privilege
/// escalation, read-only root, RuntimeDefault seccomp), no API token.
fn proxy_deployment(
    service: &str,
    image: &str,
    replicas: u32,
    ports: &[ProxyPort],
    upstream_ip: &str,
    spec: &FaultSpec,
) -> Result<Deployment, KubeError> {
    let labels = json!({
        FAULT_LABEL: truncated(service),
        "app.kubernetes.io/name": "drillbook-fault-proxy",
        "app.kubernetes.io/managed-by": "drillbook",
    });
    let spec_json = serde_json::to_string(spec).map_err(|e| KubeError::Unexpected {
        what: "the fault spec".into(),
        message: e.to_string(),
    })?;
    // Each value is one argv element in `--flag=value` form: it can never become a flag.
    let mut args = vec!["fault-proxy".to_string(), format!("--spec={spec_json}")];
    args.extend(
        ports
            .iter()
            .map(|p| format!("--route=0.0.0.0:{}={upstream_ip}:{}", p.listen, p.upstream)),
    );
    let container_ports: Vec<_> = ports
        .iter()
        .map(|p| match &p.name {
            Some(name) => json!({"containerPort": p.listen, "name": name}),
            None => json!({"containerPort": p.listen}),
        })
        .collect();
    let first = ports.first().map_or(8080, |p| p.listen);
    let value = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": proxy_name(service), "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {FAULT_LABEL: truncated(service)}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": PROXY_UID,
                        "runAsGroup": PROXY_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": "fault-proxy",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/usr/local/bin/drillbook"],
                        "args": args,
                        "ports": container_ports,
                        "readinessProbe": {
                            "tcpSocket": {"port": first},
                            "periodSeconds": 1,
                        },
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "32Mi"},
                            "limits": {"memory": "128Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }],
                },
            },
        },
    });
    serde_json::from_value(value).map_err(|e| KubeError::Unexpected {
        what: format!("the spec of Deployment `{}`", proxy_name(service)),
        message: e.to_string(),
    })
}

fn origin_service(service: &str, svc: &Service, selector: &BTreeMap<String, String>) -> Service {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .map(|ports| {
            ports
                .into_iter()
                .map(|p| k8s_openapi::api::core::v1::ServicePort {
                    node_port: None,
                    ..p
                })
                .collect()
        });
    Service {
        metadata: kube::api::ObjectMeta {
            name: Some(origin_name(service)),
            labels: Some(
                [
                    (
                        "app.kubernetes.io/managed-by".to_string(),
                        "drillbook".to_string(),
                    ),
                    (FAULT_LABEL.to_string(), truncated(service).to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
            selector: Some(selector.clone()),
            ports,
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl KubeTarget {
    async fn service(&self, name: &str) -> Result<Service, KubeError> {
        let services = self.api::<Service>();
        retrying("get service", || services.get(name))
            .await
            .map_err(|e| self.object_error("Service", name, format!("read service `{name}`"), e))
    }

    /// The undo of a fault at `service`, read before anything changes (and refusals).
    pub async fn interposition_undo(&self, service: &str) -> Result<KubeUndo, KubeError> {
        let svc = self.service(service).await?;
        let selector = routable_selector(service, &svc)?;
        proxy_ports(service, &svc)?;
        Ok(KubeUndo::RestoreService {
            service: service.to_string(),
            selector,
            proxy: proxy_name(service),
            origin: origin_name(service),
        })
    }

    /// What interposing `service` would change, read-only (for `plan` and pre-flight).
    pub async fn interposition_plan(&self, service: &str) -> Result<InterposePlan, KubeError> {
        let svc = self.service(service).await?;
        let selector = routable_selector(service, &svc)?;
        let ports = proxy_ports(service, &svc)?
            .iter()
            .map(|p| match &p.name {
                Some(name) => format!("{} → proxy :{} (named `{name}`)", p.upstream, p.listen),
                None => format!("{} → proxy :{}", p.upstream, p.listen),
            })
            .collect();
        let encrypted_ports = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .filter(|p| {
                let words = format!(
                    "{} {}",
                    p.name.as_deref().unwrap_or_default(),
                    p.app_protocol.as_deref().unwrap_or_default()
                )
                .to_ascii_lowercase();
                ["https", "tls", "grpc", "h2"]
                    .iter()
                    .any(|w| words.contains(w))
            })
            .map(|p| p.port.to_string())
            .collect();
        Ok(InterposePlan {
            encrypted_ports,
            selector,
            switched: switched_selector(service),
            ports,
            created: vec![
                format!("Service `{}` (the original selector)", origin_name(service)),
                format!("Deployment `{}` (fault proxies)", proxy_name(service)),
            ],
        })
    }

    /// Puts fault proxies running `spec` in front of `service` (see the module docs).
    /// Returns the proxy pods' names.
    pub async fn interpose(
        &self,
        service: &str,
        image: &str,
        replicas: u32,
        spec: &FaultSpec,
    ) -> Result<Vec<String>, KubeError> {
        let svc = self.service(service).await?;
        let selector = routable_selector(service, &svc)?;
        let ports = proxy_ports(service, &svc)?;
        let services = self.api::<Service>();
        let origin = origin_service(service, &svc, &selector);
        let created = match services.create(&PostParams::default(), &origin).await {
            Ok(created) => created,
            // Left by an earlier drill's unfinished undo: it carries the same selector.
            Err(e) if status_code(&e) == Some(409) => self.service(&origin_name(service)).await?,
            Err(e) => {
                return Err(self.api_error(format!("create service `{}`", origin_name(service)), e));
            }
        };
        let upstream_ip = created
            .spec
            .and_then(|s| s.cluster_ip)
            .filter(|ip| !ip.is_empty() && ip != "None")
            .ok_or_else(|| KubeError::Unexpected {
                what: format!("service `{}`", origin_name(service)),
                message: "no cluster IP was assigned".into(),
            })?;
        let deployment = proxy_deployment(service, image, replicas, &ports, &upstream_ip, spec)?;
        let deployments = self.api::<Deployment>();
        match deployments
            .create(&PostParams::default(), &deployment)
            .await
        {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(409) => {
                return Err(KubeError::Unexpected {
                    what: format!("deployment `{}`", proxy_name(service)),
                    message: "it already exists (an earlier drill's; run `drillbook recover`)"
                        .into(),
                });
            }
            Err(e) => {
                return Err(
                    self.api_error(format!("create deployment `{}`", proxy_name(service)), e)
                );
            }
        }
        self.wait_proxies_ready(service, replicas).await?;
        let patch = json!([
            {"op": "test", "path": "/spec/selector", "value": selector},
            {"op": "replace", "path": "/spec/selector", "value": switched_selector(service)},
        ]);
        self.patch_selector(service, patch).await?;
        let proxy = proxy_name(service);
        self.wait_endpoints(service, |name| name.starts_with(&proxy))
            .await
    }

    async fn patch_selector(
        &self,
        service: &str,
        patch: serde_json::Value,
    ) -> Result<(), KubeError> {
        let parsed: json_patch::Patch =
            serde_json::from_value(patch).map_err(|e| KubeError::Unexpected {
                what: "the selector patch".into(),
                message: e.to_string(),
            })?;
        let services = self.api::<Service>();
        let (params, patch) = (PatchParams::default(), Patch::Json::<()>(parsed));
        retrying("patch service selector", || {
            services.patch(service, &params, &patch)
        })
        .await
        .map(|_| ())
        .map_err(|e| {
            self.object_error(
                "Service",
                service,
                format!("switch the selector of service `{service}`"),
                e,
            )
        })
    }

    async fn wait_proxies_ready(&self, service: &str, replicas: u32) -> Result<(), KubeError> {
        let name = proxy_name(service);
        let deployments = self.api::<Deployment>();
        let start = tokio::time::Instant::now();
        let mut last = String::from("not read yet");
        while start.elapsed() < READY_WITHIN {
            if let Ok(d) = deployments.get(&name).await {
                let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
                if u32::try_from(ready).unwrap_or(0) >= replicas {
                    return Ok(());
                }
                last = format!("{ready}/{replicas} fault proxies ready");
            }
            tokio::time::sleep(POLL).await;
        }
        Err(KubeError::Timeout {
            what: format!("the fault proxies of service `{service}` (deployment `{name}`)"),
            waited: READY_WITHIN,
            last_state: last,
        })
    }

    /// Waits until the Service's Endpoints list at least one ready address and every address
    /// is a pod `wanted` accepts; returns those pods' names.
    async fn wait_endpoints(
        &self,
        service: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, KubeError> {
        let endpoints = self.api::<Endpoints>();
        let start = tokio::time::Instant::now();
        let mut last = String::from("not read yet");
        while start.elapsed() < SWITCH_WITHIN {
            if let Ok(e) = endpoints.get(service).await {
                let subsets = e.subsets.unwrap_or_default();
                let ready: Vec<String> = subsets
                    .iter()
                    .flat_map(|s| s.addresses.iter().flatten())
                    .map(|a| {
                        a.target_ref
                            .as_ref()
                            .and_then(|r| r.name.clone())
                            .unwrap_or_else(|| a.ip.clone())
                    })
                    .collect();
                let not_ready = subsets
                    .iter()
                    .flat_map(|s| s.not_ready_addresses.iter().flatten())
                    .filter(|a| {
                        !a.target_ref
                            .as_ref()
                            .and_then(|r| r.name.as_deref())
                            .is_some_and(&wanted)
                    })
                    .count();
                if !ready.is_empty() && not_ready == 0 && ready.iter().all(|n| wanted(n)) {
                    return Ok(ready);
                }
                last = format!("endpoints: {}", ready.join(", "));
            }
            tokio::time::sleep(POLL).await;
        }
        Err(KubeError::Timeout {
            what: format!("service `{service}` to route to the expected pods"),
            waited: SWITCH_WITHIN,
            last_state: last,
        })
    }

    /// The undo: selector back, Endpoints back on real backends, proxies and origin deleted.
    /// Each part is skipped when already done (a second run, or `recover` after a crash).
    pub async fn restore_service(
        &self,
        service: &str,
        selector: &BTreeMap<String, String>,
        proxy: &str,
        origin: &str,
    ) -> Result<(), KubeError> {
        match self.service(service).await {
            Ok(svc) => {
                let current = svc.spec.and_then(|s| s.selector).unwrap_or_default();
                if &current != selector {
                    let patch =
                        json!([{"op": "replace", "path": "/spec/selector", "value": selector}]);
                    self.patch_selector(service, patch).await?;
                }
                // Callers go back to the real backends before the proxies go away. A Service
                // whose backends are all down stays so: that is not the undo's to fix.
                if let Err(e) = self
                    .wait_endpoints(service, |name| !name.starts_with(proxy))
                    .await
                {
                    tracing::warn!(error = %e, "service `{service}`: restored, but its endpoints did not show it in time");
                }
            }
            Err(KubeError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let params = DeleteParams::background();
        let (deployments, services) = (self.api::<Deployment>(), self.api::<Service>());
        match retrying("delete deployment", || deployments.delete(proxy, &params)).await {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(self.api_error(format!("delete deployment `{proxy}`"), e)),
        }
        match retrying("delete service", || services.delete(origin, &params)).await {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.api_error(format!("delete service `{origin}`"), e)),
        }
    }
}

/// One line a fault proxy prints per second (`cmd/fault_proxy.rs`): its totals at `t_ms`.
#[derive(Debug, serde::Deserialize)]
struct CountLine {
    t_ms: i64,
    counts: Counts,
}

/// What one proxy's log says it did in each second: the difference of consecutive totals,
/// stamped with the line's wall-clock time (Unix ms). Other lines (its tracing) are skipped.
pub fn count_deltas(log: &str) -> Vec<(i64, Counts)> {
    let mut last = Counts::default();
    log.lines()
        .filter_map(|line| serde_json::from_str::<CountLine>(line.trim()).ok())
        .map(|line| {
            let delta = line.counts.since(&last);
            last = line.counts;
            (line.t_ms, delta)
        })
        .collect()
}

impl KubeTarget {
    /// What the fault proxies in front of `service` counted, read from their logs while they
    /// still run (before the undo deletes them): per second, with the reads that failed.
    pub async fn fault_proxy_counts(
        &self,
        service: &str,
    ) -> (Vec<(Timestamp, Counts)>, Vec<String>) {
        let selector = LabelSelector {
            requirements: switched_selector(service)
                .into_iter()
                .map(|(k, v)| Requirement::Equals(k, v))
                .collect(),
        };
        let pods = match self.pods_of(&selector).await {
            Ok(pods) => pods,
            Err(e) => return (Vec::new(), vec![e.to_string()]),
        };
        let api = self.api::<Pod>();
        let params = LogParams::default();
        let (mut counts, mut errors) = (Vec::new(), Vec::new());
        // This drill's proxies are not being deleted yet (its undo has not run); pods that are
        // belong to an earlier drill on the same Service and counted its requests, not these.
        for pod in pods
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            let name = pod.metadata.name.unwrap_or_default();
            match retrying("read logs", || api.logs(&name, &params)).await {
                Ok(log) => counts.extend(
                    count_deltas(&log)
                        .into_iter()
                        .filter_map(|(t_ms, c)| Some((Timestamp::from_millisecond(t_ms).ok()?, c))),
                ),
                Err(e) => errors.push(format!("logs of fault proxy {name}: {e}")),
            }
        }
        counts.sort_by_key(|(at, _)| *at);
        (counts, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxys_log_becomes_what_it_did_in_each_second() {
        let log = "2026-12-07T10:00:00Z INFO fault proxy listening\n\
                   {\"t_ms\":1000,\"counts\":{\"seen\":10,\"delayed\":0,\"aborted\":1,\"reset\":0,\"blackholed\":0,\"upstream_errors\":0}}\n\
                   {\"t_ms\":2000,\"counts\":{\"seen\":25,\"delayed\":0,\"aborted\":2,\"reset\":0,\"blackholed\":0,\"upstream_errors\":0}}\n\
                   {\"t_ms\":3000,\"final\":{}}\n";
        let deltas = count_deltas(log);
        assert_eq!(deltas.len(), 2);
        assert_eq!(
            (deltas[0].0, deltas[0].1.seen, deltas[0].1.aborted),
            (1000, 10, 1)
        );
        assert_eq!(
            (deltas[1].0, deltas[1].1.seen, deltas[1].1.aborted),
            (2000, 15, 1)
        );
    }

    fn svc(value: serde_json::Value) -> Service {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn headless_selectorless_and_interposed_services_are_refused() {
        let headless = svc(json!({"spec": {"clusterIP": "None", "selector": {"app": "x"}}}));
        assert!(matches!(
            routable_selector("x", &headless),
            Err(InterposeRefusal::Headless(_))
        ));
        let manual = svc(json!({"spec": {"clusterIP": "10.0.0.1"}}));
        assert!(matches!(
            routable_selector("x", &manual),
            Err(InterposeRefusal::NoSelector(_))
        ));
        let switched = svc(json!({"spec": {"selector": {FAULT_LABEL: "x"}}}));
        assert!(matches!(
            routable_selector("x", &switched),
            Err(InterposeRefusal::AlreadyInterposed(_))
        ));
        let fine = svc(json!({"spec": {"selector": {"app": "x"}}}));
        assert_eq!(
            routable_selector("x", &fine).unwrap(),
            [("app".to_string(), "x".to_string())].into()
        );
    }

    #[test]
    fn proxy_ports_follow_target_ports_and_refuse_privileged_ones() {
        let s = svc(json!({"spec": {"ports": [
            {"port": 80, "targetPort": 8080},
            {"port": 9090, "targetPort": "metrics"},
        ]}}));
        let ports = proxy_ports("x", &s).unwrap();
        assert_eq!((ports[0].listen, ports[0].upstream), (8080, 80));
        assert_eq!(
            (ports[1].listen, ports[1].name.as_deref()),
            (NAMED_PORT_BASE + 1, Some("metrics"))
        );
        let low = svc(json!({"spec": {"ports": [{"port": 80, "targetPort": 80}]}}));
        assert!(matches!(
            proxy_ports("x", &low),
            Err(InterposeRefusal::PrivilegedPort { .. })
        ));
        let udp = svc(json!({"spec": {"ports": [{"port": 5353, "protocol": "UDP"}]}}));
        assert!(matches!(
            proxy_ports("x", &udp),
            Err(InterposeRefusal::NotTcp { .. })
        ));
    }

    #[test]
    fn the_proxy_pod_is_restricted_and_its_values_stay_single_arguments() {
        let spec = FaultSpec {
            protocol: crate::fault::Protocol::Http,
            latency: None,
            abort: None,
            reset: None,
            blackhole: Some(crate::fault::BlackholeMode::Hang),
            bandwidth: None,
            matcher: crate::fault::Matcher {
                path_prefix: Some("--upstream=evil".into()),
                ..Default::default()
            },
            until_ms: None,
            fail_open_at_ms: 1,
        };
        let ports = [ProxyPort {
            listen: 8081,
            name: None,
            upstream: 8081,
        }];
        let d = proxy_deployment("jobs-manager", "img", 2, &ports, "10.252.0.9", &spec).unwrap();
        let value = serde_json::to_value(&d).unwrap();
        let pod = &value["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["automountServiceAccountToken"], false);
        let c = &pod["containers"][0];
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
        let args: Vec<String> = serde_json::from_value(c["args"].clone()).unwrap();
        assert_eq!(args.len(), 3);
        assert!(args[1].starts_with("--spec={"));
        assert_eq!(args[2], "--route=0.0.0.0:8081=10.252.0.9:8081");
    }
}
