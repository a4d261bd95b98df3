# The whole setup on a fresh machine: `make run` (the service) and `make test` (the tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test unit integration lint services migrate bench faults faults-cluster deploy-check deploy-files clean clean-test-leftovers help

help:
	@echo "make run    install, start PostgreSQL/RabbitMQ if needed, migrate, run receiver + worker"
	@echo "make test   install, start services if needed, run unit and integration tests"
	@echo "make lint   ruff and mypy --strict"
	@echo "make bench  benchmarks (bench/);  make faults  the fault-injection run"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	scripts/ensure_promtool $(BIN)
	@touch $(STAMP)

services:
	@$(PYTHON) scripts/ensure_services.py

migrate: $(STAMP) services
	$(BIN)/conekta-ingest migrate

run: $(STAMP) services
	@scripts/run-dev

test: $(STAMP) services
	scripts/ensure_browser
	$(BIN)/pytest -m "unit or integration or deploy"

unit: $(STAMP)
	$(BIN)/pytest -m unit

integration: $(STAMP) services
	scripts/ensure_browser
	$(BIN)/pytest -m integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP) services
	$(BIN)/python -m bench

faults: $(STAMP) services
	$(BIN)/pytest -m faults tests/faults -s -q

# Its own 3-node RabbitMQ cluster and Postgres pair on other ports: safe beside the default ones.
faults-cluster: $(STAMP)
	$(BIN)/pytest -m cluster tests/cluster -s -q

deploy-check: $(STAMP)
	$(BIN)/pytest -m deploy tests/deploy

deploy-files: $(STAMP)
	$(BIN)/python scripts/render_deploy.py

clean-test-leftovers:
	scripts/clean_test_leftovers

clean:
	rm -rf $(VENV) .dev .mypy_cache .ruff_cache .pytest_cache
