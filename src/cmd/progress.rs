//! The human view of a running drill on a terminal: one plain line per step and event, and a
//! live status line (phase, time to the next step, rps, 401 and 5xx per second, p99) redrawn
//! in place on stderr about once a second, like k6. The engine hands its [`Progress`] events to
//! the sink [`sink`] makes, which draws them; other log events (warnings, target events) come
//! through [`HumanLayer`]. Structured log lines stay for `-v`, `--log-format json` and
//! non-terminals (see `telemetry::init`), where the sink draws nothing.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

use super::terminal::safe;
use crate::engine::drill::{PROGRESS_TARGET, Progress, ProgressSink, WindowProgress};

/// Filter directives the human view adds: progress is drawn from the sink, not from its log.
pub const FILTER: &str = "drillbook::progress=off";

/// The screen of the human view, when it is on: [`human_layer`] sets it once, before any
/// command runs, and [`sink`] draws a drill's progress on it.
static HUMAN: OnceLock<Arc<Mutex<Screen>>> = OnceLock::new();

/// Erases the current terminal line (carriage return + erase line).
const ERASE_LINE: &str = "\r\x1b[2K";

/// Whether a status line is on screen (so whatever prints next erases it first).
static STATUS_SHOWN: AtomicBool = AtomicBool::new(false);

/// An event's fields as text, by name (`message` holds the formatted message).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Fields(BTreeMap<String, String>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Fields from `(name, value)` pairs, as tests write them.
    #[cfg(test)]
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl Visit for Fields {
    // Values carry scenario and cluster text: escaped here, before anything draws them.
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_string(), safe(value).into_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // Messages arrive as `fmt::Arguments`, whose Debug is the text itself.
        let text = format!("{value:?}");
        self.0
            .insert(field.name().to_string(), safe(&text).into_owned());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

/// What the status line shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub phase: &'static str,
    /// Seconds since time zero.
    pub second: u64,
    /// Seconds until the next step, when one is due at a known time.
    pub next_step_in: Option<f64>,
    /// Requests in the last second.
    pub rps: u64,
    pub per_second_401: u64,
    pub per_second_5xx: u64,
    pub errors: u64,
    pub p99_ms: Option<f64>,
}

/// The status line, one terminal line.
pub fn status_line(status: &Status) -> String {
    let next = status.next_step_in.map_or_else(String::new, |s| {
        format!(" · next step in {:.0}s", s.max(0.0))
    });
    let p99 = status
        .p99_ms
        .map_or_else(|| "-".to_string(), |ms| format!("{ms:.0} ms"));
    let errors = if status.errors > 0 {
        format!(" · errors {}/s", status.errors)
    } else {
        String::new()
    };
    format!(
        "{} t+{}s{next} · {} rps · 401 {}/s · 5xx {}/s{errors} · p99 {p99}",
        status.phase, status.second, status.rps, status.per_second_401, status.per_second_5xx,
    )
}

/// What one event changes on screen.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rendered {
    /// Lines to print, above the status line.
    pub lines: Vec<String>,
    /// The new status line, when it changed.
    pub status: Option<String>,
    /// The status line is done with (the load is over).
    pub clear_status: bool,
}

/// The renderer's memory between events: the phase and when the next step is due.
#[derive(Debug, Default)]
pub struct Screen {
    faulted: bool,
    steps_done: bool,
    /// When the next step is due (seconds from time zero).
    next_at_s: Option<f64>,
    color: bool,
}

impl Screen {
    pub fn new(color: bool) -> Self {
        Self {
            color,
            ..Self::default()
        }
    }

