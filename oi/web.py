"""Flask application: ``create_app()`` factory, the dashboard and its JSON API — routes only.

Requests are answered from :class:`oi.views.ViewCache` (pre-serialized bytes in process memory) through the
:class:`oi.service.Service`; only ``/healthz`` touches the store, to say whether it is reachable.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from flask import Blueprint, Flask, Response, current_app, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from oi import config as config_mod
from oi.analytics import COMBINED, INTERVALS
from oi.market.calendar import IST
from oi.security import register_security
from oi.service import Service
from oi.views import dumps

log = logging.getLogger(__name__)

bp = Blueprint("oi", __name__)
EXPIRY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_STRIKES = 500


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
    resp = Response(body, status=status, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.errorhandler(ApiError)
def _bad_request(exc: ApiError) -> Response:
    return _json(dumps({"error": str(exc)}), exc.status)


@bp.get("/")
def index() -> str:
    rt = _rt()
    page_config = {
        "mode": "live",
        "symbols": list(rt.config.symbols),
        "strikes": rt.config.strikes_around_atm,
        "source": rt.source.name,
        "refresh_ms": int(max(2.0, min(rt.config.refresh_period_seconds, 15.0)) * 1000),
        "intervals": list(INTERVALS),
    }
    return render_template("index.html", page_config=page_config, source=rt.source.name)


@bp.get("/api/symbols")
def api_symbols() -> Response:
    return _json(_rt().views.symbols_json)


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
    raw = _param("at")
    if raw is None:
        return None
    try:
        # A naive time is taken as IST: that is what a trader means by "10:30".
        when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError("parameter 'at' must be an ISO-8601 time, e.g. 2026-11-23T10:30:00+05:30") from None
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
        if expiry is not None:
            raise ApiError(f"no data for {symbol} expiry {expiry}", 404)
        raise ApiError(f"no data for {symbol} yet", 404)
    now = rt.clock()
    stale, reason = rt.freshness(now)
    head = {"stale": stale, "stale_reason": reason, "market_open": rt.market_open(now)}
    if at is not None:
        head["at"] = at.isoformat()
    # Splice the per-request fields in front of the pre-serialized body instead of re-encoding it.
    return _json(dumps(head)[:-1] + b"," + view.body(around, interval)[1:])


@bp.get("/api/history")
def api_history() -> Response:
    rt = _rt()
    symbol = _symbol(rt)
    expiry = _expiry()
    body = rt.views.history(symbol, expiry)
    if body is None:
        raise ApiError(f"no history for {symbol}{' expiry ' + expiry if expiry else ''} yet", 404)
    return _json(body)


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
    return exc


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
    app.jinja_env.globals["asset"] = lambda name: url_for("static", filename=name)
    app.register_error_handler(HTTPException, _handle_http_error)
    app.register_error_handler(Exception, _handle_unexpected)
    register_security(app, config)
    log.info("serving %s for %s (store: %s)", config.source, ", ".join(config.symbols), service.store.backend)
    return app
