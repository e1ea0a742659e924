//! Load engine: open-model HTTP load with HDR histograms per 1-second window (issue #3).
//! Not built yet.

pub mod cli;
