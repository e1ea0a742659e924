//! The HTML report: its structure (snapshotted, not its pixels), escaping of hostile values,
//! the size budget of a 10-minute drill, and a real lab drill's page loaded from disk by
//! headless Chromium in both themes. The same drill's GitHub Actions summary, annotations and
//! JUnit `file`/`line` attributes are checked with a fake `GITHUB_STEP_SUMMARY`.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::common;
use crate::common::browser::{self, Theme};
use crate::common::cli::{self, Ran};
use drillbook::exit::Outcome;
use drillbook::report::model::{
    CheckVerdict, EventKind, PodSample, PointLatency, PrometheusReading, PrometheusSamples, Report,
    SeriesPoint, TimelineEvent, Track,
};
use drillbook::report::{self, Format};

/// The page of a 10-minute drill must stay below this (it is attached to tickets and kept as a
/// CI artefact).
const BUDGET_10_MINUTES: usize = 1_500_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> Report {
    report::load(
        &root()
            .join("tests/fixtures/reports")
            .join(name)
            .join("report.json"),
    )
    .unwrap()
}

fn html(report: &Report) -> String {
    report::render(report, Format::Html, false).unwrap()
}

/// The element structure of a page: one line per element (tag, id, classes), indented by
/// depth, without the text, the attribute values that hold data, or the inline style and
/// script; runs of identical siblings (table rows, hit areas) become one line with a count.
fn outline(html: &str) -> String {
    const VOID: [&str; 4] = ["meta", "br", "img", "input"];
    const LEAVES: [&str; 8] = ["td", "th", "title", "text", "dt", "dd", "a", "code"];
    let mut lines: Vec<(usize, String)> = Vec::new();
    let (mut depth, mut rest) = (0usize, html);
    let mut skip_below: Option<usize> = None;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest.find('>').unwrap();
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            depth = depth.saturating_sub(1);
            if skip_below == Some(depth) {
                skip_below = None;
            }
            if name == "style" || name == "script" {
                continue;
            }
            continue;
        }
        let name = tag.split_whitespace().next().unwrap().trim_end_matches('/');
        let attr = |key: &str| {
            tag.split(&format!(" {key}=\""))
                .nth(1)
                .and_then(|v| v.split('"').next())
                .map(str::to_owned)
        };
        let mut line = name.to_owned();
        if let Some(id) = attr("id") {
            line.push('#');
            line.push_str(&id);
        }
        if let Some(class) = attr("class") {
            line.push('.');
            line.push_str(&class.replace(' ', "."));
        }
        if skip_below.is_none() && !LEAVES.contains(&name) {
            lines.push((depth, line));
        }
        let closes = tag.ends_with('/') || VOID.contains(&name);
        if name == "style" || name == "script" {
            let close = format!("</{name}>");
            rest = &rest[rest.find(&close).unwrap() + close.len()..];
            continue;
        }
        if !closes {
            if skip_below.is_none() && LEAVES.contains(&name) {
                skip_below = Some(depth);
            }
            depth += 1;
        }
    }
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let mut run = 1;
        while i + run < lines.len() && lines[i + run] == lines[i] {
            run += 1;
        }
        let (depth, line) = &lines[i];
        out.push_str(&"  ".repeat(*depth));
        out.push_str(line);
        if run > 1 {
            out.push_str(&format!(" ×{run}"));
        }
        out.push('\n');
        i += run;
    }
    out
}

#[test]
fn html_structure_snapshots() {
    for name in [
        "pass-proxy-restart",
        "fail-rollback-midflight",
        "inconclusive-lab-restart",
    ] {
        common::snapshot::assert_snapshot!(
            format!("outline-{name}"),
            outline(&html(&fixture(name)))
        );
    }
}

#[test]
fn the_page_loads_nothing_from_anywhere() {
    let page = html(&fixture("pass-proxy-restart"));
    assert!(
        page.contains("default-src 'none'"),
        "no Content-Security-Policy"
    );
    for needle in [
        "src=\"",
        "href=\"http",
        "url(",
        "@import",
        "fetch(",
        "XMLHttpRequest",
    ] {
        assert!(
            !page.contains(needle),
            "the page would load something: {needle}"
        );
    }
}

