//! The shipped scenarios and the committed JSON Schema.

use crate::common::cli::{self, Ran};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Scenario (path under `scenarios/`), parameter and value for shipped scenarios with a
/// parameter that has no default.
const REQUIRED_VARS: &[(&str, &str, &str)] = &[
    (
        "scenarios/canary-bake.yaml",
        "image",
        "ronaldraygun/zai-proxy:1.2.1",
    ),
    (
        "box/canary-bake.yaml",
        "image",
        "box.local/drillbook:candidate",
    ),
];

#[test]
fn every_shipped_scenario_validates() {
    let files =
        drillbook::plan::scenario_files(&[root().join("scenarios")]).expect("list scenarios");
    assert!(
        files.len() >= 10,
        "expected the seed and lab scenarios, found {}",
        files.len()
    );
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        // Required parameters, as CI passes them with `--var`.
        let given: Vec<(String, String)> = REQUIRED_VARS
            .iter()
            .filter(|(name, _, _)| file.ends_with(name))
            .map(|(_, var, value)| (var.to_string(), value.to_string()))
            .collect();
        if let Err(d) = drillbook::scenario::load_source_with(&file, text.clone(), &given) {
            panic!("{d}");
        }
        assert!(
            text.starts_with("# yaml-language-server: $schema="),
            "{} lacks the schema modeline",
            file.display()
        );
    }
}

#[test]
fn committed_schema_is_current() {
    let committed = std::fs::read_to_string(root().join("scenario.schema.json"))
        .expect("scenario.schema.json is committed");
    assert!(
        committed == drillbook::plan::schema_json(),
        "scenario.schema.json is stale: run `make schema`"
    );
}

#[test]
fn shipped_scenarios_conform_to_the_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&drillbook::plan::schema_json()).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for file in drillbook::plan::scenario_files(&[root().join("scenarios")]).expect("list") {
        let text = std::fs::read_to_string(&file).expect("read");
        let value: serde_json::Value = serde_saphyr::from_str(&text).expect("yaml");
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
    }
}

#[test]
fn plan_offline_prints_the_timeline_of_every_lab_scenario() {
    for file in drillbook::plan::scenario_files(&[root().join("scenarios/lab")]).expect("list") {
        let out = cli::drillbook()
            .args(["plan", "--offline"])
            .arg(&file)
            .output();
        assert_eq!(out.status.code(), Some(0), "{}", out.stderr_str());
        let stdout = out.stdout_str();
        assert!(stdout.contains("Timeline"), "{stdout}");
        assert!(stdout.contains("t+"), "{stdout}");
        assert!(stdout.contains("Checks"), "{stdout}");
    }
}

#[test]
fn help_of_every_command_has_an_example() {
    for command in [
        "validate", "plan", "run", "recover", "schema", "load", "lab", "report",
    ] {
        let out = cli::drillbook().args([command, "--help"]).output();
        let stdout = out.stdout_str();
        assert!(
            stdout.contains("Example"),
            "`drillbook {command} --help` has no example:\n{stdout}"
        );
    }
}
