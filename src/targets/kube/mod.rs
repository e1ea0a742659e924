//! The Kubernetes target: faults (pod kills, evictions, restarts, scale, env and ConfigMap
//! patches, helm upgrades, commands), waits, observers and pre-flight, all pinned to ONE
//! context and ONE namespace.
//!
//! Safety rules (from the helm migration lessons): the kubeconfig's current-context is never
//! used; every kubectl/helm invocation gets `--context`/`--kube-context` and `--namespace`
//! explicitly; a context or namespace that is not allowed, or that looks like production, is
//! refused before any client exists; pod counts are bounded by `max_pods` before any deletion.

mod commands;
mod fleet;
mod interpose;
mod observer;
mod pods;
mod preflight;
mod resource_steps;
mod resources;
mod retry;
mod state_checks;
mod steps;
mod undo;
mod workloads;

#[cfg(test)]
mod mock;
#[cfg(test)]
mod resource_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

pub use commands::{CommandPin, REDACTED, SecretValuesError};
pub use fleet::{FLEET_LABEL, WORKER_LABEL, worker_job};
pub use interpose::{FAULT_LABEL, InterposePlan, InterposeRefusal};
pub use observer::{KubeEvent, KubeEventKind, Observer};
pub use pods::{KillMethod, KilledPod, PodInfo};
pub use preflight::{Need, Needs};
pub use resources::{PatchBody, ResourceId, inverse_json_patch, inverse_merge_patch};
pub use steps::KubeRun;
pub use undo::KubeUndo;
pub use workloads::{RESTARTED_AT, pods_rolled};

use crate::scenario::KubernetesTarget;
use crate::units::HumanDuration;

