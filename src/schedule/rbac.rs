//! Least-privilege RBAC for a scheduled drill, derived from the scenario: a namespaced Role
//! granting what the steps, `finally`, checks and observers use, and nothing else.
//!
//! The base is [`Needs::of`] (the same pairs pre-flight checks with SelfSubjectAccessReview),
//! so a Role rendered here always passes the drill's own permission pre-flight. On top come the
//! verbs the client needs in practice but pre-flight does not review one by one (a watch lists
//! first; `kill_pods` reads each pod before deleting it; helm reads and rewrites its release
//! Secrets).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::scenario::{Action, Scenario, WorkloadKind};
use crate::targets::kube::Needs;

/// Annotation on the Role stating, in words, what helm steps need beyond the listed rules.
pub const HELM_NOTE_ANNOTATION: &str = "drillbook.dev/helm-note";

/// Label put on every object drillbook renders for a scenario.
pub const SCENARIO_LABEL: &str = "drillbook.dev/scenario";

const HELM_NOTE: &str = "helm_upgrade steps: helm keeps its release state in Secrets of this \
namespace (get/list/create/update/delete on secrets are granted for that), and helm also \
creates, patches and deletes whatever objects the chart renders; this Role does not grant \
those, because they depend on the chart. Add rules for the chart's kinds here if the upgrade \
changes more than the release Secret.";

/// `(api group, resource[/subresource])` → verbs.
type RuleMap = BTreeMap<(String, String), BTreeSet<&'static str>>;

fn grant(rules: &mut RuleMap, group: &str, resource: &str, verbs: &[&'static str]) {
    rules
        .entry((group.to_string(), resource.to_string()))
        .or_default()
        .extend(verbs.iter().copied());
}

/// The rules a scenario needs, as `(api group, resource[/subresource], verbs)`, sorted.
pub fn derive_rules(scenario: &Scenario) -> Vec<PolicyRule> {
    let mut rules = RuleMap::new();
    for need in Needs::of(scenario).permissions {
        let resource = match need.subresource {
            Some(sub) => format!("{}/{sub}", need.resource),
            None => need.resource.to_string(),
        };
        grant(&mut rules, need.group, &resource, &[need.verb]);
    }
    // Watch-based observers and waits list before they watch.
    grant(&mut rules, "", "pods", &["get", "list", "watch"]);
    grant(&mut rules, "", "events", &["list", "watch"]);
    grant(&mut rules, "batch", "jobs", &["list", "watch"]);
    // `--store-results` (what the CronJob runs) writes one ConfigMap per run and prunes old
    // ones; RBAC cannot narrow delete to labelled objects, so this is namespace-wide.
    grant(&mut rules, "", "configmaps", &["create", "list", "delete"]);
    for step in scenario.every_step() {
        extra_for_action(&mut rules, &step.action);
    }
    if rules.contains_key(&("apps".to_string(), "deployments".to_string())) {
        // Every deployment read goes through a field-selected watch, which lists first.
        grant(&mut rules, "apps", "deployments", &["get", "list", "watch"]);
    }
    rules
        .into_iter()
        .map(|((group, resource), verbs)| PolicyRule {
            api_groups: Some(vec![group]),
            resources: Some(vec![resource]),
            verbs: verbs.into_iter().map(str::to_string).collect(),
            ..PolicyRule::default()
        })
        .collect()
}

fn extra_for_action(rules: &mut RuleMap, action: &Action) {
    match action {
        Action::KillPods(_) => grant(rules, "", "pods", &["get", "list", "watch", "delete"]),
        Action::Evict(_) => grant(rules, "", "pods/eviction", &["create"]),
        Action::Scale(_) => {
            grant(
                rules,
                "apps",
                "deployments/scale",
                &["get", "update", "patch"],
            );
            grant(rules, "apps", "deployments", &["get"]);
        }
        Action::PatchEnv(_) | Action::RolloutRestart(_) => {
            grant(
                rules,
                "apps",
                "deployments",
                &["get", "patch", "list", "watch"],
            );
        }
        Action::WaitRollout(_) => grant(rules, "apps", "deployments", &["get", "list", "watch"]),
        Action::WaitReady(_) => grant(rules, "apps", "replicasets", &["get", "list"]),
        Action::PatchConfigmap(_) => grant(rules, "", "configmaps", &["get", "patch"]),
        Action::HelmUpgrade(_) => grant(
            rules,
            "",
            "secrets",
            &["get", "list", "create", "update", "delete"],
        ),
        Action::SetImage(i) => {
            let resource = match i.workload() {
                Some((WorkloadKind::StatefulSet, _)) => "statefulsets",
                Some((WorkloadKind::DaemonSet, _)) => "daemonsets",
                _ => "deployments",
            };
            grant(rules, "apps", resource, &["get", "patch"]);
        }
        Action::RolloutUndo(_) => {
            grant(rules, "apps", "deployments", &["get", "patch"]);
            grant(rules, "apps", "replicasets", &["get", "list"]);
        }
        Action::Patch(p) => {
            let (group, resource) = group_resource(&p.api_version.value, &p.kind.value);
            let resource = if p.subresource_status {
                format!("{resource}/status")
            } else {
                resource
            };
            grant(rules, &group, &resource, &["get", "patch"]);
        }
        Action::WaitFor(w) => {
            let (group, resource) = group_resource(&w.api_version.value, &w.kind.value);
            grant(rules, &group, &resource, &["get"]);
        }
        Action::KillProcess(_)
        | Action::StartProcess(_)
        | Action::Command(_)
        | Action::Wait(_)
        | Action::HttpFault(_) => {}
    }
}

/// The API group of `api_version` and the usual plural of `kind`, as RBAC names them. A kind
/// with an irregular plural needs its rule corrected by hand (the Role is rendered offline,
/// without discovery).
fn group_resource(api_version: &str, kind: &str) -> (String, String) {
    let group = api_version
        .rsplit_once('/')
        .map_or("", |(group, _)| group)
        .to_string();
    let lower = kind.to_lowercase();
    let plural = if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        format!("{stem}ies")
    } else if lower.ends_with('s')
        || lower.ends_with("sh")
        || lower.ends_with("ch")
        || lower.ends_with('x')
    {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    };
    (group, plural)
}

