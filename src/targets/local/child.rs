//! Starting one child process the way the supervisor needs it, and signalling its group.
//!
//! Every child gets its own process group (so a signal reaches whatever it forked) and
//! `PR_SET_PDEATHSIG(SIGKILL)` (so it dies with drillbook even when drillbook is SIGKILLed).
//!
//! PDEATHSIG caveats, both handled by how the supervisor spawns:
//! - It fires when the *thread* that forked the child exits, not the process. Children are
//!   spawned from tokio tasks and from the caller's async context, i.e. from runtime worker
//!   threads or the thread blocking on the runtime, which live until the runtime shuts down.
//!   Never spawn from `spawn_blocking` or `block_in_place`: those threads may exit while
//!   drillbook keeps running, and would take the child with them.
//! - It is not inherited by grandchildren. A command that forks (a shell running a pipeline)
//!   leaves its descendants to the process-group kill, which covers every exit path except a
//!   SIGKILL of drillbook itself.

use std::collections::VecDeque;
use std::io;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, getpid, getppid};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use super::config::ProcessConfig;
use super::lock;

/// Lines of output kept per instance for reports.
pub(super) const OUTPUT_LINES: usize = 200;
/// Longer lines are split; a child printing without newlines cannot exhaust memory.
const MAX_LINE_BYTES: u64 = 4096;

/// The last [`OUTPUT_LINES`] lines an instance printed, stdout and stderr interleaved.
pub(super) type OutputRing = Arc<Mutex<VecDeque<String>>>;

/// Appends a line, dropping the oldest once full.
pub(super) fn push_line(ring: &OutputRing, line: String) {
    let mut lines = lock(ring);
    if lines.len() == OUTPUT_LINES {
        lines.pop_front();
    }
    lines.push_back(line);
}

/// Spawns `config.command` in a new process group with stdout/stderr captured into `output`
/// (and the debug log, prefixed with `instance_name`). Returns the child and its pid, which is
/// also its process-group id.
pub(super) fn spawn(
    config: &ProcessConfig,
    instance_name: &str,
    output: &OutputRing,
) -> io::Result<(Child, u32)> {
    let (program, args) = config
        .command
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(&config.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Backstop for a supervisor task that is dropped without reaching its cleanup.
        .kill_on_drop(true)
        .process_group(0);
    let parent = getpid();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // code may run. It makes two raw syscalls (prctl, getppid) and builds an io::Error from an
    // errno, which neither allocates nor takes a lock.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || die_with_parent(parent));
    }
    let mut child = command.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("the child exited before its pid was read"))?;
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(capture(
            stdout,
            instance_name.to_string(),
            "stdout",
            output.clone(),
        ));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(capture(
            stderr,
            instance_name.to_string(),
            "stderr",
            output.clone(),
        ));
    }
    Ok((child, pid))
}

/// Runs in the child between fork and exec: ask for SIGKILL when the parent goes away, then
/// close the race where the parent died before the request was made.
fn die_with_parent(parent: Pid) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if getppid() != parent {
        return Err(io::Error::from(Errno::ESRCH));
    }
    Ok(())
}

async fn capture(
    stream: impl AsyncRead + Unpin,
    instance_name: String,
    stream_name: &'static str,
    output: OutputRing,
) {
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match (&mut reader)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut buffer)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buffer)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        tracing::debug!(target: "drillbook::local::output", "{instance_name} {stream_name}: {line}");
        push_line(&output, line);
    }
}

/// Sends `signal` to the process group `pgid`. Refuses group ids 0 and 1, which would signal
/// drillbook's own group or every process it may signal.
pub(super) fn signal_group(pgid: u32, signal: Signal) -> Result<(), Errno> {
    match i32::try_from(pgid) {
        Ok(raw) if raw > 1 => killpg(Pid::from_raw(raw), signal),
        _ => Err(Errno::EINVAL),
    }
}