/// Why a Kubernetes operation failed or was refused. Messages name the context, namespace and
/// object involved so a drill log reads on its own.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The context is not in `allowed_contexts`.
    #[error(
        "context `{context}` is not in allowed_contexts ({allowed}): refusing to touch it \
         (add it to target.kubernetes.allowed_contexts if this drill may run there)"
    )]
    ContextNotAllowed { context: String, allowed: String },
    /// The namespace is not in `allowed_namespaces`.
    #[error(
        "namespace `{namespace}` is not in allowed_namespaces ({allowed}): refusing to touch it"
    )]
    NamespaceNotAllowed { namespace: String, allowed: String },
    /// A production-looking context or namespace without `--allow-production`.
    #[error(
        "{what} `{name}` looks like production (its name contains \"prod\"): refusing without \
         --allow-production"
    )]
    Production { what: &'static str, name: String },
    /// The kubeconfig could not be read or does not define the context.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    /// An API call failed (after retries, when it was retryable).
    #[error("{action} in context `{context}`, namespace `{namespace}`: {}", api_words(.error))]
    Api {
        action: String,
        context: String,
        namespace: String,
        /// Not a `#[source]`: its words are already in the message (see [`api_words`]).
        error: Box<kube::Error>,
    },
    /// An object the step needs does not exist.
    #[error("{kind} `{name}` not found in context `{context}`, namespace `{namespace}`")]
    NotFound {
        kind: &'static str,
        name: String,
        context: String,
        namespace: String,
    },
    /// A selector matched no pod that could be acted on.
    #[error("selector `{selector}` matches no running pod in namespace `{namespace}`")]
    NoPodsMatch { selector: String, namespace: String },
    /// An action would touch more pods than `max_pods` allows. Raised before any deletion.
    #[error(
        "refusing to {action} {wanted} pods matching `{selector}`: max_pods is {max_pods} \
         (nothing was touched)"
    )]
    TooManyPods {
        action: &'static str,
        wanted: usize,
        max_pods: u32,
        selector: String,
    },
    /// Neither policy/v1 nor policy/v1beta1 Eviction is served.
    #[error(
        "the API server of context `{context}` serves neither policy/v1 nor policy/v1beta1 \
         Eviction; use `kill_pods` instead"
    )]
    EvictionUnsupported { context: String },
    /// An eviction was refused, usually by a PodDisruptionBudget.
    #[error("eviction of pod `{pod}` in namespace `{namespace}` was refused: {message}")]
    EvictionRefused {
        pod: String,
        namespace: String,
        message: String,
    },
    /// The named container does not exist in the Deployment.
    #[error("deployment `{deployment}` has no container `{container}` (it has: {available})")]
    NoSuchContainer {
        deployment: String,
        container: String,
        available: String,
    },
    /// An env var is set from a Secret/ConfigMap reference, which a literal patch (and its
    /// undo) cannot restore.
    #[error(
        "env var `{var}` of deployment `{deployment}` comes from `valueFrom`; patch_env would \
         replace it with a literal that its undo cannot turn back into the reference"
    )]
    EnvFromReference { deployment: String, var: String },
    /// A wait ran out of time.
    #[error("timed out after {} waiting for {what}: {last_state}", HumanDuration(*.waited))]
    Timeout {
        what: String,
        waited: std::time::Duration,
        last_state: String,
    },
    /// A rollout cannot finish (ProgressDeadlineExceeded).
    #[error("rollout of deployment `{deployment}` failed: {message}")]
    RolloutFailed { deployment: String, message: String },
    /// `helm upgrade` needs a chart reference.
    #[error(
        "helm_upgrade of release `{release}` has no `chart`: helm cannot upgrade without a chart \
         reference (write e.g. `chart: repo/name` and pin the version with `set`/`--version`)"
    )]
    HelmChartMissing { release: String },
    /// A kubectl/helm command carries a flag that contradicts the scenario's pinning.
    #[error("refusing `{argv}`: {reason}")]
    PinConflict { argv: String, reason: String },
    /// A helm or kubectl command failed.
    #[error("`{argv}` failed: {message}")]
    Command { argv: String, message: String },
    /// A helm or kubectl command could not be run to its end.
    #[error("`{argv}` failed: {source}")]
    Run {
        argv: String,
        #[source]
        source: crate::support::command::CommandError,
    },
    /// A value the API returned could not be understood.
    #[error("unexpected answer to {what}: {message}")]
    Unexpected { what: String, message: String },
    /// The `set_secret` values could not be put in their values file.
    #[error(transparent)]
    SecretValues(#[from] SecretValuesError),
    /// A Service that `http_fault` cannot put a fault proxy in front of.
    #[error(transparent)]
    Interpose(#[from] InterposeRefusal),
}

/// A Kubernetes client error in words: the API server's own message with its reason and HTTP
/// code (`namespaces "mcp" not found (NotFound, HTTP 404)`), or a transport error with its
/// causes. kube's own Display appends a Rust debug dump of the whole Status.
pub fn api_words(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                "the API server refused the request"
            } else {
                status.message.as_str()
            };
            match (status.reason.as_str(), status.code) {
                ("", 0) => message.to_string(),
                ("", code) => format!("{message} (HTTP {code})"),
                (reason, 0) => format!("{message} ({reason})"),
                (reason, code) => format!("{message} ({reason}, HTTP {code})"),
            }
        }
        // Its Display is a debug dump of the group/version/kind, which the action names.
        kube::Error::Discovery(kube::error::DiscoveryError::MissingKind(_)) => {
            "the cluster does not serve this kind (is its CustomResourceDefinition installed?)"
                .to_string()
        }
        other => {
            let mut words = other.to_string();
            let mut cause = std::error::Error::source(other);
            while let Some(c) = cause {
                let text = c.to_string();
                if !words.ends_with(&text) {
                    words = format!("{words}: {text}");
                }
                cause = c.source();
            }
            words
        }
    }
}

/// A watch error in words, with [`api_words`] for the client error inside.
pub fn watch_words(error: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as W;
    match error {
        W::InitialListFailed(e) => format!("the initial list failed: {}", api_words(e)),
        W::WatchStartFailed(e) => format!("the watch did not start: {}", api_words(e)),
        W::WatchFailed(e) => format!("the watch failed: {}", api_words(e)),
        W::WatchError(status) => format!(
            "the API server ended the watch: {}",
            api_words(&kube::Error::Api(status.clone()))
        ),
        other => other.to_string(),
    }
}

