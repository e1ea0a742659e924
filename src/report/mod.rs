//! Report model and renderers (issue #6). Not built yet.

pub mod cli;
