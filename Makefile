# One dev loop, used the same way by people and by CI (.ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PG_URL ?= postgresql://postgres@127.0.0.1:5432/panopticon_test

.PHONY: demo install test test-sqlite test-postgres lint typecheck bench clean

$(BIN)/panopticon: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/panopticon

# The tests also cover local embeddings: torch's CPU build first (a plain `torch` would pull
# gigabytes of CUDA packages), then the extra.
$(VENV)/.local-embeddings: $(BIN)/panopticon
	$(BIN)/pip install --quiet 'torch==2.13.0'
	$(BIN)/pip install --quiet -e '.[dev,local-embeddings]'
	@touch $@

## The main job, offline: mock server + demo suite on the embedded SQLite database.
demo: install
	$(BIN)/panopticon demo

## Lint, type-check, then the whole suite on SQLite and on PostgreSQL.
test: install lint typecheck test-sqlite test-postgres

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

test-sqlite: install $(VENV)/.local-embeddings
	PANOPTICON_REQUIRE_LOCAL_EMBEDDINGS=1 $(BIN)/pytest -q

test-postgres: install $(VENV)/.local-embeddings
	PANOPTICON_REQUIRE_LOCAL_EMBEDDINGS=1 PANOPTICON_TEST_DATABASE_URL=$(PG_URL) $(BIN)/pytest -q -m "not sqlite_only"

bench: install
	$(BIN)/python bench/bench_runner.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
