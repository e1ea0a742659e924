//! `drillbook load`. Not built yet.

use clap::Args;

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Target URL.
    pub url: String,
}

pub async fn run(args: LoadArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!(
        "`drillbook load {}`: the load engine is not built yet (issue #3)",
        args.url
    )
}
