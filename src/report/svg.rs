//! SVG timeline drawn with plotters' SVG backend (no font libraries: text is left to the
//! viewer). Three stacked panels share the time axis: throughput, failures per second and
//! latency. Phases are shaded by verdict, faults are vertical markers labelled with their step.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::model::{CheckVerdict, EventKind, Report, SeriesPoint, TimelineEvent};

/// Size of the whole image in pixels.
const SIZE: (u32, u32) = (1100, 780);

/// Why an SVG could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the SVG timeline: {0}")]
pub struct SvgError(String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for SvgError {
    fn from(error: DrawingAreaErrorKind<E>) -> Self {
        SvgError(error.to_string())
    }
}

/// One line of a panel: its legend label, colour and how to read it from a point.
struct Line {
    label: &'static str,
    color: RGBColor,
    value: fn(&SeriesPoint) -> Option<f64>,
}

/// One panel: a y-axis title and the lines drawn in it.
struct Panel {
    y_desc: &'static str,
    lines: &'static [Line],
}

const PANELS: [Panel; 3] = [
    Panel {
        y_desc: "requests/s",
        lines: &[Line {
            label: "rps",
            color: RGBColor(31, 119, 180),
            value: |p| Some(p.rps),
        }],
    },
    Panel {
        y_desc: "failures/s",
        lines: &[
            Line {
                label: "401/s",
                color: RGBColor(214, 39, 40),
                value: |p| Some(p.status_401 as f64),
            },
            Line {
                label: "5xx/s",
                color: RGBColor(255, 127, 14),
                value: |p| Some(p.status_5xx as f64),
            },
            Line {
                label: "no response/s",
                color: RGBColor(148, 103, 189),
                value: |p| Some(p.errors as f64),
            },
        ],
    },
    Panel {
        y_desc: "latency ms",
        lines: &[
            Line {
                label: "p99",
                color: RGBColor(140, 86, 75),
                value: |p| p.p99_ms,
            },
            Line {
                label: "p50",
                color: RGBColor(127, 127, 127),
                value: |p| p.p50_ms,
            },
        ],
    },
];

const FAULT_COLOR: RGBColor = RGBColor(200, 0, 0);

/// Renders the report's timeline as an SVG document.
pub fn render(report: &Report) -> Result<String, SvgError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let title = format!(
            "{} - {} (run {}, seed {})",
            report.scenario.name, report.verdict, report.run_id, report.seed
        );
        let body = root.titled(&title, ("sans-serif", 20))?;
        let x_max = time_extent(report);
        let markers: Vec<&TimelineEvent> = report
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Fault | EventKind::Guard))
            .collect();
        let areas = body.split_evenly((PANELS.len(), 1));
        for (index, (panel, area)) in PANELS.iter().zip(&areas).enumerate() {
            let is_top = index == 0;
            let is_bottom = index + 1 == PANELS.len();
            draw_panel(report, panel, area, x_max, &markers, is_top, is_bottom)?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// The time axis spans everything the report mentions, and is never empty.
fn time_extent(report: &Report) -> f64 {
    let series_end = report.series.iter().map(|p| p.t_s + 1.0);
    let phase_end = report.phases.iter().map(|p| p.end_s);
    let event_end = report.events.iter().map(|e| e.at_s);
    series_end
        .chain(phase_end)
        .chain(event_end)
        .chain([report.duration_s(), 1.0])
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
}

fn draw_panel(
    report: &Report,
    panel: &Panel,
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    x_max: f64,
    markers: &[&TimelineEvent],
    is_top: bool,
    is_bottom: bool,
) -> Result<(), SvgError> {
    let y_max = panel
        .lines
        .iter()
        .flat_map(|line| report.series.iter().filter_map(line.value))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1.0)
        // The top panel keeps room above the data for phase names and fault labels.
        * if is_top { 1.4 } else { 1.15 };
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .x_label_area_size(if is_bottom { 36 } else { 18 })
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .y_desc(panel.y_desc)
        .x_desc(if is_bottom { "seconds since start" } else { "" })
        .draw()?;

    // `all` spans the whole run: shading it would hide the phases that matter.
    let shaded: Vec<_> = report.phases.iter().filter(|p| p.name != "all").collect();
    chart.draw_series(shaded.iter().map(|phase| {
        Rectangle::new(
            [(phase.start_s, 0.0), (phase.end_s, y_max)],
            phase_shade(phase.verdict).filled(),
        )
    }))?;
    if is_top {
        // Alternate label heights so a short phase (a sub-second fault) does not hide the next.
        chart.draw_series(shaded.iter().enumerate().map(|(i, phase)| {
            let height = if i % 2 == 0 { 0.99 } else { 0.93 };
            Text::new(
                format!("{} ({})", phase.name, phase.verdict),
                (phase.start_s, y_max * height),
                ("sans-serif", 13).into_font().color(&BLACK.mix(0.7)),
            )
        }))?;
    }

    let mut any_line = false;
    for line in panel.lines {
        for (i, segment) in segments(&report.series, line.value).into_iter().enumerate() {
            let drawn = chart.draw_series(LineSeries::new(segment, line.color.stroke_width(2)))?;
            // One legend entry per line, not per gap-separated segment.
            if i == 0 {
                any_line = true;
                drawn.label(line.label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], line.color.stroke_width(2))
                });
            }
        }
    }

    chart.draw_series(markers.iter().map(|event| {
        PathElement::new(
            vec![(event.at_s, 0.0), (event.at_s, y_max)],
            FAULT_COLOR.stroke_width(1),
        )
    }))?;
    if is_top {
        // Stagger labels so faults a few seconds apart stay readable.
        chart.draw_series(markers.iter().enumerate().map(|(i, event)| {
            let step = (i % 3) as f64;
            Text::new(
                marker_label(event),
                (event.at_s, y_max * (0.92 - 0.06 * step)),
                ("sans-serif", 12).into_font().color(&FAULT_COLOR),
            )
        }))?;
    }
    if is_top && report.series.is_empty() {
        chart.draw_series([Text::new(
            "no load measurements in this report",
            (x_max * 0.35, y_max * 0.5),
            ("sans-serif", 16).into_font().color(&BLACK.mix(0.6)),
        )])?;
    }
    if any_line {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
    }
    Ok(())
}

fn marker_label(event: &TimelineEvent) -> String {
    let name = event.step.as_deref().unwrap_or(&event.description);
    format!(" {name} (t+{:.0}s)", event.at_s)
}

fn phase_shade(verdict: CheckVerdict) -> RGBAColor {
    match verdict {
        CheckVerdict::Pass => RGBColor(44, 160, 44).mix(0.10),
        CheckVerdict::Fail => RGBColor(214, 39, 40).mix(0.12),
        CheckVerdict::Inconclusive => RGBColor(188, 189, 34).mix(0.12),
    }
}

/// Consecutive points that have a value; a missing value (no responses that second) breaks
/// the line instead of drawing it through zero.
fn segments(
    series: &[SeriesPoint],
    value: fn(&SeriesPoint) -> Option<f64>,
) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for point in series {
        match value(point).filter(|v| v.is_finite()) {
            Some(v) => current.push((point.t_s, v)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}
