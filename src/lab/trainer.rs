//! `lab trainer`: one training job. It gets a token, then calls the proxy once per step. K
//! consecutive 401s strand it (the ticket's stranded pod); an unreachable or restarting proxy
//! is waited out, but only until `--max-runtime`.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde::Deserialize;

use super::http::{Client, ClientResponse, error_chain};
use super::{LabError, TrainerConfig, base_url};
use crate::exit::Outcome;

/// One proxy or jobs-manager call gives up after this long (then counts as unavailable).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How a training job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainerExit {
    /// Every step done: exit 0.
    Finished,
    /// `--give-up-after` consecutive 401s: exit 3.
    Stranded,
    /// `--max-runtime` passed before the job finished: exit 4.
    TimedOut,
}

impl TrainerExit {
    /// The process outcome; its code (0, 3, 4) is what supervisors observe.
    pub const fn outcome(self) -> Outcome {
        match self {
            TrainerExit::Finished => Outcome::Pass,
            TrainerExit::Stranded => Outcome::Inconclusive,
            TrainerExit::TimedOut => Outcome::Aborted,
        }
    }
}

/// Answer of the jobs-manager's `POST /jobs`.
#[derive(Debug, Deserialize)]
struct IssuedToken {
    job_id: String,
    token: String,
}

/// What one proxy call told us.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Observation {
    Ok,
    Unauthorized { reason: String },
    Unavailable { detail: String },
}

impl Observation {
    fn from_call(result: Result<ClientResponse, super::http::HttpError>) -> Self {
        match result {
            Ok(response) if response.status == StatusCode::OK => Observation::Ok,
            Ok(response) if response.status == StatusCode::UNAUTHORIZED => {
                Observation::Unauthorized {
                    reason: json_field(&response.body, "reason")
                        .unwrap_or_else(|| "no reason given".into()),
                }
            }
            // 503 while the proxy starts, or anything else unexpected: retry, not a 401.
            Ok(response) => Observation::Unavailable {
                detail: format!("proxy answered {}", response.status),
            },
            Err(error) => Observation::Unavailable {
                detail: error_chain(&error),
            },
        }
    }

