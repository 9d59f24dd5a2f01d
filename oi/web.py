"""Flask application: ``create_app()`` factory, the dashboard and its JSON API — routes only.

Requests are answered from :class:`oi.views.ViewCache` (pre-serialized bytes in process memory) through the
:class:`oi.service.Service`; only ``/healthz`` touches the store, to say whether it is reachable.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, render_template, request
from werkzeug.exceptions import HTTPException

from oi import config as config_mod
from oi import http
from oi.analytics import COMBINED, INTERVALS
from oi.history import strike_series
from oi.market.calendar import IST
from oi.security import register_security
from oi.service import Service
from oi.views import dumps

log = logging.getLogger(__name__)

bp = Blueprint("oi", __name__)
EXPIRY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_STRIKES = 500
STRIKE_RE = re.compile(r"^\d{1,7}(\.\d{1,2})?$")
MAX_PICKED = 10  # strikes per /api/strikes request


def _rt() -> Service:
    return current_app.extensions["oi"]


class ApiError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _param(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise ApiError(f"parameter '{name}' given more than once")
    return values[0] if values else None


def _symbol(rt: Service) -> str:
    raw = _param("symbol")
    if raw is None or not raw.strip():
        raise ApiError("parameter 'symbol' is required")
    symbol = raw.strip().upper()
    if symbol not in rt.config.symbols:
        # Never echo user input verbatim: a fixed message avoids reflecting markup or huge strings.
        raise ApiError(f"unknown symbol; configured: {', '.join(rt.config.symbols)}")
    return symbol


def _json(body: bytes, status: int = 200) -> Response:
    """An answer no cache may keep: errors and /healthz."""
    resp = Response(body, status=status, mimetype="application/json")
    resp.headers["Cache-Control"] = http.NO_STORE
    return resp


def _cached(
    rt: Service,
    key: object,
    build: Callable[[], bytes],
    now: datetime | None = None,
    slow: bool = False,
    quick: bool = False,
) -> Response:
    """A live JSON answer: compressed once per body (`key` names it), conditional, edge-cacheable (oi/http.py).
    `slow`: the answer changes at most once a minute (history: a point a minute; the symbol list), not per refresh.
    `quick`: cheaper compression, for answers whose variety the client picks (?at=, ?since=)."""
    now = now or rt.clock()
    market_open = rt.market_open(now)
    next_open = None if market_open else rt.calendar.next_open(now)
    # How often the answer can change: a minute for the slow ones; else a tick's publication with the feed live,
    # one round at the adaptive pace in force without it.
    period = max(rt.round_seconds(), http.MINUTE) if slow else rt.change_seconds()
    policy = http.cache_control(market_open, period, now, next_open)
    return http.respond(request, current_app.extensions["oi.http"].get(key, build, quick), policy)


@bp.errorhandler(ApiError)
def _bad_request(exc: ApiError) -> Response:
    return _json(dumps({"error": str(exc)}), exc.status)


@bp.get("/")
def index() -> Response:
    rt = _rt()
    page_config = {
        "mode": "live",
        "symbols": list(rt.config.symbols),
        "strikes": rt.config.strikes_around_atm,
        "source": rt.source.name,
        # With a feed, a tick is published within a second: poll at that pace to show it.
        "refresh_ms": 1000 if rt.refresher.feed else int(max(2.0, min(rt.round_seconds(), 15.0)) * 1000),
        "intervals": list(INTERVALS),
    }
    page = render_template("index.html", page_config=page_config, source=rt.source.name).encode()
    return http.respond(
        request, current_app.extensions["oi.http"].get(page, lambda: page), http.PAGE_CACHE, "text/html; charset=utf-8"
    )


@bp.get("/api/symbols")
def api_symbols() -> Response:
    body = _rt().views.symbols_json
    return _cached(_rt(), body, lambda: body, slow=True)


def _small_int(raw: str) -> int | None:
    """A plain ASCII number of a few digits, else None ("²" is a digit to str.isdigit; 5000 digits break int())."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else None


