//! Scenario items in words: one line per action, undo and check, shared by `plan`, the
//! drill's progress lines and its report timeline. Secrets are redacted here.

use super::{Action, CheckKind, HelmUndo};

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
                "delete {how_many} pod(s) matching `{}` ({}{grace})",
                k.selector.value, k.mode
            )
        }
        Action::Evict(e) => format!(
            "evict {} pod(s) matching `{}`",
            e.count.unwrap_or(1),
            e.selector.value
        ),
        Action::KillProcess(k) => {
            format!("{} {} process(es) of `{}`", k.signal, k.count, k.name.value)
        }
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
        Action::Command(c) => format!("run `{}`", argv_words(&c.argv)),
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
        Action::SetImage(i) => format!(
            "set image of container `{}` of {} to `{}`",
            i.container.value,
            workload_words(i),
            i.image.value
        ),
        Action::RolloutUndo(r) => format!(
            "roll deployment `{}` back to its previous revision",
            r.deployment.value
        ),
        Action::Patch(p) => format!(
            "{} patch {} `{}`{}",
            if p.json.is_some() { "json" } else { "merge" },
            p.kind.value,
            p.name.value,
            if p.subresource_status {
                " (status)"
            } else {
                ""
            }
        ),
        Action::WaitFor(w) => format!(
            "wait until {} `{}` has {} (≤ {})",
            w.kind.value, w.name.value, w.condition.value, w.timeout
        ),
        Action::HttpFault(f) => format!("fault {}: {}", f.at_in_words(), f.faults_in_words()),
    }
}

fn workload_words(step: &super::SetImage) -> String {
    step.workload().map_or_else(
        || "the workload".into(),
        |(kind, name)| format!("{} `{name}`", kind.kind().to_lowercase()),
    )
}

/// One line describing an abort guard.
pub fn describe_guard(guard: &super::Guard) -> String {
    if guard.for_.0.is_zero() {
        format!("{} (at once)", guard.condition())
    } else {
        format!("{} for {}", guard.condition(), guard.for_)
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
            HelmUndo::Rollback => format!(
                "helm rollback `{}` to its current revision",
                h.release.value
            ),
            HelmUndo::None => "none (scenario's finally)".into(),
        },
        Action::Command(c) => c
            .undo
            .as_ref()
            .map_or_else(|| "—".into(), |u| format!("run `{}`", argv_words(u))),
        Action::StartProcess(p) => format!("stop `{}`", p.name.value),
        Action::KillPods(_)
        | Action::Evict(_)
        | Action::KillProcess(_)
        | Action::RolloutRestart(_) => "— (the workload's controller replaces them)".into(),
        Action::SetImage(i) => format!(
            "set container `{}` of {} back to its current image{}",
            i.container.value,
            workload_words(i),
            if i.keep {
                " (only on an abort or interrupt: `keep: true`)"
            } else {
                ""
            }
        ),
        Action::RolloutUndo(r) => format!(
            "restore the pod template now live in `{}`",
            r.deployment.value
        ),
        Action::Patch(p) => format!(
            "restore the touched fields of {} `{}` as they are now",
            p.kind.value, p.name.value
        ),
        Action::HttpFault(f) => format!(
            "route {} back to its own backends; remove the fault proxy",
            f.at_in_words()
        ),
        Action::WaitRollout(_) | Action::WaitReady(_) | Action::Wait(_) | Action::WaitFor(_) => {
            "—".into()
        }
    }
}

/// The check table's "when" column.
pub fn check_when(kind: &CheckKind, phase: Option<&str>) -> String {
    let phase = phase.unwrap_or(match kind {
        CheckKind::Prometheus(p) if p.interval.is_some() => "sampled during the drill",
        _ => super::validate::WHOLE_RUN,
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
        CheckKind::Http(e) => e.value.to_string(),
        CheckKind::Prometheus(p) => {
            let cond = p
                .success_condition
                .as_ref()
                .or(p.failure_condition.as_ref())
                .map(|c| c.value.text())
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
        CheckKind::Logs(l) => format!(
            "lines matching /{}/ in logs of `{}`{}{}",
            l.pattern.value,
            l.selector.value,
            l.min.map(|m| format!(" ≥ {m}")).unwrap_or_default(),
            l.max.map(|m| format!(" ≤ {m}")).unwrap_or_default()
        ),
        CheckKind::Configmap(c) => format!(
            "configmap `{}`{}{}",
            c.name.value,
            c.max_bytes
                .map(|m| format!(" ≤ {m} bytes"))
                .unwrap_or_default(),
            c.max_keys
                .map(|m| format!(" ≤ {m} keys"))
                .unwrap_or_default()
        ),
        CheckKind::Version(v) => {
            let mut wants: Vec<String> = v
                .image
                .iter()
                .map(|i| format!("image `{}`", i.value))
                .collect();
            wants.extend(
                v.label
                    .iter()
                    .flatten()
                    .map(|(k, val)| format!("label {k}={val}")),
            );
            format!(
                "every pod of `{}` has {}",
                v.selector.value,
                wants.join(" and ")
            )
        }
        CheckKind::ReadyWithin(r) => {
            format!("`{}` ready again within {}", r.selector.value, r.within)
        }
        CheckKind::Rolled(r) => format!(
            "`{}` {} after `{}`",
            r.deployment.value,
            if r.expect { "rolled" } else { "did not roll" },
            r.after.value
        ),
        CheckKind::Command(c) => format!("`{}` exits {}", argv_words(&c.argv), c.exit_code),
        CheckKind::Compare(e) => e.value.to_string(),
        CheckKind::Alerts(a) => alerts_what(a),
        CheckKind::Regression(r) => super::regression::describe(r),
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

/// An argv in words: an element with spaces, quotes or other punctuation is single-quoted
/// (shell style), so a reader sees where each element starts and ends.
pub fn argv_words(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,^${}".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An `alerts` check in words: what must not fire, what must fire (and resolve) and when.
fn alerts_what(a: &crate::scenario::AlertsCheck) -> String {
    let mut parts = Vec::new();
    if let Some(pattern) = &a.pattern {
        parts.push(format!("no alert matching `{}` fires", pattern.value));
    }
    if !a.fire.is_empty() {
        let names: Vec<&str> = a.fire.iter().map(|n| n.value.as_str()).collect();
        let after = a
            .after
            .as_ref()
            .map_or("the phase start", |s| s.value.as_str());
        let within = a.within.map(|w| w.to_string()).unwrap_or_default();
        let mut words = format!("{} fire(s) within {within} of {after}", names.join(", "));
        if let Some(resolve) = a.resolve_within {
            let from = a
                .resolve_after
                .as_ref()
                .map_or("recovered", |s| s.value.as_str());
            words.push_str(&format!(" and resolve(s) within {resolve} of {from}"));
        }
        if a.alertmanager.is_some() {
            words.push_str(", reaching Alertmanager");
        }
        parts.push(words);
    }
    parts.join("; ")
}
