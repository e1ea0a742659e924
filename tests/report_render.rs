//! Renderers on the committed fixtures: snapshots of the text formats, structure of the SVG.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use crate::common;
use crate::common::cli::{self, Ran};

use std::path::{Path, PathBuf};

use drillbook::exit::Outcome;
use drillbook::report::{self, Format, Report, Verdict};

const FIXTURES: [&str; 3] = [
    "pass-proxy-restart",
    "fail-rollback-midflight",
    "inconclusive-lab-restart",
];

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reports")
        .join(name)
        .join("report.json")
}

fn fixture(name: &str) -> Report {
    report::load(&fixture_path(name)).unwrap()
}

fn render(report: &Report, format: Format) -> String {
    report::render(report, format, false).unwrap()
}

#[test]
fn fixtures_cover_every_non_error_verdict() {
    let verdicts: Vec<Verdict> = FIXTURES.iter().map(|n| fixture(n).verdict).collect();
    assert_eq!(
        verdicts,
        [Verdict::Pass, Verdict::Fail, Verdict::Inconclusive]
    );
}

#[test]
fn table_snapshots() {
    for name in FIXTURES {
        common::snapshot::assert_snapshot!(
            format!("table-{name}"),
            render(&fixture(name), Format::Table)
        );
    }
}

#[test]
fn markdown_snapshots() {
    for name in FIXTURES {
        common::snapshot::assert_snapshot!(
            format!("md-{name}"),
            render(&fixture(name), Format::Md)
        );
    }
}

#[test]
fn junit_snapshots() {
    for name in FIXTURES {
        common::snapshot::assert_snapshot!(
            format!("junit-{name}"),
            render(&fixture(name), Format::Junit)
        );
    }
}

#[test]
fn changelog_snapshots() {
    for name in FIXTURES {
        common::snapshot::assert_snapshot!(
            format!("changelog-{name}"),
            render(&fixture(name), Format::Changelog)
        );
    }
}

#[test]
fn json_format_reproduces_the_fixture_byte_for_byte() {
    for name in FIXTURES {
        let committed = std::fs::read_to_string(fixture_path(name)).unwrap();
        assert_eq!(render(&fixture(name), Format::Json), committed, "{name}");
    }
}

#[test]
fn table_colours_the_verdict_only_when_asked() {
    let report = fixture("fail-rollback-midflight");
    let plain = report::render(&report, Format::Table, false).unwrap();
    let coloured = report::render(&report, Format::Table, true).unwrap();
    assert!(!plain.contains('\x1b'));
    assert!(coloured.contains("\x1b[1;31mFAIL\x1b[0m"));
    // Only the verdict line differs; the tables keep their widths.
    let differing: Vec<_> = plain
        .lines()
        .zip(coloured.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(differing.len(), 1, "{differing:?}");
}

#[test]
fn table_lists_only_callers_that_saw_failures() {
    let out = render(&fixture("pass-proxy-restart"), Format::Table);
    assert!(out.contains("job-02#0") && out.contains("job-05#0"));
    assert!(!out.contains("job-01#0"), "caller without failures listed");
}

#[test]
fn markdown_escapes_pipes_in_cells_and_tags_in_text() {
    let mut report = fixture("fail-rollback-midflight");
    report.checks[0].detail = "a | b".to_owned();
    let out = render(&report, Format::Md);
    assert!(out.contains("a \\| b"));
    assert!(out.contains("first 401 \\<from> a caller"));
    assert!(!out.replace("\\<", "").contains("<from>"));
}

/// Minimal XML well-formedness: every tag is closed in order, attributes are quoted, and no
/// raw `<` or `&` appears in text (the escapes are what we want to prove).
fn assert_well_formed_xml(xml: &str) {
    let body = xml
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .expect("XML declaration");
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        assert!(!text.contains('>'), "raw > in text: {text:?}");
        assert_entities_valid(text);
        let close = rest[open..].find('>').expect("unclosed tag") + open;
        let tag = &rest[open + 1..close];
        assert!(!tag.contains('<'), "raw < inside tag {tag:?}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else {
            let self_closing = tag.ends_with('/');
            let name = tag
                .trim_end_matches('/')
                .split(' ')
                .next()
                .unwrap()
                .to_owned();
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes in {tag:?}"
            );
            assert_entities_valid(tag);
            if !self_closing {
                stack.push(name);
            }
        }
        rest = &rest[close + 1..];
    }
    assert!(rest.trim().is_empty());
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

fn assert_entities_valid(text: &str) {
    for (i, _) in text.match_indices('&') {
        let entity = &text[i..text[i..].find(';').map_or(text.len(), |e| i + e + 1)];
        assert!(
            [
                "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#10;", "&#13;", "&#9;"
            ]
            .contains(&entity),
            "bad entity {entity:?}"
        );
    }
}

