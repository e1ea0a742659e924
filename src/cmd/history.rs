//! `drillbook history`: the runs of each scenario across time, from the reports folder's
//! history index (and any report folder it does not list yet): a table, Markdown or JSON, an
//! SVG trend chart per scenario, and `--fail-on-regression` for CI.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use crate::exit::Outcome;
use crate::history::{self, Filter, HistoryView};

/// Arguments of `drillbook history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Scenario names to show (default: every scenario with runs).
    #[arg(value_name = "SCENARIO")]
    pub scenarios: Vec<String>,
    /// Folder holding the runs' report folders (`run --report-dir`, `collect --report-dir`).
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = HistoryFormat::Table)]
    pub format: HistoryFormat,
    /// Only runs started since then: `7d`, `24h`, `2026-12-01` or an RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Rows per scenario: its latest N runs (the summary counts every matching run).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub last: usize,
    /// Only runs on this kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// Only runs in this namespace.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Folder the SVG trend charts are written to, one per scenario (default: REPORT_DIR/trends).
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,
    /// Write no trend charts.
    #[arg(long, conflicts_with = "charts")]
    pub no_charts: bool,
    /// Earlier passing runs each run is compared with (their median).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub baseline_runs: u32,
    /// Fewer earlier passing runs than this: the comparison is inconclusive, never a pass.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub min_runs: u32,
    /// Exit 1 when the latest run of a shown scenario regressed against its baseline (p95
    /// +50 % or +10 ms, 401/5xx rate +1pp per phase; time to recover +50 % or +10s).
    #[arg(long)]
    pub fail_on_regression: bool,
    /// Write the output to FILE (atomically) instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    /// Terminal table
    Table,
    /// Markdown with a link per run
    Md,
    /// The history view as JSON
    Json,
    /// One self-contained HTML page of trend charts (default file: REPORT_DIR/history.html)
    Html,
}

/// `drillbook history`.
pub fn history(args: &HistoryArgs) -> anyhow::Result<Outcome> {
    if args.min_runs == 0 || args.min_runs > args.baseline_runs {
        eprintln!(
            "error: --min-runs ({}) must be between 1 and --baseline-runs ({})",
            args.min_runs, args.baseline_runs
        );
        return Ok(Outcome::Invalid);
    }
    let since = match args.since.as_deref().map(parse_since).transpose() {
        Ok(since) => since,
        Err(why) => {
            eprintln!("error: --since: {why}");
            return Ok(Outcome::Invalid);
        }
    };
    let loaded = history::load(&args.report_dir)
        .with_context(|| format!("reading the history of {}", args.report_dir.display()))?;
    if loaded.damaged_lines > 0 {
        eprintln!(
            "warning: {} line(s) of {} did not parse and were skipped (their runs are read \
             from their report folders)",
            loaded.damaged_lines,
            args.report_dir.join(history::INDEX_FILE).display()
        );
    }
    if let Some(e) = &loaded.index_not_written {
        eprintln!("warning: the history index was not updated: {e}");
    }
    for skipped in &loaded.skipped {
        eprintln!(
            "warning: skipped {}: {}",
            super::terminal::safe(&skipped.path.display().to_string()),
            super::terminal::safe(&skipped.why)
        );
    }
    let filter = Filter {
        scenarios: args.scenarios.clone(),
        since,
        last: args.last,
        context: args.context.clone(),
        namespace: args.namespace.clone(),
        baseline_runs: args.baseline_runs,
        min_runs: args.min_runs,
    };
    let mut view = HistoryView::build(&loaded, &filter);
    for name in &args.scenarios {
        if !view.scenarios.iter().any(|s| &s.scenario == name) {
            eprintln!(
                "warning: no runs of scenario `{}` in {}",
                super::terminal::safe(name),
                args.report_dir.display()
            );
        }
    }
    if !args.no_charts {
        let dir = args
            .charts
            .clone()
            .unwrap_or_else(|| args.report_dir.join("trends"));
        write_charts(&mut view, &dir)?;
    }
    match args.format {
        HistoryFormat::Html => {
            // A page is a file: it goes beside the run folders it links to unless told where.
            let path = args
                .output
                .clone()
                .unwrap_or_else(|| args.report_dir.join("history.html"));
            let page = history::page::render(&view, &link_prefix(&path, &args.report_dir));
            super::terminal::write_output(Some(&path), &page)?;
            eprintln!("history page: {}", path.display());
        }
        format => {
            let text = match format {
                HistoryFormat::Md => history::render::markdown(&view),
                HistoryFormat::Json => serde_json::to_string_pretty(&view)? + "\n",
                _ => history::render::table(&view),
            };
            let text = match format {
                HistoryFormat::Json => text,
                _ => super::terminal::safe(&text).into_owned(),
            };
            super::terminal::write_output(args.output.as_deref(), &text)?;
        }
    }
    let regressed = view.regressions();
    if args.fail_on_regression && !regressed.is_empty() {
        for (scenario, row) in &regressed {
            eprintln!(
                "regression: `{}` run {}: {}",
                super::terminal::safe(&scenario.scenario),
                row.run.run_id,
                super::terminal::safe(&row.regression.detail)
            );
        }
        return Ok(Outcome::Fail);
    }
    Ok(Outcome::Pass)
}