    fn phase(&self) -> &'static str {
        match (self.faulted, self.steps_done) {
            (false, _) => "baseline",
            (true, false) => "fault",
            (true, true) => "recovery",
        }
    }

    /// Renders one progress event: a pure function of the event and what came before. Its
    /// text carries scenario and cluster text, escaped here before anything draws it.
    pub fn progress(&mut self, event: &Progress) -> Rendered {
        let mut out = Rendered::default();
        match event {
            Progress::Note(line) => out.lines.push(safe(line).into_owned()),
            Progress::Warning(line) => {
                let line = self.plain(Level::WARN, &safe(line), &Fields::default());
                out.lines.push(line);
            }
            Progress::Started { seed, next_at_s } => {
                self.next_at_s = *next_at_s;
                out.lines.push(format!("load started (seed {seed})"));
            }
            Progress::Window(window) => out.status = Some(status_line(&self.status(window))),
            Progress::Step {
                number,
                total,
                name,
                what,
                at_s,
                fault,
            } => {
                self.faulted |= *fault;
                self.next_at_s = None;
                out.lines.push(format!(
                    "t+{at_s:.1}s step {number}/{total} {}: {}",
                    safe(name),
                    safe(what)
                ));
            }
            Progress::Applied {
                number,
                total,
                next_at_s,
                hit,
            } => {
                self.next_at_s = *next_at_s;
                self.steps_done |= number == total;
                if !hit.is_empty() {
                    out.lines.push(format!("  hit {}", safe(&hit.join(", "))));
                }
            }
            Progress::LoadOver => out.clear_status = true,
        }
        out
    }

    /// Renders one other log event (progress is drawn from [`Self::progress`]).
    pub fn render(&mut self, level: Level, target: &str, fields: &Fields) -> Rendered {
        let message = fields.get("message").unwrap_or_default();
        let mut out = Rendered::default();
        if target == PROGRESS_TARGET || level > Level::INFO {
            return out;
        }
        let line = match message {
            "exited" => format!(
                "{} exited with {}",
                fields.get("instance").unwrap_or("a process"),
                fields.get("exit").unwrap_or("an unknown status")
            ),
            "killed" => format!(
                "{} killed ({})",
                fields.get("instance").unwrap_or("a process"),
                fields.get("signal").unwrap_or("a signal")
            ),
            "killed pod" => format!("pod {} killed", fields.get("pod").unwrap_or("?")),
            _ => self.plain(level, message, fields),
        };
        out.lines.push(line);
        out
    }

    fn status(&self, window: &WindowProgress) -> Status {
        Status {
            phase: self.phase(),
            second: window.second,
            next_step_in: self.next_at_s.map(|at| at - window.second as f64),
            rps: window.requests,
            per_second_401: window.status_401,
            per_second_5xx: window.status_5xx,
            errors: window.errors,
            p99_ms: window.p99_ms,
        }
    }

    /// Any other event: its message, a `warning:`/`error:` prefix, and its other fields.
    fn plain(&self, level: Level, message: &str, fields: &Fields) -> String {
        let extra: String = fields
            .0
            .iter()
            .filter(|(k, _)| k.as_str() != "message")
            .map(|(k, v)| format!(" {k}={v}"))
            .collect();
        let prefix = match level {
            Level::ERROR => self.paint("error: ", "31"),
            Level::WARN => self.paint("warning: ", "33"),
            _ => String::new(),
        };
        format!("{prefix}{message}{extra}")
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The tracing layer that draws log events other than progress on the human view's screen.
pub struct HumanLayer {
    screen: Arc<Mutex<Screen>>,
}

/// Turns the human view on: the layer for `telemetry::init`, and the screen [`sink`] draws on.
pub fn human_layer(color: bool) -> HumanLayer {
    let screen = HUMAN
        .get_or_init(|| Arc::new(Mutex::new(Screen::new(color))))
        .clone();
    HumanLayer { screen }
}

/// Where a drill's progress goes: the human view's screen when it is on; otherwise nowhere
/// (the engine logs each event too, for `-v`, JSON and non-terminals).
pub fn sink() -> ProgressSink {
    let Some(screen) = HUMAN.get().cloned() else {
        return ProgressSink::default();
    };
    ProgressSink::new(move |event| {
        let rendered = match screen.lock() {
            Ok(mut screen) => screen.progress(event),
            Err(_) => return,
        };
        draw(&rendered);
    })
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for HumanLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let rendered = match self.screen.lock() {
            Ok(mut screen) => screen.render(*meta.level(), meta.target(), &fields),
            Err(_) => return,
        };
        draw(&rendered);
    }
}

/// Writes `rendered` to stderr; a closed stderr is ignored (progress must never stop a drill).
fn draw(rendered: &Rendered) {
    let mut out = String::new();
    let shown = STATUS_SHOWN.load(Ordering::Relaxed);
    if shown && (!rendered.lines.is_empty() || rendered.status.is_some() || rendered.clear_status) {
        out.push_str(ERASE_LINE);
    }
    for line in &rendered.lines {
        out.push_str(line);
        out.push('\n');
    }
    let mut now_shown = shown && !rendered.clear_status;
    if let Some(status) = &rendered.status {
        out.push_str(status);
        now_shown = true;
    } else if now_shown && !rendered.lines.is_empty() {
        // The lines pushed the status line off; it comes back with the next second.
        now_shown = false;
    }
    STATUS_SHOWN.store(now_shown, Ordering::Relaxed);
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(out.as_bytes());
    let _ = stderr.flush();
}

