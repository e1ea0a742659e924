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
mod canary_analysis;
mod cli_output;
mod cluster_load_scenarios;
mod drill_log;
mod drill_log_props;
mod e2e_smoke;
mod interrupt_trials;
mod kube_drills;
mod kube_interrupt_trials;
mod kube_schedule;
mod kube_target;
mod lab_drills;
mod lab_prometheus;
mod lab_proxy;
mod lab_trainer;
mod load_cli;
mod load_engine;
mod local_target;
mod no_secrets;
mod prometheus_checks;
mod prometheus_proxy;
mod recover_cli;
mod report_render;
mod report_schema;
mod scenario_errors;
mod scenario_fuzz;
mod scenario_vars;
mod scenarios;