/// A Kubernetes client pinned to one context and one namespace, with the scenario's limits.
#[derive(Clone)]
pub struct KubeTarget {
    client: kube::Client,
    context: String,
    namespace: String,
    allowed_namespaces: Vec<String>,
    max_pods: u32,
    /// kubeconfig file passed on to kubectl and helm, so they resolve the same context.
    kubeconfig: Option<PathBuf>,
    /// Extra environment for kubectl/helm child processes (e.g. a PATH holding a fake helm).
    tool_env: BTreeMap<String, String>,
}

impl std::fmt::Debug for KubeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeTarget")
            .field("context", &self.context)
            .field("namespace", &self.namespace)
            .field("allowed_namespaces", &self.allowed_namespaces)
            .field("max_pods", &self.max_pods)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

/// The context and namespace a target resolves to, once the safety rules accepted them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// The kubeconfig context every call uses.
    pub context: String,
    /// The namespace every call uses.
    pub namespace: String,
    /// Namespaces the scenario may touch (never empty: defaults to `namespace`).
    pub allowed_namespaces: Vec<String>,
}

/// How a run reaches its cluster, as chosen on the command line.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--context`: must be one of the scenario's allowed contexts.
    pub context: Option<String>,
    /// `--allow-production`: accept a context or namespace whose name contains "prod".
    pub allow_production: bool,
    /// `--in-cluster --cluster-name NAME`: connect with the pod's ServiceAccount; the scenario's
    /// context must be NAME.
    pub in_cluster: Option<String>,
}

/// The scenario's Kubernetes target with the command line's `-n/--namespace` and
/// `--kubeconfig` applied. The pin stays the scenario's: a scenario without
/// `allowed_namespaces` allows only its own namespace, so `-n` can move a drill only between
/// namespaces the scenario lists ([`check_safety`] refuses the rest).
pub fn with_overrides(
    spec: &KubernetesTarget,
    namespace: Option<&str>,
    kubeconfig: Option<&Path>,
) -> KubernetesTarget {
    let mut spec = spec.clone();
    if let Some(namespace) = namespace {
        if spec.allowed_namespaces.is_empty() {
            spec.allowed_namespaces = vec![spec.namespace.clone()];
        }
        spec.namespace.value = namespace.to_string();
    }
    if let Some(path) = kubeconfig {
        spec.kubeconfig = Some(path.to_string_lossy().into_owned());
    }
    spec
}

/// Applies the safety rules without touching the kubeconfig or the network: the context (after
/// the `--context` override) must be allowed, the namespace must be allowed, and neither may
/// look like production unless `allow_production`.
pub fn check_safety(
    spec: &KubernetesTarget,
    context_override: Option<&str>,
    allow_production: bool,
) -> Result<Pinned, KubeError> {
    let context = context_override.unwrap_or(&spec.context.value).to_string();
    let allowed_contexts: Vec<&str> = spec.allowed_contexts.iter().map(|c| c.as_str()).collect();
    if !allowed_contexts.contains(&context.as_str()) {
        return Err(KubeError::ContextNotAllowed {
            context,
            allowed: list_or_none(&allowed_contexts),
        });
    }
    let namespace = spec.namespace.value.clone();
    let allowed_namespaces: Vec<String> = if spec.allowed_namespaces.is_empty() {
        vec![namespace.clone()]
    } else {
        spec.allowed_namespaces
            .iter()
            .map(|n| n.value.clone())
            .collect()
    };
    if !allowed_namespaces.contains(&namespace) {
        let allowed: Vec<&str> = allowed_namespaces.iter().map(String::as_str).collect();
        return Err(KubeError::NamespaceNotAllowed {
            namespace,
            allowed: list_or_none(&allowed),
        });
    }
    if !allow_production {
        for (what, name) in [("context", &context), ("namespace", &namespace)] {
            if looks_like_production(name) {
                return Err(KubeError::Production {
                    what,
                    name: name.clone(),
                });
            }
        }
    }
    Ok(Pinned {
        context,
        namespace,
        allowed_namespaces,
    })
}

