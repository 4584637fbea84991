# refrig-assets — common tasks. Every target installs what is missing first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export REFRIG_HOME ?= $(CURDIR)/.refrig
export DAGSTER_HOME ?= $(REFRIG_HOME)/dagster
export MLFLOW_DISABLE_TELEMETRY := true
export PYTHONWARNINGS ?= ignore

DEVICES ?= 1000
HOURS ?= 6
TRAIN_HOURS ?= 2
START ?= 2026-01-01T00:00
SEED ?= 42

.PHONY: setup run test test-fast check dev console bench bench-scale bench-serving chaos clean lifecycle-demo postgres-test ui-test compose-test

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	VENV=$(VENV) scripts/setup.sh
	touch $@

# Telemetry off and the project's batched SQLite event log (refrig_assets/defs/shared/instance.py)
$(DAGSTER_HOME)/dagster.yaml: | setup
	$(PY) -m refrig_assets.defs.shared.instance $(DAGSTER_HOME)

## run: simulate a small fleet with faults, run the whole graph over it, print a summary
run: setup $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/refrig simulate --devices $(DEVICES) --hours $(HOURS) --start $(START) --seed $(SEED)
	$(VENV)/bin/refrig pipeline run --start $(START) --hours $(HOURS) --train-hours $(TRAIN_HOURS)

## test: the whole test suite
test: setup
	$(VENV)/bin/pytest -q

## test-fast: skip the slow tests (real servers, browsers)
test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow"

## postgres-test: the compose deployment's configuration on a throwaway PostgreSQL (no Docker)
postgres-test: setup
	scripts/system_packages.sh postgresql docker-compose
	$(VENV)/bin/pytest -q refrig_assets_tests/deployment/test_deploy_configuration.py refrig_assets_tests/deployment/test_postgres_deployment.py

## compose-test: docker-compose.yml built without an image registry (private dockerd, Debian base
## image from debootstrap), brought up on loopback and smoke-tested; needs root (deploy/compose-test.sh)
compose-test: setup
	deploy/compose-test.sh

## ui-test: the Dagster UI, the MLflow UI after a small run and the console in headless Chromium; screenshots in test-artifacts/
ui-test: setup
	scripts/system_packages.sh chromium
	$(VENV)/bin/pytest -q refrig_assets_tests/deployment/test_ui_browser.py refrig_assets_tests/deployment/test_ui_after_make_run.py refrig_assets_tests/console/test_console_browser.py

## lifecycle-demo: train v1 → promote → worse v2 blocked by the canary → force → roll back → history
lifecycle-demo: setup
	$(PY) -m tools.demos.lifecycle_demo

QUALITY := build/quality

## check: the code quality gate (lint, format, types, coverage floor, dependency audit, grade)
check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	mkdir -p $(QUALITY) && rm -f $(QUALITY)/coverage.json $(QUALITY)/audit.json
	$(VENV)/bin/pytest -q -m "not slow" -p no:cacheprovider --cov=refrig_assets --cov-report=json:$(QUALITY)/coverage.json --cov-report=
	-$(VENV)/bin/pip-audit --skip-editable --progress-spinner off --format json -o $(QUALITY)/audit.json
	$(PY) -m tools.quality_gate --coverage-json $(QUALITY)/coverage.json --audit-json $(QUALITY)/audit.json

## dev: the Dagster UI on http://127.0.0.1:3000 (stops on Ctrl-C or SIGTERM, also when backgrounded)
dev: setup $(DAGSTER_HOME)/dagster.yaml
	$(PY) scripts/dagster_dev.py 3000

## console: the operator console for you alone on http://127.0.0.1:8080 (single-user mode,
## loopback only; a team signs in with tokens: docs/console.md)
console: setup
	$(VENV)/bin/refrig console --single-user

## bench: one hour of 100K devices through the project's steps vs pandas, PySpark and the read
## floor; table + bench-results/bench.json (BENCH_ARGS="--no-spark --devices 20000" to vary)
bench: setup
	$(PY) -m tools.benchmarks $(BENCH_ARGS)

## bench-scale: the whole hourly path at 1M devices (the simulated 100K fleet tiled 10×, cached)
## next to 100K; figures in bench-results/scale/
bench-scale: setup
	$(PY) -m tools.benchmarks --scale 10 --no-spark --no-daily --growth '' --out bench-results/scale $(BENCH_ARGS)

## bench-serving: refrig serve on loopback under a bounded load generator (latency per request,
## 100 devices per request, sustained requests/s); bench-results/bench-serving.json
bench-serving: setup
	$(PY) -m tools.benchmarks.serving $(BENCH_ARGS)

## chaos: fault cases through the refrig command (bad files, outages, archived files, concurrent
## and killed runs, unit errors, ...): a table of case, outcome, rows lost; chaos-results/chaos.json
chaos: setup
	$(PY) -m tools.chaos $(CHAOS_ARGS)

clean:
	rm -rf $(REFRIG_HOME)