def _expiry() -> str | None:
    expiry = _param("expiry")
    if expiry is not None and expiry != COMBINED and not EXPIRY_RE.match(expiry):
        raise ApiError(f"parameter 'expiry' must be YYYY-MM-DD or '{COMBINED}'")
    return expiry


def _interval() -> int | None:
    raw = _param("interval")
    if raw is None or raw in ("", "0"):
        return None
    if _small_int(raw) not in INTERVALS:
        raise ApiError(f"parameter 'interval' must be one of {', '.join(map(str, INTERVALS))} (minutes)")
    return int(raw)


def _at() -> datetime | None:
    return _time_param("at")


def _time_param(name: str) -> datetime | None:
    raw = _param(name)
    if raw is None:
        return None
    try:
        # A naive time is taken as IST: that is what a trader means by "10:30".
        when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(f"parameter '{name}' must be an ISO-8601 time, e.g. 2026-11-23T10:30:00+05:30") from None
    return when if when.tzinfo else when.replace(tzinfo=IST)


@bp.get("/api/oi")
def api_oi() -> Response:
    rt = _rt()
    symbol = _symbol(rt)
    expiry = _expiry()
    strikes_raw = _param("strikes")
    around: int | None = rt.config.strikes_around_atm
    if strikes_raw is not None:
        if strikes_raw == "all":
            around = None
        elif 0 < (_small_int(strikes_raw) or 0) <= MAX_STRIKES:
            around = int(strikes_raw)
        else:
            raise ApiError(f"parameter 'strikes' must be 'all' or a number from 1 to {MAX_STRIKES}")
    interval, at = _interval(), _at()
    view = rt.views.get(symbol, expiry) if at is None else rt.views.at(symbol, expiry, at)
    if view is None:
        if at is not None and rt.views.get(symbol, expiry) is not None:
            raise ApiError(f"no data for {symbol} at or before that time in the session", 404)
        if rt.views.get(symbol, None) is None:
            return _warming_up(rt, symbol)
        if expiry is not None:
            raise ApiError(f"no data for {symbol} expiry {expiry}", 404)
        raise ApiError(f"no data for {symbol} yet", 404)
    now = rt.clock()
    stale, reason = rt.freshness(now)
    head = {"stale": stale, "stale_reason": reason, "market_open": rt.market_open(now)}
    feed = rt.feed_state()
    if feed is not None:
        head["feed"] = feed
    if at is not None:
        head["at"] = at.isoformat()
    # Splice the per-request fields in front of the pre-serialized body instead of re-encoding it; the pair is the
    # cache key, so a body is compressed (and hashed for its ETag) once per view version and head values. A stale
    # reason can change every second ("data is 47 s old"), so those answers get the quick compression.
    start, rest = dumps(head)[:-1] + b",", view.body(around, interval)
    return _cached(rt, (rest, start), lambda: start + rest[1:], now, quick=at is not None or stale)


def _warming_up(rt: Service, symbol: str) -> Response:
    """A configured symbol with no data yet (start-up, a new store): 503 + Retry-After, a state, not an error."""
    resp = _json(dumps({"error": f"warming up: no data for {symbol} yet", "warming_up": True}), 503)
    resp.headers["Retry-After"] = str(max(1, math.ceil(rt.round_seconds())))
    return resp


@bp.get("/api/history")
def api_history() -> Response:
    rt = _rt()
    symbol = _symbol(rt)
    expiry = _expiry()
    since = _time_param("since")
    body = rt.views.history(symbol, expiry, since)
    if body is None:
        raise ApiError(f"no history for {symbol}{' expiry ' + expiry if expiry else ''} yet", 404)
    return _cached(rt, body, lambda: body, slow=True, quick=since is not None)


