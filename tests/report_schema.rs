//! `report.json` format: fixtures round-trip, the committed schema is current and the
//! fixtures validate against it.
//!
//! Regenerate the committed schemas with `make schema`.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::path::{Path, PathBuf};

use drillbook::report::{self, Report};

const FIXTURES: [&str; 3] = [
    "pass-proxy-restart",
    "fail-rollback-midflight",
    "inconclusive-lab-restart",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture_path(name: &str) -> PathBuf {
    root()
        .join("tests/fixtures/reports")
        .join(name)
        .join("report.json")
}

fn committed_schema() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("report.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn committed_schema_is_current() {
    let generated = report::schema_json();
    let path = root().join("report.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "report.schema.json is stale; run `make schema`"
    );
}

#[test]
fn fixtures_round_trip_through_the_model() {
    for name in FIXTURES {
        let text = std::fs::read_to_string(fixture_path(name)).unwrap();
        let report: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(report.schema_version, report::SCHEMA_VERSION);
        let again: Report = serde_json::from_str(&report::to_json(&report).unwrap()).unwrap();
        assert_eq!(again, report, "{name}");
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_value(&report).unwrap(), original, "{name}");
    }
}

#[test]
fn fixtures_validate_against_the_committed_schema() {
    let validator = jsonschema::validator_for(&committed_schema()).unwrap();
    for name in FIXTURES {
        let instance: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture_path(name)).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

#[test]
fn schema_rejects_what_the_model_rejects() {
    let validator = jsonschema::validator_for(&committed_schema()).unwrap();
    let valid: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_path("pass-proxy-restart")).unwrap())
            .unwrap();
    let mut bad_verdict = valid.clone();
    bad_verdict["verdict"] = "passed".into();
    let mut missing_seed = valid.clone();
    missing_seed.as_object_mut().unwrap().remove("seed");
    let mut negative_count = valid;
    negative_count["series"][0]["requests"] = (-1).into();
    for (what, instance) in [
        ("unknown verdict", bad_verdict),
        ("missing seed", missing_seed),
        ("negative count", negative_count),
    ] {
        assert!(!validator.is_valid(&instance), "schema accepted {what}");
        assert!(
            serde_json::from_value::<Report>(instance).is_err(),
            "model accepted {what}"
        );
    }
}