    fn same_kind(&self, other: &Observation) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// Counters of one run, for the progress lines.
#[derive(Debug, Default)]
struct Progress {
    done: u64,
    consecutive_401: u32,
    total_401: u64,
    unavailable: u64,
    last: Option<Observation>,
}

/// Runs the job to its end. Prints one line per state change on stdout.
pub async fn run(args: TrainerConfig) -> Result<TrainerExit, LabError> {
    let proxy_url = base_url("proxy-url", &args.proxy_url)?;
    let train_url = format!("{proxy_url}/v1/train");
    let started = Instant::now();
    let deadline = started + args.max_runtime.as_duration();
    let interval = args.interval.as_duration();
    let client = Client::new(CALL_TIMEOUT);

    let (job_id, token) = match args.token {
        Some(token) => (args.job_id.unwrap_or_else(|| "from-env".to_owned()), token),
        None => {
            let jobs_url = format!(
                "{}/jobs",
                base_url("jobs-manager-url", &args.jobs_manager_url)?
            );
            match acquire_token(&client, &jobs_url, deadline, interval).await {
                Some(issued) => (issued.job_id, issued.token),
                None => {
                    println!(
                        "gave up: no token from {jobs_url} within --max-runtime {}",
                        args.max_runtime
                    );
                    return Ok(TrainerExit::TimedOut);
                }
            }
        }
    };
    println!("token acquired: job {job_id}; {} steps to do", args.steps);

    let mut progress = Progress::default();
    while progress.done < args.steps {
        if Instant::now() >= deadline {
            println!(
                "gave up: --max-runtime {} reached with {}/{} steps done ({} calls unavailable)",
                args.max_runtime, progress.done, args.steps, progress.unavailable
            );
            return Ok(TrainerExit::TimedOut);
        }
        let observation = Observation::from_call(client.get(&train_url, Some(&token)).await);
        report_change(&progress, &observation, args.steps);
        match &observation {
            Observation::Ok => {
                progress.done += 1;
                progress.consecutive_401 = 0;
            }
            Observation::Unauthorized { reason } => {
                progress.consecutive_401 += 1;
                progress.total_401 += 1;
                if progress.consecutive_401 >= args.give_up_after {
                    println!(
                        "stranded: job {job_id} got {} consecutive 401s (last reason: {reason}) after {}/{} steps",
                        progress.consecutive_401, progress.done, args.steps
                    );
                    return Ok(TrainerExit::Stranded);
                }
            }
            // Neither counts towards K nor resets it: a restart says nothing about the token.
            Observation::Unavailable { .. } => progress.unavailable += 1,
        }
        progress.last = Some(observation);
        if progress.done < args.steps {
            tokio::time::sleep(interval).await;
        }
    }
    println!(
        "done: job {job_id} finished {} steps in {:.1}s ({} 401s, {} calls unavailable)",
        args.steps,
        started.elapsed().as_secs_f64(),
        progress.total_401,
        progress.unavailable
    );
    Ok(TrainerExit::Finished)
}

/// Prints a line when the kind of answer changes (first 200, first 401, proxy gone, recovered).
fn report_change(progress: &Progress, observation: &Observation, steps: u64) {
    let step = progress.done + 1;
    match (&progress.last, observation) {
        (Some(last), now) if last.same_kind(now) => {}
        (None, Observation::Ok) => println!("training: first step ok"),
        (Some(Observation::Unauthorized { .. }), Observation::Ok) => println!(
            "recovered: step {step}/{steps} ok after {} consecutive 401s",
            progress.consecutive_401
        ),
        (Some(Observation::Unavailable { .. }), Observation::Ok) => {
            println!("proxy back: step {step}/{steps} ok");
        }
        (_, Observation::Unauthorized { reason }) => {
            println!("first 401: step {step}/{steps} refused ({reason})");
        }
        (_, Observation::Unavailable { detail }) => {
            println!("proxy unavailable at step {step}/{steps}: {detail}; retrying");
        }
        (Some(Observation::Ok), Observation::Ok) => {}
    }
}

/// Asks the jobs-manager for a job token, retrying until `deadline`.
async fn acquire_token(
    client: &Client,
    jobs_url: &str,
    deadline: Instant,
    interval: Duration,
) -> Option<IssuedToken> {
    let mut last_problem = String::new();
    while Instant::now() < deadline {
        let problem = match client.post_json(jobs_url, &serde_json::json!({})).await {
            Ok(response) if response.status == StatusCode::OK => {
                match serde_json::from_slice::<IssuedToken>(&response.body) {
                    Ok(issued) => return Some(issued),
                    Err(error) => format!("unexpected answer: {error}"),
                }
            }
            Ok(response) => format!(
                "jobs-manager answered {} ({})",
                response.status,
                json_field(&response.body, "reason").unwrap_or_default()
            ),
            Err(error) => error_chain(&error),
        };
        if problem != last_problem {
            println!("waiting for a token: {problem}; retrying");
            last_problem = problem;
        }
        tokio::time::sleep(interval).await;
    }
    None
}

/// A string field of a JSON body, if the body is JSON and has it.
fn json_field(body: &[u8], field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get(field)?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn answer(status: StatusCode, body: &'static str) -> Observation {
        Observation::from_call(Ok(ClientResponse {
            status,
            body: Bytes::from_static(body.as_bytes()),
        }))
    }

    #[test]
    fn only_401_counts_as_unauthorized_and_503_is_retryable() {
        assert_eq!(answer(StatusCode::OK, "{}"), Observation::Ok);
        assert_eq!(
            answer(StatusCode::UNAUTHORIZED, r#"{"reason":"unknown_token"}"#),
            Observation::Unauthorized {
                reason: "unknown_token".into()
            }
        );
        assert!(matches!(
            answer(StatusCode::SERVICE_UNAVAILABLE, "starting"),
            Observation::Unavailable { .. }
        ));
        let refused = Observation::from_call(Err(super::super::http::HttpError::BadUrl {
            url: "x".into(),
        }));
        assert!(matches!(refused, Observation::Unavailable { .. }));
    }

    #[test]
    fn exit_codes_are_0_3_4() {
        assert_eq!(TrainerExit::Finished.outcome().code(), 0);
        assert_eq!(TrainerExit::Stranded.outcome().code(), 3);
        assert_eq!(TrainerExit::TimedOut.outcome().code(), 4);
    }
}
