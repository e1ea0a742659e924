//! helm and kubectl, always pinned: `--kube-context`/`--context` and `--namespace` come from the
//! scenario (and `--kubeconfig` when it names one), never from the kubeconfig's current context.

use std::path::Path;
use std::time::Duration;

use super::{KubeError, KubeTarget};
use crate::scenario::HelmUpgrade;
use crate::support::command::{CommandOutput, run_unsetting};

/// What replaces a secret value in anything printed or stored.
pub const REDACTED: &str = "<redacted>";

/// How long helm may take to answer a read (`helm status`).
const HELM_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The tools whose context and namespace flags are known.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Kubectl,
    Helm,
}

impl Tool {
    fn of(program: &str) -> Option<Self> {
        match program.rsplit('/').next() {
            Some("kubectl") => Some(Self::Kubectl),
            Some("helm") => Some(Self::Helm),
            _ => None,
        }
    }

    fn context_flag(self) -> &'static str {
        match self {
            Self::Kubectl => "--context",
            Self::Helm => "--kube-context",
        }
    }

    /// The flags of this tool that pinning must see. Anything that can send the command to
    /// another API server or run it as another identity is refused outright: the context names
    /// both, and a drill must not be able to step around it.
    fn rules(self) -> &'static [FlagRule] {
        use FlagKind::{AllNamespaces, Context, Kubeconfig, Namespace, Redirect};
        const SERVER: FlagKind = Redirect("send it to another API server");
        const IDENTITY: FlagKind = Redirect("run it as another user");
        const IMPERSONATE: FlagKind = Redirect("impersonate another user or group");
        const KUBECTL: &[FlagRule] = &[
            FlagRule::new("--context", None, Context),
            FlagRule::new("--namespace", Some('n'), Namespace),
            FlagRule::new("--kubeconfig", None, Kubeconfig),
            FlagRule::new("--all-namespaces", Some('A'), AllNamespaces),
            FlagRule::new("--server", Some('s'), SERVER),
            FlagRule::new("--cluster", None, SERVER),
            FlagRule::new("--user", None, IDENTITY),
            FlagRule::new("--token", None, IDENTITY).secret(),
            FlagRule::new("--username", None, IDENTITY),
            FlagRule::new("--password", None, IDENTITY).secret(),
            FlagRule::new("--client-certificate", None, IDENTITY),
            FlagRule::new("--client-key", None, IDENTITY),
            FlagRule::new("--as", None, IMPERSONATE),
            FlagRule::new("--as-group", None, IMPERSONATE),
            FlagRule::new("--as-uid", None, IMPERSONATE),
        ];
        const HELM: &[FlagRule] = &[
            FlagRule::new("--kube-context", None, Context),
            FlagRule::new("--namespace", Some('n'), Namespace),
            FlagRule::new("--kubeconfig", None, Kubeconfig),
            FlagRule::new("--all-namespaces", Some('A'), AllNamespaces),
            FlagRule::new("--kube-apiserver", None, SERVER),
            FlagRule::new("--kube-token", None, IDENTITY).secret(),
            FlagRule::new("--kube-as-user", None, IMPERSONATE),
            FlagRule::new("--kube-as-group", None, IMPERSONATE),
        ];
        match self {
            Self::Kubectl => KUBECTL,
            Self::Helm => HELM,
        }
    }

    /// Shorthands that take no value, so a bundle like `-it` goes on to the next letter. A
    /// letter not listed here and not in [`Self::rules`] takes the rest of the bundle as its
    /// value, as pflag reads it.
    fn boolean_shorthands(self) -> &'static [char] {
        match self {
            Self::Kubectl => &['i', 't', 'w', 'R', 'h', 'q', 'A'],
            Self::Helm => &['a', 'q', 'h', 'd', 'r', 'A'],
        }
    }
}

