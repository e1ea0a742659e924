//! A line chart as inline SVG, drawn on the server: columns (seconds of a drill, runs of a
//! history) along x, one path per series, shaded bands (phases) and vertical marks (faults,
//! guard trips). Every column is a transparent hit area whose `<title>` lists each series'
//! exact value, so hovering shows the numbers even without JavaScript.

use std::fmt::Write as _;

use super::escape;

/// Size of the drawing in SVG units; the page scales it to its width.
const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 22.0;
/// Height of one lane of band labels above the plot.
const LANE: f64 = 15.0;
const BOTTOM: f64 = 24.0;

/// One column: where it spans on the x axis and how the tooltip names it (`t+12s`, a run id).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub from: f64,
    pub to: f64,
    pub label: String,
}

/// One line: a value (or a gap) per column.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// Index into the page's palette (`s0`…`s7`).
    pub color: u8,
    /// Drawn dashed (service latency beside corrected latency).
    pub dashed: bool,
    pub values: Vec<Option<f64>>,
}

/// A shaded span of the x axis (a phase), with a label and a CSS class (its verdict).
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub from: f64,
    pub to: f64,
    pub label: String,
    pub class: &'static str,
}

/// A vertical line at one x (a fault, a guard trip), with a label and a CSS class.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub at: f64,
    pub label: String,
    pub class: &'static str,
}

/// How the x axis is labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Seconds since the start: ticks `0s`, `30s`, `1m`.
    Seconds,
    /// One tick per column, labelled with the column's label (sparse when crowded).
    Columns,
}

/// A chart: its anchor id, title, the unit of its values, and what it draws.
#[derive(Debug, Clone)]
pub struct Chart {
    pub id: String,
    pub title: String,
    /// Formats a value for ticks and tooltips (`12.3 ms`, `40/s`).
    pub format: fn(f64) -> String,
    pub x_axis: XAxis,
    pub columns: Vec<Column>,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    pub marks: Vec<Mark>,
}

/// Maps values to SVG coordinates.
struct Scale {
    x_min: f64,
    x_max: f64,
    y_max: f64,
    /// Top of the plot, below the lanes of band labels.
    top: f64,
}

impl Scale {
    fn x(&self, x: f64) -> f64 {
        let span = (self.x_max - self.x_min).max(f64::EPSILON);
        LEFT + (x - self.x_min) / span * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - (y / self.y_max).clamp(0.0, 1.0) * (HEIGHT - self.top - BOTTOM)
    }
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `value` (a round top for the y axis).
fn nice_ceiling(value: f64) -> f64 {
    if !value.is_finite() || value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|candidate| *candidate >= value * 0.999_999)
        .unwrap_or(10.0 * magnitude)
}

/// A round step for time ticks, about `count` of them over `span` seconds.
fn time_step(span: f64, count: f64) -> f64 {
    const STEPS: [f64; 12] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
    ];
    STEPS
        .into_iter()
        .find(|s| span / s <= count)
        .unwrap_or(3600.0)
}

/// A band's label cut to the band's width (about 6.5 units a character at 11 px), so short
/// phases do not print over their neighbours; the whole label stays in the `<title>`.
fn fit_label(label: &str, width: f64) -> String {
    let fits = ((width - 4.0) / 6.5).floor().max(0.0) as usize;
    let chars = label.chars().count();
    if chars <= fits {
        label.to_owned()
    } else if fits < 3 {
        String::new()
    } else {
        let mut cut: String = label.chars().take(fits - 1).collect();
        cut.push('…');
        cut
    }
}

fn seconds_label(s: f64) -> String {
    let s = s.round() as i64;
    match (s / 60, s % 60) {
        (0, secs) => format!("{secs}s"),
        (m, 0) => format!("{m}m"),
        (m, secs) => format!("{m}m{secs:02}s"),
    }
}

impl Chart {
    /// Points each series draws (values that are present).
    pub fn points(series: &Series) -> usize {
        series.values.iter().flatten().count()
    }

    fn scale(&self) -> Scale {
        let x_min = self.columns.first().map_or(0.0, |c| c.from);
        let x_max = self
            .columns
            .iter()
            .map(|c| c.to)
            .chain(self.bands.iter().map(|b| b.to))
            .chain(self.marks.iter().map(|m| m.at))
            .fold(x_min + 1.0, f64::max);
        let top = self
            .series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        Scale {
            x_min,
            x_max,
            y_max: nice_ceiling(top),
            top: self.top(),
        }
    }

