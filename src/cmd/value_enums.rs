//! Command-line spellings of domain enums. Written here, not derived on the types, so that
//! the domain modules stay free of clap.

use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::report::Format;
use crate::telemetry::LogFormat;

impl ValueEnum for LogFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[LogFormat::Text, LogFormat::Json]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }))
    }
}

impl ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            Format::Table,
            Format::Md,
            Format::Junit,
            Format::Svg,
            Format::Changelog,
            Format::Json,
            Format::Html,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let (name, help) = match self {
            Format::Table => ("table", "Terminal tables"),
            Format::Md => ("md", "Markdown for runbooks and pull requests"),
            Format::Junit => ("junit", "JUnit XML for CI"),
            Format::Svg => ("svg", "SVG timeline"),
            Format::Changelog => (
                "changelog",
                "A paragraph for a CHANGELOG or post-rollout note",
            ),
            Format::Json => ("json", "The report itself, pretty-printed"),
            Format::Html => (
                "html",
                "One self-contained HTML page: charts, checks, events",
            ),
        };
        Some(PossibleValue::new(name).help(help))
    }
}
