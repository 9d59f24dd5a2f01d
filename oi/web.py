"""Flask application: ``create_app()`` factory, the dashboard and its JSON API.

Requests are answered from :class:`oi.views.ViewCache` (pre-serialized bytes in process memory); only ``/healthz``
touches the store, to say whether it is reachable.
"""

from __future__ import annotations

import atexit
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Blueprint, Flask, Response, current_app, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from oi import config as config_mod
from oi.market.calendar import IST, Clock, MarketCalendar, calendar_from_config, clock_from_config
from oi.refresher import Refresher
from oi.store import Store, open_store
from oi.views import ViewCache, dumps

log = logging.getLogger(__name__)

bp = Blueprint("oi", __name__)
EXPIRY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_STRIKES = 500


@dataclass(repr=False)
class Runtime:
    config: config_mod.Config
    store: Store
    source: object
    calendar: MarketCalendar
    clock: Clock
    views: ViewCache
    refresher: Refresher
    scheduler: BackgroundScheduler | None = None
    closed: bool = False

    @property
    def demo(self) -> bool:
        return self.source.name == "demo"

    def market_open(self, now: datetime) -> bool:
        return self.demo or self.calendar.is_open(now)

    def tick(self) -> None:
        """One scheduler tick: maybe one upstream call, then pick up whatever any process wrote."""
        try:
            self.refresher.run_once()
        finally:
            try:
                self.views.sync(self.clock().astimezone(IST).date())
            except Exception:
                log.warning("view sync failed; serving the last views", exc_info=True)

    def close(self) -> None:
        """Stop refreshing and hand the lease over at once instead of after its TTL. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # let a tick in flight finish its write
        self.refresher.stop()

    def freshness(self, now: datetime) -> tuple[bool, str | None]:
        """(stale, reason) for what we serve now: too old in market hours, or the refresher is stuck."""
        status = self.views.status
        if status.get("auth_failed"):
            return True, "Dhan rejected the access token; data stopped updating"
        if not self.market_open(now):
            return False, None
        limit = 3 * max(self.config.refresh_period_seconds, self.config.dhan_min_interval_seconds)
        oldest = min((v.chain.as_of for v in self.views.views.values()), default=None)
        if oldest is None:
            return True, "no data yet"
        age = (now - oldest).total_seconds()
        if age > limit:
            why = f" ({status['error']})" if status.get("error") else ""
            return True, f"data is {int(age)} s old{why}"
        return False, None


def _rt() -> Runtime:
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


def _symbol(rt: Runtime) -> str:
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
    }
    return render_template("index.html", page_config=page_config, source=rt.source.name)


@bp.get("/api/symbols")
def api_symbols() -> Response:
    return _json(_rt().views.symbols_json)


@bp.get("/api/oi")
def api_oi() -> Response:
    rt = _rt()
    symbol = _symbol(rt)
    expiry = _param("expiry")
    if expiry is not None and not EXPIRY_RE.match(expiry):
        raise ApiError("parameter 'expiry' must be YYYY-MM-DD")
    strikes_raw = _param("strikes")
    around: int | None = rt.config.strikes_around_atm
    if strikes_raw is not None:
        if strikes_raw == "all":
            around = None
        elif strikes_raw.isdigit() and 1 <= int(strikes_raw) <= MAX_STRIKES:
            around = int(strikes_raw)
        else:
            raise ApiError(f"parameter 'strikes' must be 'all' or a number from 1 to {MAX_STRIKES}")
    view = rt.views.get(symbol, expiry)
    if view is None:
        if expiry is not None:
            raise ApiError(f"no data for {symbol} expiry {expiry}", 404)
        raise ApiError(f"no data for {symbol} yet", 404)
    now = rt.clock()
    stale, reason = rt.freshness(now)
    head = dumps({"stale": stale, "stale_reason": reason, "market_open": rt.market_open(now)})
    # Splice the per-request fields in front of the pre-serialized body instead of re-encoding it.
    return _json(head[:-1] + b"," + view.body(around)[1:])


@bp.get("/healthz")
def healthz() -> Response:
    rt = _rt()
    now = rt.clock()
    store_ok = rt.store.ping()
    views = [rt.views.get(s, None) for s in rt.config.symbols]
    newest = max((v.chain.as_of for v in views if v), default=None)
    oldest = min((v.chain.as_of for v in views if v), default=None)
    market_open = rt.market_open(now)
    stale, reason = rt.freshness(now)
    missing = [s for s, v in zip(rt.config.symbols, views, strict=True) if v is None]
    if missing:
        reason = f"no snapshot for {', '.join(missing)}"
    elif not store_ok:
        reason = "store unreachable"
    elif not stale:
        reason = None
    body = {
        "status": "degraded" if reason else "ok",
        "market_open": market_open,
        "source": rt.source.name,
        "last_refresh": newest.isoformat() if newest else None,
        "data_age_seconds": round((now - oldest).total_seconds(), 1) if oldest else None,
        "store": "ok" if store_ok else "down",
    }
    if reason:
        body["reason"] = reason
    return _json(dumps(body), 503 if reason else 200)


def _handle_http_error(exc: HTTPException) -> Response:
    if request.path.startswith("/api/") or request.path == "/healthz":
        return _json(dumps({"error": exc.description or exc.name}), exc.code or 500)
    return exc


def _handle_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.path)
    return _json(dumps({"error": "internal error"}), 500)


# --- factory ---------------------------------------------------------------------------------------------------
def build_source(config: config_mod.Config, calendar: MarketCalendar):
    if config.source == "dhan":
        from oi.market.dhan import DhanSource

        return DhanSource.create(
            config.dhan_client_id,
            config.dhan_access_token,
            config.dhan_api_base,
            config.dhan_timeout_seconds,
            config.underlyings,
        )
    from oi.market.demo import DemoSource

    return DemoSource(calendar, seed=config.demo_seed)


def register_runtime(app: Flask, config: config_mod.Config, store=None, source=None, clock=None, timer=None) -> Runtime:
    calendar = calendar_from_config(config)
    clock = clock or clock_from_config(config)
    store = store or open_store(config.mongo_uri, config.mongo_db, config.data_dir)
    source = source or build_source(config, calendar)
    views = ViewCache(store, config.symbols, config.expiries_per_symbol)
    extra = {"timer": timer} if timer else {}
    refresher = Refresher(
        store,
        source,
        calendar,
        clock,
        config.symbols,
        config.expiries_per_symbol,
        config.dhan_min_interval_seconds,
        config.dhan_timeout_seconds,
        **extra,
    )
    rt = Runtime(config, store, source, calendar, clock, views, refresher)
    try:
        views.sync(clock().astimezone(IST).date())
    except Exception:
        log.warning("initial view load failed", exc_info=True)
    app.extensions["oi"] = rt
    return rt


def register_scheduler(rt: Runtime) -> None:
    # A tick is cheap for followers (one small read) and the pace gate decides upstream calls; a short tick keeps
    # the leader from claiming each slot up to a whole tick late, which would cost ~15% of the allowed rate.
    tick = max(0.05, min(0.3, rt.config.dhan_min_interval_seconds / 10))
    scheduler = BackgroundScheduler(daemon=True, timezone="Asia/Kolkata")
    scheduler.add_job(
        rt.tick,
        "interval",
        seconds=tick,
        id="refresh",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(IST),
        misfire_grace_time=None,
    )
    scheduler.start()
    rt.scheduler = scheduler
    atexit.register(rt.close)


def create_app(config: config_mod.Config | None = None, **overrides) -> Flask:
    """Build the app. `overrides` (store, source, clock, timer) let tests swap clients."""
    config = config or config_mod.from_env()
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.json.sort_keys = False
    rt = register_runtime(app, config, **overrides)
    app.register_blueprint(bp)
    app.jinja_env.globals["asset"] = lambda name: url_for("static", filename=name)
    app.register_error_handler(HTTPException, _handle_http_error)
    app.register_error_handler(Exception, _handle_unexpected)
    if config.start_refresher:
        register_scheduler(rt)
    log.info("serving %s for %s (store: %s)", config.source, ", ".join(config.symbols), rt.store.backend)
    return app
