# drillbook — common tasks. `make help` lists them.
CARGO ?= cargo
BIN := target/debug/drillbook
REPORTS ?= reports

.PHONY: help build release demo test lint fmt bench schema clean-reports

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## debug build of the drillbook binary
	$(CARGO) build --locked

release: ## optimised build (used by bench)
	$(CARGO) build --locked --release

demo: build ## run the lab drills end to end (no cluster needed); reports land in reports/
	./demo/run.sh $(BIN) $(REPORTS)

test: ## the whole test suite (unit, integration, lab, Prometheus)
	$(CARGO) test --locked --all-targets
	$(CARGO) test --locked --doc

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
