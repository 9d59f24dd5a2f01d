# Quick start:  make run   (demo dashboard on http://127.0.0.1:5000, no credentials)
#               make test  (installs everything the tests need, Chromium included, and runs them all)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench chromium varnish

$(BIN)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(BIN)/.dev: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(BIN)/.runtime

run: $(BIN)/.runtime
	$(BIN)/python app.py

# Browser tests drive Debian's Chromium (Playwright cannot download its own browser here).
chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

# The edge-cache tests and benchmarks/edge.py put Debian's Varnish in front of the app, as Cloudflare is in production.
varnish:
	@command -v varnishd >/dev/null || [ -x /usr/sbin/varnishd ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq varnish; }

test: $(BIN)/.dev chromium varnish
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# All benchmarks (about 25 minutes, memory.py alone samples for 10), or some: make bench BENCH="serve load".
BENCH ?= serve load upstream_calls snapshot memory edge
bench: $(BIN)/.dev varnish
	@for name in $(BENCH); do echo "== benchmarks/$$name.py"; $(BIN)/python benchmarks/$$name.py || exit 1; done
