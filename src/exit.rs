//! Exit codes: chosen once, used by every command, documented in README and `--help`.

use std::process::ExitCode;

/// How a command ended. The numeric values are part of drillbook's interface.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 0 — every check passed.
    Pass,
    /// 1 — at least one check failed.
    Fail,
    /// 2 — usage, scenario or input error; nothing was run.
    Invalid,
    /// 3 — no check failed, but at least one had no data to decide on.
    Inconclusive,
    /// 4 — an abort guard tripped or the drill hit an error mid-way; undos ran.
    Aborted,
    /// 5 — pre-flight or a safety rule refused to start; nothing was changed.
    Refused,
    /// 6 — the drill passed but its report, or the drill-log row asked for with `--drill-log`,
    /// could not be written: a pass nobody can look up is not a pass. Any other verdict keeps
    /// its own (already non-zero) code.
    Unreported,
    /// 130 — interrupted by SIGINT/SIGTERM; undos ran.
    Interrupted,
}

impl Outcome {
    pub const fn code(self) -> u8 {
        match self {
            Outcome::Pass => 0,
            Outcome::Fail => 1,
            Outcome::Invalid => 2,
            Outcome::Inconclusive => 3,
            Outcome::Aborted => 4,
            Outcome::Refused => 5,
            Outcome::Unreported => 6,
            Outcome::Interrupted => 130,
        }
    }

    /// The text shown in `--help` and the README.
    pub const TABLE: &'static str = "\
Exit codes:
  0    pass          every check passed
  1    fail          at least one check failed
  2    invalid       usage, scenario or input error; nothing was run
  3    inconclusive  no check failed, but some had no data to decide on
  4    aborted       an abort guard tripped or the drill hit an error; undos ran
  5    refused       pre-flight or a safety rule refused to start; nothing changed
  6    unreported    the drill passed but its report or drill-log row could not be written
  130  interrupted   SIGINT/SIGTERM; undos ran";
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        ExitCode::from(outcome.code())
    }
}
