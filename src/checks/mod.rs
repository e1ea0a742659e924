//! Checks and verdicts.

pub mod expr;
