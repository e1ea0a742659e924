//! What the test modules share. Each file is about one kind of test environment; a test
//! module names what it needs (`use crate::common::e2e::cluster;`).

pub mod alertmanager;
pub mod base;
pub mod boxed;
pub mod browser;
pub mod cli;
pub mod e2e;
pub mod lab;
pub mod lab_drill;
pub mod load;
pub mod prometheus;
pub mod pushgateway;
pub mod snapshot;
pub mod trial;