    /// The chart as a `<figure>`: the SVG, then a legend in HTML.
    pub fn render(&self) -> String {
        let scale = self.scale();
        let mut svg = String::new();
        let _ = write!(
            svg,
            "<figure class=\"chart\" id=\"{id}\"><figcaption>{title}</figcaption>\
             <svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{title}\" \
             data-series=\"{n}\" data-columns=\"{c}\">",
            id = escape(&self.id),
            title = escape(&self.title),
            n = self.series.len(),
            c = self.columns.len(),
        );
        self.bands_svg(&mut svg, &scale);
        self.axes_svg(&mut svg, &scale);
        for (index, series) in self.series.iter().enumerate() {
            self.series_svg(&mut svg, &scale, index, series);
        }
        self.marks_svg(&mut svg, &scale);
        self.hits_svg(&mut svg, &scale);
        let _ = write!(
            svg,
            "<line class=\"cursor\" x1=\"0\" x2=\"0\" y1=\"{:.1}\" y2=\"{}\" visibility=\"hidden\"/>",
            scale.top,
            HEIGHT - BOTTOM
        );
        svg.push_str("</svg>");
        svg.push_str(&self.legend());
        svg.push_str("</figure>\n");
        svg
    }

    /// Bands that overlap (a whole-run phase over baseline, fault and recovery) go into lanes,
    /// the shortest first: lane 0 shades the plot, further lanes are strips above it.
    fn band_lanes(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.bands.len()).collect();
        order.sort_by(|a, b| {
            let span = |i: &usize| self.bands[*i].to - self.bands[*i].from;
            span(a).total_cmp(&span(b))
        });
        let mut lanes: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut lane_of = vec![0; self.bands.len()];
        for i in order {
            let band = &self.bands[i];
            let free = |lane: &Vec<(f64, f64)>| {
                lane.iter()
                    .all(|(from, to)| band.to <= *from + 1e-9 || band.from >= *to - 1e-9)
            };
            let lane = lanes.iter().position(free).unwrap_or(lanes.len());
            if lane == lanes.len() {
                lanes.push(Vec::new());
            }
            lanes[lane].push((band.from, band.to));
            lane_of[i] = lane;
        }
        lane_of
    }

    fn top(&self) -> f64 {
        TOP + LANE * self.band_lanes().into_iter().max().unwrap_or(0) as f64
    }

    fn bands_svg(&self, out: &mut String, scale: &Scale) {
        let top = scale.top;
        for (band, lane) in self.bands.iter().zip(self.band_lanes()) {
            let (x1, x2) = (scale.x(band.from), scale.x(band.to));
            let (y, h) = if lane == 0 {
                (top, HEIGHT - top - BOTTOM)
            } else {
                (top - LANE * lane as f64 - 3.0, 4.0)
            };
            let _ = write!(
                out,
                "<g class=\"band {class}\"><rect x=\"{x1:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" \
                 height=\"{h:.1}\"><title>{label}</title></rect><line class=\"edge\" x1=\"{x1:.1}\" \
                 x2=\"{x1:.1}\" y1=\"{y:.1}\" y2=\"{y2:.1}\"/><text x=\"{tx:.1}\" y=\"{ty:.1}\">{text}</text></g>",
                class = band.class,
                w = (x2 - x1).max(0.0),
                y2 = y + h,
                label = escape(&band.label),
                text = escape(&fit_label(&band.label, x2 - x1)),
                tx = x1 + 3.0,
                ty = top - LANE * lane as f64 - 6.0,
            );
        }
    }

    fn axes_svg(&self, out: &mut String, scale: &Scale) {
        out.push_str("<g class=\"axis\">");
        for i in 0..=4 {
            let value = scale.y_max * f64::from(i) / 4.0;
            let y = scale.y(value);
            let _ = write!(
                out,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
                 <text class=\"y\" x=\"{}\" y=\"{:.1}\">{}</text>",
                WIDTH - RIGHT,
                LEFT - 4.0,
                y + 4.0,
                escape(&(self.format)(value))
            );
        }
        let base = HEIGHT - BOTTOM;
        match self.x_axis {
            XAxis::Seconds => {
                let step = time_step(scale.x_max - scale.x_min, 10.0);
                let mut t = (scale.x_min / step).ceil() * step;
                while t <= scale.x_max + 1e-9 {
                    let x = scale.x(t);
                    let _ = write!(
                        out,
                        "<text class=\"x\" x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
                        base + 16.0,
                        seconds_label(t)
                    );
                    t += step;
                }
            }
            XAxis::Columns => {
                let every = self.columns.len().div_ceil(10).max(1);
                for column in self.columns.iter().step_by(every) {
                    let x = scale.x((column.from + column.to) / 2.0);
                    let _ = write!(
                        out,
                        "<text class=\"x\" x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
                        base + 16.0,
                        escape(&column.label)
                    );
                }
            }
        }
        let _ = write!(
            out,
            "<line class=\"base\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{base}\" y2=\"{base}\"/></g>",
            WIDTH - RIGHT
        );
    }

    fn series_svg(&self, out: &mut String, scale: &Scale, index: usize, series: &Series) {
        let mut d = String::new();
        let mut pen_down = false;
        for (column, value) in self.columns.iter().zip(&series.values) {
            match value.filter(|v| v.is_finite()) {
                Some(v) => {
                    let x = scale.x((column.from + column.to) / 2.0);
                    let _ = write!(
                        d,
                        "{}{x:.1} {:.1}",
                        if pen_down { " L" } else { " M" },
                        scale.y(v)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = write!(
            out,
            "<path class=\"series s{color}{dash}\" data-series=\"{name}\" data-index=\"{index}\" \
             data-points=\"{points}\" d=\"{d}\"/>",
            color = series.color % 8,
            dash = if series.dashed { " dashed" } else { "" },
            name = escape(&series.name),
            points = Self::points(series),
            d = d.trim_start(),
        );
    }

    fn marks_svg(&self, out: &mut String, scale: &Scale) {
        for (i, mark) in self.marks.iter().enumerate() {
            let x = scale.x(mark.at);
            let _ = write!(
                out,
                "<g class=\"mark {class}\"><line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top:.1}\" y2=\"{y2}\"/>\
                 <text x=\"{tx:.1}\" y=\"{ty}\">{label}</text><title>{label}</title></g>",
                class = mark.class,
                y2 = HEIGHT - BOTTOM,
                tx = x + 3.0,
                // Three lanes, so labels of nearby marks do not print over each other.
                top = scale.top,
                ty = scale.top + 12.0 + 13.0 * (i % 3) as f64,
                label = escape(&mark.label),
            );
        }
    }

    /// One transparent rectangle per column, its `<title>` the exact values (the browser's
    /// own tooltip; the script shows the same text in a styled one).
    fn hits_svg(&self, out: &mut String, scale: &Scale) {
        out.push_str("<g class=\"hits\">");
        for (i, column) in self.columns.iter().enumerate() {
            let (x1, x2) = (scale.x(column.from), scale.x(column.to));
            let mut tip = escape(&column.label).into_owned();
            for series in &self.series {
                let value = series.values.get(i).copied().flatten();
                let _ = write!(
                    tip,
                    "\n{}: {}",
                    escape(&series.name),
                    value.map_or_else(
                        || "-".to_owned(),
                        |v| escape(&(self.format)(v)).into_owned()
                    )
                );
            }
            let _ = write!(
                out,
                "<rect class=\"hit\" data-column=\"{i}\" x=\"{x1:.1}\" y=\"{:.1}\" width=\"{:.2}\" \
                 height=\"{:.1}\"><title>{tip}</title></rect>",
                scale.top,
                (x2 - x1).max(0.5),
                HEIGHT - scale.top - BOTTOM,
            );
        }
        out.push_str("</g>");
    }

    fn legend(&self) -> String {
        let mut out = String::from("<ul class=\"legend\">");
        for series in &self.series {
            let _ = write!(
                out,
                "<li><svg class=\"swatch\" viewBox=\"0 0 24 8\" aria-hidden=\"true\">\
                 <line class=\"series s{}{}\" x1=\"0\" x2=\"24\" y1=\"4\" y2=\"4\"/></svg>{}</li>",
                series.color % 8,
                if series.dashed { " dashed" } else { "" },
                escape(&series.name)
            );
        }
        out.push_str("</ul>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn y_axis_tops_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.3), 10.0);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(0.04), 0.05);
    }

    #[test]
    fn gaps_break_the_line_and_points_count_present_values() {
        let chart = Chart {
            id: "c".into(),
            title: "t".into(),
            format: |v| format!("{v}"),
            x_axis: XAxis::Seconds,
            columns: (0..4)
                .map(|i| Column {
                    from: f64::from(i),
                    to: f64::from(i + 1),
                    label: format!("t+{i}s"),
                })
                .collect(),
            series: vec![Series {
                name: "a<b".into(),
                color: 0,
                dashed: false,
                values: vec![Some(1.0), None, Some(2.0), Some(4.0)],
            }],
            bands: vec![],
            marks: vec![],
        };
        let svg = chart.render();
        assert!(svg.contains("data-points=\"3\""), "{svg}");
        let d = svg.split(" d=\"").nth(1).unwrap_or_default();
        let d = d.split('"').next().unwrap_or_default();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
        assert!(svg.contains("a&lt;b: 4"), "{svg}");
        assert!(!svg.contains("a<b"));
    }
}
