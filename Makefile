# Two commands for a newcomer: `make demo` and `make test`. Both install what they need, uv included.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
export UV_PYTHON ?= 3.11

.PHONY: demo up test lint typecheck contract sync bench clean

$(CURDIR)/.tools/bin/uv:
	@echo "uv not found: installing it into .tools/ (pip, from PyPI)"
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv

.venv/.synced: uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml) | $(UV)
	$(UV) sync --locked
	@touch $@

sync: .venv/.synced

demo: sync  ## Run the whole pipeline on the embedded stack with a sample beamtime
	$(UV) run scicat-pipeline demo

up: sync  ## Start the embedded stack and the four services; prints the endpoints
	$(UV) run scicat-pipeline up

test: sync lint typecheck  ## Lint, type-check, and run every test (unit, component, end-to-end)
	$(UV) run pytest

lint: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .

# Strict on the shared library; the usual checks on the CLI and every service whose code is clean.
TYPED := libs/schemas/src src/scicat_pipeline services/doi-minter/src services/ingestor/src \
  services/oai-provider/src services/indexer/src bench
typecheck: sync
	$(UV) run mypy $(TYPED)

bench: sync  ## Run every benchmark in bench/ (prints tables; see README for figures)
	@for script in bench/*_benchmark.py; do echo "== $$script"; $(UV) run python $$script || exit 1; done

contract: sync  ## Regenerate the committed JSON Schema / AsyncAPI documents
	$(UV) run python -m scicat_schemas.contract

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache
