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

.PHONY: run test lint typecheck browser pytest screenshots bench clean

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

test: $(VENV)/.dev-installed lint typecheck browser pytest

# The console's browser tests drive Debian's chromium through chromium-driver (with a Chinese font,
# so screenshots show the pages as users see them). Installed here when missing and this is Debian
# run as root (CI is); otherwise the browser tests skip and say why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	   && [ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium, chromium-driver and a Chinese font (browser tests)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver fonts-wqy-zenhei >/dev/null \
	  || { apt-get update -q >/dev/null && \
	       DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver fonts-wqy-zenhei >/dev/null; }; \
	else echo "chromium or chromedriver missing and not root: the browser tests will skip"; fi

# Screenshots of the console's main pages for the README, taken by the browser tests.
screenshots: $(VENV)/.dev-installed browser
	FIELDSYNC_SCREENSHOTS_DIR=docs/screenshots FIELDSYNC_TEST_BROWSER=required \
	  $(BIN)/python -m pytest -q tests/console/browser

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
