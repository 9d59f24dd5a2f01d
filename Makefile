# Quick start:  make run   (demo dashboard on http://127.0.0.1:5000, no credentials)
#               make test  (installs everything the tests need, Chromium included, and runs them all)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench chromium nginx

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

# tests/test_nginx.py runs Debian's nginx in front of gunicorn (deploy/nginx.conf).
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq nginx; }

test: $(BIN)/.dev chromium nginx
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# All benchmarks (about half an hour, memory.py alone samples for 10 minutes), or some: make bench BENCH="serve load".
# Each run rewrites its own section of docs/benchmarks.md.
BENCH ?=
bench: $(BIN)/.dev chromium
	$(BIN)/python benchmarks/report.py $(BENCH)