/// What pinning does with a flag.
#[derive(Clone, Copy)]
enum FlagKind {
    /// Must name the pinned context.
    Context,
    /// Must name an allowed namespace.
    Namespace,
    /// Must name the scenario's kubeconfig.
    Kubeconfig,
    /// Refused (no value).
    AllNamespaces,
    /// Refused: what it would do.
    Redirect(&'static str),
}

/// A flag of kubectl or helm that pinning reads.
struct FlagRule {
    long: &'static str,
    short: Option<char>,
    kind: FlagKind,
    /// Its value is a credential: never shown in a refusal.
    secret: bool,
}

impl FlagRule {
    const fn new(long: &'static str, short: Option<char>, kind: FlagKind) -> Self {
        Self {
            long,
            short,
            kind,
            secret: false,
        }
    }

    const fn secret(self) -> Self {
        Self {
            secret: true,
            ..self
        }
    }

    fn takes_value(&self) -> bool {
        !matches!(self.kind, FlagKind::AllNamespaces)
    }
}

/// Every use of a pinning-relevant flag in `args` (the arguments before any `--`), with its
/// value (`""` when it has none or it is missing).
fn flag_uses(tool: Tool, args: &[String]) -> Vec<(&'static FlagRule, String)> {
    let rules = tool.rules();
    let next = |i: usize| args.get(i + 1).cloned().unwrap_or_default();
    let mut found = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (long, None),
            };
            if let Some(rule) = rules.iter().find(|r| &r.long[2..] == name) {
                let value = match inline {
                    Some(value) => value,
                    None if rule.takes_value() => next(i),
                    None => String::new(),
                };
                found.push((rule, value));
            }
        } else if let Some(bundle) = arg.strip_prefix('-') {
            for (at, letter) in bundle.char_indices() {
                if let Some(rule) = rules.iter().find(|r| r.short == Some(letter)) {
                    if !rule.takes_value() {
                        found.push((rule, String::new()));
                        continue;
                    }
                    let rest = &bundle[at + letter.len_utf8()..];
                    let rest = rest.strip_prefix('=').unwrap_or(rest);
                    let value = if rest.is_empty() {
                        next(i)
                    } else {
                        rest.to_string()
                    };
                    found.push((rule, value));
                    break;
                }
                if !tool.boolean_shorthands().contains(&letter) {
                    break;
                }
            }
        }
    }
    found
}

/// `argv` with the values of credential flags (`--token`, `--kube-token`, `--password`)
/// replaced by `<redacted>`: refusals quote the argv.
fn redact_flag_values(tool: Tool, argv: &[String]) -> Vec<String> {
    let secret = |name: &str| tool.rules().iter().any(|r| r.secret && r.long == name);
    let mut shown = Vec::with_capacity(argv.len());
    let mut hide_next = false;
    for arg in argv {
        if std::mem::take(&mut hide_next) {
            shown.push(REDACTED.to_string());
            continue;
        }
        match arg.split_once('=') {
            Some((name, _)) if secret(name) => shown.push(format!("{name}={REDACTED}")),
            _ => {
                hide_next = secret(arg);
                shown.push(arg.clone());
            }
        }
    }
    shown
}

/// Variables that point helm at another API server, identity or namespace than the pinned
/// flags say: removed from what kubectl/helm inherit, refused in a scenario's `env`
/// (`KUBECONFIG` is refused there too; the operator's own is what the client uses).
const REDIRECTING_ENV: [&str; 9] = [
    "HELM_KUBECONTEXT",
    "HELM_NAMESPACE",
    "HELM_KUBEAPISERVER",
    "HELM_KUBETOKEN",
    "HELM_KUBEASUSER",
    "HELM_KUBEASGROUPS",
    "HELM_KUBECAFILE",
    "HELM_KUBEINSECURE_SKIP_TLS_VERIFY",
    "HELM_KUBETLS_SERVER_NAME",
];

/// Stands for the `set_secret` values file in a plan (the file exists only while helm runs).
pub const SECRET_VALUES_PLACEHOLDER: &str = "<set_secret values file, 0600>";