/// The in-cluster client configuration (see [`KubeTarget::connect_in_cluster`]).
fn in_cluster_config() -> Result<kube::Config, KubeError> {
    let error = |message: String| KubeError::Kubeconfig {
        path: "(in-cluster)".into(),
        message,
    };
    let Some(server) = std::env::var_os("DRILLBOOK_IN_CLUSTER_SERVER") else {
        return kube::Config::incluster()
            .map_err(|e| error(format!("not running in a pod with a ServiceAccount: {e}")));
    };
    let server = server.to_string_lossy().into_owned();
    let file_var = |name: &str| {
        std::env::var_os(name).map(PathBuf::from).ok_or_else(|| {
            error(format!(
                "DRILLBOOK_IN_CLUSTER_SERVER is set but {name} is not"
            ))
        })
    };
    let token_file = file_var("DRILLBOOK_IN_CLUSTER_TOKEN_FILE")?;
    let ca_file = file_var("DRILLBOOK_IN_CLUSTER_CA_FILE")?;
    let uri = server
        .parse::<http::Uri>()
        .map_err(|e| error(format!("DRILLBOOK_IN_CLUSTER_SERVER `{server}`: {e}")))?;
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let roots = CertificateDer::pem_file_iter(&ca_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| error(format!("CA file {}: {e}", ca_file.display())))?;
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(roots.into_iter().map(|c| c.to_vec()).collect());
    config.auth_info.token_file = Some(token_file.to_string_lossy().into_owned());
    Ok(config)
}

fn looks_like_production(name: &str) -> bool {
    name.to_ascii_lowercase().contains("prod")
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none listed".into()
    } else {
        items.join(", ")
    }
}

impl KubeTarget {
    /// Checks the safety rules ([`check_safety`]), then builds a client for exactly that context
    /// from the scenario's kubeconfig (default `$KUBECONFIG` or `~/.kube/config`). The
    /// kubeconfig's current-context is never consulted. No API call is made here; pre-flight
    /// checks that the cluster answers.
    pub async fn connect(
        spec: &KubernetesTarget,
        context_override: Option<&str>,
        allow_production: bool,
    ) -> Result<Self, KubeError> {
        let pinned = check_safety(spec, context_override, allow_production)?;
        Self::connect_pinned(
            pinned,
            spec.kubeconfig.as_ref().map(PathBuf::from),
            spec.max_pods,
        )
        .await
    }

    /// Connects the way `options` say: in-cluster, or through the pinned kubeconfig context.
    pub async fn connect_with(
        spec: &KubernetesTarget,
        options: &ConnectOptions,
    ) -> Result<Self, KubeError> {
        match &options.in_cluster {
            Some(cluster) => {
                Self::connect_in_cluster(spec, cluster, options.allow_production).await
            }
            None => Self::connect(spec, options.context.as_deref(), options.allow_production).await,
        }
    }

    /// Builds a client for a context and namespace that already passed the safety rules (a
    /// scenario's, or those a crashed run journaled), from `kubeconfig` (default `$KUBECONFIG`
    /// or `~/.kube/config`). The kubeconfig's current-context is never consulted.
    pub async fn connect_pinned(
        pinned: Pinned,
        kubeconfig_path: Option<PathBuf>,
        max_pods: u32,
    ) -> Result<Self, KubeError> {
        crate::telemetry::install_crypto_provider();
        let describe_path = kubeconfig_path.as_ref().map_or_else(
            || "($KUBECONFIG or ~/.kube/config)".to_string(),
            |p| p.display().to_string(),
        );
        let kubeconfig_error = |message: String| KubeError::Kubeconfig {
            path: describe_path.clone(),
            message,
        };
        let kubeconfig = match &kubeconfig_path {
            Some(path) => Kubeconfig::read_from(path),
            None => Kubeconfig::read(),
        }
        .map_err(|e| kubeconfig_error(e.to_string()))?;
        if !kubeconfig.contexts.iter().any(|c| c.name == pinned.context) {
            let known: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return Err(kubeconfig_error(format!(
                "has no context `{}` (it has: {})",
                pinned.context,
                list_or_none(&known)
            )));
        }
        let options = KubeConfigOptions {
            context: Some(pinned.context.clone()),
            ..KubeConfigOptions::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| kubeconfig_error(format!("context `{}`: {e}", pinned.context)))?;
        config.default_namespace = pinned.namespace.clone();
        let client = kube::Client::try_from(config)
            .map_err(|e| kubeconfig_error(format!("context `{}`: {e}", pinned.context)))?;
        Ok(Self::from_parts(client, pinned, max_pods, kubeconfig_path))
    }

