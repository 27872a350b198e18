# One dev loop, used the same way by people and by CI (.ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PG_URL ?= postgresql://postgres@127.0.0.1:5432/panopticon_test

.PHONY: demo install install-core test test-sqlite test-postgres lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The core alone: what `panopticon` needs to run suites, the mock server and the dashboard.
$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

# The whole dev tool-chain (the SDKs, PostgreSQL driver, linters, test tools) for make test.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.core

install-core: $(VENV)/.core
install: $(VENV)/.dev

# The tests also cover local embeddings: torch's CPU build first (a plain `torch` would pull
# gigabytes of CUDA packages), then the extra.
$(VENV)/.local-embeddings: $(VENV)/.dev
	$(BIN)/pip install --quiet 'torch==2.13.0'
	$(BIN)/pip install --quiet -e '.[dev,local-embeddings]'
	@touch $@

## The main job, offline: mock server + demo suite on the embedded SQLite database.
## Installs the core only; `make test` installs the dev tool-chain.
# exec: Ctrl-C stops the demo's dashboard and the demo exits 0; no shell is left waiting
# to die of the signal (and make to report it as an error). make itself still ends with
# status 130: the terminal's Ctrl-C reaches make too, and GNU make always re-raises it
demo: install-core
	@echo "panopticon is installed in $(VENV): run $(BIN)/panopticon, or first: source $(BIN)/activate"
	exec $(BIN)/panopticon demo

## Lint, type-check, then the whole suite on SQLite and on PostgreSQL.
test: install lint typecheck test-sqlite test-postgres

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# Two test processes (pytest-xdist): each test has its own database, port and home, and
# most of a test's time is spent waiting on a server, a browser or a subprocess.
PYTEST_ARGS ?=

test-sqlite: install $(VENV)/.local-embeddings
	PANOPTICON_REQUIRE_LOCAL_EMBEDDINGS=1 $(BIN)/pytest -q $(PYTEST_ARGS)

test-postgres: install $(VENV)/.local-embeddings
	PANOPTICON_REQUIRE_LOCAL_EMBEDDINGS=1 PANOPTICON_TEST_DATABASE_URL=$(PG_URL) $(BIN)/pytest -q $(PYTEST_ARGS) -m "not sqlite_only"

bench: install
	$(BIN)/python bench/bench_runner.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
