//! The one integration test binary (`autotests = false` in Cargo.toml): each file of `tests/`
//! is a module here, named as the file, so a test's path is `FILE::TEST` (`kube_drills::...`)
//! and `cargo test --test main -- FILE::` runs one file. One binary links the crate once
//! instead of once per file. What the files share is [`common`]: plain modules, among them
//! [`common::cli`], the one way a test runs the `drillbook` binary.

mod common;

mod architecture;
mod box_apiserver_gone;
mod box_canary;
mod box_cluster_load;
mod box_drills;
mod box_faults;
mod box_history;
mod canary_analysis;
mod cli_output;
mod cluster_load_scenarios;
mod drill_log;
mod drill_log_props;
mod e2e_smoke;
mod fault_proxy;
mod history;
mod http_fault_scenarios;
mod interrupt_trials;
mod kube_drills;
mod kube_interrupt_trials;
mod kube_schedule;
mod kube_target;
mod lab_alerts;
mod lab_drills;
mod lab_faults;
mod lab_prometheus;
mod lab_proxy;
mod lab_trainer;
mod load_cli;
mod load_engine;
mod local_target;
mod no_secrets;
mod offline_refusals;
mod prometheus_checks;
mod prometheus_proxy;
mod recover_cli;
mod report_html;
mod report_render;
mod report_schema;
mod scenario_errors;
mod scenario_fuzz;
mod scenario_vars;
mod scenarios;

/// With `autotests = false` a file of `tests/` that is not a module here would never be built
/// or run, silently; this makes forgetting its `mod` line a failing test.
#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let main = include_str!("main.rs");
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&tests).expect("read tests/") {
        let path = entry.expect("an entry of tests/").path();
        let Some(stem) = path.file_stem().and_then(|stem| stem.to_str()) else {
            continue;
        };
        let is_rust = path.extension().is_some_and(|extension| extension == "rs");
        if is_rust && stem != "main" && !main.lines().any(|line| line == format!("mod {stem};")) {
            missing.push(stem.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "tests/{{{}}}.rs: add `mod NAME;` to tests/main.rs",
        missing.join(",")
    );
}