    /// For a run inside a pod: the client comes from the pod's ServiceAccount
    /// (`kube::Config::incluster()`), or, when `DRILLBOOK_IN_CLUSTER_SERVER` is set (tests, or
    /// a run outside the cluster with a ServiceAccount token), from that URL with the token in
    /// `DRILLBOOK_IN_CLUSTER_TOKEN_FILE` and the CA in `DRILLBOOK_IN_CLUSTER_CA_FILE`. There is
    /// no kubeconfig to pin, so the scenario's `context` must name this cluster
    /// (`cluster_name`): a drill written for staging refuses to run anywhere else. The
    /// namespace rules of [`check_safety`] apply unchanged.
    pub async fn connect_in_cluster(
        spec: &KubernetesTarget,
        cluster_name: &str,
        allow_production: bool,
    ) -> Result<Self, KubeError> {
        if spec.context.value != cluster_name {
            return Err(KubeError::ContextNotAllowed {
                context: cluster_name.to_string(),
                allowed: format!("the scenario's context `{}`", spec.context.value),
            });
        }
        let pinned = check_safety(spec, Some(cluster_name), allow_production)?;
        crate::telemetry::install_crypto_provider();
        let mut config = in_cluster_config()?;
        config.default_namespace = pinned.namespace.clone();
        let client = kube::Client::try_from(config).map_err(|e| KubeError::Kubeconfig {
            path: "(in-cluster)".into(),
            message: e.to_string(),
        })?;
        Ok(Self::from_parts(client, pinned, spec.max_pods, None))
    }

    /// A target around an existing client (tests use a mocked one). The caller vouches that
    /// `pinned` went through [`check_safety`].
    pub fn from_parts(
        client: kube::Client,
        pinned: Pinned,
        max_pods: u32,
        kubeconfig: Option<PathBuf>,
    ) -> Self {
        Self {
            client,
            context: pinned.context,
            namespace: pinned.namespace,
            allowed_namespaces: pinned.allowed_namespaces,
            max_pods,
            kubeconfig,
            tool_env: BTreeMap::new(),
        }
    }