/// Why the `set_secret` values could not be handed to helm.
#[derive(Debug, thiserror::Error)]
pub enum SecretValuesError {
    /// helm's `--set` syntax (`a[0]`, `a\.b`) has no place in a values file.
    #[error("set_secret key `{0}` is not a dotted name (letters, digits, `_`, `-` between dots)")]
    Key(String),
    /// Two keys give one path both a value and children (`a: x` and `a.b: y`).
    #[error("set_secret keys `{0}` conflict: one is a prefix of another")]
    Conflict(String),
    #[error("cannot write the set_secret values file: {0}")]
    Io(#[from] std::io::Error),
}

/// The `set_secret` values as a helm values file: created 0600 in the temp directory, holding
/// every value as a string (so `1.10` stays `"1.10"`, never a float), removed when dropped —
/// also when helm fails. `None` without secret values.
pub fn secret_values_file(
    h: &HelmUpgrade,
) -> Result<Option<tempfile::NamedTempFile>, SecretValuesError> {
    if h.set_secret.is_empty() {
        return Ok(None);
    }
    let mut root = serde_json::Map::new();
    for (key, value) in &h.set_secret {
        let parts: Vec<&str> = key.split('.').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !parts.iter().all(valid) {
            return Err(SecretValuesError::Key(key.clone()));
        }
        let (last, parents) = parts
            .split_last()
            .ok_or_else(|| SecretValuesError::Key(key.clone()))?;
        let mut node = &mut root;
        for part in parents {
            let child = node
                .entry((*part).to_string())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            node = child
                .as_object_mut()
                .ok_or_else(|| SecretValuesError::Conflict(key.clone()))?;
        }
        if node
            .insert(
                (*last).to_string(),
                serde_json::Value::String(value.clone()),
            )
            .is_some()
        {
            return Err(SecretValuesError::Conflict(key.clone()));
        }
    }
    // JSON is YAML: helm reads it as a values file, with every value a string.
    let mut file = tempfile::Builder::new()
        .prefix("drillbook-helm-secrets-")
        .suffix(".yaml")
        .tempfile()?;
    std::io::Write::write_all(
        &mut file,
        serde_json::Value::Object(root).to_string().as_bytes(),
    )?;
    std::io::Write::flush(&mut file)?;
    Ok(Some(file))
}

/// helm's `--set` splits on commas; a literal comma in a value must be escaped.
fn set_pair(key: &str, value: &str) -> String {
    format!("{key}={}", value.replace('\\', "\\\\").replace(',', "\\,"))
}

impl KubeTarget {
    /// `--kubeconfig <file>` (when the scenario names one), the context and namespace flags.
    fn pin_flags(&self, tool: Tool) -> Vec<String> {
        let mut flags = Vec::new();
        if let Some(path) = &self.kubeconfig {
            flags.extend(["--kubeconfig".to_string(), path.display().to_string()]);
        }
        flags.extend([
            tool.context_flag().to_string(),
            self.context.clone(),
            "--namespace".to_string(),
            self.namespace.clone(),
        ]);
        flags
    }

    /// `helm upgrade <release> <chart> <pinning> [--reuse-values] --set k=v ... [-f SECRETS]
    /// [--wait] --timeout <t>`. `set_secret` values never go on the command line (where
    /// `/proc/*/cmdline` shows them): they are in the 0600 file `secret_values` (see
    /// [`secret_values_file`]); without one (a plan) a placeholder names it. Refused without a
    /// chart: helm cannot upgrade a release without one.
    pub fn helm_upgrade_argv(
        &self,
        h: &HelmUpgrade,
        secret_values: Option<&Path>,
    ) -> Result<Vec<String>, KubeError> {
        let chart = h
            .chart
            .as_ref()
            .ok_or_else(|| KubeError::HelmChartMissing {
                release: h.release.value.clone(),
            })?;
        let mut argv = vec![
            "helm".to_string(),
            "upgrade".to_string(),
            h.release.value.clone(),
            chart.clone(),
        ];
        argv.extend(self.pin_flags(Tool::Helm));
        if h.reuse_values {
            argv.push("--reuse-values".into());
        }
        for (key, value) in &h.set {
            argv.extend(["--set".to_string(), set_pair(key, value)]);
        }
        if !h.set_secret.is_empty() {
            argv.push("-f".into());
            argv.push(secret_values.map_or_else(
                || SECRET_VALUES_PLACEHOLDER.to_string(),
                |p| p.display().to_string(),
            ));
        }
        if h.wait {
            argv.push("--wait".into());
        }
        argv.extend(["--timeout".to_string(), h.timeout.to_string()]);
        Ok(argv)
    }

