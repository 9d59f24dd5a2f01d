# Quick start:  make run   (demo dashboard on http://127.0.0.1:5000, no credentials)
#               make test  (installs everything the tests need, Chromium included, and runs them all)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench system

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

# Debian packages the tests and benchmarks run for real: Chromium for the browser tests (Playwright cannot download
# its own browser here), nginx in front of gunicorn as on the box (deploy/nginx.conf), and Varnish standing in for
# Cloudflare's edge cache. One apt-get for whichever are missing.
system:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v varnishd >/dev/null || [ -x /usr/sbin/varnishd ] || missing="$$missing varnish"; \
	[ -z "$$missing" ] || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; }

test: $(BIN)/.dev system
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# All benchmarks (about half an hour, memory.py alone samples for 10 minutes), or some: make bench BENCH="serve load".
# Each run rewrites its own section of docs/benchmarks.md.
BENCH ?=
bench: $(BIN)/.dev system
	$(BIN)/python benchmarks/report.py $(BENCH)
