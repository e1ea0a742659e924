//! Running commands for `command` steps and checks: argv only (no shell), a timeout, and the
//! output kept for the report.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

/// Why a command produced no output to judge.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("empty argv")]
    EmptyArgv,
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{argv}` did not finish within {}", crate::units::HumanDuration(*.timeout))]
    TimedOut { argv: String, timeout: Duration },
    #[error("`{program}` failed: {source}")]
    Wait {
        program: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// Exit code; `None` when killed by a signal or the timeout.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// How a command ended, in words: `exit 1`, or `killed by a signal` (no exit code).
pub fn status_words(status: &Option<i32>) -> String {
    status.map_or_else(
        || "killed by a signal".into(),
        |code| format!("exit {code}"),
    )
}

impl CommandOutput {
    /// How it ended, in words (see [`status_words`]).
    pub fn status_text(&self) -> String {
        status_words(&self.status)
    }

    pub fn stderr_tail(&self) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" / ")
    }
}

/// Runs `argv` with extra `env`, killing it after `timeout`.
pub async fn run(
    argv: &[String],
    env: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    run_unsetting(argv, env, &[], timeout).await
}

/// [`run`], with the inherited variables `unset` removed from the child's environment.
pub async fn run_unsetting(
    argv: &[String],
    env: &BTreeMap<String, String>,
    unset: &[&str],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let (program, args) = argv.split_first().ok_or(CommandError::EmptyArgv)?;
    let mut command = tokio::process::Command::new(program);
    for name in unset {
        command.env_remove(name);
    }
    command
        .args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|source| CommandError::Spawn {
        program: program.clone(),
        source,
    })?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(CommandError::TimedOut {
            argv: argv.join(" "),
            timeout,
        }),
        Ok(Err(source)) => Err(CommandError::Wait {
            program: program.clone(),
            source,
        }),
        Ok(Ok(out)) => Ok(CommandOutput {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unset_variables_are_not_inherited() {
        // HOME is set wherever tests run; the child must not see it once unset.
        assert!(std::env::var_os("HOME").is_some());
        let argv: Vec<String> = ["sh", "-c", "echo ${HOME:-gone}"]
            .iter()
            .map(ToString::to_string)
            .collect();
        let kept = run(&argv, &BTreeMap::new(), Duration::from_secs(5)).await;
        assert_ne!(kept.map(|o| o.stdout).unwrap_or_default().trim(), "gone");
        let out = run_unsetting(&argv, &BTreeMap::new(), &["HOME"], Duration::from_secs(5)).await;
        assert_eq!(out.map(|o| o.stdout).unwrap_or_default().trim(), "gone");
    }
}
