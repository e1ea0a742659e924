//! Logging set-up: structured lines (text or JSON) on stderr, or a caller-supplied layer (the
//! command-line edge's human progress view); verbosity from `-v`/`-q` or `RUST_LOG`. Colour
//! only where a person reads it: a terminal, and never with `NO_COLOR` set.

use std::ffi::OsStr;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A layer that renders events itself instead of the structured log lines.
pub type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Whether output to a stream may carry ANSI colour: only a terminal, and not when
/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
pub fn color_allowed(is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// The level for drillbook's own events: `verbosity` is `-v` count minus `-q` count.
fn level(verbosity: i8) -> &'static str {
    match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    }
}

/// Installs the global subscriber: `human` when given, else structured lines in `format`
/// (coloured when `ansi`).
/// `human_extra` adds filter directives the human layer needs (it may want more than the
/// structured lines show, e.g. every second of load for a live status line).
pub fn init(format: LogFormat, verbosity: i8, ansi: bool, human: Option<(BoxedLayer, &str)>) {
    // Dependencies stay at warn unless asked for: their info logs drown drill progress.
    let default = format!("warn,drillbook={}", level(verbosity));
    let from_env = EnvFilter::try_from_default_env().ok();
    let result = match human {
        Some((layer, extra)) => {
            let filter = from_env.unwrap_or_else(|| EnvFilter::new(format!("{default},{extra}")));
            tracing_subscriber::registry()
                .with(layer.with_filter(filter))
                .try_init()
        }
        None => {
            let filter = from_env.unwrap_or_else(|| EnvFilter::new(default));
            let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
            let layer: BoxedLayer = match format {
                LogFormat::Text => fmt
                    .with_target(false)
                    .with_ansi(ansi)
                    .with_filter(filter)
                    .boxed(),
                LogFormat::Json => fmt
                    .json()
                    .with_current_span(false)
                    .with_ansi(false)
                    .with_filter(filter)
                    .boxed(),
            };
            tracing_subscriber::registry().with(layer).try_init()
        }
    };
    // A second init (tests calling the CLI in-process) keeps the first subscriber.
    drop(result);
}

/// Installs the one rustls crypto provider the binary uses (aws-lc-rs). Every TLS client —
/// kube, reqwest (Prometheus), the load engine — picks it up. Safe to call more than once.
pub fn install_crypto_provider() {
    let _already_installed = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(color_allowed(true, None));
        assert!(color_allowed(true, Some(OsStr::new(""))));
        assert!(!color_allowed(true, Some(OsStr::new("1"))));
        assert!(!color_allowed(false, None));
    }
}