/// Erases the status line, if one is shown, before other output (the verdict table).
pub fn clear_status() {
    if STATUS_SHOWN.swap(false, Ordering::Relaxed) {
        let _ = std::io::stderr().write_all(ERASE_LINE.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(second: u64, requests: u64, status_401: u64, p99_ms: Option<f64>) -> Progress {
        Progress::Window(WindowProgress {
            second,
            requests,
            status_401,
            status_5xx: u64::from(second == 2),
            p99_ms,
            ..WindowProgress::default()
        })
    }

    fn applied(number: usize, hit: &[&str]) -> Progress {
        Progress::Applied {
            number,
            total: 2,
            next_at_s: None,
            hit: hit.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_drill_renders_as_plain_lines_and_a_status_line() {
        let mut screen = Screen::new(false);
        let start = screen.progress(&Progress::Started {
            seed: 7,
            next_at_s: Some(5.0),
        });
        assert_eq!(start.lines, ["load started (seed 7)"]);
        let status = screen.progress(&window(2, 98, 0, Some(12.4))).status;
        assert_eq!(
            status.as_deref(),
            Some("baseline t+2s · next step in 3s · 98 rps · 401 0/s · 5xx 1/s · p99 12 ms")
        );
        let step = screen.progress(&Progress::Step {
            number: 1,
            total: 2,
            name: "kill-proxy".into(),
            what: "SIGKILL 1 process(es) of `requests-proxy`".into(),
            at_s: 5.02,
            fault: true,
        });
        assert_eq!(
            step.lines,
            ["t+5.0s step 1/2 kill-proxy: SIGKILL 1 process(es) of `requests-proxy`"]
        );
        let hit = screen.progress(&applied(1, &["requests-proxy#0 (pid 12)"]));
        assert_eq!(hit.lines, ["  hit requests-proxy#0 (pid 12)"]);
        let status = screen
            .progress(&window(6, 3, 40, None))
            .status
            .unwrap_or_default();
        assert!(
            status.starts_with("fault t+6s · 3 rps · 401 40/s"),
            "{status}"
        );
        assert!(status.ends_with("p99 -"), "no latency, no number: {status}");
        assert!(screen.progress(&applied(2, &[])).lines.is_empty());
        let status = screen.progress(&window(9, 0, 0, None)).status;
        assert!(status.unwrap_or_default().starts_with("recovery t+9s"));
        assert!(screen.progress(&Progress::LoadOver).clear_status);
    }

    #[test]
    fn progress_text_is_escaped_and_warnings_say_so() {
        let mut screen = Screen::new(false);
        let note = screen.progress(&Progress::Note("pod \x1b[2J".into()));
        assert_eq!(note.lines, ["pod \\x1b[2J"]);
        let warning = screen.progress(&Progress::Warning("load worker 1 failed".into()));
        assert_eq!(warning.lines, ["warning: load worker 1 failed"]);
        let logged = screen.render(
            Level::INFO,
            PROGRESS_TARGET,
            &Fields::from_pairs([("message", "t+0s load started; seed 7")]),
        );
        assert!(
            logged.lines.is_empty(),
            "progress is drawn from the sink only"
        );
    }

    #[test]
    fn target_events_read_as_words() {
        let mut screen = Screen::new(false);
        let exited = screen.render(
            Level::INFO,
            "drillbook::targets::local::supervisor",
            &Fields::from_pairs([
                ("message", "exited"),
                ("instance", "trainer-2"),
                ("exit", "code 0"),
                ("pid", "12"),
            ]),
        );
        assert_eq!(exited.lines, ["trainer-2 exited with code 0"]);
        let killed = screen.render(
            Level::INFO,
            "drillbook::targets::local",
            &Fields::from_pairs([
                ("message", "killed"),
                ("instance", "proxy-0"),
                ("signal", "SIGKILL"),
            ]),
        );
        assert_eq!(killed.lines, ["proxy-0 killed (SIGKILL)"]);
        let warning = screen.render(
            Level::WARN,
            "drillbook::engine",
            &Fields::from_pairs([("message", "no load window closed")]),
        );
        assert_eq!(warning.lines, ["warning: no load window closed"]);
        let debug = screen.render(
            Level::DEBUG,
            "drillbook::x",
            &Fields::from_pairs([("message", "m")]),
        );
        assert!(debug.lines.is_empty());
    }

    #[test]
    fn the_status_line_has_no_debug_formatting() {
        let line = status_line(&Status {
            phase: "baseline",
            second: 1,
            next_step_in: None,
            rps: 5,
            per_second_401: 0,
            per_second_5xx: 0,
            errors: 2,
            p99_ms: None,
        });
        assert_eq!(
            line,
            "baseline t+1s · 5 rps · 401 0/s · 5xx 0/s · errors 2/s · p99 -"
        );
    }
}
