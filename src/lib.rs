//! drillbook: declarative chaos drills for Kubernetes and a local lab.
//!
//! `main.rs` only calls [`cmd::main`]. See ARCHITECTURE.md for the data flow of a drill and
//! the code map.

pub mod checks;
pub mod cmd;
pub mod drill_log;
pub mod engine;
pub mod exit;
pub mod fault;
pub mod history;
pub mod lab;
pub mod load;
pub mod plan;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod support;
pub mod targets;
pub mod telemetry;
pub mod units;
