//! `drillbook report`. Not built yet.

use std::path::PathBuf;

use clap::Args;

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A report.json written by `drillbook run`.
    pub report: PathBuf,
}

pub fn run(args: &ReportArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!(
        "`drillbook report {}`: renderers are not built yet (issue #6)",
        args.report.display()
    )
}
