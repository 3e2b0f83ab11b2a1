PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
# Every install takes the versions pinned in constraints.txt (`make lock` refreshes them).
PIP_INSTALL := $(BIN)/pip install --quiet --constraint constraints.txt

.PHONY: install install-test run test lint check bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## Serve the API on 127.0.0.1:8000 with the embedded SQLite database (./audience.db).
run: install
	$(BIN)/audience serve

## Run the whole test suite (SQLite always; PostgreSQL when AUDIENCE_TEST_DATABASE_URL is set).
test: install-test
	$(BIN)/python -m pytest -n 2 --dist worksteal $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test

bench: install-test
	$(BIN)/python -m bench

## Pin the newest versions that pyproject.toml allows into constraints.txt (in a fresh venv).
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet '.[test]'
	.lock-venv/bin/pip freeze --exclude audience | grep -v '^-e ' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
