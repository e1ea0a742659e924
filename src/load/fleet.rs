//! Splitting one load over a fleet of in-cluster workers (issue #13): the command line of each
//! worker (`drillbook load --worker-output …`), so the fleet together sends what the load
//! configuration asks for. The rate is split evenly; callers are spread over the workers with
//! fleet-wide slots (caller tables of different workers never collide); stages and caller
//! lifetimes keep their meaning because every worker runs the same profile, scaled.

use super::LoadConfig;
use super::auth::TokenSource;
use super::profile::RateProfile;
use crate::units::HumanDuration;

/// The environment variable a worker reads a Secret-held bearer token from. The pod gets it
/// from a `secretKeyRef`, so the token never appears in the Job spec, logs or reports.
pub const WORKER_BEARER_ENV: &str = "DRILLBOOK_BEARER_TOKEN";

/// How the fleet is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetLayout {
    /// Workers in the fleet (at least 1).
    pub workers: u32,
    /// The fleet's time zero, Unix milliseconds: every worker's second 0 starts there.
    pub zero_unix_ms: i64,
}

/// Why a load cannot be split over workers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FleetError {
    /// Tokens from a file on the operator's machine cannot reach a pod.
    #[error(
        "`auth.bearer_file` is a file on this machine, which load workers in the cluster cannot \
         read: put the token in a Secret and use `auth.bearer_secret`"
    )]
    FileTokens,
    /// The body cannot be passed on a command line.
    #[error(
        "the request body is not UTF-8 text (or starts with `@`): cluster load passes it to \
         the workers on their command line"
    )]
    Body,
    /// Fewer callers than workers would leave a worker without a token.
    #[error(
        "{callers} caller(s) cannot be spread over {workers} workers: use at most {callers} workers"
    )]
    TooFewCallers { callers: usize, workers: u32 },
    /// No workers.
    #[error("a fleet needs at least one worker")]
    NoWorkers,
}

/// The callers of worker `index`: (count, first fleet slot). The first `callers % workers`
/// workers take one more.
pub fn callers_of(callers: usize, workers: u32, index: u32) -> (usize, usize) {
    let workers = workers.max(1) as usize;
    let index = index as usize;
    let base = callers / workers;
    let extra = callers % workers;
    let count = base + usize::from(index < extra);
    let first = index * base + index.min(extra);
    (count, first)
}

