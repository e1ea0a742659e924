//! What `validate`, `schema` and `plan` show: everything that reads scenarios without
//! changing anything, rendered as text for the command-line edge to print.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::report::model::PreflightStatus;
use crate::scenario::Pos;
use crate::scenario::describe::{
    self, check_what, check_when, describe_action, describe_guard, describe_undo,
};
use crate::scenario::{self, Action, LoadedScenario, Scenario, TargetSpec};
use crate::targets::kube::{CommandPin, KubeError, KubeTarget, check_safety};

/// Every `*.yaml`/`*.yml` under the given files and directories, sorted.
pub fn scenario_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            collect_yaml(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// The JSON Schema of scenario format v1, as committed in `scenario.schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Scenario);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[derive(Tabled)]
struct TimelineRow {
    #[tabled(rename = "when")]
    when: String,
    #[tabled(rename = "step")]
    step: String,
    #[tabled(rename = "what")]
    what: String,
    #[tabled(rename = "undo registered before it runs")]
    undo: String,
}

/// The offline part of a plan: target, load, timeline, checks.
/// The silence as `plan` shows it: its matchers as sent, what stays audible, its expiry.
fn silence_line(s: &Scenario, silence: &scenario::SilenceSpec) -> String {
    let matchers: Vec<String> = s
        .silence_matchers()
        .iter()
        .map(ToString::to_string)
        .collect();
    let planned = s.planned_length();
    let kept = s.expected_alerts();
    let kept = if kept.is_empty() {
        String::new()
    } else {
        format!("; kept audible: {}", kept.join(", "))
    };
    format!(
        "Silence   {} at {}{kept}; created before the load (removal registered first), \
         removed when the drill ends; expires by itself {} after the start (planned {planned} \
         + margin {}){}\n",
        matchers.join(", "),
        silence.alertmanager,
        s.silence_length().unwrap_or(planned),
        silence.margin,
        if silence.required {
            ""
        } else {
            "; not required: runs unsilenced if refused"
        }
    )
}

pub fn render_offline(loaded: &LoadedScenario, seed: Option<u64>) -> String {
    let s = &loaded.scenario;
    let mut out = String::new();
    out.push_str(&format!(
        "Scenario  {} ({})\n",
        s.name.value,
        loaded.path.display()
    ));
    if !s.description.is_empty() {
        out.push_str(&format!("          {}\n", s.description.trim()));
    }
    for (name, value) in &loaded.vars {
        let given = loaded.given.contains(name);
        out.push_str(&format!(
            "Var       {name} = {value}{}\n",
            if given { "  (--var)" } else { "  (default)" }
        ));
    }
    match &s.target {
        TargetSpec::Kubernetes(k) => out.push_str(&format!(
            "Target    kubernetes context={} namespace={} (allowed contexts: {})\n",
            k.context.value,
            k.namespace.value,
            k.allowed_contexts
                .iter()
                .map(|c| c.value.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        TargetSpec::Local(l) => out.push_str(&format!(
            "Target    local processes: {}\n",
            l.processes
                .iter()
                .map(|p| format!("{} ×{}", p.name.value, p.replicas.value))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    if let Some(silence) = &s.silence {
        out.push_str(&silence_line(s, &silence.value));
    }
    if let Some(load) = &s.load {
        let rate = load.rate.as_ref().map_or_else(
            || {
                load.stages
                    .iter()
                    .map(|st| format!("{}→{}", st.value.duration, st.value.target))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            |r| r.value.to_string(),
        );
        let duration = load
            .duration
            .as_ref()
            .map(|d| d.value.to_string())
            .unwrap_or_else(|| "sum of stages".into());
        out.push_str(&format!(
            "Load      {} {} at {rate} for {duration}, {} connections\n",
            load.method, load.url.value, load.connections.value
        ));
        for (name, stream) in &load.streams {
            out.push_str(&format!(
                "Stream    {name}: {} {} at {rate} for {duration}, {} connections (measured on \
                 its own, for `compare`)\n",
                load.method, stream.url.value, load.connections.value
            ));
        }
        if let (scenario::LoadFrom::Cluster, Some(cluster)) = (load.from, &load.cluster) {
            let c = &cluster.value;
            let namespace = match &s.target {
                TargetSpec::Kubernetes(k) => k.namespace.value.clone(),
                TargetSpec::Local(_) => "-".into(),
            };
            let mut limits = [c.cpu.as_deref(), c.memory.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            if limits.is_empty() {
                limits = "namespace defaults".into();
            }
            out.push_str(&format!(
                "Workers   {} Job(s) drillbook-load-<run>-0..{} in namespace {namespace}, image \
                 {}, resources {limits}; created {} before time zero, deleted at the end \
                 (undo journaled first), each ends by itself after the load\n",
                c.workers,
                c.workers.saturating_sub(1),
                c.image,
                c.start_within
            ));
        }
        out.push_str(if load.steady_state {
            "Steady    before the first fault: a 2xx and at most half failed in the baseline, \
             else abort\n"
        } else {
            "Steady    not checked (steady_state: false)\n"
        });
    }
    out.push_str(&match seed.or(s.seed) {
        Some(seed) => format!("Seed      {seed}\n"),
        None => "Seed      chosen at run time and printed (pass --seed to replay)\n".into(),
    });
    let mut rows = Vec::new();
    let mut after_previous = false;
    for (i, step) in s.steps.iter().enumerate() {
        let when = match &step.value.at {
            Some(at) => format!("t+{}", at.value),
            None if i == 0 => "t+0s".into(),
            None => "after previous".into(),
        };
        after_previous |= step.value.at.is_none();
        rows.push(TimelineRow {
            when,
            step: step
                .value
                .name
                .as_ref()
                .map_or_else(|| format!("#{}", i + 1), |n| n.value.clone()),
            what: describe_action(&step.value.action),
            undo: describe_undo(&step.value.action),
        });
    }
    for (section, steps) in [("on abort", &s.on_abort), ("finally", &s.finally)] {
        for (i, step) in steps.iter().enumerate() {
            rows.push(TimelineRow {
                when: section.into(),
                step: step
                    .value
                    .name
                    .as_ref()
                    .map_or_else(|| format!("{section} #{}", i + 1), |n| n.value.clone()),
                what: describe_action(&step.value.action),
                undo: "—".into(),
            });
        }
    }
    let _ = after_previous;
    out.push_str(if s.on_abort.is_empty() {
        "\nTimeline (registered undos run in reverse order on every exit path, then `finally`)\n"
    } else {
        "\nTimeline (on an abort the `on abort` steps run first; registered undos run in reverse \
         order on every exit path, then `finally`)\n"
    });
    out.push_str(&Table::new(rows).with(Style::rounded()).to_string());
    out.push('\n');
    if !s.checks.is_empty() {
        let rows: Vec<[String; 3]> = s
            .checks
            .iter()
            .map(|c| {
                [
                    c.value.name.value.clone(),
                    check_when(
                        &c.value.kind,
                        c.value.phase.as_ref().map(|p| p.value.as_str()),
                    ),
                    check_what(&c.value.kind),
                ]
            })
            .collect();
        let mut builder = tabled::builder::Builder::default();
        builder.push_record(["check", "when", "asserts"]);
        for r in rows {
            builder.push_record(r);
        }
        out.push_str("\nChecks\n");
        out.push_str(&builder.build().with(Style::rounded()).to_string());
        out.push('\n');
    }
    if !s.abort_when.is_empty() {
        out.push_str("\nAbort when (checked every second)\n");
        for g in &s.abort_when {
            let described = describe_guard(&g.value);
            match &g.value.name {
                Some(name) => out.push_str(&format!("  {}: {described}\n", name.value)),
                None => out.push_str(&format!("  {described}\n")),
            }
        }
    }
    out
}

/// The read-only part of a plan: which pods each step would hit right now, the values each undo
/// would restore, the exact (pinned, redacted) helm/kubectl argv, and pre-flight.
/// Returns the text and whether pre-flight failed; a target that cannot be connected to
/// (safety rules, kubeconfig) is an error.
pub async fn render_in_cluster(
    loaded: &LoadedScenario,
    spec: &scenario::KubernetesTarget,
    context: Option<&str>,
    seed: Option<u64>,
    allow_production: bool,
) -> Result<(String, bool), KubeError> {
    use rand::SeedableRng;

    let target = KubeTarget::connect(spec, context, allow_production).await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nCluster  context `{}`, namespace `{}` (read-only: nothing is changed)",
        target.context(),
        target.namespace()
    );
    let seed = seed.or(loaded.scenario.seed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.unwrap_or_default());
    let mut rows: Vec<[String; 2]> = Vec::new();
    for (i, step) in loaded.scenario.steps.iter().enumerate() {
        let name = step
            .value
            .name
            .as_ref()
            .map_or_else(|| format!("#{}", i + 1), |n| n.value.clone());
        let resolved = match &step.value.action {
            Action::KillPods(k) => pick_pods(&target, k, seed.is_some(), &mut rng).await,
            Action::Evict(e) => pick_pods(&target, &e.as_kill(), seed.is_some(), &mut rng).await,
            Action::Scale(sc) => match target.replicas(&sc.deployment.value).await {
                Ok(now) => format!("replicas {now} → {} (undo restores {now})", sc.replicas),
                Err(e) => format!("error: {e}"),
            },
            Action::PatchEnv(p) => match target
                .env_of(&p.deployment.value, p.container.as_deref())
                .await
            {
                Ok(now) => p
                    .env
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}: {} → {v}",
                            now.get(k)
                                .cloned()
                                .flatten()
                                .unwrap_or_else(|| "(unset)".into())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                Err(e) => format!("error: {e}"),
            },
            Action::HelmUpgrade(h) => match target.helm_upgrade_argv(h, None) {
                Ok(argv) => KubeTarget::redacted(&argv, h).join(" "),
                Err(e) => format!("error: {e}"),
            },
            Action::Command(c) => match target.pin_command(&c.argv) {
                Ok(argv) => argv.join(" "),
                Err(e) => format!("refused: {e}"),
            },
            Action::WaitReady(w) => match &w.selector {
                Some(sel) => match target.matching_pods(&sel.value).await {
                    Ok(pods) => format!("{} pod(s) match `{}` now", pods.len(), sel.value),
                    Err(e) => format!("error: {e}"),
                },
                None => "—".into(),
            },
            Action::HttpFault(f) => match &f.service {
                Some(service) => match target.interposition_plan(&service.value).await {
                    Ok(plan) => plan.words(&service.value),
                    Err(e) => format!("refused: {e}"),
                },
                None => "—".into(),
            },
            _ => "—".into(),
        };
        rows.push([name, resolved]);
    }
    let mut builder = tabled::builder::Builder::default();
    builder.push_record(["step", "in the cluster now"]);
    for r in rows {
        builder.push_record(r);
    }
    let _ = writeln!(out, "{}", builder.build().with(Style::rounded()));
    if seed.is_none() {
        out.push_str(
            "No seed given: the pods above are the candidates. Pass --seed N to see exactly which `run --seed N` would pick.\n",
        );
    }
    let preflight = target.preflight(&loaded.scenario).await;
    let mut refused = false;
    out.push_str("\nPre-flight\n");
    for p in &preflight {
        refused |= p.status == PreflightStatus::Fail;
        let _ = writeln!(out, "  {:<5} {}: {}", p.status.as_str(), p.name, p.detail);
    }
    Ok((out, refused))
}

/// The pods a kill step would pick (with a seed) or could pick (without).
async fn pick_pods(
    target: &KubeTarget,
    k: &scenario::KillPods,
    seeded: bool,
    rng: &mut rand::rngs::StdRng,
) -> String {
    let pods = match target.matching_pods(&k.selector.value).await {
        Ok(p) => p,
        Err(e) => return format!("error: {e}"),
    };
    if !seeded {
        let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
        return format!(
            "{} candidate(s) for `{}`: {}",
            names.len(),
            k.selector.value,
            names.join(", ")
        );
    }
    match target.pick(&pods, k, rng) {
        Ok(picked) => format!(
            "would delete: {}",
            picked
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => format!("refused: {e}"),
    }
}

/// A run-time safety rule that refuses this scenario, decided without a cluster.
#[derive(Debug)]
pub struct Refusal {
    /// Where the refused thing is written.
    pub pos: Pos,
    /// The step, check or target it is about.
    pub what: String,
    pub error: KubeError,
}

/// `step `wipe` (line 10): refusing …`: the one wording of a refusal, in `plan` and `run`.
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (line {}): {}", self.what, self.pos.line, self.error)
    }
}

/// Which run-time options the rules are applied with (`--context`, `--allow-production`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SafetyOptions<'a> {
    pub context: Option<&'a str>,
    pub allow_production: bool,
}

/// Every refusal `run` would make that needs no cluster: the context and namespace pin and the
/// production rule, and every kubectl/helm argv (steps, their undos, `on_abort`, `finally`,
/// pre-flight). A `count:` above `max_pods` is a validation error already; percent-based kills
/// need the pod list and are left to the in-cluster plan and the run.
pub fn offline_refusals(loaded: &LoadedScenario, options: SafetyOptions<'_>) -> Vec<Refusal> {
    let TargetSpec::Kubernetes(spec) = &loaded.scenario.target else {
        return Vec::new();
    };
    let pinned = match check_safety(spec, options.context, options.allow_production) {
        Ok(pinned) => pinned,
        Err(error) => {
            return vec![Refusal {
                pos: spec.context.pos,
                what: "target".into(),
                error,
            }];
        }
    };
    let kubeconfig = spec.kubeconfig.as_deref().map(Path::new);
    let pin = CommandPin {
        context: &pinned.context,
        namespace: &pinned.namespace,
        allowed_namespaces: &pinned.allowed_namespaces,
        kubeconfig,
    };
    let s = &loaded.scenario;
    let mut refusals = Vec::new();
    let sections = [
        ("", &s.steps),
        ("on abort ", &s.on_abort),
        ("finally ", &s.finally),
    ];
    for (prefix, steps) in sections {
        for (i, step) in steps.iter().enumerate() {
            let what = step
                .value
                .name
                .as_ref()
                .map_or_else(|| format!("{prefix}#{}", i + 1), |n| n.value.clone());
            if let Action::Command(c) = &step.value.action {
                for argv in std::iter::once(&c.argv).chain(&c.undo) {
                    if let Err(error) = pin.apply(argv) {
                        refusals.push(Refusal {
                            pos: step.pos,
                            what: format!("step `{what}`"),
                            error,
                        });
                    }
                }
            }
        }
    }
    for check in &s.preflight {
        if let scenario::PreflightCheck::Command(c) = &check.value
            && let Err(error) = pin.apply(&c.argv)
        {
            refusals.push(Refusal {
                pos: check.pos,
                what: format!("pre-flight `{}`", describe::argv_words(&c.argv)),
                error,
            });
        }
    }
    refusals
}

/// The refusals as `plan` shows them.
pub fn render_refusals(refusals: &[Refusal]) -> String {
    let mut out = String::new();
    if refusals.is_empty() {
        return out;
    }
    out.push_str("\nRefused (run would refuse these before changing anything)\n");
    for r in refusals {
        let _ = writeln!(out, "  refused: {r}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn loaded(steps: &str) -> LoadedScenario {
        let source = format!(
            "apiVersion: drillbook/v1\nname: r\ntarget:\n  kubernetes:\n    context: staging\n    \
             namespace: shop\n    allowed_contexts: [staging, prod-eu]\nsteps:\n{steps}\
             checks:\n  - name: ok\n    restarts: {{selector: app=x, max: 0}}\n"
        );
        scenario::load_source(Path::new("r.yaml"), source).expect("valid")
    }

    /// Issue #22: `kubectl delete pods --all -nkube-system` used to plan as "run …" and be
    /// refused only when the drill reached it.
    #[test]
    fn an_argv_outside_the_pin_is_refused_offline_at_its_step() {
        let l = loaded(
            "  - name: wipe\n    command: {argv: [kubectl, delete, pods, --all, -nkube-system]}\n\
             \x20 - name: fine\n    command: {argv: [kubectl, get, pods], undo: [helm, --kube-context, other, list]}\n",
        );
        let refusals = offline_refusals(&l, SafetyOptions::default());
        let found: Vec<(u32, &str)> = refusals
            .iter()
            .map(|r| (r.pos.line, r.what.as_str()))
            .collect();
        assert_eq!(
            found,
            [(9, "step `wipe`"), (11, "step `fine`")],
            "{refusals:?}"
        );
        assert!(refusals[0].error.to_string().contains("kube-system"));
        assert!(refusals[1].error.to_string().contains("context `other`"));
        let shown = render_refusals(&refusals);
        assert!(shown.contains("refused: step `wipe` (line 9)"), "{shown}");
    }

    #[test]
    fn the_context_pin_and_production_rule_are_applied_offline() {
        let l = loaded("  - name: fine\n    command: {argv: [kubectl, get, pods]}\n");
        assert!(offline_refusals(&l, SafetyOptions::default()).is_empty());
        let elsewhere = SafetyOptions {
            context: Some("other"),
            allow_production: false,
        };
        let refusals = offline_refusals(&l, elsewhere);
        assert!(
            matches!(
                refusals[..],
                [Refusal {
                    error: KubeError::ContextNotAllowed { .. },
                    ..
                }]
            ),
            "{refusals:?}"
        );
        let prod = SafetyOptions {
            context: Some("prod-eu"),
            allow_production: false,
        };
        assert!(matches!(
            offline_refusals(&l, prod)[..],
            [Refusal {
                error: KubeError::Production { .. },
                ..
            }]
        ));
        let allowed = SafetyOptions {
            allow_production: true,
            ..prod
        };
        assert!(offline_refusals(&l, allowed).is_empty());
    }
}