#[test]
fn hostile_values_are_escaped_everywhere() {
    let mut report = fixture("fail-rollback-midflight");
    let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&</pre>";
    report.scenario.name = hostile.into();
    report.scenario.description = hostile.into();
    report.verdict_reason = hostile.into();
    report.warnings.push(hostile.into());
    report.checks[0].name = hostile.into();
    report.checks[0].detail = hostile.into();
    report.checks[0].expression = hostile.into();
    report.checks[0].phase = Some(hostile.into());
    report.events.push(TimelineEvent {
        at_s: 1.0,
        kind: EventKind::Fault,
        step: Some(hostile.into()),
        description: hostile.into(),
        targets: vec![hostile.into()],
        undo: Some(hostile.into()),
        outcome: Some(hostile.into()),
    });
    report.phases[0].name = hostile.into();
    report.tracks.push(Track {
        name: hostile.into(),
        points: vec![[0.0, 1.0], [1.0, 2.0]],
    });
    report.prometheus.push(PrometheusSamples {
        check: hostile.into(),
        samples: vec![PrometheusReading {
            value: None,
            error: Some(hostile.into()),
        }],
    });
    report.replay = vec!["drillbook".into(), hostile.into()];
    let page = html(&report);
    assert_eq!(
        page.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(!page.contains("<img"), "markup from a value");
    assert!(!page.contains("</script><img"), "markup from a value");
    assert_eq!(
        page.matches("</pre>").count(),
        1,
        "only the replay block closes a <pre>"
    );
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&quot;&apos;&amp;&lt;/pre&gt;"));
    // Anchors made from names carry no markup either.
    assert!(!page.contains("id=\"phase-<"));
}

/// A 10-minute drill at full detail: every second with all percentiles and statuses, pods
/// every second, a fault every minute, 200 callers, two sampled Prometheus checks.
fn ten_minute_report() -> Report {
    let mut report = fixture("pass-proxy-restart");
    let template = report.series[0].clone();
    report.series = (0u32..600)
        .map(|t| SeriesPoint {
            t_s: f64::from(t),
            requests: 1000 + u64::from(t % 7),
            rps: 1000.0,
            ok: 990,
            status_401: u64::from(t % 3),
            status_403: u64::from(t % 5 == 0),
            status_5xx: u64::from(t % 11),
            errors: u64::from(t % 13),
            dropped: 0,
            p50_ms: Some(2.345 + f64::from(t % 17) / 10.0),
            p99_ms: Some(123.456 + f64::from(t % 29)),
            p95_ms: Some(45.678 + f64::from(t % 23)),
            service: Some(PointLatency {
                p50_ms: 1.234,
                p95_ms: 34.567,
                p99_ms: 98.765,
            }),
            ..template.clone()
        })
        .collect();
    report.pods = (0..600)
        .map(|t| PodSample {
            t_s: t,
            pods: 3,
            ready: 3 - u32::from(t % 60 < 5),
            restarts: (t / 60) as u32,
        })
        .collect();
    for minute in 0..10 {
        report.events.push(TimelineEvent {
            at_s: f64::from(minute * 60),
            kind: EventKind::Fault,
            step: Some(format!("kill-{minute}")),
            description: "SIGKILL 1 pod(s) of `app=requests-proxy`".into(),
            targets: vec![format!("requests-proxy-7d9f8c6b5-{minute:05}")],
            undo: None,
            outcome: Some("ok in 0.1s".into()),
        });
    }
    let caller = report.callers[0].clone();
    report.callers = (0..200)
        .map(|i| {
            let mut c = caller.clone();
            c.label = format!("caller-{i}.0");
            c
        })
        .collect();
    report.prometheus = (0..2)
        .map(|i| PrometheusSamples {
            check: format!("error-ratio-{i}"),
            samples: (0..60)
                .map(|n| PrometheusReading {
                    value: Some(f64::from(n) / 1000.0),
                    error: None,
                })
                .collect(),
        })
        .collect();
    report
}

#[test]
fn a_ten_minute_drill_fits_the_size_budget() {
    let page = html(&ten_minute_report());
    eprintln!(
        "report.html of a 10-minute drill: {} bytes (budget {BUDGET_10_MINUTES})",
        page.len()
    );
    assert!(
        page.len() <= BUDGET_10_MINUTES,
        "{} bytes is over the {BUDGET_10_MINUTES}-byte budget",
        page.len()
    );
    // Every second is drawn and hoverable.
    assert_eq!(page.matches("class=\"hit\"").count(), 3 * 600 + 2 * 60);
}

#[test]
fn report_command_writes_html() {
    let path = root().join("tests/fixtures/reports/pass-proxy-restart/report.json");
    let output = cli::drillbook()
        .args(["report", "--format", "html"])
        .arg(&path)
        .output();
    output.assert_code(0);
    let page = output.stdout_str();
    assert!(
        page.starts_with("<!DOCTYPE html>"),
        "{}",
        &page[..100.min(page.len())]
    );
    assert!(page.contains("id=\"chart-latency\""));
    assert!(
        !page.contains("href=\"report.json\""),
        "a lone page links no run files"
    );
}

// --- a real lab drill in a real browser --------------------------------------------------

/// The lab's proxy-restart drill with a hostile description and an extra check that must
/// fail (no 401 in the baseline, so `rate(401) > 0` fails), written beside a temp runbook.
fn failing_variant(dir: &Path) -> (PathBuf, u32) {
    let source = std::fs::read_to_string(root().join("scenarios/lab/proxy-restart.yaml")).unwrap();
    let added = "  - name: \"<img src=x onerror=alert(1)> 401s in baseline\"\n    phase: baseline\n    http: \"rate(401) > 0\"\n";
    let text = source
        .replacen(
            "name: lab-proxy-restart\n",
            "name: lab-proxy-restart-html\n",
            1,
        )
        .replacen(
            "description: >-\n",
            "description: >-\n  <script>alert('hostile')</script> </pre> & \"quoted\".\n",
            1,
        )
        .replacen("checks:\n", &format!("checks:\n{added}"), 1);
    let line = text
        .lines()
        .position(|l| l.contains("401s in baseline"))
        .unwrap() as u32
        + 1;
    let path = dir.join("proxy-restart-html.yaml");
    std::fs::write(&path, text).unwrap();
    (path, line)
}

/// The value of attribute `key` on the first element of `dom` that carries `marker`.
fn attribute_after(dom: &str, marker: &str, key: &str) -> String {
    let at = dom
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in the page"));
    let tag_start = dom[..at].rfind('<').unwrap();
    let tag = &dom[tag_start..tag_start + dom[tag_start..].find('>').unwrap()];
    tag.split(&format!(" {key}=\""))
        .nth(1)
        .and_then(|v| v.split('"').next())
        .unwrap_or_else(|| panic!("no {key} in {tag}"))
        .to_owned()
}

/// `data-points` of each series path of chart `id`, in order.
fn series_points(dom: &str, id: &str) -> Vec<(String, usize)> {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no chart {id}"));
    let chart = &dom[start..start + dom[start..].find("</figure>").unwrap()];
    chart
        .split("<path ")
        .skip(1)
        .map(|tag| {
            let tag = &tag[..tag.find('>').unwrap()];
            let attr = |key: &str| {
                tag.split(&format!("{key}=\""))
                    .nth(1)
                    .and_then(|v| v.split('"').next())
                    .unwrap()
                    .to_owned()
            };
            let drawn = attr("d").matches(['M', 'L']).count();
            let points: usize = attr("data-points").parse().unwrap();
            assert_eq!(
                drawn,
                points,
                "series {} of {id} draws what it says",
                attr("data-series")
            );
            (attr("data-series"), points)
        })
        .collect()
}

fn present(report: &Report, value: impl Fn(&SeriesPoint) -> Option<f64>) -> usize {
    report.series.iter().filter_map(value).count()
}

#[test]
fn browser_shows_a_lab_drill_and_ci_gets_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (scenario, check_line) = failing_variant(dir.path());
    let summary = dir.path().join("step-summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let output = cli::drillbook()
        .arg("run")
        .arg(&scenario)
        .arg("--report-dir")
        .arg(dir.path().join("reports"))
        .arg("--junit")
        .arg(dir.path().join("junit.xml"))
        .args(["--no-drill-log", "--seed", "26", "--operator", "html-test"])
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_SERVER_URL", "https://github.example")
        .env("GITHUB_REPOSITORY", "acme/drills")
        .env("GITHUB_RUN_ID", "4242")
        .stdin(Stdio::null())
        .output();
    output.assert_code(i32::from(Outcome::Fail.code()));
    // The run's folder (beside it: the history index, `history.ndjson`).
    let run_dir = std::fs::read_dir(dir.path().join("reports"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap();
    let report = report::load(&run_dir.join("report.json")).unwrap();
    let failing = report
        .checks
        .iter()
        .find(|c| c.verdict == CheckVerdict::Fail)
        .unwrap();
    assert_eq!(failing.location.map(|l| l.line), Some(check_line));

    // GitHub Actions: the summary appended, the failing check annotated at its line.
    let written = std::fs::read_to_string(&summary).unwrap();
    assert!(
        written.starts_with("earlier step\n### drillbook `lab-proxy-restart-html`: **FAIL**"),
        "{written}"
    );
    assert!(
        written.contains("&lt;img src=x onerror=alert(1)&gt; 401s in baseline")
            || written.contains("<img src=x onerror=alert(1)> 401s in baseline"),
        "{written}"
    );
    assert!(
        written.contains("https://github.example/acme/drills/actions/runs/4242"),
        "{written}"
    );
    assert!(written.contains("report.html"), "{written}");
    let stdout = output.stdout_str();
    let annotation = stdout
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("no ::error annotation in\n{stdout}"));
    let file = scenario.display().to_string().replace(':', "%3A");
    assert!(
        annotation.starts_with(&format!("::error file={file},line={check_line},col=")),
        "{annotation}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("::error ")).count(),
        1
    );
    // GitLab: the JUnit testcase carries file and line.
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(junit.contains(&format!("line=\"{check_line}\"")), "{junit}");

    let Some(chromium) = browser::chromium() else {
        return;
    };
    let page = run_dir.join("report.html");
    let bytes = std::fs::metadata(&page).unwrap().len();
    eprintln!(
        "report.html of a {:.0}s lab drill: {bytes} bytes",
        report.duration_s()
    );
    let loaded = browser::load(&chromium, &page, Theme::Light);
    let console = loaded.console();
    assert!(console.is_empty(), "console output: {console:#?}");
    let dom = &loaded.dom;
    let html_tag = &dom[dom.find("<html").unwrap()..];
    let html_tag = &html_tag[..html_tag.find('>').unwrap()];
    assert!(
        html_tag.contains("data-enhanced=\"1\""),
        "the script did not run: {html_tag}"
    );
    assert!(
        !html_tag.contains("data-script-error"),
        "a script error: {html_tag}"
    );
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "the hostile description made markup"
    );
    assert!(dom.contains("&lt;script&gt;alert('hostile')&lt;/script&gt;"));
    assert!(!dom.contains("<img"));

    // The charts: their series and points are the report's.
    let latency = series_points(dom, "chart-latency");
    let expected: Vec<(String, usize)> = [
        ("p50", present(&report, |p| p.p50_ms)),
        ("p95", present(&report, |p| p.p95_ms)),
        ("p99", present(&report, |p| p.p99_ms)),
        (
            "service p50",
            present(&report, |p| p.service.map(|s| s.p50_ms)),
        ),
        (
            "service p95",
            present(&report, |p| p.service.map(|s| s.p95_ms)),
        ),
        (
            "service p99",
            present(&report, |p| p.service.map(|s| s.p99_ms)),
        ),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_owned(), c))
    .collect();
    assert_eq!(latency, expected);
    assert!(
        report.series.len() >= 15,
        "a drill of 18s has its seconds: {}",
        report.series.len()
    );
    let statuses = series_points(dom, "chart-status");
    assert_eq!(
        statuses
            .iter()
            .map(|(n, _)| n.as_str())
            .take(4)
            .collect::<Vec<_>>(),
        ["2xx/3xx", "401", "5xx", "connection errors"]
    );
    assert!(statuses.iter().all(|(_, n)| *n == report.series.len()));
    let pods = series_points(dom, "chart-pods");
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|(_, n)| *n == report.pods.len()) && !report.pods.is_empty());
    // The proxy was killed: one fewer ready at some second, and a restart counted.
    assert!(
        report.pods.iter().any(|p| p.ready < p.pods),
        "{:?}",
        report.pods
    );
    assert!(
        report.pods.last().unwrap().restarts >= 1,
        "{:?}",
        report.pods
    );
    // The fault is marked on the charts, the phases shaded.
    assert!(dom.contains("class=\"mark fault\""));
    assert_eq!(
        dom.matches("class=\"band ").count(),
        3 * report.phases.len()
    );

    // A known value where the data says: the slowest second's p99 in that second's tooltip.
    let (i, slowest) = report
        .series
        .iter()
        .enumerate()
        .filter(|(_, p)| p.p99_ms.is_some())
        .max_by(|a, b| a.1.p99_ms.unwrap().total_cmp(&b.1.p99_ms.unwrap()))
        .unwrap();
    let latency_chart = &dom[dom.find("id=\"chart-latency\"").unwrap()..];
    let tip = attribute_after(latency_chart, &format!("data-column=\"{i}\""), "data-tip");
    assert!(tip.starts_with(&format!("t+{:.1}s", slowest.t_s)), "{tip}");
    assert!(
        tip.contains(&format!("p99: {}", report::millis(slowest.p99_ms.unwrap()))),
        "{tip}"
    );
    // And the failing check's detail in its row.
    assert!(dom.contains(&format!("proxy-restart-html.yaml:{check_line}:")));

    // Without JavaScript (the page with its one script cut out: headless Chromium's own
    // switch also stops --dump-dom) the same charts are there and every hover value is an
    // SVG title.
    let source = std::fs::read_to_string(&page).unwrap();
    let (before, after) = source.split_once("<script>").unwrap();
    let scriptless = format!("{before}{}", after.split_once("</script>").unwrap().1);
    let scriptless_page = run_dir.join("report-noscript.html");
    std::fs::write(&scriptless_page, scriptless).unwrap();
    let plain = browser::load(&chromium, &scriptless_page, Theme::Light).dom;
    let plain_tag = &plain[plain.find("<html").unwrap()..];
    assert!(!plain_tag[..plain_tag.find('>').unwrap()].contains("data-enhanced"));
    assert_eq!(series_points(&plain, "chart-latency"), latency);
    assert!(plain.contains(&format!("p99: {}", report::millis(slowest.p99_ms.unwrap()))));
    assert_eq!(
        plain.matches("<rect class=\"hit\"").count(),
        plain.matches("<title>t+").count()
    );

    // Screenshots: not blank, and the theme follows the system setting.
    let artefacts = root().join("reports");
    for (theme, name) in [
        (Theme::Light, "report-html-light.png"),
        (Theme::Dark, "report-html-dark.png"),
    ] {
        let png = artefacts.join(name);
        browser::screenshot(&chromium, &page, theme, &png, (1280, 2000));
        let image = browser::decode_png(&std::fs::read(&png).unwrap());
        assert_eq!((image.width, image.height), (1280, 2000));
        let mut colours: Vec<[u8; 3]> = image.rgb.iter().step_by(7).copied().collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(
            colours.len() > 50,
            "{name}: only {} colours, a blank page?",
            colours.len()
        );
        let corner = image.pixel(4, 4);
        let luma = |p: [u8; 3]| (u32::from(p[0]) * 3 + u32::from(p[1]) * 6 + u32::from(p[2])) / 10;
        match theme {
            Theme::Light => assert!(luma(corner) > 200, "{name}: background {corner:?}"),
            Theme::Dark => assert!(luma(corner) < 60, "{name}: background {corner:?}"),
        }
        eprintln!(
            "{name}: {} distinct colours, background {corner:?}",
            colours.len()
        );
    }
}
