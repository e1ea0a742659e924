//! A scenario's trend as an SVG chart: p95 (corrected) per phase and the time to recover,
//! one column per run, the verdict under each, regressed runs ringed in red.

use std::fmt::Write as _;

use super::view::ScenarioHistory;
use crate::checks::CheckVerdict;
use crate::report::model::Verdict;

const WIDTH: f64 = 760.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const PANEL: f64 = 150.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf",
];

/// The chart of `scenario`'s rows.
pub fn render(scenario: &ScenarioHistory) -> String {
    let rows = &scenario.rows;
    let n = rows.len().max(1);
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |i: usize| LEFT + plot_w * (i as f64 + 0.5) / n as f64;
    let top1 = 52.0;
    let top2 = top1 + PANEL + 40.0;
    let height = top2 + PANEL + 130.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let place = match (&scenario.context, &scenario.namespace) {
        (Some(c), Some(n)) => format!("{c}/{n}"),
        _ => scenario.target.clone(),
    };
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="16" font-size="14" font-weight="bold">{}</text>"#,
        crate::report::junit::xml(&format!(
            "{} on {place}: the last {} run(s)",
            scenario.scenario,
            rows.len()
        ))
    );
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="30" fill="#555">{}</text>"##,
        crate::report::junit::xml(&super::render::summary(scenario))
    );

    // p95 per phase, one line each.
    let mut phases: Vec<&str> = Vec::new();
    for row in rows {
        for p in &row.run.measured.phases {
            if !phases.contains(&p.name.as_str()) {
                phases.push(&p.name);
            }
        }
    }
    let p95 = |i: usize, phase: &str| {
        rows[i]
            .run
            .measured
            .phases
            .iter()
            .find(|p| p.name == phase)
            .and_then(|p| p.latency.map(|l| l.p95_ms))
    };
    let max_ms = (0..rows.len())
        .flat_map(|i| phases.iter().filter_map(move |ph| p95(i, ph)))
        .fold(0.0_f64, f64::max);
    panel(&mut svg, top1, "p95 latency (corrected), ms", max_ms);
    for (k, phase) in phases.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let points: Vec<(f64, f64)> = (0..rows.len())
            .filter_map(|i| p95(i, phase).map(|v| (x(i), y(top1, v, max_ms))))
            .collect();
        polyline(&mut svg, &points, color);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" fill="{color}">{}</text>"#,
            WIDTH - RIGHT + 10.0,
            top1 + 14.0 * (k as f64 + 1.0),
            crate::report::junit::xml(phase)
        );
    }

    // Time to recover.
    let ttr = |i: usize| rows[i].run.measured.time_to_recover_s;
    let max_s = (0..rows.len()).filter_map(ttr).fold(0.0_f64, f64::max);
    panel(&mut svg, top2, "time to recover, s", max_s);
    let bar = (plot_w / n as f64 * 0.5).min(30.0);
    for i in 0..rows.len() {
        if let Some(t) = ttr(i) {
            let top = y(top2, t, max_s);
            let _ = writeln!(
                svg,
                r##"<rect x="{:.1}" y="{top:.1}" width="{bar:.1}" height="{:.1}" fill="#888"/>"##,
                x(i) - bar / 2.0,
                top2 + PANEL - top
            );
        }
    }

    // Verdicts, regressions and run ids under the columns.
    let base = top2 + PANEL + 16.0;
    for (i, row) in rows.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{}"><title>{}</title></rect>"#,
            x(i) - 5.0,
            base - 8.0,
            verdict_color(row.run.verdict),
            crate::report::junit::xml(row.run.verdict.as_str())
        );
        if row.regression.verdict == CheckVerdict::Fail {
            for top in [top1, top2] {
                let _ = writeln!(
                    svg,
                    r##"<rect x="{:.1}" y="{top}" width="{:.1}" height="{PANEL}" fill="none" stroke="#d62728" stroke-width="2"><title>{}</title></rect>"##,
                    x(i) - plot_w / n as f64 / 2.0 + 2.0,
                    plot_w / n as f64 - 4.0,
                    crate::report::junit::xml(&row.regression.detail)
                );
            }
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" transform="rotate(40 {:.1} {:.1})">{}</text>"#,
            x(i) - 4.0,
            base + 14.0,
            x(i) - 4.0,
            base + 14.0,
            crate::report::junit::xml(&format!(
                "{} {}",
                row.run.run_id,
                row.run.started_at.strftime("%m-%d %H:%M")
            ))
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" fill="#d62728">red frame: regression</text>"##,
        WIDTH - RIGHT + 10.0,
        top2 + 14.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn y(top: f64, value: f64, max: f64) -> f64 {
    if max <= 0.0 {
        top + PANEL
    } else {
        top + PANEL - PANEL * (value / max) * 0.9
    }
}

fn panel(svg: &mut String, top: f64, title: &str, max: f64) {
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{top}" width="{}" height="{PANEL}" fill="none" stroke="#ccc"/>"##,
        WIDTH - LEFT - RIGHT
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="{}">{}</text>"#,
        top - 6.0,
        crate::report::junit::xml(title)
    );
    for frac in [0.0, 0.5, 1.0] {
        let value = max / 0.9 * frac;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            top + PANEL - PANEL * frac + 4.0,
            if value >= 10.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.1}")
            }
        );
    }
}

fn polyline(svg: &mut String, points: &[(f64, f64)], color: &str) {
    let coords: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = writeln!(
        svg,
        r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
        coords.join(" ")
    );
    for (x, y) in points {
        let _ = writeln!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{color}"/>"#
        );
    }
}

fn verdict_color(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "#2ca02c",
        Verdict::Fail => "#d62728",
        Verdict::Inconclusive => "#bcbd22",
        Verdict::Aborted | Verdict::Interrupted => "#7f7f7f",
    }
}
