"""Shared helpers for browser tests: Debian's Chromium driven by Playwright, and a live app on loopback."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from werkzeug.serving import make_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without these Chromium tries Google's services at start and on a closed network stalls on them.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def browser_page(bypass_csp: bool = True, **context: object) -> Iterator:
    """A page in Debian's Chromium. Playwright's string predicates (wait_for_function) run through eval, which the
    app's CSP forbids, so functional tests bypass CSP; the CSP test itself passes bypass_csp=False."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium") and not shutil.os.path.exists(CHROMIUM):
        pytest.fail("Chromium is not installed (apt-get install chromium); the browser tests need it")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            # A context of its own (not browser.new_page's), so a test can open a second page beside the first.
            page = browser.new_context(bypass_csp=bypass_csp, **context).new_page()
            yield page
        finally:
            browser.close()


@contextmanager
def serve(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()


@contextmanager
def serve_dir(directory) -> Iterator[str]:
    """A static file server on loopback for a rendered snapshot, as S3 website hosting would serve it."""
    handler = functools.partial(QuietFiles, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass
