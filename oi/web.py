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
from oi.analytics import COMBINED, INTERVALS
from oi.market.calendar import IST, Clock, MarketCalendar, calendar_from_config, clock_from_config
from oi.refresher import Refresher
from oi.security import register_security
from oi.store import Store, open_store
from oi.tokens import TokenWatch
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
    token_watch: TokenWatch | None = None  # the Dhan source only (oi/tokens.py)
    store_down: bool = False  # set by tick(): this process could not reach the store on its last try

    @property
    def demo(self) -> bool:
        return self.source.name == "demo"

    def market_open(self, now: datetime) -> bool:
        return self.demo or self.calendar.is_open(now)

    def tick(self) -> None:
        """One scheduler tick: maybe one upstream call, then pick up whatever any process wrote. Never raises: the
        views keep serving whatever happens, and a store outage is logged once, not on every tick."""
        try:
            self.refresher.run_once()
        except Exception:
            log.exception("refresher step failed")
        try:
            self.views.sync(self.clock().astimezone(IST).date())
        except Exception:
            if not self.store_down:
                log.warning("view sync failed; serving the last views", exc_info=True)
            self.store_down = True
        else:
            self.store_down = self.refresher.store_down

    def close(self) -> None:
        """Stop refreshing and hand the lease over at once instead of after its TTL. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # let a tick in flight finish its write
        self.refresher.stop()

    def freshness(self, now: datetime) -> tuple[bool, str | None]:
        """(stale, reason) for what we serve now: the store is unreachable, the token was rejected, or in market
        hours the last upstream call failed (the reason names the fault in plain words) or the data is too old."""
        status = self.views.status
        if self.store_down:
            return True, "store unreachable"
        if status.get("auth_failed"):
            return True, "Dhan rejected the access token; data stopped updating"
        if not self.market_open(now):
            return False, None
        limit = 3 * max(self.config.refresh_period_seconds, self.config.dhan_min_interval_seconds)
        if (status.get("feed") or {}).get("state") == "live":  # REST relaxed: a quiet leg may not tick for a while
            limit = max(limit, 3 * self.config.rest_period_with_feed_seconds)
        oldest = min((v.chain.as_of for v in self.views.views.values()), default=None)
        if oldest is None:
            return True, "no data yet"
        if status.get("error"):
            # The last call failed: we serve the last good data, and say why it is not moving.
            return True, status.get("reason") or "data stopped updating"
        age = (now - oldest).total_seconds()
        if age > limit:
            return True, f"data is {int(age)} s old"
        return False, None


def feed_state(rt: Runtime) -> dict | None:
    """The feed as viewers see it: the lease holder's state (shared through the store), and when it is not live,
    how fresh REST keeps the data instead. None when OI_FEED=off."""
    if rt.refresher.feed is None:
        return None
    shared = rt.views.status.get("feed")
    out = {"state": (shared or {}).get("state") or "off", "instruments": (shared or {}).get("instruments") or 0}
    why = (shared or {}).get("reason")
    if out["state"] != "live":
        rest = f"REST, every {rt.config.refresh_period_seconds:g} s"
        why = f"{rest} ({why})" if why else rest
    if why:
        out["reason"] = why
    if rt.refresher.feed.running:  # this process holds the feed: its own counters too
        local = rt.refresher.feed.status()
        out.update(packets=local.packets, skipped=local.skipped, last_packet=local.last_packet)
    return out


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
        # With a feed, a tick is published within a second: poll at that pace to show it.
        "refresh_ms": 1000 if rt.refresher.feed else int(max(2.0, min(rt.config.refresh_period_seconds, 15.0)) * 1000),
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
    feed = feed_state(rt)
    if feed is not None:
        head["feed"] = feed
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
    watch = rt.token_watch
    token_problem = watch.problem(now, rt.views.status) if watch is not None else None
    if token_problem:
        reason = token_problem
    elif missing:
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
    feed = feed_state(rt)
    if feed is not None:
        body["feed"] = feed
    if watch is not None and watch.expires_at is not None:
        body["token"] = watch.state(now).as_dict()  # when it expires, never the token
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


def build_feed(config: config_mod.Config, source, calendar: MarketCalendar, clock: Clock):
    """The market feed for this source (OI_FEED), or None. Built in every process; only the lease holder starts it."""
    if config.feed == "demo" and source.name == "demo":
        from oi.feed.demo import DemoFeed

        return DemoFeed(source)
    if config.feed != "dhan" or source.name != "dhan":
        return None
    from oi.feed.instruments import InstrumentMaster, Resolver
    from oi.feed.supervisor import FeedSupervisor

    master = InstrumentMaster(
        config.dhan_instruments_url, config.data_dir, config.symbols, clock, timeout=config.dhan_timeout_seconds
    )
    return FeedSupervisor(
        config.dhan_feed_url,
        config.dhan_client_id,
        lambda: source.http.access_token,  # late-bound: a renewed token is used from the next connect
        Resolver(master),
        config.underlyings,
        strikes=config.feed_strikes,
        connections=config.feed_connections,
        calendar=calendar,
        clock=lambda: clock(),
    )


def register_runtime(
    app: Flask, config: config_mod.Config, store=None, source=None, clock=None, timer=None, feed=None
) -> Runtime:
    calendar = calendar_from_config(config)
    clock = clock or clock_from_config(config)
    store = store or open_store(config.mongo_uri, config.mongo_db, config.data_dir)
    source = source or build_source(config, calendar)
    views = ViewCache(store, config.symbols, config.expiries_per_symbol, config.lot_sizes)
    extra = {"timer": timer} if timer else {}
    feed = feed if feed is not None else build_feed(config, source, calendar, clock)
    refresher = Refresher(
        store,
        source,
        calendar,
        clock,
        config.symbols,
        config.expiries_per_symbol,
        config.dhan_min_interval_seconds,
        config.dhan_timeout_seconds,
        feed=feed,
        rest_period_with_feed=config.rest_period_with_feed_seconds,
        **extra,
    )
    refresher.on_publish = views.put  # the feed's ticks reach this process's viewers without a store round trip
    rt = Runtime(config, store, source, calendar, clock, views, refresher)
    if config.source == "dhan" and hasattr(source, "set_token"):
        rt.token_watch = TokenWatch(
            config,
            store,
            source,
            lambda: rt.clock(),  # late-bound: tests (and OI_NOW) swap rt.clock
            status=lambda: rt.views.status,
            is_leader=refresher.is_leader,
            on_new_token=refresher.token_replaced,
        )
        rt.token_watch.start()  # a saved, renewed token newer than DHAN_ACCESS_TOKEN wins
    try:
        views.sync(clock().astimezone(IST).date())
    except Exception:
        log.warning("initial view load failed", exc_info=True)
    app.extensions["oi"] = rt
    return rt


class _SkippedTicks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in record.getMessage()


def register_scheduler(rt: Runtime) -> None:
    # A tick is cheap for followers (one small read) and the pace gate decides upstream calls; a short tick keeps
    # the leader from claiming each slot up to a whole tick late, which would cost ~15% of the allowed rate.
    tick = max(0.05, min(0.3, rt.config.dhan_min_interval_seconds / 10))
    # A tick still running when the next is due (a slow upstream call) is skipped by design (max_instances=1);
    # APScheduler would log a warning for each skip, several a second.
    logging.getLogger("apscheduler.scheduler").addFilter(_SkippedTicks())
    scheduler = BackgroundScheduler(daemon=True, timezone="Asia/Kolkata")
    # Every job: never two runs at once, missed runs collapse into one, and the first run happens at start-up.
    once = {"max_instances": 1, "coalesce": True, "next_run_time": datetime.now(IST)}
    scheduler.add_job(rt.tick, "interval", seconds=tick, id="refresh", misfire_grace_time=None, **once)
    # Retention: once at start-up (the box is stopped at night, so that is the daily run) and at 16:00 IST for a
    # box that stays up. Refresher.prune only acts in the lease holder, so one process prunes.
    scheduler.add_job(
        rt.refresher.prune,
        "cron",
        hour=16,
        minute=0,
        args=[rt.config.retention_days],
        id="prune",
        misfire_grace_time=3600,
        **once,
    )
    watch = rt.token_watch
    if watch is not None:
        from oi.tokens import WATCH_SECONDS

        scheduler.add_job(
            watch.run, "interval", seconds=WATCH_SECONDS, id="token-watch", misfire_grace_time=None, **once
        )
    scheduler.start()
    rt.scheduler = scheduler
    atexit.register(rt.close)


def create_app(config: config_mod.Config | None = None, **overrides) -> Flask:
    """Build the app. `overrides` (store, source, clock, timer, feed) let tests swap clients."""
    config = config or config_mod.from_env()
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.json.sort_keys = False
    rt = register_runtime(app, config, **overrides)
    app.register_blueprint(bp)
    app.jinja_env.globals["asset"] = lambda name: url_for("static", filename=name)
    app.register_error_handler(HTTPException, _handle_http_error)
    app.register_error_handler(Exception, _handle_unexpected)
    register_security(app, config)
    if config.start_refresher:
        register_scheduler(rt)
    log.info("serving %s for %s (store: %s)", config.source, ", ".join(config.symbols), rt.store.backend)
    return app
