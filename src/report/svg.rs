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

/// Font sizes of phase and fault labels (pixels).
const PHASE_FONT: u32 = 13;
const FAULT_FONT: u32 = 12;
/// Height of one label lane (pixels) and the room kept between labels in a lane.
const LANE_PX: f64 = 16.0;
const LABEL_GAP_PX: f64 = 6.0;
/// Plot width of a panel in pixels: the image less the y-label area and margins.
const PLOT_WIDTH_PX: f64 = SIZE.0 as f64 - 64.0 - 16.0;
/// Plot height of the top panel in pixels (a third of the image under the title, less the
/// x-label area and margins), which label lanes are carved from.
const TOP_PLOT_HEIGHT_PX: f64 = (SIZE.1 as f64 - 30.0) / 3.0 - 18.0 - 16.0;

/// A label placed in a lane: lanes stack downwards from the top of the top panel.
#[derive(Debug, Clone, PartialEq)]
struct PlacedLabel {
    text: String,
    /// Where the label starts, in seconds and in pixels from the plot's left edge.
    at_s: f64,
    x_px: f64,
    width_px: f64,
    lane: usize,
    font: u32,
    is_fault: bool,
}

impl PlacedLabel {
    /// The label's box in pixels: left, top, right, bottom.
    #[cfg(test)]
    fn bounds(&self) -> (f64, f64, f64, f64) {
        let top = self.lane as f64 * LANE_PX;
        (self.x_px, top, self.x_px + self.width_px, top + LANE_PX)
    }
}

/// Estimated width of `text` in a sans-serif font of `font` pixels (no font library: the
/// viewer renders the text; an average glyph is about 0.6 em, a little more for safety).
fn text_width_px(text: &str, font: u32) -> f64 {
    text.chars().count() as f64 * f64::from(font) * 0.62
}

/// Places labels `(at_s, text, font, is_fault)` in lanes so that no two boxes overlap: each
/// label, left to right, goes into the first lane whose last label ends before it starts.
fn place_labels(labels: Vec<(f64, String, u32, bool)>, x_max: f64) -> Vec<PlacedLabel> {
    let mut labels = labels;
    labels.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut lane_ends: Vec<f64> = Vec::new();
    labels
        .into_iter()
        .map(|(at_s, text, font, is_fault)| {
            let x_px = (at_s / x_max).clamp(0.0, 1.0) * PLOT_WIDTH_PX;
            let width_px = text_width_px(&text, font);
            let lane = match lane_ends.iter().position(|end| *end + LABEL_GAP_PX <= x_px) {
                Some(lane) => lane,
                None => {
                    lane_ends.push(f64::NEG_INFINITY);
                    lane_ends.len() - 1
                }
            };
            lane_ends[lane] = x_px + width_px;
            PlacedLabel {
                text,
                at_s,
                x_px,
                width_px,
                lane,
                font,
                is_fault,
            }
        })
        .collect()
}

/// The top panel's phase and fault labels, placed.
fn top_labels(report: &Report, markers: &[&TimelineEvent], x_max: f64) -> Vec<PlacedLabel> {
    let phases = report.phases.iter().filter(|p| p.name != "all").map(|p| {
        (
            p.start_s,
            format!("{} ({})", p.name, p.verdict),
            PHASE_FONT,
            false,
        )
    });
    let faults = markers
        .iter()
        .map(|e| (e.at_s, marker_label(e), FAULT_FONT, true));
    place_labels(phases.chain(faults).collect(), x_max)
}

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
        let labels = top_labels(report, &markers, x_max);
        let areas = body.split_evenly((PANELS.len(), 1));
        for (index, (panel, area)) in PANELS.iter().zip(&areas).enumerate() {
            let is_bottom = index + 1 == PANELS.len();
            // Only the top panel carries labels.
            let labels = if index == 0 { &labels[..] } else { &[] };
            draw_panel(report, panel, area, x_max, &markers, labels, is_bottom)?;
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
    labels: &[PlacedLabel],
    is_bottom: bool,
) -> Result<(), SvgError> {
    let is_top = !labels.is_empty();
    let data_max = panel
        .lines
        .iter()
        .flat_map(|line| report.series.iter().filter_map(line.value))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1.0);
    // Room above the data for the label lanes (at most 90 % of the panel).
    let lanes = labels.iter().map(|l| l.lane + 1).max().unwrap_or(0);
    let label_share = (lanes as f64 * LANE_PX / TOP_PLOT_HEIGHT_PX).min(0.9);
    let y_max = data_max * 1.15 / (1.0 - label_share);
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
    // Each label in its lane, from the top down: none overlaps another (see place_labels).
    let lane_height = y_max * LANE_PX / TOP_PLOT_HEIGHT_PX;
    chart.draw_series(labels.iter().map(|label| {
        let color = if label.is_fault {
            FAULT_COLOR.to_rgba()
        } else {
            BLACK.mix(0.7)
        };
        Text::new(
            label.text.clone(),
            (label.at_s, y_max - label.lane as f64 * lane_height),
            ("sans-serif", label.font).into_font().color(&color),
        )
    }))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(a: (f64, f64, f64, f64), b: (f64, f64, f64, f64)) -> bool {
        a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
    }

    #[test]
    fn labels_of_short_phases_and_close_faults_never_overlap() {
        // Two 1-second phases and three faults within them, on a 60-second axis.
        let labels = vec![
            (10.0, "fault (fail)".to_string(), PHASE_FONT, false),
            (11.0, "recovery (pass)".to_string(), PHASE_FONT, false),
            (10.0, " kill-proxy (t+10s)".to_string(), FAULT_FONT, true),
            (
                10.4,
                " kill-proxy-again (t+10s)".to_string(),
                FAULT_FONT,
                true,
            ),
            (11.2, " restart-jobs (t+11s)".to_string(), FAULT_FONT, true),
        ];
        let placed = place_labels(labels, 60.0);
        assert_eq!(placed.len(), 5);
        for (i, a) in placed.iter().enumerate() {
            for b in &placed[i + 1..] {
                assert!(
                    !overlap(a.bounds(), b.bounds()),
                    "`{}` and `{}` overlap: {:?} {:?}",
                    a.text,
                    b.text,
                    a.bounds(),
                    b.bounds()
                );
            }
        }
        // Labels far apart share the first lane.
        let apart = place_labels(
            vec![
                (0.0, "baseline (pass)".into(), PHASE_FONT, false),
                (40.0, "recovery (pass)".into(), PHASE_FONT, false),
            ],
            60.0,
        );
        assert!(apart.iter().all(|l| l.lane == 0), "{apart:?}");
    }
}
