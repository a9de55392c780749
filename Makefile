# Two commands for a newcomer: `make run` and `make test`. Both create .venv with the pinned requirements.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv run test lint unit worker api clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

run: venv  ## migrate the embedded database and serve API + worker on http://127.0.0.1:8000
	$(BIN)/dantaro migrate upgrade
	$(BIN)/dantaro run

test: venv lint  ## the whole suite: lint, types, layers, unit and integration tests
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check backend migrate.py performance_test.py api_test.py
	$(BIN)/ruff format --check backend migrate.py performance_test.py api_test.py
	$(BIN)/mypy

api: venv
	$(BIN)/dantaro api

worker: venv
	$(BIN)/dantaro worker

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
