//! The one way a test runs the `drillbook` binary: [`drillbook()`], a small builder over
//! [`std::process::Command`] in the spirit of just's `Test`.
//!
//! It starts from what every test wants: the binary cargo built for this test run, and no
//! `RUST_LOG` from the caller's shell (its log lines would land in the stderr that tests read).
//! Running it panics when the binary cannot be started at all, naming the arguments, so a call
//! site reads as what it runs and what it expects. [`Ran`] reads an [`Output`].

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// The `drillbook` binary of this build.
const BIN: &str = env!("CARGO_BIN_EXE_drillbook");

/// `drillbook` with no arguments yet and `RUST_LOG` removed.
pub fn drillbook() -> Drillbook {
    let mut command = Command::new(BIN);
    command.env_remove("RUST_LOG");
    // A test under GitHub Actions must not write into the job's real summary.
    command.env_remove("GITHUB_STEP_SUMMARY");
    Drillbook { command }
}

/// A `drillbook` invocation being put together; see [`drillbook()`].
#[derive(Debug)]
pub struct Drillbook {
    command: Command,
}

impl Drillbook {
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.command.env(key, value);
        self
    }

    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.command.envs(vars);
        self
    }

    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.command.env_remove(key);
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.command.current_dir(dir);
        self
    }

    pub fn stdin(&mut self, stdin: impl Into<Stdio>) -> &mut Self {
        self.command.stdin(stdin);
        self
    }

    pub fn stdout(&mut self, stdout: impl Into<Stdio>) -> &mut Self {
        self.command.stdout(stdout);
        self
    }

    pub fn stderr(&mut self, stderr: impl Into<Stdio>) -> &mut Self {
        self.command.stderr(stderr);
        self
    }

    /// The underlying command, for helpers that set up any process the same way (the trials'
    /// marker and capture files).
    pub fn command_mut(&mut self) -> &mut Command {
        &mut self.command
    }

    /// Runs it to the end, capturing stdout and stderr (unless redirected).
    pub fn output(&mut self) -> Output {
        self.command
            .output()
            .unwrap_or_else(|error| panic!("{}: {error}", self.describe()))
    }

    /// Runs it to the end with the streams as configured; its exit status.
    pub fn status(&mut self) -> ExitStatus {
        self.command
            .status()
            .unwrap_or_else(|error| panic!("{}: {error}", self.describe()))
    }

    /// Starts it.
    pub fn spawn(&mut self) -> Child {
        self.command
            .spawn()
            .unwrap_or_else(|error| panic!("{}: {error}", self.describe()))
    }

    /// Starts it, leaving a failure to start to the caller (a trial reports it as its result).
    pub fn try_spawn(&mut self) -> std::io::Result<Child> {
        self.command.spawn()
    }

    /// [`Drillbook::output`] on the tokio runtime, for a run that must end on its own within
    /// `limit`: past it the test fails and the process is killed. Spends the builder (its
    /// command moves to tokio).
    pub async fn output_within(&mut self, limit: Duration) -> Output {
        let describe = self.describe();
        let spent = std::mem::replace(&mut self.command, Command::new(BIN));
        let mut command = tokio::process::Command::from(spent);
        command.kill_on_drop(true);
        tokio::time::timeout(limit, command.output())
            .await
            .unwrap_or_else(|_| panic!("drillbook did not end on its own within {limit:?}"))
            .unwrap_or_else(|error| panic!("{describe}: {error}"))
    }

    fn describe(&self) -> String {
        let args: Vec<_> = self
            .command
            .get_args()
            .map(OsStr::to_string_lossy)
            .collect();
        format!("drillbook {} did not start", args.join(" "))
    }
}

/// What a test reads from a finished run.
pub trait Ran {
    /// stdout, lossily decoded.
    fn stdout_str(&self) -> String;
    /// stderr, lossily decoded.
    fn stderr_str(&self) -> String;
    /// Panics unless the run exited with `code`; the message carries stderr.
    fn assert_code(&self, code: i32) -> &Self;
}

impl Ran for Output {
    fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "drillbook exited {}; stderr:\n{}",
            self.status,
            self.stderr_str()
        );
        self
    }
}
