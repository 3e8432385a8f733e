# deputy developer commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Prefect itself, in its own virtualenv, for the end-to-end journeys (deputy never imports it).
PREFECT_VENV := .venv-prefect
PREFECT_STAMP := $(PREFECT_VENV)/.installed
# pip compiles what it installs, but an editable install leaves deputy's own modules to be
# compiled on import, on every start where PYTHONDONTWRITEBYTECODE is set (~0.1 s); compiling
# them here (only what changed) gives `deputy server start` the start-up of an installed copy.
COMPILE := $(BIN)/python -m compileall -q src

.PHONY: help run test test-sqlite lint check bench clean

help: ## Show this help
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,postgres,ui]' -c constraints.txt
	$(COMPILE)
	touch $(STAMP)

$(PREFECT_STAMP): tests/e2e/prefect-constraints.txt
	$(PYTHON) -m venv $(PREFECT_VENV)
	$(PREFECT_VENV)/bin/pip install --quiet --upgrade pip
	$(PREFECT_VENV)/bin/pip install --quiet prefect==3.9.1 -c tests/e2e/prefect-constraints.txt
	touch $(PREFECT_STAMP)

run: $(STAMP) ## Start the server on SQLite at http://127.0.0.1:4200/api
	$(COMPILE)
	$(BIN)/deputy server start

test: $(STAMP) $(PREFECT_STAMP) ## Run every test on SQLite, then on a throwaway PostgreSQL
	$(BIN)/python -m pytest
	.ci/postgres.sh run $(BIN)/python -m pytest --db postgres

test-sqlite: $(STAMP) $(PREFECT_STAMP) ## Run every test on SQLite only
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff (lint and format) and mypy --strict over src and tests
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

check: lint test ## What CI runs (.ci/run): lint, then every test

bench: $(STAMP) ## Benchmark deputy against Prefect 3.9.1 (bench/README.md; BENCH_ARGS=--quick)
	$(COMPILE)
	$(BIN)/python bench/run.py --create-prefect-venv $(BENCH_ARGS)

clean: ## Remove the virtualenv
	rm -rf $(VENV) $(PREFECT_VENV)
