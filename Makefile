# Two commands for a newcomer: `make run` and `make test`. Both create .venv with the pinned requirements;
# `make run` installs only what the service needs (faster first start), `make test` adds the test tools.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check
RUNTIME_STAMP := $(VENV)/.runtime-stamp
DEV_STAMP     := $(VENV)/.dev-stamp
LINTED := backend migrate.py performance_test.py api_test.py monitoring clients

.PHONY: venv dev run test lint api worker clean

$(RUNTIME_STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps -e .
	$(BIN)/python -m compileall -q backend/app  # bytecode up front, as deploy.sh does: a start compiles nothing
	touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

venv: $(RUNTIME_STAMP)
dev: $(DEV_STAMP)

run: venv  ## migrate the embedded database and serve API + worker on http://127.0.0.1:8000
	$(BIN)/dantaro run

test: dev lint  ## the whole suite: lint, types, layers, unit and integration tests
	$(BIN)/pytest -q

lint: dev
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

api: venv
	$(BIN)/dantaro api

worker: venv
	$(BIN)/dantaro worker

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
