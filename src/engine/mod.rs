//! The drill engine: runs one scenario end to end.

use crate::cli::RunArgs;
use crate::exit::Outcome;

pub async fn run_cli(args: RunArgs) -> anyhow::Result<Outcome> {
    let loaded = match crate::scenario::load(&args.scenario) {
        Ok(l) => l,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            return Ok(Outcome::Invalid);
        }
    };
    anyhow::bail!(
        "scenario `{}` is valid, but `run` cannot execute it yet: the drill engine is not built",
        loaded.scenario.name.value
    )
}
