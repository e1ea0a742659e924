//! The embedded lab: jobs-manager, requests-proxy and trainer (issue #4). Not built yet.

use clap::Subcommand;

use crate::exit::Outcome;

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// The requests-proxy.
    Proxy,
}

pub async fn run(command: LabCommand) -> anyhow::Result<Outcome> {
    anyhow::bail!("`drillbook lab {command:?}`: the lab is not built yet (issue #4)")
}
