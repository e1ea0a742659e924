//! Judging what a Kubernetes target read for `logs`, `configmap` and `version` checks. The
//! data comes from the target (through the engine); this only decides.

use std::collections::BTreeMap;

use super::Judgement;
use crate::scenario::{ConfigmapCheck, LogsCheck, VersionCheck};

/// `matched` lines in the phase, from the logs of `read` containers (`errors`: reads that
/// failed). No container read is inconclusive.
pub fn judge_logs(
    check: &LogsCheck,
    matched: u32,
    read: usize,
    errors: &[String],
    phase: &str,
) -> Judgement {
    if read == 0 {
        let why = errors
            .first()
            .map_or("no container matched", String::as_str);
        return Judgement::inconclusive(format!(
            "no logs of `{}` could be read: {why}",
            check.selector.value
        ));
    }
    let too_few = check.min.is_some_and(|min| matched < min);
    let too_many = check.max.is_some_and(|max| matched > max);
    let bound = match (check.min, check.max) {
        (Some(min), Some(max)) => format!("{min}..={max}"),
        (Some(min), None) => format!("≥ {min}"),
        (None, Some(max)) => format!("≤ {max}"),
        (None, None) => "any".into(),
    };
    let threshold = if too_few {
        check.min
    } else {
        check.max.or(check.min)
    };
    let mut detail = format!(
        "{matched} line(s) matching /{}/ in {read} container log(s) of `{}` during phase {phase}",
        check.pattern.value, check.selector.value
    );
    if !errors.is_empty() {
        detail.push_str(&format!(
            " ({} log(s) unreadable: {})",
            errors.len(),
            errors.join("; ")
        ));
    }
    Judgement::compared(
        f64::from(matched),
        f64::from(threshold.unwrap_or(0)),
        !too_few && !too_many,
        (matched.to_string(), bound),
        detail,
    )
}

/// The largest of `samples` (`(bytes, keys)`, `None` bytes: absent) against the limits.
pub fn judge_configmap(
    check: &ConfigmapCheck,
    samples: &[(Option<u64>, u32)],
    phase: &str,
) -> Judgement {
    let present: Vec<(u64, u32)> = samples
        .iter()
        .filter_map(|(bytes, keys)| bytes.map(|b| (b, *keys)))
        .collect();
    if present.is_empty() {
        return Judgement::inconclusive(format!(
            "configmap `{}` was not read during phase {phase} ({} reading(s), none found it)",
            check.name.value,
            samples.len()
        ));
    }
    let max_bytes = present.iter().map(|(b, _)| *b).max().unwrap_or(0);
    let max_keys = present.iter().map(|(_, k)| *k).max().unwrap_or(0);
    let bytes_ok = check.max_bytes.is_none_or(|limit| max_bytes <= limit);
    let keys_ok = check.max_keys.is_none_or(|limit| max_keys <= limit);
    let detail = format!(
        "configmap `{}`: at most {max_bytes} bytes and {max_keys} key(s) over {} reading(s) during phase {phase}",
        check.name.value,
        present.len()
    );
    match (check.max_bytes, check.max_keys) {
        (Some(limit), _) if !keys_ok || check.max_keys.is_none() => Judgement::compared(
            max_bytes as f64,
            limit as f64,
            bytes_ok && keys_ok,
            (format!("{max_bytes} B"), format!("≤ {limit} B")),
            detail,
        ),
        (_, Some(limit)) => Judgement::compared(
            f64::from(max_keys),
            f64::from(limit),
            bytes_ok && keys_ok,
            (format!("{max_keys} keys"), format!("≤ {limit} keys")),
            detail,
        ),
        _ => Judgement::decided(bytes_ok && keys_ok, detail),
    }
}

/// A pod's name, images by container, and labels.
pub type PodFacts<'a> = (
    &'a str,
    &'a BTreeMap<String, String>,
    &'a BTreeMap<String, String>,
);