fn has_helm_steps(scenario: &Scenario) -> bool {
    scenario
        .every_step()
        .any(|s| matches!(s.action, Action::HelmUpgrade(_)))
}

/// Object metadata shared by everything rendered for one scenario.
pub fn metadata(name: &str, namespace: &str, scenario: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(BTreeMap::from([
            (SCENARIO_LABEL.to_string(), scenario.to_string()),
            (
                "app.kubernetes.io/managed-by".to_string(),
                "drillbook".to_string(),
            ),
        ])),
        ..ObjectMeta::default()
    }
}

/// The name of the Role, RoleBinding and ServiceAccount of a scenario's scheduled drill.
pub fn identity_name(scenario: &str) -> String {
    format!("drillbook-{}", dns_label(scenario))
}

/// `name` lowercased with anything outside `[a-z0-9-]` turned into `-`, as Kubernetes object
/// names require (scenario names may hold `_` and capitals).
pub fn dns_label(name: &str) -> String {
    let label: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    label.trim_matches('-').to_string()
}

/// The namespaced Role a scheduled run of `scenario` needs in `namespace`. With helm steps it
/// carries [`HELM_NOTE_ANNOTATION`] saying plainly what else helm needs.
pub fn role(scenario: &Scenario, namespace: &str) -> Role {
    let name = &scenario.name.value;
    let mut meta = metadata(&identity_name(name), namespace, name);
    if has_helm_steps(scenario) {
        meta.annotations = Some(BTreeMap::from([(
            HELM_NOTE_ANNOTATION.to_string(),
            HELM_NOTE.to_string(),
        )]));
    }
    Role {
        metadata: meta,
        rules: Some(derive_rules(scenario)),
    }
}

/// Binds the scenario's Role to its ServiceAccount.
pub fn role_binding(scenario: &Scenario, namespace: &str) -> RoleBinding {
    let name = identity_name(&scenario.name.value);
    RoleBinding {
        metadata: metadata(&name, namespace, &scenario.name.value),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name,
            namespace: Some(namespace.to_string()),
            ..Subject::default()
        }]),
    }
}