#[test]
fn junit_is_well_formed_with_hostile_text() {
    let mut report = fixture("fail-rollback-midflight");
    report.checks[0].name = "<script>&\"quotes\" 'single'\u{1}".to_owned();
    report.checks[0].detail = "line one\nline two </failure>".to_owned();
    let xml = render(&report, Format::Junit);
    assert_well_formed_xml(&xml);
    assert!(xml.contains("&lt;script&gt;&amp;&quot;quotes&quot; &apos;single&apos;\u{FFFD}"));
    for name in FIXTURES {
        assert_well_formed_xml(&render(&fixture(name), Format::Junit));
    }
}

#[test]
fn junit_counts_failures_and_skips_inconclusive_checks() {
    let xml = render(&fixture("inconclusive-lab-restart"), Format::Junit);
    assert!(xml.contains("tests=\"3\" failures=\"0\" errors=\"0\" skipped=\"2\""));
    assert_eq!(xml.matches("<skipped message=\"inconclusive: ").count(), 2);
    assert!(xml.contains("<property name=\"seed\" value=\"7\"/>"));
    assert!(xml.contains("<property name=\"run_id\" value=\"0c55e9f2\"/>"));
}

#[test]
fn junit_reports_an_aborted_drill_as_an_error() {
    let mut report = fixture("pass-proxy-restart");
    report.verdict = Verdict::Aborted;
    report.verdict_reason = "abort guard 5xx > 20% tripped at t+31.0s".to_owned();
    let xml = render(&report, Format::Junit);
    assert_well_formed_xml(&xml);
    assert!(xml.contains("tests=\"5\" failures=\"0\" errors=\"1\""));
    assert!(xml.contains("<error type=\"aborted\" message=\"abort guard 5xx &gt; 20% tripped"));
}

#[test]
fn svg_has_the_panels_phases_and_fault_markers() {
    for name in FIXTURES {
        let report = fixture(name);
        let svg = render(&report, Format::Svg);
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}"
        );
        assert_eq!(svg.matches("<svg").count(), 1);
        for phase in &report.phases {
            assert!(
                svg.contains(&format!("{} ({})", phase.name, phase.verdict)),
                "{name}: phase {} not labelled",
                phase.name
            );
        }
        for y_axis in ["requests/s", "failures/s", "latency ms"] {
            assert!(svg.contains(y_axis), "{name}: no {y_axis} panel");
        }
    }
    let svg = render(&fixture("fail-rollback-midflight"), Format::Svg);
    assert!(svg.contains("rollback-to-legacy (t+30s)"));
    for legend in ["rps", "401/s", "5xx/s", "p99"] {
        assert!(
            svg.contains(&format!(">\n{legend}\n</text>")),
            "legend {legend}"
        );
    }
    // Data lines (and their legend samples) are 2px polylines in the line's colour.
    for colour in [
        "#1F77B4", "#D62728", "#FF7F0E", "#9467BD", "#8C564B", "#7F7F7F",
    ] {
        let line = format!("stroke=\"{colour}\" stroke-width=\"2\"");
        assert_eq!(
            svg.matches(&line).count(),
            2,
            "line {colour}: data + legend"
        );
    }
    // One fault marker per panel.
    assert_eq!(
        svg.matches("stroke=\"#C80000\" stroke-width=\"1\"").count(),
        3
    );
}

#[test]
fn svg_renders_an_empty_series_without_panicking() {
    let svg = render(&fixture("inconclusive-lab-restart"), Format::Svg);
    assert!(svg.contains("no load measurements in this report"));
    assert!(svg.contains("restart-jobs-manager (t+10s)"));
    assert_eq!(
        svg.matches("stroke-width=\"2\"").count(),
        0,
        "no data lines"
    );

    let mut bare = fixture("inconclusive-lab-restart");
    bare.phases.clear();
    bare.events.clear();
    bare.ended_at = bare.started_at;
    let svg = render(&bare, Format::Svg);
    assert!(svg.trim_end().ends_with("</svg>"));
}

#[test]
fn write_all_writes_the_five_files() {
    let dir = tempfile::tempdir().unwrap();
    let report = fixture("fail-rollback-midflight");
    let run_dir = dir.path().join(report::run_dir_name(&report));
    let written = report::write_all(&report, &run_dir).unwrap();
    let names: Vec<_> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "report.json",
            "report.md",
            "junit.xml",
            "timeline.svg",
            "report.html"
        ]
    );
    assert_eq!(report::load(&written[0]).unwrap(), report);
    let page = std::fs::read_to_string(&written[4]).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(
        page.contains("href=\"report.json\""),
        "the page links its run's files"
    );
    assert_eq!(
        std::fs::read_to_string(&written[1]).unwrap(),
        render(&report, Format::Md)
    );
    assert!(
        std::fs::read_to_string(&written[3])
            .unwrap()
            .starts_with("<svg")
    );
}

#[test]
fn run_dir_name_is_date_scenario_run_and_path_safe() {
    let mut report = fixture("pass-proxy-restart");
    assert_eq!(
        report::run_dir_name(&report),
        "2026-11-22-proxy-restart-3f9a12cd"
    );
    report.scenario.name = "../../etc/x y".to_owned();
    let name = report::run_dir_name(&report);
    assert!(
        !name.contains('/') && !name.contains("..") && !name.contains(' '),
        "{name}"
    );
}