/// Whether every pod runs the image (in `container`, or every container) and carries the labels.
pub fn judge_version(check: &VersionCheck, pods: &[PodFacts<'_>]) -> Judgement {
    if pods.is_empty() {
        return Judgement::inconclusive(format!("no pod matches `{}`", check.selector.value));
    }
    let mut off = Vec::new();
    for (name, images, labels) in pods {
        if let Some(image) = &check.image {
            for (container, running) in images.iter() {
                let considered = check.container.as_ref().is_none_or(|c| c == container);
                if considered && running != &image.value {
                    off.push(format!("{name}/{container} runs `{running}`"));
                }
            }
            if let Some(c) = &check.container
                && !images.contains_key(c)
            {
                off.push(format!("{name} has no container `{c}`"));
            }
        }
        for (key, want) in check.label.iter().flatten() {
            match labels.get(key) {
                Some(have) if have == want => {}
                Some(have) => off.push(format!("{name} has {key}={have}")),
                None => off.push(format!("{name} has no label {key}")),
            }
        }
    }
    let detail = if off.is_empty() {
        format!(
            "all {} pod(s) of `{}` match",
            pods.len(),
            check.selector.value
        )
    } else {
        format!(
            "{} of {} pod(s) of `{}` differ: {}",
            off.len(),
            pods.len(),
            check.selector.value,
            off.join("; ")
        )
    };
    Judgement::decided(off.is_empty(), detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::CheckVerdict;
    use crate::scenario::Sp;

    fn logs(min: Option<u32>, max: Option<u32>) -> LogsCheck {
        LogsCheck {
            selector: Sp::unplaced("app=jobs-manager".parse().unwrap()),
            container: None,
            pattern: Sp::unplaced("ERROR".into()),
            max,
            min,
        }
    }

    #[test]
    fn logs_pass_within_bounds_fail_outside_and_are_inconclusive_unread() {
        assert_eq!(
            judge_logs(&logs(None, Some(0)), 0, 2, &[], "fault").verdict,
            CheckVerdict::Pass
        );
        assert_eq!(
            judge_logs(&logs(None, Some(0)), 1, 2, &[], "fault").verdict,
            CheckVerdict::Fail
        );
        assert_eq!(
            judge_logs(&logs(Some(1), None), 0, 2, &[], "fault").verdict,
            CheckVerdict::Fail
        );
        assert_eq!(
            judge_logs(&logs(Some(1), None), 3, 2, &[], "fault").verdict,
            CheckVerdict::Pass
        );
        assert_eq!(
            judge_logs(&logs(None, Some(0)), 0, 0, &["403".into()], "fault").verdict,
            CheckVerdict::Inconclusive
        );
    }

    fn configmap(max_bytes: Option<u64>, max_keys: Option<u32>) -> ConfigmapCheck {
        ConfigmapCheck {
            name: Sp::unplaced("revoke".into()),
            max_bytes,
            max_keys,
            interval: "1s".parse().unwrap(),
        }
    }

    #[test]
    fn configmap_is_judged_on_its_largest_reading() {
        let samples = [(Some(10), 1), (Some(900), 3), (None, 0)];
        assert_eq!(
            judge_configmap(&configmap(Some(1000), None), &samples, "p").verdict,
            CheckVerdict::Pass
        );
        assert_eq!(
            judge_configmap(&configmap(Some(500), None), &samples, "p").verdict,
            CheckVerdict::Fail
        );
        assert_eq!(
            judge_configmap(&configmap(Some(1000), Some(2)), &samples, "p").verdict,
            CheckVerdict::Fail
        );
        assert_eq!(
            judge_configmap(&configmap(None, Some(3)), &samples, "p").verdict,
            CheckVerdict::Pass
        );
        assert_eq!(
            judge_configmap(&configmap(Some(1), None), &[(None, 0)], "p").verdict,
            CheckVerdict::Inconclusive
        );
    }

    #[test]
    fn version_needs_every_pod_on_the_image_and_label() {
        let check = VersionCheck {
            selector: Sp::unplaced("app=proxy".parse().unwrap()),
            image: Some(Sp::unplaced("proxy:2".into())),
            container: Some("proxy".into()),
            label: Some(BTreeMap::from([("version".into(), "2".into())])),
        };
        let new = BTreeMap::from([
            ("proxy".to_string(), "proxy:2".to_string()),
            ("sidecar".into(), "s:1".into()),
        ]);
        let old = BTreeMap::from([("proxy".to_string(), "proxy:1".to_string())]);
        let v2 = BTreeMap::from([("version".to_string(), "2".to_string())]);
        assert_eq!(
            judge_version(&check, &[("a", &new, &v2), ("b", &new, &v2)]).verdict,
            CheckVerdict::Pass
        );
        let mixed = judge_version(&check, &[("a", &new, &v2), ("b", &old, &v2)]);
        assert_eq!(mixed.verdict, CheckVerdict::Fail);
        assert!(
            mixed.detail.contains("b/proxy runs `proxy:1`"),
            "{}",
            mixed.detail
        );
        assert_eq!(
            judge_version(&check, &[]).verdict,
            CheckVerdict::Inconclusive
        );
    }
}
