//! Low-level helpers that both the engine and the targets use, and that know nothing of
//! either: running an argv with a timeout, asking a URL for its status, Alertmanager's API. They sit below both
//! so that neither has to import the other for them.

pub mod alertmanager;
pub mod command;
pub mod fs;
pub mod http;
