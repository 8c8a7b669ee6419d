# MEM — every target installs what it needs first (uv for the project env, a separate tool env for dvc).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
DVC_VERSION := 3.67.1
TOOLS := $(CURDIR)/.tools
UV := $(TOOLS)/uv/bin/uv
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
DVC := $(TOOLS)/bin/dvc
PYTEST_ARGS ?=

export DAGSTER_HOME := $(CURDIR)/.dagster_home
export MEM_DATA_DIR ?= $(CURDIR)/data
export UV_TOOL_DIR := $(TOOLS)/uv-tools
export UV_TOOL_BIN_DIR := $(TOOLS)/bin
export UV_PYTHON := $(shell command -v $(PYTHON))
export GX_ANALYTICS_ENABLED := False
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1

DBT_SOURCES := $(shell find dbt_project/models dbt_project/tests dbt_project/macros dbt_project/analyses -type f 2>/dev/null) dbt_project/dbt_project.yml dbt_project/profiles.yml

.PHONY: help install demo test test-browser ui bench backtest repro lint clean dvc-plugin
help:
	@echo "make demo   - install, then build every asset on the bundled real data (offline)"
	@echo "make test   - install, then run the whole test suite"
	@echo "make test-browser - the Dagster UI in headless Chromium (needs Debian's chromium; .ci/run installs it)"
	@echo "make ui     - the Dagster UI (webserver + daemon) on http://127.0.0.1:3000"
	@echo "make bench  - benchmarks (figures go to BENCHMARKS.md)"
	@echo "make backtest - tuning, every backtest variant and the report on the built warehouse (after make demo)"
	@echo "make repro  - dvc repro: rebuild every stage whose code, data or params changed (dvc from .tools/)"

$(UV):
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

$(DVC): | $(UV)
	$(UV) tool install --quiet --compile-bytecode dvc==$(DVC_VERSION)

# A cloud remote for DVC: `make dvc-plugin PLUGIN=s3` (or gs, azure) adds dvc's plugin to its tool environment.
dvc-plugin: | $(UV)
	$(UV) tool install --quiet --force --compile-bytecode "dvc[$(PLUGIN)]==$(DVC_VERSION)"

$(DAGSTER_HOME)/dagster.yaml: config/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp $< $@

# dagster-dbt builds its assets from dbt's manifest: parse whenever the dbt project changes.
dbt_project/target/manifest.json: $(VENV)/.installed $(DBT_SOURCES)
	cd dbt_project && $(VENV)/bin/dbt parse --profiles-dir . --quiet
	@touch $@

install: $(VENV)/.installed $(DVC) $(DAGSTER_HOME)/dagster.yaml dbt_project/target/manifest.json

demo: install
	$(PY) -m assets.demo

test: install
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# MEM_SCREENSHOTS=docs make test-browser refreshes the README's screenshots.
test-browser: install
	@command -v chromium > /dev/null || { echo "chromium not found: apt-get install chromium"; exit 1; }
	$(PY) -m pytest -m browser tests/browser $(PYTEST_ARGS)

repro: install
	$(DVC) repro

backtest: install
	$(PY) -m assets.run tune_backtest run_backtest report_backtest

ui: install
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: install
	$(PY) bench/run_all.py

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf .venv .tools .dagster_home dbt_project/target dbt_project/logs
