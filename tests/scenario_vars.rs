//! Scenario parameters: `vars:` declared with defaults and patterns, `--var NAME=value`, and
//! `${var.NAME}` in URLs, selectors, queries, images and helm values; errors are located.

use crate::common::cli::{self, Ran};
use std::path::Path;

use drillbook::scenario::{self, Action, CheckKind, TargetSpec};

const SCENARIO: &str = r#"apiVersion: drillbook/v1
name: bake
vars:
  image:
    pattern: "[a-z/-]+:[0-9]+\\.[0-9]+\\.[0-9]+"
    description: candidate image
  variant: {default: test}
  prometheus: {default: "http://127.0.0.1:9090"}
target:
  kubernetes:
    context: staging
    namespace: mcp
    allowed_contexts: [staging]
load:
  url: http://127.0.0.1:8080/${var.variant}/health
  rate: 10/s
  duration: 60s
steps:
  - name: promote
    command: {argv: [kubectl, set, image, deployment/zai-proxy, "proxy=${var.image}"]}
  - name: values
    helm_upgrade: {release: zai-proxy, set: {image.tag: "${var.image}"}}
checks:
  - name: restarts
    restarts: {selector: "app=zai-proxy,variant=${var.variant}", max: 1}
  - name: errors
    prometheus:
      url: ${var.prometheus}
      query: sum(rate(zai_proxy_requests_total{variant="${var.variant}",status=~"5.."}[5m]))
      success_condition: "result < 0.05"
"#;

fn given(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn load(source: &str, pairs: &[(&str, &str)]) -> Result<scenario::LoadedScenario, String> {
    scenario::load_source_with(Path::new("case.yaml"), source.to_string(), &given(pairs))
        .map_err(|d| d.to_string())
}

#[test]
fn values_reach_urls_selectors_queries_images_and_helm_values() {
    let loaded = load(
        SCENARIO,
        &[
            ("image", "ronaldraygun/zai-proxy:1.2.1"),
            ("variant", "production"),
        ],
    )
    .expect("valid");
    let s = &loaded.scenario;
    assert_eq!(
        s.load.as_ref().map(|l| l.url.value.as_str()),
        Some("http://127.0.0.1:8080/production/health")
    );
    let Action::Command(promote) = &s.steps[0].value.action else {
        panic!("a command step");
    };
    assert_eq!(promote.argv[4], "proxy=ronaldraygun/zai-proxy:1.2.1");
    let Action::HelmUpgrade(helm) = &s.steps[1].value.action else {
        panic!("a helm step");
    };
    assert_eq!(helm.set["image.tag"], "ronaldraygun/zai-proxy:1.2.1");
    let CheckKind::Restarts(r) = &s.checks[0].value.kind else {
        panic!("a restarts check");
    };
    assert_eq!(
        r.selector.value.to_string(),
        "app=zai-proxy,variant=production"
    );
    let CheckKind::Prometheus(p) = &s.checks[1].value.kind else {
        panic!("a prometheus check");
    };
    assert!(
        p.query.value.contains(r#"variant="production""#),
        "{}",
        p.query.value
    );
    assert_eq!(p.url, "http://127.0.0.1:9090", "the default");
    assert_eq!(loaded.vars["variant"], "production");
    assert!(matches!(s.target, TargetSpec::Kubernetes(_)));
}

#[test]
fn an_unknown_variable_is_located_with_a_suggestion() {
    let source = SCENARIO.replace("variant=${var.variant}", "variant=${var.variatn}");
    let e = load(&source, &[("image", "a/b:1.2.3")]).expect_err("unknown var");
    // Located at the value that holds the reference (values are substituted after parsing).
    assert!(e.contains("case.yaml:25:26:"), "{e}");
    assert!(e.contains("unknown variable `${var.variatn}`"), "{e}");
    assert!(e.contains("did you mean `variant`?"), "{e}");
}

#[test]
fn a_missing_required_variable_points_at_its_declaration() {
    let e = load(SCENARIO, &[]).expect_err("image is required");
    assert!(e.contains("case.yaml:4:3:"), "{e}");
    assert!(
        e.contains("variable `image` is required: pass `--var image=VALUE`"),
        "{e}"
    );
}

#[test]
fn values_must_match_their_pattern_and_be_declared() {
    let e = load(SCENARIO, &[("image", "a/b:latest")]).expect_err("pattern");
    assert!(e.contains("does not match its pattern"), "{e}");
    let e = load(SCENARIO, &[("image", "a/b:1.2.3"), ("imgae", "x")]).expect_err("undeclared");
    assert!(e.contains("does not declare"), "{e}");
}

#[test]
fn plan_shows_the_resolved_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bake.yaml");
    std::fs::write(&file, SCENARIO).expect("write");
    let output = cli::drillbook()
        .args(["plan", "--offline"])
        .arg(&file)
        .args(["--var", "image=ronaldraygun/zai-proxy:1.2.1"])
        .output();
    let stdout = output.stdout_str();
    assert!(output.status.success(), "{}", output.stderr_str());
    assert!(
        stdout.contains("Var       image = ronaldraygun/zai-proxy:1.2.1  (--var)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Var       variant = test  (default)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("proxy=ronaldraygun/zai-proxy:1.2.1"),
        "{stdout}"
    );

    let missing = cli::drillbook().args(["validate"]).arg(&file).output();
    missing.assert_code(2);
    assert!(
        missing
            .stderr_str()
            .contains("variable `image` is required"),
        "{}",
        missing.stderr_str()
    );
}

/// Issue #22: `--var` used to be replaced in the text before parsing, so a value could close
/// its quote and add keys. Through the binary, as a CI pipeline would pass it: `plan` and
/// `validate` refuse it, naming the place, and nothing else of the scenario changes.
#[test]
fn a_var_cannot_change_the_structure_of_the_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("v.yaml");
    std::fs::write(
        &file,
        "apiVersion: drillbook/v1\nname: v\nvars:\n  sel: {default: app=x}\n  ns: {default: shop}\n\
         target:\n  kubernetes: {context: staging, namespace: shop, allowed_contexts: [staging]}\n\
         steps:\n  - at: 1s\n    kill_pods: {selector: \"${var.sel}\", count: 1}\n\
         \x20 - name: list\n    command: {argv: [kubectl, get, pods, \"${var.ns}\"]}\n",
    )
    .expect("write");
    let drillbook = |args: &[&str]| cli::drillbook().args(args).arg(&file).output();
    for command in [&["plan", "--offline"][..], &["validate"][..]] {
        let repro = [
            command,
            &[
                "--var",
                r#"sel=a", percent: 100, count: null, force: true} #"#,
            ],
        ]
        .concat();
        let out = drillbook(&repro);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
        assert!(stderr.contains("v.yaml:10:"), "{stderr}");
        assert!(!stdout.contains("100%"), "no percent was added: {stdout}");
        let flag = [command, &["--var", "ns=--all-namespaces"]].concat();
        let out = drillbook(&flag);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("`${var.ns}` = `--all-namespaces`"),
            "{stderr}"
        );
    }
    let inert = drillbook(&["plan", "--offline", "--var", "ns=a, -A], extra: [x"]);
    let stdout = String::from_utf8_lossy(&inert.stdout);
    assert_eq!(
        inert.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&inert.stderr)
    );
    assert!(
        stdout.contains("run `kubectl get pods 'a, -A], extra: [x'`"),
        "the value is one argv element: {stdout}"
    );
}