    /// `argv` with every `set_secret` value replaced by `<redacted>`: the form for logs, plans
    /// and reports.
    pub fn redacted(argv: &[String], h: &HelmUpgrade) -> Vec<String> {
        let secret_pairs: Vec<(String, &str)> = h
            .set_secret
            .iter()
            .map(|(k, v)| (set_pair(k, v), k.as_str()))
            .collect();
        argv.iter()
            .map(|arg| {
                secret_pairs
                    .iter()
                    .find(|(pair, _)| pair == arg)
                    .map_or_else(|| arg.clone(), |(_, key)| format!("{key}={REDACTED}"))
            })
            .collect()
    }

    /// `helm rollback <release> <revision>`, pinned. The undo of a helm upgrade.
    pub fn helm_rollback_argv(&self, release: &str, revision: u32) -> Vec<String> {
        let mut argv = vec![
            "helm".to_string(),
            "rollback".to_string(),
            release.to_string(),
            revision.to_string(),
        ];
        argv.extend(self.pin_flags(Tool::Helm));
        argv
    }

    /// `argv` with the scenario's pinning when it runs kubectl or helm: the flags go right after
    /// the program (before any `--`). Refused: a context flag that names another context, a
    /// `--kubeconfig` other than the scenario's, a namespace outside `allowed_namespaces`, an
    /// all-namespaces flag, and every flag that points the tool at another server, cluster or
    /// identity (see [`Tool::rules`]). Flags are read as kubectl and helm read them: `--f v`,
    /// `--f=v`, `-n v`, `-nv`, `-n=v` and bundled shorthands (`-itnNS`). Other programs are
    /// returned unchanged.
    pub fn pin_command(&self, argv: &[String]) -> Result<Vec<String>, KubeError> {
        let pin = CommandPin {
            context: &self.context,
            namespace: &self.namespace,
            allowed_namespaces: &self.allowed_namespaces,
            kubeconfig: self.kubeconfig.as_deref(),
        };
        pin.apply(argv)
    }

    /// Runs a (pinned) kubectl/helm argv with this target's tool environment and `env`, killing
    /// it after `timeout`. A non-zero exit is not an error here: the caller judges the output.
    pub async fn run_tool(
        &self,
        argv: &[String],
        env: &std::collections::BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<CommandOutput, KubeError> {
        if let Some(name) = env
            .keys()
            .find(|k| REDIRECTING_ENV.contains(&k.as_str()) || k.as_str() == "KUBECONFIG")
        {
            return Err(KubeError::PinConflict {
                argv: argv.join(" "),
                reason: format!(
                    "`env` sets {name}, which can point kubectl or helm at another cluster, user \
                     or namespace than the scenario's pin"
                ),
            });
        }
        let mut full_env = self.tool_env.clone();
        full_env.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        run_unsetting(argv, &full_env, &REDIRECTING_ENV, timeout)
            .await
            .map_err(|source| KubeError::Run {
                argv: argv.join(" "),
                source,
            })
    }

    /// The release's current revision (`helm status <release> -o json`), read before an upgrade
    /// so the undo can roll back to it.
    pub async fn helm_revision(&self, release: &str) -> Result<u32, KubeError> {
        let mut argv = vec![
            "helm".to_string(),
            "status".to_string(),
            release.to_string(),
        ];
        argv.extend(self.pin_flags(Tool::Helm));
        argv.extend(["-o".to_string(), "json".to_string()]);
        let out = self
            .run_tool(&argv, &Default::default(), HELM_READ_TIMEOUT)
            .await?;
        if out.status != Some(0) {
            return Err(KubeError::Command {
                argv: argv.join(" "),
                message: format!("{}: {}", out.status_text(), out.stderr_tail()),
            });
        }
        let unexpected = |message: String| KubeError::Unexpected {
            what: argv.join(" "),
            message,
        };
        let status: serde_json::Value =
            serde_json::from_str(&out.stdout).map_err(|e| unexpected(e.to_string()))?;
        status
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| unexpected("no numeric `version` field".into()))
    }
}

/// What a kubectl/helm argv is pinned to: the scenario's context, namespace (within
/// `allowed_namespaces`) and kubeconfig. Needs no cluster, so `plan --offline` and `validate`
/// refuse exactly the argv that `run` would refuse.
#[derive(Debug, Clone, Copy)]
pub struct CommandPin<'a> {
    pub context: &'a str,
    pub namespace: &'a str,
    pub allowed_namespaces: &'a [String],
    pub kubeconfig: Option<&'a Path>,
}

