# The whole setup on a fresh machine: `make run` (the service) and `make test` (the tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test unit integration lint audit sbom lock services migrate bench faults faults-cluster deploy-check deploy-files clean clean-test-leftovers help

help:
	@echo "make run    install, start PostgreSQL/RabbitMQ if needed, migrate, run receiver + worker"
	@echo "make test   install, start services if needed, run unit and integration tests"
	@echo "make lint   ruff and mypy --strict"
	@echo "make audit  pip-audit of locks/ (says so plainly when the advisory database is unreachable)"
	@echo "make sbom   the image's CycloneDX SBOM (sbom.cdx.json);  make lock  re-pin locks/"
	@echo "make bench  benchmarks (bench/);  make faults  the fault-injection run"

# Everything from the lock (pinned, each file checked against its hash), then the project itself
# (editable, nothing resolved). `make lock` re-pins after a change to pyproject.toml.
LOCKS := locks/runtime.txt locks/dev.txt
UV    := uv==0.13.9

$(STAMP): pyproject.toml $(LOCKS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r locks/dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
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

# Known advisories in what the image and the dev tools install; red on a finding, never for an
# unreachable advisory database (scripts/audit.py says so plainly instead).
audit: $(STAMP)
	$(BIN)/python scripts/audit.py $(LOCKS)

# The image's SBOM (CycloneDX JSON): every package of locks/runtime.txt with its version and hashes.
sbom: $(STAMP)
	$(BIN)/cyclonedx-py requirements locks/runtime.txt --pyproject pyproject.toml \
		--mc-type application --of JSON -o sbom.cdx.json
	@echo "wrote sbom.cdx.json"

# Re-pin locks/ from pyproject.toml and locks/image.in (needs PyPI), for every platform and Python:
# the dev tools first, then the image's subset at the same versions (what is tested is what ships).
lock: $(STAMP)
	$(BIN)/pip install --quiet '$(UV)'
	$(BIN)/uv pip compile pyproject.toml locks/image.in --extra dev --universal \
		--python-version 3.11 --generate-hashes --quiet -o locks/dev.txt
	$(BIN)/uv pip compile pyproject.toml locks/image.in -c locks/dev.txt --universal \
		--python-version 3.11 --generate-hashes --quiet -o locks/runtime.txt

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
