//! `http_fault` steps as validation reads them (`scenario::http_fault_checks`): a well-formed
//! fault validates, each kind of bad input is refused at its line with what to write instead.

use std::path::Path;

fn errors(steps: &str) -> String {
    let source = format!(
        "apiVersion: drillbook/v1\nname: t\ntarget:\n  kubernetes:\n    context: box\n    \
         namespace: ns\n    allowed_contexts: [box]\nload:\n  url: http://127.0.0.1:9/\n  rate: 1/s\n  duration: 10s\nsteps:\n{steps}checks:\n  - name: c\n    http: \"rate(401) == 0\"\n"
    );
    match drillbook::scenario::load_source(Path::new("t.yaml"), source) {
        Ok(_) => String::new(),
        Err(diagnostics) => diagnostics.to_string(),
    }
}

fn fault(fields: &str) -> String {
    errors(&format!(
        "  - http_fault:\n      service: web\n      image: img\n{fields}"
    ))
}

#[test]
fn a_well_formed_fault_validates() {
    assert_eq!(
        fault(
            "      latency: {p50: 300ms, p99: 450ms}\n      abort: {status: 503, share: 5%}\n      match: {method: GET, path_prefix: /v1/}\n"
        ),
        ""
    );
    assert_eq!(
        fault("      protocol: tcp\n      reset: {share: 10%}\n"),
        ""
    );
}

#[test]
fn bad_faults_are_refused_at_their_line() {
    let e = fault("      abort: {status: 503, share: 120%}\n");
    assert!(
        e.contains("t.yaml:16") && e.contains("from 0% to 100%"),
        "{e}"
    );
    let e = fault("      latency: {fixed: 0s}\n");
    assert!(e.contains("t.yaml:16") && e.contains("above 0s"), "{e}");
    let e = fault("      latency: {fixed: 30s}\n");
    assert!(e.contains("allow_large"), "{e}");
    assert_eq!(
        fault("      latency: {fixed: 30s}\n      allow_large: true\n"),
        ""
    );
    let e = fault("      protocol: tcp\n      abort: {status: 503, share: 5%}\n");
    assert!(e.contains("only latency, reset and blackhole apply"), "{e}");
    let e = fault("");
    assert!(e.contains("has no fault"), "{e}");
    let e = errors("  - http_fault: {service: other/web, image: i, reset: {share: 1%}}\n");
    assert!(e.contains("outside the namespace pin"), "{e}");
    let twice = "  - http_fault: {service: web, image: i, reset: {share: 1%}}\n";
    let e = errors(&format!("{twice}{twice}"));
    assert!(e.contains("two faults on `web` at once"), "{e}");
}
