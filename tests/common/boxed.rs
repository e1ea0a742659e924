//! The box (`make e2e-box`, `e2e/box/`): a real one-node Kubernetes with the cutover system.
//!
//! Outside `make e2e-box` [`kubeconfig`] skips the test loudly; under `DRILLBOOK_REQUIRE_BOX=1`
//! (CI) a missing box fails it; `DRILLBOOK_E2E_DEFERRED=1` (the first, cluster-less pass of
//! `make test`, followed by `make e2e-box`) skips quietly.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::cli::{self, Drillbook};

/// The box's kubeconfig (context `box`), or `None`: skip.
pub fn kubeconfig() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(path) = var("DRILLBOOK_BOX_KUBECONFIG") {
        return Some(PathBuf::from(path));
    }
    if var("DRILLBOOK_E2E_DEFERRED").is_some_and(|value| value == "1") {
        return None;
    }
    assert!(
        var("DRILLBOOK_REQUIRE_BOX").is_none_or(|value| value != "1"),
        "DRILLBOOK_REQUIRE_BOX=1 but no box: run these tests with `make e2e-box`"
    );
    // Straight to the stderr handle: libtest captures `eprintln!`, and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPING: no box (DRILLBOOK_BOX_KUBECONFIG unset); run `make e2e-box` ***\n"
    );
    None
}

/// `kubectl` pinned to the box (the pinned tools of `e2e/tools.sh` when installed).
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    let tools = dirs_tools().join("kubectl");
    let program = if tools.exists() {
        tools
    } else {
        PathBuf::from("kubectl")
    };
    Command::new(program)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--context", "box"])
        .args(args)
        .output()
        .expect("kubectl runs")
}

pub fn dirs_tools() -> PathBuf {
    let cache = std::env::var_os("DRILLBOOK_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/drillbook"),
        PathBuf::from,
    );
    cache.join("tools/bin")
}

/// helm and kubectl for the drill's helm steps: the pinned ones first.
pub fn path_with_tools() -> std::ffi::OsString {
    let mut paths = vec![dirs_tools()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).expect("PATH joins")
}

/// `drillbook` against the box: its kubeconfig, `state` as the state directory, and the
/// pinned tools first on `PATH` for the drill's helm and kubectl steps.
pub fn drillbook(kubeconfig: &Path, state: &Path) -> Drillbook {
    let mut drillbook = cli::drillbook();
    drillbook
        .env("KUBECONFIG", kubeconfig)
        .env("DRILLBOOK_STATE_DIR", state)
        .env("PATH", path_with_tools());
    drillbook
}

/// Waits for a drillbook run to end by itself; kills it and fails the test after `within`.
pub fn wait_exit(child: &mut std::process::Child, within: std::time::Duration) -> i32 {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait for drillbook") {
            return status.code().unwrap_or(-1);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!("drillbook did not end within {within:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The `report.json` of the first run folder under `reports` (a test's own folder holds one
/// run), parsed; `None` when the run wrote none.
pub fn first_report(reports: &Path) -> Option<serde_json::Value> {
    std::fs::read_dir(reports)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("report.json"))
        .find(|p| p.exists())
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
}