/// How the page at `page` reaches the run folders in `report_dir`: nothing to add when it sits
/// there, else the folder's absolute path (a page written elsewhere still links to the runs).
fn link_prefix(page: &Path, report_dir: &Path) -> String {
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    let page_dir = page.parent().filter(|d| !d.as_os_str().is_empty());
    let here = canonical(page_dir.unwrap_or(Path::new(".")));
    match (here, canonical(report_dir)) {
        (Some(here), Some(dir)) if here == dir => String::new(),
        (_, Some(dir)) => format!("{}/", dir.display()),
        (_, None) => format!("{}/", report_dir.display()),
    }
}

fn write_charts(view: &mut HistoryView, dir: &Path) -> anyhow::Result<()> {
    for scenario in &mut view.scenarios {
        let name = [
            Some(scenario.scenario.as_str()),
            scenario.context.as_deref(),
            scenario.namespace.as_deref(),
        ]
        .into_iter()
        .flatten()
        .map(crate::report::path_safe)
        .collect::<Vec<_>>()
        .join("--");
        let path = dir.join(format!("{name}.svg"));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::support::fs::write_atomically(&path, history::trend::render(scenario).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        scenario.chart = Some(path.display().to_string());
    }
    Ok(())
}

/// `7d`, `24h`, `90m` ago; a date (midnight UTC); or an RFC 3339 time.
fn parse_since(text: &str) -> Result<jiff::Timestamp, String> {
    let text = text.trim();
    let now = jiff::Timestamp::now();
    if let Some(days) = text.strip_suffix('d')
        && let Ok(days) = days.parse::<u32>()
    {
        return now
            .checked_sub(jiff::SignedDuration::from_hours(i64::from(days) * 24))
            .map_err(|e| e.to_string());
    }
    if let Ok(ago) = text.parse::<crate::units::HumanDuration>() {
        let ago = jiff::SignedDuration::try_from(ago.0).map_err(|e| e.to_string())?;
        return now.checked_sub(ago).map_err(|e| e.to_string());
    }
    if let Ok(at) = text.parse::<jiff::Timestamp>() {
        return Ok(at);
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string());
    }
    Err(format!(
        "`{text}` is not a time: write `7d`, `24h`, `2026-12-01` or `2026-12-01T10:00:00Z`"
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_takes_ages_dates_and_times() {
        let now = jiff::Timestamp::now();
        let week = parse_since("7d").expect("7d");
        assert!((now.as_second() - week.as_second() - 7 * 86_400).abs() < 5);
        assert!(parse_since("24h").is_ok());
        assert_eq!(
            parse_since("2026-12-01").expect("date").to_string(),
            "2026-12-01T00:00:00Z"
        );
        assert!(parse_since("2026-12-01T10:00:00Z").is_ok());
        assert!(parse_since("last tuesday").unwrap_err().contains("7d"));
    }
}