@bp.get("/api/closes")
def api_closes() -> Response:
    """Day over day: each earlier session's closing OI per strike (and its totals), oldest first; the page diffs the
    current view against the one the reader picks."""
    rt = _rt()
    symbol = _symbol(rt)
    expiry = _expiry()
    body = rt.views.closes_body(symbol, expiry)
    if body is None:
        if rt.views.get(symbol, None) is None:
            return _warming_up(rt, symbol)
        raise ApiError(f"no data for {symbol} expiry {expiry}", 404)
    return _cached(rt, body, lambda: body, slow=True)  # new closes arrive a few times a day


@bp.get("/api/strikes")
def api_strikes() -> Response:
    """OI and LTP through the session of a few strikes' CE and PE legs (the page's "chosen strikes" chart)."""
    rt = _rt()
    symbol = _symbol(rt)
    expiry = _expiry()
    raw = (_param("strikes") or "").split(",")
    if not raw[0] or len(raw) > MAX_PICKED or not all(STRIKE_RE.match(k) for k in raw):
        raise ApiError(f"parameter 'strikes' must be 1 to {MAX_PICKED} strike prices, comma-separated: 24000,24100")
    resolved = rt.views.resolve_expiry(symbol, expiry)
    line = rt.views.series.get((symbol, resolved)) if resolved else None
    if line is None or not len(line):
        raise ApiError(f"no history for {symbol}{' expiry ' + expiry if expiry else ''} yet", 404)
    strikes = list(dict.fromkeys(float(k) for k in raw))
    body = dumps({"symbol": symbol, "expiry": resolved, **strike_series(line, strikes)})
    return _cached(rt, body, lambda: body, slow=True)  # a new point a minute, like /api/history


@bp.get("/api/events")
def api_events() -> Response:
    """The session's fired alerts for a symbol (optionally one expiry), newest first, from memory."""
    rt = _rt()
    symbol = _symbol(rt)
    return _json(rt.alerts.log.body(symbol, _expiry()))


@bp.get("/healthz")
def healthz() -> Response:
    health = _rt().health()
    return _json(dumps(health.as_dict()), health.http_status)


def _handle_http_error(exc: HTTPException) -> Response:
    if request.path.startswith("/api/") or request.path == "/healthz":
        return _json(dumps({"error": exc.description or exc.name}), exc.code or 500)
    if exc.code == 404:
        session = _rt().clock().astimezone(IST).date().isoformat()
        return Response(render_template("error.html", session=session), 404, mimetype="text/html")
    return exc


def _relative_redirect(response: Response) -> Response:
    """Werkzeug's own redirects (``//x`` → ``/x``) are absolute, built from the Host header: an attacker's Host would
    come back in ``Location``. Keep only the path and query (one leading slash, never ``//host``)."""
    location = response.headers.get("Location")
    if response.status_code in (301, 302, 307, 308) and location:
        parts = urlsplit(location)
        response.headers["Location"] = "/" + parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
    return response


def _handle_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.path)
    return _json(dumps({"error": "internal error"}), 500)


def create_app(config: config_mod.Config | None = None, service: Service | None = None, **overrides) -> Flask:
    """Build the app around `service` (default: a new :class:`Service` on `config`; `overrides` — store, source,
    clock, timer — let tests swap its clients). Starts no background work: call ``service.start()`` for that."""
    config = config or config_mod.from_env()
    service = service or Service(config, **overrides)
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.json.sort_keys = False
    app.extensions["oi"] = service
    app.register_blueprint(bp)
    http.register_http(app)  # also the templates' asset(): static URLs with a content hash
    app.register_error_handler(HTTPException, _handle_http_error)
    app.register_error_handler(Exception, _handle_unexpected)
    app.after_request(_relative_redirect)
    register_security(app, config)
    log.info("serving %s for %s (store: %s)", config.source, ", ".join(config.symbols), service.store.backend)
    return app
