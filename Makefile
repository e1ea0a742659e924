# drillbook — common tasks. `make help` lists them.
CARGO ?= cargo
BIN := target/debug/drillbook
REPORTS ?= reports

# The suite is one test binary (`tests/main.rs`) whose modules are the files of `tests/`; a
# stage picks its files as libtest name filters `FILE::` (substring matches on `FILE::TEST`).
# The Kubernetes tests: tests/e2e_*.rs and tests/kube_*.rs.
E2E_TESTS := $(patsubst tests/%.rs,%::,$(sort $(wildcard tests/e2e_*.rs tests/kube_*.rs)))

.PHONY: help build release demo test e2e e2e-box browser lint fmt bench schema clean-reports box box-down demo-k8s

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## debug build of the drillbook binary
	$(CARGO) build --locked

release: ## optimised build (used by bench)
	$(CARGO) build --locked --release

demo: build ## run the lab drills end to end (no cluster needed); reports land in reports/
	./demo/run.sh $(BIN) $(REPORTS)

test: ## the whole test suite (unit, integration, lab, Prometheus, Kubernetes, the box)
	DRILLBOOK_E2E_DEFERRED=1 $(CARGO) test --locked --all-targets
	$(CARGO) test --locked --doc
	$(MAKE) --no-print-directory e2e
	$(MAKE) --no-print-directory e2e-box

e2e: ## Kubernetes tests on a real control plane
	$(CARGO) run --locked --example e2e_cluster -- $(CARGO) test --locked --test main -- $(E2E_TESTS)

browser: ## the HTML report in headless Chromium (a lab drill; screenshots land in reports/)
	DRILLBOOK_REQUIRE_BROWSER=1 $(CARGO) test --locked --test main -- report_html::

box: build ## bring up the one-node Kubernetes box (root, Linux)
	./e2e/box/box.sh up

box-down: ## remove the Kubernetes box (processes, containers, mounts, netns, state)
	./e2e/box/box.sh down

# The box's tests share one cluster: one at a time. The box is taken down afterwards on every
# exit path unless it was already running before (then it is left as it was found).
# The box's own tests are tests/box_*.rs; the drill-level tests of `make e2e` (kube_drills,
# kube_interrupt_trials) run on the real node here as well.
BOX_E2E_TESTS := $(patsubst tests/%.rs,%::,$(sort $(wildcard tests/box_*.rs))) kube_drills:: kube_interrupt_trials::

e2e-box: build ## the seed drills (and the drill-level e2e tests) on the box, a real one-node Kubernetes (root)
	./e2e/box/run-tests.sh $(CARGO) test --locked --test main -- $(BOX_E2E_TESTS) --test-threads=1

demo-k8s: build ## run the seed drills on the box (`make box` first); reports land in reports/
	./demo/run-k8s.sh $(BIN) $(REPORTS)

lint: ## formatting and clippy, as CI runs them
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

schema: build ## regenerate the committed JSON Schemas (scenario, report, load)
	$(BIN) schema --kind scenario -o scenario.schema.json
	$(BIN) schema --kind report -o report.schema.json
	$(BIN) schema --kind load -o load.schema.json

bench: ## load-engine benchmark against wrk and oha (see bench/README.md)
	./bench/run.sh

clean-reports: ## delete generated reports
	find $(REPORTS) -mindepth 1 ! -name README.md ! -name .gitkeep -exec rm -rf {} +
