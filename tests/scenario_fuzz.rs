//! Hostile input for the scenario reader: arbitrary bytes, YAML-shaped token soup, and
//! mutations of every shipped scenario. Each must come back as a scenario or as located
//! diagnostics — never a panic — and quickly (the YAML budgets bound the work).

use std::path::{Path, PathBuf};

use proptest::prelude::*;

fn shipped() -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    drillbook::plan::scenario_files(&[root])
        .expect("list scenarios")
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read"))
        .collect()
}

/// Loads `text` the way `validate` does and renders any diagnostics (rendering must not panic
/// either: carets on odd lines, tabs, multi-byte characters).
fn load(text: String) {
    if let Err(diagnostics) = drillbook::scenario::load_source(Path::new("fuzz.yaml"), text) {
        assert!(diagnostics.has_errors());
        let rendered = diagnostics.to_string();
        assert!(rendered.contains("error"), "{rendered}");
    }
}

fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("apiVersion: drillbook/v1\n".to_string()),
        Just("name: x\n".to_string()),
        Just("steps:\n".to_string()),
        Just("  - at: 5s\n".to_string()),
        Just("    kill_pods: {selector: app=x}\n".to_string()),
        Just("checks:\n  - name: c\n    http: \"rate(401) == 0\"\n".to_string()),
        Just("target: {local: {processes: [{name: p, command: [sleep]}]}}\n".to_string()),
        Just("&a [*a, *a]\n".to_string()),
        Just("[[[[{{{{".to_string()),
        Just("\t".to_string()),
        Just("\"unterminated\n".to_string()),
        Just("? complex\n: key\n".to_string()),
        Just("--- \n".to_string()),
        Just("!!binary aGVsbG8=\n".to_string()),
        Just("ünïcødé: ✓\n".to_string()),
        "[ -~]{0,20}\n",
    ];
    prop::collection::vec(token, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        load(String::from_utf8_lossy(&bytes).into_owned());
    }

    #[test]
    fn yaml_shaped_soup_never_panics(text in yamlish()) {
        load(text);
    }

    #[test]
    fn mutated_shipped_scenarios_never_panic(
        index in 0usize..64,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let all = shipped();
        let mut bytes = all[index % all.len()].clone().into_bytes();
        for (at, byte, op) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        load(String::from_utf8_lossy(&bytes).into_owned());
    }
}

#[test]
fn a_deep_flow_and_a_wide_alias_fan_out_are_refused_quickly() {
    let started = std::time::Instant::now();
    load(format!(
        "a: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    ));
    let mut fan = String::from("a: &a [x]\n");
    for i in 0..200 {
        fan.push_str(&format!("b{i}: [*a, *a, *a, *a, *a, *a, *a, *a]\n"));
    }
    load(fan);
    // Not a speed target: a hang would show up as minutes, not milliseconds.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