#[test]
fn only_the_listener_behind_a_fault_reads_its_private_port() -> Result<(), scenario::vars::VarError>
{
    use drillbook::scenario::templated;
    use drillbook::scenario::vars::Vars;
    let yaml = r#"
apiVersion: drillbook/v1
name: t
target:
  local:
    processes:
      - name: api
        command: ["srv", "--listen", "127.0.0.1:${port.api}"]
        env: {PEER: "${port.api}"}
        ready: http://127.0.0.1:${port.api}/healthz
      - name: caller
        command: ["cli", "--api", "127.0.0.1:${port.api}"]
load:
  url: http://127.0.0.1:${port.api}/
  rate: 1/s
  duration: 1s
steps:
  - http_fault: {port: api, reset: {share: 5%}}
"#;
    let scenario = scenario::parse_str(yaml).unwrap_or_else(|e| panic!("{e:?}"));
    let private: Vec<(String, String)> = templated::local_interpositions(&scenario)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|i| (i.listener, i.port))
        .collect();
    assert_eq!(private, [("api".to_string(), "api".to_string())]);
    let texts = templated::texts(&scenario);
    let vars = Vars::allocate(texts.iter().map(|t| t.text.as_str()), &private)?;
    let (public, own) = (vars.ports["api"], vars.private["api"]["api"]);
    assert_ne!(public, own);
    let expanded = templated::expand(&scenario, &vars)?;
    let processes = expanded.local_processes();
    let api = &processes[0].value;
    assert_eq!(api.command[2], format!("127.0.0.1:{own}"));
    assert_eq!(api.env["PEER"], own.to_string());
    assert_eq!(
        api.ready.as_deref(),
        Some(format!("http://127.0.0.1:{own}/healthz").as_str())
    );
    assert_eq!(processes[1].value.command[2], format!("127.0.0.1:{public}"));
    let load = expanded.load.as_ref().map(|l| l.url.value.clone());
    assert_eq!(load, Some(format!("http://127.0.0.1:{public}/")));
    Ok(())
}