/// The arguments after `drillbook` for worker `index` of `layout`.
pub fn worker_args(
    config: &LoadConfig,
    layout: FleetLayout,
    index: u32,
) -> Result<Vec<String>, FleetError> {
    if layout.workers == 0 {
        return Err(FleetError::NoWorkers);
    }
    let share = 1.0 / f64::from(layout.workers);
    let mut args: Vec<String> = vec!["load".into(), config.url.clone(), "--worker-output".into()];
    let mut push = |flag: &str, value: String| {
        args.push(flag.into());
        args.push(value);
    };
    match &config.profile {
        RateProfile::Constant {
            per_second,
            duration,
        } => {
            push("--rate", format!("{}/s", per_second * share));
            push("--duration", HumanDuration(*duration).to_string());
        }
        RateProfile::Max { duration } => {
            push("--rate", "max".into());
            push("--duration", HumanDuration(*duration).to_string());
        }
        RateProfile::Stages(stages) => {
            for stage in stages {
                push(
                    "--stage",
                    format!(
                        "{}:{}/s",
                        HumanDuration(stage.duration),
                        stage.target_per_second * share
                    ),
                );
            }
        }
    }
    push(
        "--connections",
        config
            .connections
            .div_ceil(layout.workers as usize)
            .max(1)
            .to_string(),
    );
    if let Some(n) = config.requests_per_connection {
        push("--requests-per-connection", n.to_string());
    }
    push("--method", config.method.to_string());
    for (name, value) in &config.headers {
        push("--header", format!("{name}: {value}"));
    }
    if !config.body.is_empty() {
        let text = std::str::from_utf8(&config.body).map_err(|_| FleetError::Body)?;
        if text.starts_with('@') {
            return Err(FleetError::Body);
        }
        push("--body", text.to_string());
    }
    push("--timeout", HumanDuration(config.timeout).to_string());
    push("--max-lag", HumanDuration(config.max_lag).to_string());
    let mut slot_offset = 0;
    if let Some(auth) = &config.auth {
        match &auth.source {
            TokenSource::Env(_) => push("--bearer-env", WORKER_BEARER_ENV.into()),
            TokenSource::File(_) => return Err(FleetError::FileTokens),
            TokenSource::Url { url, field } => {
                push("--token-url", url.clone());
                push("--token-field", field.clone());
            }
        }
        if auth.callers < layout.workers as usize {
            return Err(FleetError::TooFewCallers {
                callers: auth.callers,
                workers: layout.workers,
            });
        }
        let (callers, first) = callers_of(auth.callers, layout.workers, index);
        slot_offset = first;
        push("--callers", callers.to_string());
        if let Some(lifetime) = auth.caller_lifetime {
            push("--caller-lifetime", HumanDuration(lifetime).to_string());
        }
    }
    if let Some(max) = config.max_requests {
        push(
            "--max-requests",
            max.div_ceil(u64::from(layout.workers)).to_string(),
        );
    }
    push("--worker-index", index.to_string());
    push("--caller-slot-offset", slot_offset.to_string());
    push("--start-at-unix-ms", layout.zero_unix_ms.to_string());
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{AuthConfig, Stage};
    use std::time::Duration;

    fn value_of<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    fn layout(workers: u32) -> FleetLayout {
        FleetLayout {
            workers,
            zero_unix_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn callers_cover_every_slot_once() {
        for callers in 1..20 {
            for workers in 1..=callers as u32 {
                let mut next = 0;
                for index in 0..workers {
                    let (count, first) = callers_of(callers, workers, index);
                    assert_eq!(first, next, "{callers} over {workers}, worker {index}");
                    assert!(count >= 1);
                    next += count;
                }
                assert_eq!(next, callers);
            }
        }
    }

    #[test]
    fn rate_and_stages_are_split_and_parse_back() {
        let mut config = LoadConfig::new(
            "http://10.252.0.80:8080/v1/train",
            RateProfile::Constant {
                per_second: 50.0,
                duration: Duration::from_secs(30),
            },
        );
        config.connections = 5;
        let args = worker_args(&config, layout(2), 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(value_of(&args, "--rate"), ["25/s"]);
        assert_eq!(value_of(&args, "--duration"), ["30s"]);
        assert_eq!(value_of(&args, "--connections"), ["3"]);
        assert_eq!(value_of(&args, "--worker-index"), ["1"]);
        assert_eq!(value_of(&args, "--start-at-unix-ms"), ["1700000000000"]);

        config.profile = RateProfile::Stages(vec![
            Stage {
                duration: Duration::from_millis(10_500),
                target_per_second: 30.0,
            },
            Stage {
                duration: Duration::from_secs(20),
                target_per_second: 30.0,
            },
        ]);
        let args = worker_args(&config, layout(4), 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(value_of(&args, "--stage"), ["10500ms:7.5/s", "20s:7.5/s"]);
        for rate in value_of(&args, "--stage") {
            let (duration, rate) = rate.split_once(':').unwrap_or_default();
            assert!(duration.parse::<HumanDuration>().is_ok());
            assert!(rate.parse::<crate::units::Rate>().is_ok());
        }
    }

    #[test]
    fn tokens_stay_out_of_the_arguments() {
        let mut config = LoadConfig::new(
            "http://svc:8080/",
            RateProfile::Max {
                duration: Duration::from_secs(1),
            },
        );
        config.auth = Some(AuthConfig {
            source: TokenSource::Env("OPERATOR_TOKEN".into()),
            callers: 5,
            caller_lifetime: Some(Duration::from_secs(20)),
        });
        let args = worker_args(&config, layout(2), 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(value_of(&args, "--bearer-env"), [WORKER_BEARER_ENV]);
        assert_eq!(value_of(&args, "--callers"), ["2"]);
        assert_eq!(value_of(&args, "--caller-slot-offset"), ["3"]);
        assert_eq!(value_of(&args, "--caller-lifetime"), ["20s"]);
        assert!(!args.iter().any(|a| a.contains("OPERATOR_TOKEN")));

        config.auth = Some(AuthConfig {
            source: TokenSource::File("/home/me/tokens".into()),
            callers: 2,
            caller_lifetime: None,
        });
        assert_eq!(
            worker_args(&config, layout(2), 0),
            Err(FleetError::FileTokens)
        );
        config.auth = Some(AuthConfig {
            source: TokenSource::Env("T".into()),
            callers: 1,
            caller_lifetime: None,
        });
        assert!(matches!(
            worker_args(&config, layout(2), 0),
            Err(FleetError::TooFewCallers { .. })
        ));
    }

    #[test]
    fn a_body_that_reads_as_a_file_reference_is_refused() {
        let mut config = LoadConfig::new(
            "http://svc/",
            RateProfile::Max {
                duration: Duration::from_secs(1),
            },
        );
        config.body = bytes::Bytes::from_static(b"@/etc/passwd");
        assert_eq!(worker_args(&config, layout(1), 0), Err(FleetError::Body));
        config.body = bytes::Bytes::from_static(b"{\"job\":1}");
        let args = worker_args(&config, layout(1), 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(value_of(&args, "--body"), ["{\"job\":1}"]);
    }
}