    /// Adds an environment variable for the kubectl/helm processes this target runs (tests put
    /// a fake `helm` first on `PATH` this way).
    pub fn with_tool_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tool_env.insert(key.into(), value.into());
        self
    }

    /// The kubeconfig context every call is pinned to.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The namespace every call is pinned to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Upper bound on pods one action may touch.
    pub fn max_pods(&self) -> u32 {
        self.max_pods
    }

    /// The underlying client (already pinned to the namespace as its default).
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    fn api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        kube::Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Wraps a client error with what we were doing and where.
    fn api_error(&self, action: impl Into<String>, source: kube::Error) -> KubeError {
        KubeError::Api {
            action: action.into(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            error: Box::new(source),
        }
    }

    fn not_found(&self, kind: &'static str, name: &str) -> KubeError {
        KubeError::NotFound {
            kind,
            name: name.to_string(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
        }
    }

    /// Maps a 404 to [`KubeError::NotFound`] and anything else to [`KubeError::Api`].
    fn object_error(
        &self,
        kind: &'static str,
        name: &str,
        action: impl Into<String>,
        source: kube::Error,
    ) -> KubeError {
        if retry::status_code(&source) == Some(404) {
            self.not_found(kind, name)
        } else {
            self.api_error(action, source)
        }
    }
}

#[cfg(test)]
mod safety_tests {
    use super::*;
    use crate::scenario::spanned::Sp;

    fn spec(context: &str, namespace: &str, allowed: &[&str]) -> KubernetesTarget {
        KubernetesTarget {
            context: Sp::unplaced(context.into()),
            namespace: Sp::unplaced(namespace.into()),
            allowed_contexts: allowed
                .iter()
                .map(|c| Sp::unplaced(c.to_string()))
                .collect(),
            allowed_namespaces: Vec::new(),
            kubeconfig: None,
            max_pods: 5,
        }
    }

    #[test]
    fn a_namespace_from_the_command_line_stays_inside_the_scenarios_pin() {
        let own = spec("staging", "tracebloc", &["staging"]);
        let moved = with_overrides(&own, Some("kube-system"), None);
        let err = check_safety(&moved, None, false).unwrap_err();
        assert!(
            matches!(err, KubeError::NamespaceNotAllowed { ref namespace, .. } if namespace == "kube-system"),
            "{err}"
        );
        let mut listed = spec("staging", "a", &["staging"]);
        listed.allowed_namespaces = vec![Sp::unplaced("a".into()), Sp::unplaced("b".into())];
        let pinned = check_safety(&with_overrides(&listed, Some("b"), None), None, false).unwrap();
        assert_eq!(pinned.namespace, "b");
        let kubeconfig = with_overrides(&own, None, Some(Path::new("/etc/k.yaml")));
        assert_eq!(kubeconfig.kubeconfig.as_deref(), Some("/etc/k.yaml"));
        assert_eq!(kubeconfig.namespace.value, "tracebloc");
    }

    #[test]
    fn allowed_context_and_namespace_are_pinned() {
        let pinned =
            check_safety(&spec("staging", "tracebloc", &["staging"]), None, false).unwrap();
        assert_eq!(pinned.context, "staging");
        assert_eq!(pinned.namespace, "tracebloc");
        assert_eq!(pinned.allowed_namespaces, vec!["tracebloc".to_string()]);
    }

    #[test]
    fn context_override_must_be_allowed_too() {
        let err =
            check_safety(&spec("staging", "ns", &["staging"]), Some("other"), false).unwrap_err();
        assert!(
            matches!(err, KubeError::ContextNotAllowed { ref context, .. } if context == "other")
        );
        assert!(
            err.to_string().contains("allowed_contexts (staging)"),
            "{err}"
        );
    }

    #[test]
    fn production_needs_the_flag() {
        let s = spec("prod-eu", "ns", &["prod-eu"]);
        let err = check_safety(&s, None, false).unwrap_err();
        assert!(
            matches!(
                err,
                KubeError::Production {
                    what: "context",
                    ..
                }
            ),
            "{err}"
        );
        assert!(check_safety(&s, None, true).is_ok());
        let s = spec("staging", "hasan-Prod", &["staging"]);
        let err = check_safety(&s, None, false).unwrap_err();
        assert!(
            matches!(
                err,
                KubeError::Production {
                    what: "namespace",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn namespace_must_be_in_the_allowed_list() {
        let mut s = spec("staging", "ns", &["staging"]);
        s.allowed_namespaces = vec![Sp::unplaced("other".into())];
        let err = check_safety(&s, None, false).unwrap_err();
        assert!(
            matches!(err, KubeError::NamespaceNotAllowed { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn connect_never_falls_back_to_the_current_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: other\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\ncontexts:\n- name: other\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {token: t}\n",
        )
        .unwrap();
        let mut s = spec("staging", "ns", &["staging"]);
        s.kubeconfig = Some(path.display().to_string());
        let err = KubeTarget::connect(&s, None, false).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("has no context `staging` (it has: other)"),
            "{err}"
        );
        let ok = KubeTarget::connect(&s, Some("other"), false).await;
        assert!(ok.is_err(), "`other` is not allowed");
        s.allowed_contexts.push(Sp::unplaced("other".into()));
        let target = KubeTarget::connect(&s, Some("other"), false).await.unwrap();
        assert_eq!((target.context(), target.namespace()), ("other", "ns"));
    }
}
