//! helm and kubectl, always pinned: `--kube-context`/`--context` and `--namespace` come from the
//! scenario (and `--kubeconfig` when it names one), never from the kubeconfig's current context.

use std::time::Duration;

use super::{KubeError, KubeTarget};
use crate::scenario::HelmUpgrade;
use crate::support::command::{CommandOutput, run};

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

    /// `helm upgrade <release> <chart> <pinning> [--reuse-values] --set k=v ... [--wait]
    /// --timeout <t>`. `set_secret` pairs are included in clear (helm needs them): show the
    /// argv only through [`Self::redacted`]. Refused without a chart: helm cannot upgrade a
    /// release without one.
    pub fn helm_upgrade_argv(&self, h: &HelmUpgrade) -> Result<Vec<String>, KubeError> {
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
        for (key, value) in h.set.iter().chain(&h.set_secret) {
            argv.extend(["--set".to_string(), set_pair(key, value)]);
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
    /// the program (before any `--`). A context flag that names another context, a namespace
    /// outside `allowed_namespaces` or an all-namespaces flag is refused. Other programs are
    /// returned unchanged.
    pub fn pin_command(&self, argv: &[String]) -> Result<Vec<String>, KubeError> {
        let Some((program, args)) = argv.split_first() else {
            return Ok(Vec::new());
        };
        let Some(tool) = Tool::of(program) else {
            return Ok(argv.to_vec());
        };
        let refuse = |reason: String| KubeError::PinConflict {
            argv: argv.join(" "),
            reason,
        };
        let own_args = args.split(|a| a == "--").next().unwrap_or(&[]);
        let (mut has_context, mut has_namespace, mut has_kubeconfig) = (false, false, false);
        for (i, arg) in own_args.iter().enumerate() {
            let value_of = |flag: &str| -> Option<String> {
                if arg == flag {
                    Some(own_args.get(i + 1).cloned().unwrap_or_default())
                } else {
                    arg.strip_prefix(flag)
                        .and_then(|rest| rest.strip_prefix('='))
                        .map(str::to_string)
                }
            };
            if arg == "-A" || arg == "--all-namespaces" || arg.starts_with("--all-namespaces=") {
                return Err(refuse(format!(
                    "drills stay in the allowed namespaces ({})",
                    self.allowed_namespaces.join(", ")
                )));
            }
            if let Some(context) = value_of(tool.context_flag()) {
                if context != self.context {
                    return Err(refuse(format!(
                        "it names context `{context}`, the scenario is pinned to `{}`",
                        self.context
                    )));
                }
                has_context = true;
            }
            if let Some(namespace) = value_of("--namespace").or_else(|| value_of("-n")) {
                if !self.allowed_namespaces.contains(&namespace) {
                    return Err(refuse(format!(
                        "namespace `{namespace}` is not in allowed_namespaces ({})",
                        self.allowed_namespaces.join(", ")
                    )));
                }
                has_namespace = true;
            }
            has_kubeconfig |= value_of("--kubeconfig").is_some();
        }
        let mut pinned = vec![program.clone()];
        if !has_kubeconfig && let Some(path) = &self.kubeconfig {
            pinned.extend(["--kubeconfig".to_string(), path.display().to_string()]);
        }
        if !has_context {
            pinned.extend([tool.context_flag().to_string(), self.context.clone()]);
        }
        if !has_namespace {
            pinned.extend(["--namespace".to_string(), self.namespace.clone()]);
        }
        pinned.extend(args.iter().cloned());
        Ok(pinned)
    }

    /// Runs a (pinned) kubectl/helm argv with this target's tool environment and `env`, killing
    /// it after `timeout`. A non-zero exit is not an error here: the caller judges the output.
    pub async fn run_tool(
        &self,
        argv: &[String],
        env: &std::collections::BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<CommandOutput, KubeError> {
        let mut full_env = self.tool_env.clone();
        full_env.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        run(argv, &full_env, timeout)
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
                message: format!("exit {:?}: {}", out.status, out.stderr_tail()),
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
        let argv = target(None).helm_upgrade_argv(&upgrade()).unwrap();
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
                "--set",
                "auth.key=s3cr3t",
                "--wait",
                "--timeout",
                "5m",
            ])
        );
    }

    #[tokio::test]
    async fn secrets_are_redacted_and_nothing_else() {
        let h = upgrade();
        let argv = target(None).helm_upgrade_argv(&h).unwrap();
        let shown = KubeTarget::redacted(&argv, &h);
        assert!(!shown.join(" ").contains("s3cr3t"), "{shown:?}");
        assert!(shown.contains(&"auth.key=<redacted>".to_string()));
        assert!(shown.contains(&"requestsProxy.statelessTokens=true".to_string()));
        assert_eq!(shown.len(), argv.len());
    }

    #[tokio::test]
    async fn helm_upgrade_without_chart_is_refused() {
        let mut h = upgrade();
        h.chart = None;
        let err = target(None).helm_upgrade_argv(&h).unwrap_err();
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

    /// A fake `helm` on PATH records its argv; `helm status` answers revision 4.
    #[tokio::test]
    async fn helm_runs_pinned_through_path() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("argv.log");
        let script = dir.path().join("helm");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\ncase \"$1\" in status) echo '{{\"name\":\"client\",\"version\":4}}';; esac\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let t = target(None).with_tool_env("PATH", path);
        assert_eq!(t.helm_revision("client").await.unwrap(), 4);
        let argv = t.helm_upgrade_argv(&upgrade()).unwrap();
        let out = t
            .run_tool(&argv, &BTreeMap::new(), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(out.status, Some(0));
        let recorded = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = recorded.lines().collect();
        assert_eq!(
            lines,
            [
                "status client --kube-context staging --namespace tracebloc -o json",
                "upgrade client tracebloc/client --kube-context staging --namespace tracebloc \
                 --reuse-values --set list=a\\,b --set requestsProxy.statelessTokens=true \
                 --set auth.key=s3cr3t --wait --timeout 5m",
            ]
        );
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