/// Pre-flight reads the drill's namespace object, which is cluster-scoped: a Role cannot grant
/// that, so this ClusterRole grants `get` on that one namespace by name and nothing else.
pub fn namespace_reader(scenario: &Scenario, namespace: &str) -> ClusterRole {
    let name = format!("{}-{}", identity_name(&scenario.name.value), namespace);
    let mut meta = metadata(&name, namespace, &scenario.name.value);
    meta.namespace = None;
    ClusterRole {
        metadata: meta,
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["namespaces".into()]),
            resource_names: Some(vec![namespace.to_string()]),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    }
}

/// Binds [`namespace_reader`] to the scenario's ServiceAccount.
pub fn namespace_reader_binding(scenario: &Scenario, namespace: &str) -> ClusterRoleBinding {
    let reader = namespace_reader(scenario, namespace);
    let name = reader.metadata.name.unwrap_or_default();
    let mut meta = metadata(&name, namespace, &scenario.name.value);
    meta.namespace = None;
    ClusterRoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name,
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: identity_name(&scenario.name.value),
            namespace: Some(namespace.to_string()),
            ..Subject::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario(steps: &str) -> Scenario {
        let source = format!(
            "apiVersion: drillbook/v1\nname: rbac_Test\ntarget:\n  kubernetes:\n    \
             context: staging\n    namespace: shop\n    allowed_contexts: [staging]\n\
             steps:\n{steps}"
        );
        crate::scenario::load_source(Path::new("t.yaml"), source)
            .map_err(|d| d.to_string())
            .unwrap()
            .scenario
    }

    fn verbs(rules: &[PolicyRule], group: &str, resource: &str) -> Vec<String> {
        rules
            .iter()
            .find(|r| {
                r.api_groups.as_deref() == Some(&[group.to_string()])
                    && r.resources.as_deref() == Some(&[resource.to_string()])
            })
            .map(|r| r.verbs.clone())
            .unwrap_or_default()
    }

    fn resources(rules: &[PolicyRule]) -> Vec<String> {
        rules
            .iter()
            .flat_map(|r| r.resources.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn cluster_load_grants_worker_jobs_and_their_logs() {
        let steps = "  - at: 1s\n    kill_pods: {selector: app=api, count: 1}\n";
        let local = derive_rules(&scenario(steps));
        assert!(verbs(&local, "", "pods/log").is_empty());
        let with_load = scenario(&format!(
            "{steps}load:\n  url: http://10.0.0.1:8080/\n  rate: 10/s\n  duration: 5s\n  \
             from: cluster\n  cluster: {{workers: 2, image: reg/drillbook:1}}\n"
        ));
        let rules = derive_rules(&with_load);
        assert_eq!(
            verbs(&rules, "batch", "jobs"),
            ["create", "delete", "list", "watch"]
        );
        assert_eq!(verbs(&rules, "", "pods/log"), ["get"]);
        assert!(verbs(&rules, "", "pods").contains(&"deletecollection".to_string()));
    }

    #[test]
    fn kill_pods_grants_pod_delete_and_nothing_on_deployments() {
        let rules = derive_rules(&scenario(
            "  - at: 1s\n    kill_pods: {selector: app=api, count: 1}\n",
        ));
        assert_eq!(
            verbs(&rules, "", "pods"),
            ["delete", "get", "list", "watch"]
        );
        assert_eq!(verbs(&rules, "", "events"), ["list", "watch"]);
        assert_eq!(verbs(&rules, "batch", "jobs"), ["list", "watch"]);
        let all = resources(&rules);
        assert!(!all.iter().any(|r| r.starts_with("deployments")), "{all:?}");
        assert!(!all.contains(&"secrets".to_string()), "{all:?}");
    }

    #[test]
    fn scale_and_patch_env_grant_deployment_verbs_only() {
        let rules = derive_rules(&scenario(
            "  - at: 1s\n    scale: {deployment: api, replicas: 1}\n  - at: 2s\n    \
             patch_env: {deployment: api, env: {A: b}}\n",
        ));
        assert_eq!(
            verbs(&rules, "apps", "deployments"),
            ["get", "list", "patch", "watch"]
        );
        assert_eq!(
            verbs(&rules, "apps", "deployments/scale"),
            ["get", "patch", "update"]
        );
        assert!(!verbs(&rules, "apps", "deployments").contains(&"delete".to_string()));
        assert!(verbs(&rules, "", "pods").iter().all(|v| v != "delete"));
    }

    #[test]
    fn evict_and_configmap_patch() {
        let rules = derive_rules(&scenario(
            "  - at: 1s\n    evict: {selector: app=api, count: 1}\n  - at: 2s\n    \
             patch_configmap: {name: cfg, data: {k: v}}\n",
        ));
        assert_eq!(verbs(&rules, "", "pods/eviction"), ["create"]);
        assert_eq!(
            verbs(&rules, "", "configmaps"),
            ["create", "delete", "get", "list", "patch"]
        );
    }

    #[test]
    fn role_covers_every_need_preflight_reviews() {
        let s = scenario(
            "  - at: 1s\n    kill_pods: {selector: app=api, count: 1}\n  - at: 2s\n    \
             rollout_restart: {deployment: api}\n  - at: 3s\n    \
             wait_ready: {selector: app=api, timeout: 30s}\n",
        );
        let rules = derive_rules(&s);
        for need in Needs::of(&s).permissions {
            let resource = match need.subresource {
                Some(sub) => format!("{}/{sub}", need.resource),
                None => need.resource.to_string(),
            };
            assert!(
                verbs(&rules, need.group, &resource).contains(&need.verb.to_string()),
                "{need} missing from {rules:?}"
            );
        }
    }

    #[test]
    fn helm_steps_add_secrets_and_say_why() {
        let without = role(
            &scenario("  - at: 1s\n    kill_pods: {selector: app=api, count: 1}\n"),
            "shop",
        );
        assert!(without.metadata.annotations.is_none());
        let with = role(
            &scenario("  - at: 1s\n    helm_upgrade: {release: api, chart: repo/api}\n"),
            "shop",
        );
        let rules = with.rules.clone().unwrap_or_default();
        assert_eq!(
            verbs(&rules, "", "secrets"),
            ["create", "delete", "get", "list", "update"]
        );
        let note = &with.metadata.annotations.unwrap_or_default()[HELM_NOTE_ANNOTATION];
        assert!(note.contains("release state in Secrets"), "{note}");
        assert_eq!(with.metadata.name.as_deref(), Some("drillbook-rbac-test"));
        assert_eq!(with.metadata.namespace.as_deref(), Some("shop"));
    }

    #[test]
    fn namespace_reader_is_limited_to_one_namespace() {
        let s = scenario("  - at: 1s\n    kill_pods: {selector: app=api, count: 1}\n");
        let reader = namespace_reader(&s, "shop");
        let rules = reader.rules.unwrap_or_default();
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].resource_names.as_deref(),
            Some(&["shop".to_string()][..])
        );
        assert_eq!(rules[0].verbs, ["get"]);
    }

    #[test]
    fn the_canary_steps_grant_what_they_patch_and_read() {
        let rules = derive_rules(&scenario(
            "  - set_image: {statefulset: db, container: db, image: \"db:2\"}\n  \
             - rollout_undo: {deployment: web}\n  \
             - patch: {apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: r, subresource_status: true, merge: {status: {phase: Healthy}}}\n  \
             - patch: {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, name: p, merge: {spec: {}}}\n  \
             - wait_for: {apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: r, condition: \"status.phase == Healthy\"}\n",
        ));
        assert_eq!(verbs(&rules, "apps", "statefulsets"), ["get", "patch"]);
        assert!(verbs(&rules, "apps", "deployments").contains(&"patch".to_string()));
        assert_eq!(verbs(&rules, "apps", "replicasets"), ["get", "list"]);
        assert_eq!(
            verbs(&rules, "argoproj.io", "rollouts/status"),
            ["get", "patch"]
        );
        assert_eq!(verbs(&rules, "argoproj.io", "rollouts"), ["get"]);
        assert_eq!(
            verbs(&rules, "networking.k8s.io", "networkpolicies"),
            ["get", "patch"]
        );
    }
}
