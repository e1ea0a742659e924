//! `http_fault` steps as validation reads them (`scenario::http_fault_checks`): a well-formed
//! fault validates, each kind of bad input is refused at its line with what to write instead.

use std::path::Path;

fn errors(steps: &str) -> String {
    let source = format!(
        "apiVersion: drillbook/v1\nname: t\ntarget:\n  kubernetes:\n    context: box\n    \
         namespace: ns\n    allowed_contexts: [box]\nload:\n  url: http://127.0.0.1:9/\n  rate: 1/s\n  duration: 10s\nsteps:\n{steps}checks:\n  - name: c\n    http: \"rate(401) == 0\"\n"
    );
    validated(source)
}

/// The diagnostics of `source` as `t.yaml` (empty: valid).
fn validated(source: String) -> String {
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
    assert_eq!(fault("      bandwidth: 64KiB/s\n"), "");
    let e = fault("      bandwidth: 512B/s\n");
    assert!(e.contains("t.yaml:16") && e.contains("below 1KiB/s"), "{e}");
    let e = fault("      bandwidth: 64kbit\n");
    assert!(e.contains("is not a byte rate"), "{e}");
    let twice = "  - http_fault: {service: web, image: i, reset: {share: 1%}}\n";
    let e = errors(&format!("{twice}{twice}"));
    assert!(e.contains("two faults on `web` at once"), "{e}");
}

/// A local scenario with an `api` process (its readiness URL names `${port.api}`), a caller
/// process that is given the same port, and `steps`.
fn local_errors(steps: &str) -> String {
    let source = format!(
        "apiVersion: drillbook/v1\nname: t\ntarget:\n  local:\n    processes:\n      - name: api\n        command: [\"srv\", \"--listen\", \"127.0.0.1:${{port.api}}\"]\n        ready: http://127.0.0.1:${{port.api}}/healthz\n      - name: caller\n        command: [\"cli\", \"--api\", \"http://127.0.0.1:${{port.api}}\"]\nload:\n  url: http://127.0.0.1:${{port.api}}/\n  rate: 1/s\n  duration: 10s\nsteps:\n{steps}checks:\n  - name: c\n    http: \"rate(401) == 0\"\n"
    );
    validated(source)
}

#[test]
fn a_local_fault_names_a_port_a_process_listens_on() {
    // The listener is the process whose readiness URL names the port, or the one named.
    assert_eq!(
        local_errors("  - http_fault: {port: api, reset: {share: 5%}}\n"),
        ""
    );
    assert_eq!(
        local_errors("  - http_fault: {port: api, process: api, reset: {share: 5%}}\n"),
        ""
    );
    let e = local_errors("  - http_fault: {port: apj, reset: {share: 5%}}\n");
    assert!(
        e.contains("t.yaml:16:24") && e.contains("no process is given `${port.apj}`"),
        "{e}"
    );
    let e = local_errors("  - http_fault: {port: api, process: nope, reset: {share: 5%}}\n");
    assert!(e.contains("no process `nope`"), "{e}");
    let e = local_errors("  - http_fault: {reset: {share: 5%}}\n");
    assert!(e.contains("needs `port:`"), "{e}");
    let e = local_errors("  - http_fault: {port: api, service: web, reset: {share: 5%}}\n");
    assert!(e.contains("`service:` is for a kubernetes target"), "{e}");
    let e = local_errors("  - http_fault: {port: api, replicas: 2, reset: {share: 5%}}\n");
    assert!(e.contains("a local port has one proxy"), "{e}");
    let e = fault("      port: api\n      reset: {share: 5%}\n");
    assert!(
        e.contains("`port:` and `process:` are for a local target"),
        "{e}"
    );
}

#[test]
fn a_local_fault_with_no_known_listener_asks_for_process() {
    // Two readiness URLs name the port: which one listens is not guessed.
    let source = "apiVersion: drillbook/v1\nname: t\ntarget:\n  local:\n    processes:\n      - name: a\n        command: [\"srv\", \"${port.api}\"]\n        ready: http://127.0.0.1:${port.api}/\n      - name: b\n        command: [\"srv\", \"${port.api}\"]\n        ready: http://127.0.0.1:${port.api}/\nsteps:\n  - http_fault: {port: api, reset: {share: 5%}}\nchecks:\n  - name: c\n    http: \"rate(401) == 0\"\n";
    let e = validated(source.to_string());
    assert!(
        e.contains("a, b all name `${port.api}`") && e.contains("`process:`"),
        "{e}"
    );
}
