//! Running commands for `command` steps and checks: argv only (no shell), a timeout, and the
//! output kept for the report.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// Exit code; `None` when killed by a signal or the timeout.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
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
) -> Result<CommandOutput, String> {
    let (program, args) = argv.split_first().ok_or("empty argv")?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(format!(
            "`{}` did not finish within {timeout:?}",
            argv.join(" ")
        )),
        Ok(Err(e)) => Err(format!("`{program}` failed: {e}")),
        Ok(Ok(out)) => Ok(CommandOutput {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
    }
}
