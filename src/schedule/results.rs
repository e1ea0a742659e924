//! Results out of the cluster: an in-cluster run stores its report JSON in a labelled
//! ConfigMap (keeping the newest N per scenario), and `drillbook collect` fetches them, writes
//! the usual report files and appends one drill-log row per run, never twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::rbac::{SCENARIO_LABEL, dns_label, metadata};
use crate::drill_log::{self, AppendOutcome};
use crate::report::model::Report;
use crate::scenario::{LoadedScenario, TargetSpec};
use crate::targets::kube::{ConnectOptions, KubeError, KubeTarget};

/// Label marking a ConfigMap as a stored drill result.
pub const RESULT_LABEL: &str = "drillbook.dev/result";
/// Label holding the run id.
pub const RUN_ID_LABEL: &str = "drillbook.dev/run-id";
/// Key of the report JSON in a result ConfigMap.
pub const REPORT_KEY: &str = "report.json";

/// Why storing or collecting results failed.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// Only Kubernetes drills store results in a cluster.
    #[error("--store-results needs a Kubernetes target")]
    NotKubernetes,
    /// Connecting or an API call failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// An API call failed.
    #[error("{action} in namespace `{namespace}`: {}", crate::targets::kube::api_words(.error))]
    Api {
        action: String,
        namespace: String,
        /// Not a `#[source]`: its words are already in the message.
        error: Box<kube::Error>,
    },
    /// The report could not be serialized or written.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    /// A stored result is not a readable report.
    #[error("ConfigMap `{name}`: {message}")]
    BadResult { name: String, message: String },
    /// Appending to the drill log failed.
    #[error(transparent)]
    DrillLog(#[from] drill_log::DrillLogError),
}

/// What `store` did, printable as the run's one-line verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Scenario name.
    pub scenario: String,
    /// Run id.
    pub run_id: String,
    /// Verdict word.
    pub verdict: String,
    /// Namespace of the ConfigMap.
    pub namespace: String,
    /// The ConfigMap's name.
    pub config_map: String,
    /// Older results deleted to keep the retention count.
    pub pruned: usize,
}

impl std::fmt::Display for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "drill result: scenario={} run={} verdict={} stored=configmap/{} namespace={} pruned={}",
            self.scenario, self.run_id, self.verdict, self.config_map, self.namespace, self.pruned
        )
    }
}

fn api_error(action: &str, namespace: &str, source: kube::Error) -> ResultsError {
    ResultsError::Api {
        action: action.to_string(),
        namespace: namespace.to_string(),
        error: Box::new(source),
    }
}

/// Label values are at most 63 characters.
fn label_value(text: &str) -> String {
    text.chars().take(63).collect()
}

/// `drillbook-result-<scenario>-<run_id>`, a valid object name.
pub fn result_name(scenario: &str, run_id: &str) -> String {
    let name = format!(
        "drillbook-result-{}-{}",
        dns_label(scenario),
        dns_label(run_id)
    );
    name.chars().take(253).collect()
}

/// Connects the way the run did (in-cluster or the pinned kubeconfig context) and stores.
pub async fn store_after_run(
    loaded: &LoadedScenario,
    options: &ConnectOptions,
    report: &Report,
    keep: usize,
) -> Result<Stored, ResultsError> {
    let TargetSpec::Kubernetes(spec) = &loaded.scenario.target else {
        return Err(ResultsError::NotKubernetes);
    };
    let target = KubeTarget::connect_with(spec, options).await?;
    store(target.client(), target.namespace(), report, keep).await
}

/// Stores `report` as a result ConfigMap in `namespace`, then deletes all but the newest
/// `keep` results of the same scenario.
pub async fn store(
    client: &kube::Client,
    namespace: &str,
    report: &Report,
    keep: usize,
) -> Result<Stored, ResultsError> {
    let scenario = &report.scenario.name;
    let name = result_name(scenario, &report.run_id);
    let mut meta = metadata(&name, namespace, &label_value(scenario));
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(RESULT_LABEL.into(), "true".into());
    labels.insert(RUN_ID_LABEL.into(), label_value(&dns_label(&report.run_id)));
    let config_map = ConfigMap {
        metadata: meta,
        data: Some([(REPORT_KEY.to_string(), crate::report::to_json(report)?)].into()),
        ..ConfigMap::default()
    };
    let api = kube::Api::<ConfigMap>::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), &config_map)
        .await
        .map_err(|e| api_error("store the result ConfigMap", namespace, e))?;
    let pruned = prune(&api, namespace, scenario, keep).await?;
    Ok(Stored {
        scenario: scenario.clone(),
        run_id: report.run_id.clone(),
        verdict: report.verdict.as_str().to_string(),
        namespace: namespace.to_string(),
        config_map: name,
        pruned,
    })
}

