//! The drill engine: runs one scenario against any target ([`drill`]), judges what was
//! observed ([`judge`]) and turns it into a report ([`report_build`]). See ARCHITECTURE.md for
//! the data flow; `cmd::run` strings the parts together.

pub mod alert_watch;
pub mod drill;
pub mod fault_effect;
pub mod fleet;
pub mod gather;
pub mod journal;
pub mod judge;
pub mod load_config;
pub mod phase_data;
pub mod phases;
pub mod pod_guards;
pub mod progress;
pub mod prometheus;
pub mod recover;
pub mod report_build;
pub mod signals;
pub mod undo;
pub mod windows;
