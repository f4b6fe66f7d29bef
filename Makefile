# The two commands of the README, and a few helpers.
#   make run   — set up, migrate the SQLite database, load the demo if empty, serve on :5000 as
#                production does (gunicorn.conf.py)
#   make test  — set up with dev extras, run ruff, mypy and the whole test suite
# Both create .venv on first use and reinstall when setup.cfg changes. Nothing else is needed
# but Python 3.11 and make.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000
# Benchmarks keep their generated registers (tens of GB; `bench/register.py --forget` removes them)
# so that only the first `make bench` pays for building the 500,000-household register.
BENCH_ARGS ?= --reuse

.PHONY: run test lint typecheck pytest bench clean

$(VENV)/.run-installed: setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "fieldsync needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[postgres]'
	touch $@

$(VENV)/.dev-installed: $(VENV)/.run-installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.run-installed
	$(BIN)/fieldsync db upgrade
	$(BIN)/fieldsync demo --if-empty
	RUN_SCHEDULER=1 $(BIN)/gunicorn --config gunicorn.conf.py --bind $(HOST):$(PORT) wsgi:app

test: $(VENV)/.dev-installed lint typecheck pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

pytest: $(VENV)/.dev-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.dev-installed
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script $(BENCH_ARGS) || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