impl CommandPin<'_> {
    /// `argv` pinned, or refused; the rules are [`KubeTarget::pin_command`]'s.
    pub fn apply(&self, argv: &[String]) -> Result<Vec<String>, KubeError> {
        let Some((program, args)) = argv.split_first() else {
            return Ok(Vec::new());
        };
        let Some(tool) = Tool::of(program) else {
            return Ok(argv.to_vec());
        };
        let own_args = args.split(|a| a == "--").next().unwrap_or(&[]);
        let refuse = |reason: String| KubeError::PinConflict {
            argv: redact_flag_values(tool, argv).join(" "),
            reason,
        };
        let kubeconfig = self.kubeconfig.map(|p| p.display().to_string());
        let (mut has_context, mut has_namespace, mut has_kubeconfig) = (false, false, false);
        for (rule, value) in flag_uses(tool, own_args) {
            match rule.kind {
                FlagKind::Context => {
                    if value != self.context {
                        return Err(refuse(format!(
                            "it names context `{value}`, the scenario is pinned to `{}`",
                            self.context
                        )));
                    }
                    has_context = true;
                }
                FlagKind::Namespace => {
                    if !self.allowed_namespaces.contains(&value) {
                        return Err(refuse(format!(
                            "namespace `{value}` is not in allowed_namespaces ({})",
                            self.allowed_namespaces.join(", ")
                        )));
                    }
                    has_namespace = true;
                }
                FlagKind::Kubeconfig => {
                    if kubeconfig.as_deref() != Some(value.as_str()) {
                        return Err(refuse(format!(
                            "it names kubeconfig `{value}`, the scenario uses {}",
                            kubeconfig.as_deref().map_or_else(
                                || "the default kubeconfig".to_string(),
                                |k| format!("`{k}`")
                            )
                        )));
                    }
                    has_kubeconfig = true;
                }
                FlagKind::AllNamespaces => {
                    return Err(refuse(format!(
                        "drills stay in the allowed namespaces ({})",
                        self.allowed_namespaces.join(", ")
                    )));
                }
                FlagKind::Redirect(what) => {
                    return Err(refuse(format!(
                        "`{}` would {what}; the scenario's context `{}` decides the server \
                         and the identity",
                        rule.long, self.context
                    )));
                }
            }
        }
        let mut pinned = vec![program.clone()];
        if !has_kubeconfig && let Some(path) = &kubeconfig {
            pinned.extend(["--kubeconfig".to_string(), path.clone()]);
        }
        if !has_context {
            pinned.extend([tool.context_flag().to_string(), self.context.to_string()]);
        }
        if !has_namespace {
            pinned.extend(["--namespace".to_string(), self.namespace.to_string()]);
        }
        pinned.extend(args.iter().cloned());
        Ok(pinned)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::scenario::{HelmUndo, Sp};
    use crate::targets::kube::Pinned;
    use crate::units::HumanDuration;

    fn target(kubeconfig: Option<&str>) -> KubeTarget {
        // The client is never called by these tests; a mock without a handle is enough.
        let (service, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        KubeTarget::from_parts(
            kube::Client::new(service, "tracebloc"),
            Pinned {
                context: "staging".into(),
                namespace: "tracebloc".into(),
                allowed_namespaces: vec!["tracebloc".into(), "tracebloc-jobs".into()],
            },
            5,
            kubeconfig.map(PathBuf::from),
        )
    }

    fn upgrade() -> HelmUpgrade {
        HelmUpgrade {
            release: Sp::unplaced("client".into()),
            chart: Some("tracebloc/client".into()),
            set: BTreeMap::from([
                (
                    "requestsProxy.statelessTokens".to_string(),
                    "true".to_string(),
                ),
                ("list".to_string(), "a,b".to_string()),
            ]),
            set_secret: BTreeMap::from([("auth.key".to_string(), "s3cr3t".to_string())]),
            reuse_values: true,
            wait: true,
            timeout: HumanDuration::from_secs(300),
            undo: HelmUndo::Rollback,
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn helm_upgrade_is_pinned_and_exact() {
        let argv = target(None).helm_upgrade_argv(&upgrade(), None).unwrap();
        assert_eq!(
            argv,
            strings(&[
                "helm",
                "upgrade",
                "client",
                "tracebloc/client",
                "--kube-context",
                "staging",
                "--namespace",
                "tracebloc",
                "--reuse-values",
                "--set",
                "list=a\\,b",
                "--set",
                "requestsProxy.statelessTokens=true",
                "-f",
                SECRET_VALUES_PLACEHOLDER,
                "--wait",
                "--timeout",
                "5m",
            ])
        );
    }

    #[tokio::test]
    async fn secrets_are_redacted_and_nothing_else() {
        let h = upgrade();
        let argv = target(None).helm_upgrade_argv(&h, None).unwrap();
        let shown = KubeTarget::redacted(&argv, &h);
        assert!(!argv.join(" ").contains("s3cr3t"), "{argv:?}");
        assert!(!shown.join(" ").contains("s3cr3t"), "{shown:?}");
        assert!(shown.contains(&"requestsProxy.statelessTokens=true".to_string()));
        assert_eq!(shown.len(), argv.len());
    }

    #[tokio::test]
    async fn helm_upgrade_without_chart_is_refused() {
        let mut h = upgrade();
        h.chart = None;
        let err = target(None).helm_upgrade_argv(&h, None).unwrap_err();
        assert!(matches!(err, KubeError::HelmChartMissing { .. }), "{err}");
    }

    #[tokio::test]
    async fn rollback_is_pinned_with_the_kubeconfig() {
        let argv = target(Some("/k/config")).helm_rollback_argv("client", 7);
        assert_eq!(
            argv,
            strings(&[
                "helm",
                "rollback",
                "client",
                "7",
                "--kubeconfig",
                "/k/config",
                "--kube-context",
                "staging",
                "--namespace",
                "tracebloc",
            ])
        );
    }

    #[tokio::test]
    async fn kubectl_and_helm_get_pinned_before_any_double_dash() {
        let t = target(None);
        let pinned = t
            .pin_command(&strings(&["kubectl", "exec", "proxy-0", "--", "env"]))
            .unwrap();
        assert_eq!(
            pinned,
            strings(&[
                "kubectl",
                "--context",
                "staging",
                "--namespace",
                "tracebloc",
                "exec",
                "proxy-0",
                "--",
                "env",
            ])
        );
        let pinned = t
            .pin_command(&strings(&["/usr/bin/helm", "list", "-n", "tracebloc-jobs"]))
            .unwrap();
        assert_eq!(
            pinned,
            strings(&[
                "/usr/bin/helm",
                "--kube-context",
                "staging",
                "list",
                "-n",
                "tracebloc-jobs",
            ])
        );
        let other = strings(&["curl", "--namespace", "x"]);
        assert_eq!(t.pin_command(&other).unwrap(), other);
    }

    #[tokio::test]
    async fn conflicting_pins_are_refused() {
        let t = target(None);
        for argv in [
            &["kubectl", "--context=prod", "get", "pods"][..],
            &["kubectl", "get", "pods", "-n", "kube-system"],
            &["kubectl", "get", "pods", "-A"],
            &["helm", "list", "--kube-context", "prod"],
        ] {
            let err = t.pin_command(&strings(argv)).unwrap_err();
            assert!(
                matches!(err, KubeError::PinConflict { .. }),
                "{argv:?}: {err}"
            );
        }
        // Naming the pinned context explicitly is fine and not duplicated.
        let pinned = t
            .pin_command(&strings(&[
                "kubectl",
                "--context",
                "staging",
                "get",
                "pods",
            ]))
            .unwrap();
        assert_eq!(pinned.iter().filter(|a| *a == "--context").count(), 1);
    }

    #[tokio::test]
    async fn every_way_around_the_pin_is_refused() {
        let t = target(Some("/k/config"));
        for argv in [
            // kubectl: another server, cluster, user or identity.
            &["kubectl", "--server", "https://evil:6443", "get", "pods"][..],
            &["kubectl", "--server=https://evil:6443", "get", "pods"],
            &["kubectl", "-s", "https://evil:6443", "get", "pods"],
            &["kubectl", "-shttps://evil:6443", "get", "pods"],
            &["kubectl", "get", "pods", "--cluster", "prod"],
            &["kubectl", "get", "pods", "--user=admin"],
            &["kubectl", "get", "pods", "--token", "abc"],
            &["kubectl", "get", "pods", "--as", "system:admin"],
            &["kubectl", "get", "pods", "--as-group=system:masters"],
            &["kubectl", "--kubeconfig", "/other/config", "get", "pods"],
            &["kubectl", "--kubeconfig=/other/config", "get", "pods"],
            // Namespaces in every spelling.
            &["kubectl", "get", "pods", "-nkube-system"],
            &["kubectl", "get", "pods", "-n=kube-system"],
            &["kubectl", "get", "pods", "--namespace=kube-system"],
            &["kubectl", "exec", "-itnkube-system", "x", "--", "sh"],
            &["kubectl", "get", "pods", "-wA"],
            // helm.
            &["helm", "list", "--kube-apiserver", "https://evil:6443"],
            &["helm", "list", "--kube-token=abc"],
            &["helm", "list", "--kube-context=prod"],
            &["helm", "list", "--kube-as-user", "admin"],
            &["helm", "list", "--kube-as-group", "system:masters"],
            &["helm", "list", "--kubeconfig", "/other/config"],
            &["helm", "list", "-nkube-system"],
        ] {
            let err = t.pin_command(&strings(argv)).unwrap_err();
            assert!(
                matches!(err, KubeError::PinConflict { .. }),
                "{argv:?}: {err}"
            );
        }
        // Without a kubeconfig in the scenario, any other one is a different cluster.
        let err = target(None)
            .pin_command(&strings(&[
                "kubectl",
                "--kubeconfig",
                "/k/config",
                "get",
                "pods",
            ]))
            .unwrap_err();
        assert!(matches!(err, KubeError::PinConflict { .. }), "{err}");
    }

    #[tokio::test]
    async fn allowed_spellings_pass_and_credentials_never_show_in_a_refusal() {
        let t = target(Some("/k/config"));
        for argv in [
            &["kubectl", "get", "pods", "-ntracebloc-jobs"][..],
            &["kubectl", "get", "pods", "-n=tracebloc-jobs"],
            &[
                "kubectl",
                "exec",
                "-itntracebloc",
                "x",
                "--",
                "sh",
                "-s",
                "x",
            ],
            &["kubectl", "logs", "-cproxy", "x"],
            &["kubectl", "--kubeconfig=/k/config", "get", "pods"],
            &["helm", "list", "--kube-context=staging", "-ntracebloc"],
        ] {
            let pinned = t.pin_command(&strings(argv)).unwrap();
            assert!(pinned.len() >= argv.len(), "{argv:?}: {pinned:?}");
            assert_eq!(
                pinned
                    .iter()
                    .filter(|a| a.starts_with("--kubeconfig"))
                    .count(),
                1,
                "{pinned:?}"
            );
        }
        for argv in [
            &["kubectl", "get", "pods", "--token", "s3cr3t"][..],
            &["kubectl", "get", "pods", "--token=s3cr3t"],
            &["helm", "list", "--kube-token", "s3cr3t"],
        ] {
            let message = t.pin_command(&strings(argv)).unwrap_err().to_string();
            assert!(!message.contains("s3cr3t"), "{message}");
            assert!(message.contains(REDACTED), "{message}");
        }
    }

    /// Makes `script` executable and returns a PATH that finds it first.
    fn path_with_tool(script: &Path) -> String {
        std::fs::set_permissions(script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        format!(
            "{}:{}",
            script.parent().unwrap_or(Path::new("/")).display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// A fake `helm` on PATH records its argv; `helm status` answers revision 4.
    #[tokio::test]
    async fn helm_runs_pinned_through_path() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("argv.log");
        let script = dir.path().join("helm");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nlog='{}'\nprintf '%s\\n' \"$*\" >> \"$log\"\nprev=\nfor a in \"$@\"; do \
                 if [ \"$prev\" = -f ]; then stat -c 'mode %a' \"$a\" >> \"$log\"; cat \"$a\" >> \"$log\"; \
                 echo >> \"$log\"; fi; prev=$a; done\n\
                 case \"$1\" in status) echo '{{\"name\":\"client\",\"version\":4}}';; esac\n",
                log.display()
            ),
        )
        .unwrap();
        let t = target(None).with_tool_env("PATH", path_with_tool(&script));
        assert_eq!(t.helm_revision("client").await.unwrap(), 4);
        let mut h = upgrade();
        // A version-like secret must reach the chart as the string it is, not the float 1.1.
        h.set_secret.insert("image.pin".into(), "1.10".into());
        let secrets = secret_values_file(&h).unwrap().unwrap();
        let file = secrets.path().to_path_buf();
        let argv = t.helm_upgrade_argv(&h, Some(&file)).unwrap();
        let out = t
            .run_tool(&argv, &BTreeMap::new(), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(out.status, Some(0));
        drop(secrets);
        assert!(
            !file.exists(),
            "the secret values file is removed after helm ran"
        );
        let recorded = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = recorded.lines().collect();
        assert_eq!(
            lines,
            [
                "status client --kube-context staging --namespace tracebloc -o json",
                &format!(
                    "upgrade client tracebloc/client --kube-context staging --namespace tracebloc \
                     --reuse-values --set list=a\\,b --set requestsProxy.statelessTokens=true \
                     -f {} --wait --timeout 5m",
                    file.display()
                ),
                "mode 600",
                r#"{"auth":{"key":"s3cr3t"},"image":{"pin":"1.10"}}"#,
            ]
        );
    }

    /// A scenario's `env` may not set what redirects helm or kubectl (the inherited ones are
    /// removed by `run_unsetting`, tested in `support::command`); other variables pass.
    #[tokio::test]
    async fn a_scenario_env_may_not_redirect_helm_or_kubectl() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("helm");
        std::fs::write(&script, "#!/bin/sh\nenv | grep -E '^HELM_' | sort\n").unwrap();
        let t = target(None)
            .with_tool_env("PATH", path_with_tool(&script))
            .with_tool_env("HELM_CACHE_HOME", "/tmp/cache");
        let argv = t.pin_command(&strings(&["helm", "list"])).unwrap();
        let out = t
            .run_tool(&argv, &BTreeMap::new(), Duration::from_secs(10))
            .await
            .unwrap();
        assert!(
            out.stdout.contains("HELM_CACHE_HOME=/tmp/cache"),
            "{}",
            out.stdout
        );
        for name in [
            "HELM_KUBETOKEN",
            "HELM_KUBEAPISERVER",
            "KUBECONFIG",
            "HELM_KUBECONTEXT",
        ] {
            let err = t
                .run_tool(
                    &argv,
                    &BTreeMap::from([(name.to_string(), "x".to_string())]),
                    Duration::from_secs(10),
                )
                .await
                .unwrap_err();
            assert!(
                matches!(err, KubeError::PinConflict { .. }),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn secret_keys_must_be_dotted_names_without_conflicts() {
        let mut h = upgrade();
        h.set_secret = BTreeMap::from([("a[0]".to_string(), "x".to_string())]);
        assert!(matches!(
            secret_values_file(&h),
            Err(SecretValuesError::Key(_))
        ));
        h.set_secret = BTreeMap::from([
            ("a".to_string(), "x".to_string()),
            ("a.b".to_string(), "y".to_string()),
        ]);
        assert!(matches!(
            secret_values_file(&h),
            Err(SecretValuesError::Conflict(_))
        ));
        h.set_secret.clear();
        assert!(secret_values_file(&h).unwrap().is_none());
    }

    #[tokio::test]
    async fn a_failing_helm_status_names_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("helm");
        std::fs::write(
            &script,
            "#!/bin/sh\necho 'Error: release: not found' >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = format!("{}:/usr/bin:/bin", dir.path().display());
        let err = target(None)
            .with_tool_env("PATH", path)
            .helm_revision("nope")
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("helm status nope --kube-context staging"),
            "{message}"
        );
        assert!(message.contains("release: not found"), "{message}");
    }
}