#[test]
fn verdicts_map_to_exit_outcomes() {
    let pairs = [
        (Verdict::Pass, Outcome::Pass),
        (Verdict::Fail, Outcome::Fail),
        (Verdict::Inconclusive, Outcome::Inconclusive),
        (Verdict::Aborted, Outcome::Aborted),
        (Verdict::Interrupted, Outcome::Interrupted),
    ];
    for (verdict, outcome) in pairs {
        assert_eq!(Outcome::from(verdict), outcome);
    }
}

#[test]
fn load_refuses_a_newer_schema_version_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_path("pass-proxy-restart")).unwrap())
            .unwrap();
    value["schema_version"] = 2.into();
    value["renamed_field"] = true.into();
    std::fs::write(&path, value.to_string()).unwrap();
    let error = report::load(&path).unwrap_err();
    assert!(
        matches!(
            error,
            report::ReportError::UnsupportedVersion { found: 2, .. }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("reads up to 1"));
}

#[test]
fn report_command_renders_to_stdout_and_files() {
    let fixture_file = fixture_path("fail-rollback-midflight");
    let output = cli::drillbook()
        .args(["report", fixture_file.to_str().unwrap(), "--format", "md"])
        .output();
    // Rendering succeeds whatever the drill's verdict.
    output.assert_code(0);
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        render(&fixture("fail-rollback-midflight"), Format::Md)
    );

    // Piped stdout is not a terminal: no colour.
    let output = cli::drillbook()
        .args(["report", fixture_file.to_str().unwrap()])
        .env_remove("NO_COLOR")
        .output();
    assert!(!String::from_utf8(output.stdout).unwrap().contains('\x1b'));

    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let status = cli::drillbook()
        .args([
            "report",
            fixture_file.to_str().unwrap(),
            "-f",
            "junit",
            "-o",
        ])
        .arg(&junit)
        .status();
    assert!(status.success());
    assert!(
        std::fs::read_to_string(&junit)
            .unwrap()
            .contains("<testsuite ")
    );

    let not_a_report = dir.path().join("x.json");
    std::fs::write(&not_a_report, "{\"hello\": 1}").unwrap();
    let output = cli::drillbook()
        .args(["report", not_a_report.to_str().unwrap()])
        .output();
    output.assert_code(2);
    assert!(output.stderr_str().contains("is not a drillbook report"));
}

#[test]
fn write_all_replaces_files_whole_and_leaves_no_temp_file_when_one_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let report = fixture("pass-proxy-restart");
    std::fs::write(dir.path().join("report.json"), "stale").unwrap();
    // A folder where report.md should be: renaming over it fails (EISDIR).
    std::fs::create_dir(dir.path().join("report.md")).unwrap();
    let err = report::write_all(&report, dir.path()).unwrap_err();
    assert!(err.to_string().contains("report.md"), "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the OS cause is kept"
    );
    // report.json was replaced whole before report.md failed.
    let written = report::load(&dir.path().join("report.json")).unwrap();
    assert_eq!(written.run_id, report.run_id);
    let temps: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "temp files left: {temps:?}");
}

/// 14 identical `FailedScheduling` warnings at different times: one row with a count and the
/// first and last time, in the terminal table and in Markdown.
#[test]
fn repeated_warning_events_are_one_row_with_a_count() {
    let mut report = fixture("pass-proxy-restart");
    let warning = report::model::TimelineEvent {
        at_s: 3.0,
        kind: report::model::EventKind::Observation,
        step: None,
        description: "Warning FailedScheduling pod/proxy-7d9: 0/1 nodes are available".into(),
        targets: Vec::new(),
        undo: None,
        outcome: None,
    };
    for i in 0..14 {
        report.events.push(report::model::TimelineEvent {
            at_s: 3.0 + f64::from(i) * 2.5,
            ..warning.clone()
        });
    }
    for format in [Format::Table, Format::Md] {
        let text = render(&report, format);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("FailedScheduling"))
            .collect();
        assert_eq!(rows.len(), 1, "one row for 14 repeats ({format:?}): {text}");
        assert!(rows[0].contains("(×14)"), "{}", rows[0]);
        assert!(rows[0].contains("t+3.0s-t+35.5s"), "{}", rows[0]);
    }
}

/// A terminal 80 columns wide gets tables no wider than that; the long column is cut with `…`
/// and the full text stays in Markdown.
#[test]
fn terminal_tables_fit_the_width() {
    let mut report = fixture("pass-proxy-restart");
    let long = "x".repeat(300);
    report.events[0].description = format!("a very long description {long}");
    let wide = report::table::render(&report, false);
    assert!(wide.lines().any(|l| l.chars().count() > 300));
    let fitted = report::table::render_fitted(&report, false, Some(80));
    for line in fitted
        .lines()
        .filter(|l| l.starts_with(['│', '╭', '├', '╰']))
    {
        assert!(
            line.chars().count() <= 80,
            "{} wide: {line}",
            line.chars().count()
        );
    }
    assert!(fitted.contains('…'), "{fitted}");
    assert!(render(&report, Format::Md).contains(&long));
}
