# Practice Portal: `make run` serves the portal on SQLite with demo data; `make test` runs every test;
# `make test-fast` skips the browser and timing tests; `make lint` runs ruff and import-linter.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := .make
DEV_ENV := PORTAL_CONFIG=development FLASK_APP=wsgi DEV_OUTBOX=1

CHROMIUM ?= /usr/bin/chromium

.PHONY: run test test-fast lint requirements screenshots bench bench-peer browser-check setup setup-dev frontend clean

run: setup frontend
	$(DEV_ENV) $(BIN)/flask db upgrade
	$(DEV_ENV) $(BIN)/flask seed-demo
	@# One command: the portal and a queue consumer (notices, house-keeping); Ctrl-C stops both.
	@$(DEV_ENV) $(BIN)/flask queue work --workers 1 & worker=$$!; \
		trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
		$(DEV_ENV) $(BIN)/flask run --host 127.0.0.1 --port 5000

test: setup-dev frontend browser-check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything but the browser tests (tests/e2e, Chromium) and the timing tests: no Chromium needed.
test-fast: setup-dev frontend
	$(BIN)/python -m pytest -m "not browser and not timing" $(PYTEST_ARGS)

# Both checks run even if the first fails; settings in pyproject.toml.
lint: setup-dev
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/lint-imports || status=1; \
	exit $$status

# Recompile the pinned requirements*.txt from requirements*.in (runtime first: the dev lock is
# constrained by it). Versions already pinned are kept; to move them, pass e.g.
# PIP_COMPILE_ARGS=--upgrade or PIP_COMPILE_ARGS="--upgrade-package flask".
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make requirements" $(BIN)/pip-compile --quiet --strip-extras \
	--allow-unsafe --no-emit-index-url --no-emit-find-links --no-emit-trusted-host $(PIP_COMPILE_ARGS)

requirements: setup-dev
	$(PIP_COMPILE) --output-file=requirements.txt requirements.in
	$(PIP_COMPILE) --output-file=requirements-dev.txt requirements-dev.in

# Regenerate the user guide's screenshots (docs/screenshots/) from the browser flows (JavaScript on,
# desktop and phone size). They are made in a temporary directory and replace docs/screenshots only
# when every flow passed (pictures no flow makes any more go); then every picture the guide shows
# must exist.
screenshots: setup-dev frontend browser-check
	@shots=$$(mktemp -d); \
	if SCREENSHOTS_DIR=$$shots $(BIN)/python -m pytest tests/e2e -q -k "js_on" $(PYTEST_ARGS); then \
		mkdir -p docs/screenshots && rm -f docs/screenshots/*.png && mv $$shots/*.png docs/screenshots/ \
			&& rmdir $$shots; \
	else \
		rm -rf $$shots; echo "A browser flow failed: docs/screenshots was left as it was."; exit 1; \
	fi
	@missing=$$(grep -o 'screenshots/[A-Za-z0-9._-]*\.png' docs/USER-GUIDE.md | sort -u \
		| while read -r picture; do test -f "docs/$$picture" || echo "$$picture"; done); \
		if [ -n "$$missing" ]; then echo "docs/USER-GUIDE.md shows pictures no browser test made:" $$missing; exit 1; fi

# Benchmarks (PostgreSQL on 127.0.0.1 needed); results in bench/results and bench/README.md.
bench: setup-dev
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# The portal against Flask-Security-Too doing the same Log In, interleaved in one run. FST lives
# in its own virtual environment (.bench-venv, pinned in bench/peer/requirements.txt), never in
# the portal's. Results in bench/results/<date>-peer.* and bench/README.md.
BENCH_VENV := .bench-venv
$(BENCH_VENV)/installed: bench/peer/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/peer/requirements.txt
	@touch $@

bench-peer: setup-dev $(BENCH_VENV)/installed
	$(BIN)/python -m bench.peer.run $(BENCH_PEER_ARGS)

# The browser tests drive Debian's Chromium through Playwright; Playwright never downloads a browser.
browser-check:
	@test -x "$(CHROMIUM)" || { echo "Chromium is needed for the browser tests and was not found at $(CHROMIUM)."; \
		echo "Install it (Debian/Ubuntu: sudo apt-get install chromium), or set CHROMIUM=/path/to/chromium, then rerun."; exit 1; }

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP)/requirements: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/requirements-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@mkdir -p $(STAMP) && touch $@ $(STAMP)/requirements

setup: $(STAMP)/requirements
setup-dev: $(STAMP)/requirements-dev

# htmx comes from npm (pinned in package-lock.json) into static/vendor; never from a CDN.
# Without Node.js the portal still works: every page is plain HTML forms, HTMX only enhances.
frontend: static/vendor/htmx.min.js

static/vendor/htmx.min.js: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --no-audit --no-fund --loglevel=error && \
		mkdir -p static/vendor && cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js; \
	else \
		echo "Node.js/npm not found: HTMX enhancements are off (install Node.js 18+ and rerun to enable them)."; \
	fi

clean:
	rm -rf $(VENV) $(STAMP) node_modules static/vendor
