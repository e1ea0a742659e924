//! What the `logs` and `version` checks look at, read at the end of the drill (before the
//! unwind): matching log lines since the drill started, and the images and labels of pods.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use regex::Regex;

use super::retry::retrying;
use super::{KubeError, KubeTarget};
use crate::scenario::LogsCheck;
use crate::targets::observe::PodVersion;
use crate::units::LabelSelector;

/// Lines read per container at most (a runaway logger must not exhaust memory).
const MAX_LOG_BYTES: i64 = 8 * 1024 * 1024;

/// The `pod/container`s read, the timestamps of the lines matching the check's pattern, and
/// the reads that failed.
pub type LogRead = (Vec<String>, Vec<Timestamp>, Vec<String>);

/// The timestamps of the lines of `log` (`kubectl logs --timestamps` form) that match `re`.
pub fn matching_lines(log: &str, re: &Regex) -> Vec<Timestamp> {
    log.lines()
        .filter_map(|line| {
            let (stamp, text) = line.split_once(' ')?;
            let at: Timestamp = stamp.parse().ok()?;
            re.is_match(text).then_some(at)
        })
        .collect()
}

impl KubeTarget {
    pub(super) async fn pods_of(&self, selector: &LabelSelector) -> Result<Vec<Pod>, KubeError> {
        let api = self.api::<Pod>();
        let params = ListParams::default().labels(&selector.to_string());
        let list = retrying("list pods", || api.list(&params))
            .await
            .map_err(|e| self.api_error(format!("list pods matching `{selector}`"), e))?;
        Ok(list.items)
    }

    /// Log lines matching the check's pattern written since `since` by the containers of the
    /// pods matching its selector.
    pub async fn log_matches(&self, check: &LogsCheck, since: Timestamp) -> LogRead {
        let (mut read, mut matches, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        let re = match check.pattern.get() {
            Ok(re) => re,
            Err(e) => {
                errors.push(format!(
                    "the pattern `{}` does not parse: {e}",
                    check.pattern.value
                ));
                return (read, matches, errors);
            }
        };
        let pods = match self.pods_of(&check.selector.value).await {
            Ok(pods) => pods,
            Err(e) => {
                errors.push(e.to_string());
                return (read, matches, errors);
            }
        };
        let api = self.api::<Pod>();
        for pod in pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let containers: Vec<String> = pod
                .spec
                .iter()
                .flat_map(|s| &s.containers)
                .map(|c| c.name.clone())
                .filter(|c| check.container.as_ref().is_none_or(|want| want == c))
                .collect();
            for container in containers {
                let params = LogParams {
                    container: Some(container.clone()),
                    since_time: Some(since),
                    timestamps: true,
                    limit_bytes: Some(MAX_LOG_BYTES),
                    ..LogParams::default()
                };
                match retrying("read logs", || api.logs(&name, &params)).await {
                    Ok(log) => {
                        read.push(format!("{name}/{container}"));
                        matches.extend(matching_lines(&log, re));
                    }
                    Err(e) => errors.push(format!("logs of {name}/{container}: {e}")),
                }
            }
        }
        (read, matches, errors)
    }

    /// The images (by container) and labels of the pods matching `selector` that are not
    /// being deleted.
    pub async fn pod_versions(
        &self,
        selector: &LabelSelector,
    ) -> Result<Vec<PodVersion>, KubeError> {
        Ok(self
            .pods_of(selector)
            .await?
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| PodVersion {
                name: p.metadata.name.clone().unwrap_or_default(),
                images: p
                    .spec
                    .iter()
                    .flat_map(|s| &s.containers)
                    .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                    .collect::<BTreeMap<_, _>>(),
                labels: p.metadata.labels.unwrap_or_default(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_timestamped_lines_matching_the_pattern_count() {
        let log = "2026-11-23T22:00:01.5Z INFO Token usage: 12\n\
                   2026-11-23T22:00:02Z ERROR boom\n\
                   not a timestamp Token usage\n\
                   2026-11-23T22:00:03Z INFO Token usage: 3\n";
        let re = Regex::new("Token usage").unwrap();
        let at = matching_lines(log, &re);
        assert_eq!(at.len(), 2);
        assert_eq!(at[1], "2026-11-23T22:00:03Z".parse::<Timestamp>().unwrap());
        assert!(matching_lines(log, &Regex::new("^ERROR").unwrap()).len() == 1);
    }
}
