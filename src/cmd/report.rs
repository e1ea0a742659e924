//! `drillbook report`: render a `report.json` in another format.

use std::path::PathBuf;

use clap::Args;

use crate::exit::Outcome;
use crate::report::Format;

/// Arguments of `drillbook report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A report.json written by `drillbook run`.
    pub report: PathBuf,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Also push the report's results to this Prometheus Pushgateway (e.g. a run's that could
    /// not reach it); exit 6 when the push fails.
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
}

/// Renders the report. Exits 0 when it was rendered, whatever the drill's verdict: this
/// command reports, it does not judge (`drillbook run` carries the verdict's exit code).
pub fn run(args: &ReportArgs) -> anyhow::Result<Outcome> {
    let report = crate::report::load(&args.report)?;
    let color = args.output.is_none() && super::terminal::stdout_color();
    let text = match (args.format, &args.output) {
        // A terminal gets tables that fit it; files get the full text.
        (Format::Table, None) => {
            crate::report::table::render_fitted(&report, color, super::terminal::stdout_width())
        }
        _ => crate::report::render(&report, args.format, color)?,
    };
    super::terminal::write_output(args.output.as_deref(), &text)?;
    if let Some(url) = &args.pushgateway {
        let dir = args.report.parent().unwrap_or(std::path::Path::new("."));
        if !super::runtime()?.block_on(super::collect::push_results(url, &report, dir)) {
            return Ok(Outcome::Unreported);
        }
    }
    Ok(Outcome::Pass)
}