fn selector(scenario: Option<&str>) -> String {
    match scenario {
        Some(s) => format!("{RESULT_LABEL}=true,{SCENARIO_LABEL}={}", label_value(s)),
        None => format!("{RESULT_LABEL}=true"),
    }
}

/// Result ConfigMaps, oldest first.
async fn list_results(
    api: &kube::Api<ConfigMap>,
    namespace: &str,
    scenario: Option<&str>,
) -> Result<Vec<ConfigMap>, ResultsError> {
    let params = ListParams::default().labels(&selector(scenario));
    let mut items = api
        .list(&params)
        .await
        .map_err(|e| api_error("list result ConfigMaps", namespace, e))?
        .items;
    items.sort_by(|a, b| {
        let key = |c: &ConfigMap| {
            (
                c.metadata.creation_timestamp.clone().map(|t| t.0),
                c.metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(items)
}

async fn prune(
    api: &kube::Api<ConfigMap>,
    namespace: &str,
    scenario: &str,
    keep: usize,
) -> Result<usize, ResultsError> {
    let items = list_results(api, namespace, Some(scenario)).await?;
    let excess = items.len().saturating_sub(keep.max(1));
    for old in &items[..excess] {
        let name = old.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            // Another run pruned it first.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(api_error("delete an old result", namespace, e)),
        }
    }
    Ok(excess)
}

/// One run `collect` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    /// Run id.
    pub run_id: String,
    /// Where its report files were written.
    pub report_dir: PathBuf,
    /// Whether a drill-log row was added (false: it was already there).
    pub appended: bool,
}

/// Fetches every stored result (of `scenario`, if given) in `namespace`, oldest first: writes
/// its report files under `report_parent` and appends its drill-log row to `runbook` (a run
/// already in the log is left alone, so collecting twice appends nothing new).
pub async fn collect(
    client: &kube::Client,
    namespace: &str,
    scenario: Option<&str>,
    runbook: &Path,
    report_parent: &Path,
) -> Result<Vec<Collected>, ResultsError> {
    let api = kube::Api::<ConfigMap>::namespaced(client.clone(), namespace);
    let mut collected = Vec::new();
    for config_map in list_results(&api, namespace, scenario).await? {
        let name = config_map.metadata.name.clone().unwrap_or_default();
        let bad = |message: String| ResultsError::BadResult {
            name: name.clone(),
            message,
        };
        let text = config_map
            .data
            .as_ref()
            .and_then(|d| d.get(REPORT_KEY))
            .ok_or_else(|| bad(format!("has no `{REPORT_KEY}` key")))?;
        let report: Report = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let dir = report_parent.join(crate::report::run_dir_name(&report));
        crate::report::write_all(&report, &dir)?;
        let entry = drill_log::entry(&report, runbook, &dir);
        let appended = drill_log::append(runbook, &entry)? != AppendOutcome::AlreadyPresent;
        collected.push(Collected {
            run_id: report.run_id,
            report_dir: dir,
            appended,
        });
    }
    Ok(collected)
}

/// A client for `context` of `kubeconfig` (default `$KUBECONFIG` or `~/.kube/config`), and
/// the namespace to read (`namespace`, else the context's). The current-context is never used.
pub async fn client_for(
    context: &str,
    namespace: Option<&str>,
    kubeconfig: Option<&Path>,
) -> Result<(kube::Client, String), KubeError> {
    crate::telemetry::install_crypto_provider();
    let kubeconfig_error = |message: String| KubeError::Kubeconfig {
        path: kubeconfig.map_or_else(
            || "($KUBECONFIG or ~/.kube/config)".into(),
            |p| p.display().to_string(),
        ),
        message,
    };
    let file = match kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    }
    .map_err(|e| kubeconfig_error(e.to_string()))?;
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(file, &options)
        .await
        .map_err(|e| kubeconfig_error(format!("context `{context}`: {e}")))?;
    let namespace = namespace.map_or_else(|| config.default_namespace.clone(), str::to_string);
    let client = kube::Client::try_from(config)
        .map_err(|e| kubeconfig_error(format!("context `{context}`: {e}")))?;
    Ok((client, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_names_are_valid_object_names() {
        assert_eq!(
            result_name("Proxy_Restart", "20261122-ab12"),
            "drillbook-result-proxy-restart-20261122-ab12"
        );
        assert!(result_name(&"x".repeat(300), "id").len() <= 253);
        assert_eq!(
            selector(Some("proxy-restart")),
            "drillbook.dev/result=true,drillbook.dev/scenario=proxy-restart"
        );
    }
}
