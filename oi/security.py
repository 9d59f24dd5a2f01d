"""Response security headers and the origin lock: ``register_security(app, config)``.

Every response (pages, JSON, static files, errors, the lock's own 403) gets a strict Content-Security-Policy and
friends. The page loads only external scripts and a ``<script type="application/json">`` data block (which CSP
does not execute), and sets styles through CSSOM (``element.style``), which ``style-src 'self'`` allows, so neither
scripts nor styles need ``'unsafe-inline'``.

With ``ORIGIN_SECRET`` set, the app answers only requests that came through Cloudflare, whose transform rule
(``python -m oi setup cloudflare``) adds ``X-Origin-Secret``; anyone who finds the instance's address gets
403. The one exception is ``/healthz`` from the box itself (cron's health check before the morning DNS flip). The
peer address is ``REMOTE_ADDR`` as gunicorn saw it: ``X-Forwarded-For`` is client-controlled and never consulted.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable

from flask import Flask, Response, request

from oi.config import Config

log = logging.getLogger(__name__)

ORIGIN_HEADER = "X-Origin-Secret"
LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})

# Directives a <meta http-equiv> policy cannot carry (browsers ignore them there and log a console warning).
_HEADER_ONLY = ("frame-ancestors",)
_POLICY = (
    ("default-src", "'self'"),
    ("script-src", "'self'"),
    ("style-src", "'self'"),
    ("img-src", "'self' data:"),
    ("connect-src", "'self'"),
    ("object-src", "'none'"),
    ("base-uri", "'none'"),
    ("form-action", "'self'"),
    ("frame-ancestors", "'none'"),
)
CSP = "; ".join(f"{name} {value}" for name, value in _POLICY)
# For the static snapshot on S3 website hosting, which cannot send headers: the same policy as a <meta> tag.
META_CSP = "; ".join(f"{name} {value}" for name, value in _POLICY if name not in _HEADER_ONLY)

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def add_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _forbidden() -> Response:
    if request.path.startswith("/api/") or request.path == "/healthz":
        resp = Response(json.dumps({"error": "forbidden"}), 403, mimetype="application/json")
    else:
        resp = Response("Forbidden\n", 403, mimetype="text/plain")
    # Should a misconfigured rule ever let a 403 through Cloudflare, it must not be cached for real visitors.
    resp.headers["Cache-Control"] = "no-store"
    return resp


def origin_lock(secret: str) -> Callable[[], Response | None]:
    """A ``before_request`` hook: 403 unless the request carries ``X-Origin-Secret: <secret>``."""
    expected = secret.encode()

    def check() -> Response | None:
        if request.path == "/healthz" and request.remote_addr in LOOPBACK:
            return None
        # Encode before comparing: compare_digest refuses non-ASCII str, and a header is attacker-controlled.
        given = request.headers.get(ORIGIN_HEADER, "").encode("utf-8", "replace")
        if hmac.compare_digest(given, expected):
            return None
        log.debug("origin lock: 403 for %s %r from %s", request.method, request.path[:200], request.remote_addr)
        return _forbidden()

    return check


def register_security(app: Flask, config: Config) -> None:
    """Add the security headers to every response and, with ORIGIN_SECRET, lock the app to Cloudflare."""
    if config.origin_secret:
        # First of all app-wide hooks: nothing else should spend work on a request that is about to be refused.
        app.before_request_funcs.setdefault(None, []).insert(0, origin_lock(config.origin_secret))
    app.after_request(add_headers)
