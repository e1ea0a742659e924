//! `validate`, `schema` and `plan`: everything that reads scenarios without changing anything.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::cli::PlanArgs;
use crate::exit::Outcome;
use crate::scenario::{self, Action, CheckKind, LoadedScenario, Scenario, TargetSpec};

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

/// `drillbook validate`: prints every problem of every file; 0 when all are valid, 2 otherwise.
pub fn validate_paths(paths: &[PathBuf]) -> Outcome {
    let files = match scenario_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot list scenarios: {e}");
            return Outcome::Invalid;
        }
    };
    if files.is_empty() {
        eprintln!(
            "error: no scenario files (*.yaml, *.yml) under {}",
            display_paths(paths)
        );
        return Outcome::Invalid;
    }
    let mut invalid = 0;
    for file in &files {
        match scenario::load(file) {
            Ok(loaded) => {
                let warnings =
                    scenario::FileDiagnostics::new(file, Some(loaded.source), loaded.warnings);
                eprint!("{warnings}");
                println!("ok      {}", file.display());
            }
            Err(diagnostics) => {
                invalid += 1;
                eprint!("{diagnostics}");
                println!("invalid {}", file.display());
            }
        }
    }
    println!(
        "{} of {} scenario files valid",
        files.len() - invalid,
        files.len()
    );
    if invalid == 0 {
        Outcome::Pass
    } else {
        Outcome::Invalid
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The JSON Schema of scenario format v1, as committed in `scenario.schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Scenario);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// `drillbook schema`.
pub fn write_schema(
    kind: crate::cli::SchemaKind,
    output: Option<&Path>,
) -> anyhow::Result<Outcome> {
    let text = match kind {
        crate::cli::SchemaKind::Scenario => schema_json(),
        crate::cli::SchemaKind::Report => crate::report::schema_json(),
        crate::cli::SchemaKind::Load => crate::load::report::schema_json(),
    };
    match output {
        Some(path) => std::fs::write(path, text)?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(Outcome::Pass)
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

/// One line describing what an action does, with secrets redacted.
pub fn describe_action(action: &Action) -> String {
    match action {
        Action::KillPods(k) => {
            let how_many = match (&k.count, &k.percent) {
                (_, Some(p)) => format!("{}% of", p.value),
                (Some(c), None) => c.to_string(),
                (None, None) => "1".into(),
            };
            let grace = match (k.force, k.grace_period) {
                (true, _) => ", force (grace 0s)".to_string(),
                (false, Some(g)) => format!(", grace {g}"),
                (false, None) => String::new(),
            };
            format!(
                "delete {how_many} pod(s) matching `{}` ({:?}{grace})",
                k.selector.value, k.mode
            )
            .to_lowercase()
        }
        Action::Evict(e) => format!(
            "evict {} pod(s) matching `{}`",
            e.count.unwrap_or(1),
            e.selector.value
        ),
        Action::KillProcess(k) => format!(
            "{:?} {} process(es) of `{}`",
            k.signal, k.count, k.name.value
        )
        .replace("Kill ", "SIGKILL ")
        .replace("Term ", "SIGTERM "),
        Action::StartProcess(p) => format!("start `{}`", p.name.value),
        Action::RolloutRestart(w) => format!("rollout restart `{}`", w.deployment.value),
        Action::Scale(s) => format!("scale `{}` to {} replicas", s.deployment.value, s.replicas),
        Action::PatchEnv(p) => format!(
            "set env {} on `{}` and roll it",
            p.env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            p.deployment.value
        ),
        Action::PatchConfigmap(c) => format!(
            "set keys {} of configmap `{}`",
            c.data.keys().cloned().collect::<Vec<_>>().join(", "),
            c.name.value
        ),
        Action::HelmUpgrade(h) => {
            let mut sets: Vec<String> = h.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
            sets.extend(h.set_secret.keys().map(|k| format!("{k}=<redacted>")));
            format!(
                "helm upgrade `{}` --set {}",
                h.release.value,
                sets.join(",")
            )
        }
        Action::Command(c) => format!("run `{}`", c.argv.join(" ")),
        Action::WaitRollout(w) => format!(
            "wait for rollout of `{}` (≤ {})",
            w.deployment.value, w.timeout
        ),
        Action::WaitReady(w) => match (&w.selector, &w.name) {
            (Some(s), _) => format!("wait until `{}` is ready (≤ {})", s.value, w.timeout),
            (None, Some(n)) => format!("wait until `{}` is ready (≤ {})", n.value, w.timeout),
            (None, None) => "wait until ready".into(),
        },
        Action::Wait(d) => format!("wait {d}"),
    }
}

/// What undo is registered before an action runs ("—" when the action needs none).
pub fn describe_undo(action: &Action) -> String {
    match action {
        Action::Scale(s) => format!(
            "scale `{}` back to its current replicas",
            s.deployment.value
        ),
        Action::PatchEnv(p) => format!("restore previous env of `{}`", p.deployment.value),
        Action::PatchConfigmap(c) => format!("restore previous data of `{}`", c.name.value),
        Action::HelmUpgrade(h) => match h.undo {
            scenario::HelmUndo::Rollback => format!(
                "helm rollback `{}` to its current revision",
                h.release.value
            ),
            scenario::HelmUndo::None => "none (scenario's finally)".into(),
        },
        Action::Command(c) => c
            .undo
            .as_ref()
            .map_or_else(|| "—".into(), |u| format!("run `{}`", u.join(" "))),
        Action::StartProcess(p) => format!("stop `{}`", p.name.value),
        Action::KillPods(_)
        | Action::Evict(_)
        | Action::KillProcess(_)
        | Action::RolloutRestart(_) => "— (the workload's controller replaces them)".into(),
        Action::WaitRollout(_) | Action::WaitReady(_) | Action::Wait(_) => "—".into(),
    }
}

/// The check table's "when" column.
fn check_when(kind: &CheckKind, phase: Option<&str>) -> String {
    let phase = phase.unwrap_or(match kind {
        CheckKind::Prometheus(p) if p.interval.is_some() => "sampled during the drill",
        _ => scenario::validate::WHOLE_RUN,
    });
    match kind {
        CheckKind::Prometheus(p) => match p.interval {
            Some(i) => format!("every {i}, {} samples", p.count),
            None => "at the end".into(),
        },
        _ => format!("phase {phase}"),
    }
}

pub fn check_what(kind: &CheckKind) -> String {
    match kind {
        CheckKind::Http(e) => e.value.clone(),
        CheckKind::Prometheus(p) => {
            let cond = p
                .success_condition
                .as_ref()
                .or(p.failure_condition.as_ref())
                .map(|c| c.value.as_str())
                .unwrap_or("");
            format!("{} → {cond}", p.query.value)
        }
        CheckKind::Jobs(j) => format!(
            "jobs `{}`: failed ≤ {}, succeeded ≥ {}{}",
            j.selector.value,
            j.max_failed.map_or("any".into(), |v| v.to_string()),
            j.min_succeeded.map_or("any".into(), |v| v.to_string()),
            j.min_failed
                .map(|v| format!(", failed ≥ {v} (expected)"))
                .unwrap_or_default()
        ),
        CheckKind::Restarts(r) => format!("restarts of `{}` ≤ {}", r.selector.value, r.max),
        CheckKind::ReadyWithin(r) => {
            format!("`{}` ready again within {}", r.selector.value, r.within)
        }
        CheckKind::Rolled(r) => format!(
            "`{}` {} after `{}`",
            r.deployment.value,
            if r.expect { "rolled" } else { "did not roll" },
            r.after.value
        ),
        CheckKind::Command(c) => format!("`{}` exits {}", c.argv.join(" "), c.exit_code),
        CheckKind::ExpectedFailure(e) => format!(
            "{} only for callers started before `{}`{}",
            e.status.value,
            e.callers_started_before.value,
            e.within
                .map(|w| format!(", over within {w}"))
                .unwrap_or_default()
        ),
    }
}

/// The offline part of a plan: target, load, timeline, checks.
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
                .map(|p| format!("{} ×{}", p.name.value, p.replicas))
                .collect::<Vec<_>>()
                .join(", ")
        )),
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
            load.method, load.url.value, load.connections
        ));
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
    for (i, step) in s.finally.iter().enumerate() {
        rows.push(TimelineRow {
            when: "finally".into(),
            step: step
                .value
                .name
                .as_ref()
                .map_or_else(|| format!("finally #{}", i + 1), |n| n.value.clone()),
            what: describe_action(&step.value.action),
            undo: "—".into(),
        });
    }
    let _ = after_previous;
    out.push_str(
        "\nTimeline (registered undos run in reverse order on every exit path, then `finally`)\n",
    );
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
            out.push_str(&format!("  {} for {}\n", g.value.http.value, g.value.for_));
        }
    }
    out
}

/// `drillbook plan`.
pub async fn plan(args: &PlanArgs) -> anyhow::Result<Outcome> {
    let loaded = match scenario::load(&args.scenario) {
        Ok(l) => l,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            return Ok(Outcome::Invalid);
        }
    };
    print!("{}", render_offline(&loaded, args.seed));
    if let TargetSpec::Kubernetes(spec) = &loaded.scenario.target {
        if args.offline {
            println!("\n(--offline: the cluster was not contacted)");
        } else {
            return resolve_in_cluster(&loaded, spec, args).await;
        }
    }
    Ok(Outcome::Pass)
}

/// The read-only part of a plan: which pods each step would hit right now, the values each undo
/// would restore, the exact (pinned, redacted) helm/kubectl argv, and pre-flight.
async fn resolve_in_cluster(
    loaded: &LoadedScenario,
    spec: &scenario::KubernetesTarget,
    args: &PlanArgs,
) -> anyhow::Result<Outcome> {
    use rand::SeedableRng;

    use crate::target::kube::KubeTarget;

    let target =
        match KubeTarget::connect(spec, args.context.as_deref(), args.allow_production).await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("refused: {e}");
                return Ok(Outcome::Refused);
            }
        };
    println!(
        "\nCluster  context `{}`, namespace `{}` (read-only: nothing is changed)",
        target.context(),
        target.namespace()
    );
    let seed = args.seed.or(loaded.scenario.seed);
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
            Action::HelmUpgrade(h) => match target.helm_upgrade_argv(h) {
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
            _ => "—".into(),
        };
        rows.push([name, resolved]);
    }
    let mut builder = tabled::builder::Builder::default();
    builder.push_record(["step", "in the cluster now"]);
    for r in rows {
        builder.push_record(r);
    }
    println!("{}", builder.build().with(Style::rounded()));
    if seed.is_none() {
        println!(
            "No seed given: the pods above are the candidates. Pass --seed N to see exactly which `run --seed N` would pick."
        );
    }
    let preflight = target.preflight(&loaded.scenario).await;
    let mut refused = false;
    println!("\nPre-flight");
    for p in &preflight {
        refused |= p.status == crate::report::model::PreflightStatus::Fail;
        println!("  {:<5} {}: {}", p.status.as_str(), p.name, p.detail);
    }
    Ok(if refused {
        Outcome::Refused
    } else {
        Outcome::Pass
    })
}

/// The pods a kill step would pick (with a seed) or could pick (without).
async fn pick_pods(
    target: &crate::target::kube::KubeTarget,
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
