"""The live service: owns the store, the source, the refresher, the token watch and the background scheduler, and
decides what the served data's health is. ``oi.web`` only routes requests to it.

Building a :class:`Service` starts nothing: :meth:`Service.start` starts the background work (app.py, ``python -m
oi serve`` and gunicorn's workers call it), so a test client never spawns threads unless the test asks.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler

from oi import closes
from oi.alerts import Alerts, load_rules
from oi.analytics import COMBINED
from oi.breadth import build_master
from oi.breadth import resolve as resolve_symbols
from oi.config import Config
from oi.market.calendar import IST, Clock, MarketCalendar, calendar_from_config, clock_from_config
from oi.notify import Notifier
from oi.pace import pace_seconds, round_seconds
from oi.refresher import Refresher, Source
from oi.store import Store, open_store
from oi.store_monitor import StoreMonitor, describe_store
from oi.tokens import WATCH_SECONDS, TokenWatch
from oi.views import ViewCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """What /healthz answers: 200 with no reason, 503 with one."""

    status: str  # "ok" or "degraded"
    market_open: bool
    source: str
    last_refresh: datetime | None
    data_age_seconds: float | None
    store_ok: bool
    pace_seconds: float
    reason: str | None = None
    token: dict | None = None  # when the token expires, never the token
    store_repaired: list | None = None  # damaged embedded-store files moved aside (kept) and recreated
    feed: dict | None = None  # the market feed's state (Service.feed_state), None when OI_FEED=off
    symbols_disabled: dict | None = None  # configured symbols not served, each with why (oi/breadth.py)
    warning: str | None = None  # something an operator should fix that does not stop the service

    @property
    def http_status(self) -> int:
        return 503 if self.reason else 200

    def as_dict(self) -> dict:
        body = {
            "status": self.status,
            "market_open": self.market_open,
            "source": self.source,
            "last_refresh": self.last_refresh.isoformat() if self.last_refresh else None,
            "data_age_seconds": self.data_age_seconds,
            "store": "ok" if self.store_ok else "down",
            "pace_seconds": self.pace_seconds,
        }
        if self.token is not None:
            body["token"] = self.token
        if self.store_repaired:
            body["store_repaired"] = self.store_repaired
        if self.feed is not None:
            body["feed"] = self.feed
        if self.symbols_disabled:
            body["symbols_disabled"] = self.symbols_disabled
        if self.warning:
            body["warning"] = self.warning
        if self.reason:
            body["reason"] = self.reason
        return body


def build_source(config: Config, calendar: MarketCalendar) -> Source:
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


def build_feed(config: Config, source: Source, calendar: MarketCalendar, clock: Clock, master=None):
    """The market feed for this source (OI_FEED), or None. Built in every process; only the lease holder starts it."""
    if config.feed == "demo" and source.name == "demo":
        from oi.feed.demo import DemoFeed

        return DemoFeed(source)
    if config.feed != "dhan" or source.name != "dhan":
        return None
    from oi.feed.instruments import Resolver
    from oi.feed.supervisor import FeedSupervisor

    master = master or build_master(config, clock)
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


def build_archive(config: Config, source: Source, calendar: MarketCalendar) -> closes.Archive | None:
    """Where day over day reads a session the store no longer has: the published archive when a bucket is configured
    (read by a child process, so this one never loads boto3), else the demo's own market."""
    from oi.archive import DemoArchive, SpawnedArchive

    bucket = config.archive_bucket or config.s3_bucket
    if bucket:
        return SpawnedArchive(config, bucket)
    return DemoArchive(source, calendar) if getattr(source, "name", "") == "demo" else None


class _SkippedTicks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in record.getMessage()


class Service:
    """One process's share of the live service. Tests swap `store`, `source`, `clock`, `timer`, `notifier`, `feed`."""

    def __init__(
        self,
        config: Config,
        store: Store | None = None,
        source: Source | None = None,
        clock: Clock | None = None,
        timer=None,
        notifier: Notifier | None = None,
        feed=None,
    ) -> None:
        self.calendar: MarketCalendar = calendar_from_config(config)
        self.clock: Clock = clock or clock_from_config(config)
        # OI_SYMBOLS as served: stocks resolved from the instrument master, symbols it does not know left out
        # (named on /healthz), lot sizes from the master. Everything below sees the resolved configuration.
        master = build_master(config, lambda: self.clock())
        self.breadth = resolve_symbols(config, master)
        self.config = config = self.breadth.apply(config)
        self.store = store or open_store(config.mongo_uri, config.mongo_db, config.data_dir)
        self.source = source or build_source(config, self.calendar)
        self.refresher = Refresher(
            self.store,
            self.source,
            self.calendar,
            self.clock,
            config.symbols,
            config.expiries_per_symbol,
            config.dhan_min_interval_seconds,
            config.dhan_timeout_seconds,
            feed=feed if feed is not None else build_feed(config, self.source, self.calendar, self.clock, master),
            rest_period_with_feed=config.rest_period_with_feed_seconds,
            **({"timer": timer} if timer else {}),
        )
        # Only in-session frames make the replay (a 09:14:50 pre-open fetch does not); the demo is always open.
        self.views = ViewCache(
            self.store,
            config.symbols,
            config.expiries_per_symbol,
            config.lot_sizes,
            self.refresher.in_session,
            kinds=self.breadth.kinds,
            compare_sessions=config.compare_sessions,
        )
        self.archive = build_archive(config, self.source, self.calendar)
        self._no_close: set[str] = set()  # (symbol, expiry, day) the archive did not have: asked once per process
        self._close_pairs: list[tuple[str, str]] = []  # the expiries the closes were last recorded for
        self._today_closes: dict[str, datetime] = {}  # today's closes written by this process, and their frames
        self.refresher.on_publish = self.views.put  # the feed's ticks reach this process's viewers at once
        self.scheduler: BackgroundScheduler | None = None
        # /healthz reads its cached state, never the store (oi/store_monitor.py); unstarted, it checks inline.
        self.store_monitor = StoreMonitor(self.store.ping, describe_store(config.mongo_uri))
        self.closed = False
        self.store_down = False  # set by tick(): this process could not reach the store on its last try
        self.token_watch: TokenWatch | None = None  # the Dhan source only (oi/tokens.py)
        if config.source == "dhan" and hasattr(self.source, "set_token"):
            self.token_watch = TokenWatch(
                config,
                self.store,
                self.source,
                lambda: self.clock(),  # late-bound: tests (and OI_NOW) swap the clock
                status=lambda: self.views.status,
                is_leader=self.refresher.is_leader,
                on_new_token=self.refresher.token_replaced,
            )
            self.token_watch.start()  # a saved, renewed token newer than DHAN_ACCESS_TOKEN wins
        # OI alerts (oi/alerts/): rules evaluated by the lease holder after each view sync; every process serves
        # the session's fired events from memory.
        # Checked against OI_SYMBOLS as configured: a rule naming a symbol disabled at start-up just never fires.
        configured = config.symbols + tuple(self.breadth.disabled)
        rules = load_rules(config.alerts_file, configured, config.lot_sizes) if config.alerts_file else ()
        prefix = f"[{config.domain_name}] " if config.domain_name else "[oi] "
        notifier = notifier or Notifier.from_config(config, prefix=prefix)
        self.alerts = Alerts(rules, self.store, notifier, config.domain_name, config.lot_sizes)
        try:
            self.views.sync(self.clock().astimezone(IST).date())
        except Exception:
            log.warning("initial view load failed", exc_info=True)
        self.alerts.after_sync(self.views, True, lambda: False, self.clock().astimezone(IST).date())

    # --- background work ----------------------------------------------------------------------------------------
    def tick(self) -> None:
        """One scheduler tick: maybe one upstream call, then pick up whatever any process wrote. Never raises: the
        views keep serving whatever happens, and a store outage is logged once, not on every tick."""
        try:
            self.refresher.run_once()
        except Exception:
            log.exception("refresher step failed")
        today = self.clock().astimezone(IST).date()
        try:
            changed = self.views.sync(today)
        except Exception:
            if not self.store_down:
                log.warning("view sync failed; serving the last views", exc_info=True)
            self.store_down = True
        else:
            self.store_down = self.refresher.store_down
            self.alerts.after_sync(self.views, changed, self.refresher.is_leader, today)  # never raises
            if changed and self.views.followed(combined=False) != self._close_pairs and self.scheduler is not None:
                # A new expiry (a fresh store's first refresh, a roll-over): its earlier sessions now, not in 5 min.
                self._close_pairs = self.views.followed(combined=False)
                with contextlib.suppress(Exception):  # shutting down: the job is gone
                    self.scheduler.modify_job("closes", next_run_time=datetime.now(IST))

    def start(self) -> None:
        """Start the background work (:meth:`schedule`) in a scheduler thread. Idempotent."""
        if self.scheduler is not None:
            return
        self.scheduler = self.schedule()
        self.scheduler.start()
        self.store_monitor.start()
        atexit.register(self.close)

    def schedule(self) -> BackgroundScheduler:
        """A scheduler, not started, holding the refresher tick, the retention job and the token watch."""
        # A tick is cheap for followers (one small read) and the pace gate decides upstream calls; a short tick
        # keeps the leader from claiming each slot up to a whole tick late, which would cost ~15% of the rate.
        tick = max(0.05, min(0.3, self.config.dhan_min_interval_seconds / 10))
        # A tick still running when the next is due (a slow upstream call) is skipped by design (max_instances=1);
        # APScheduler would log a warning for each skip, several a second.
        logging.getLogger("apscheduler.scheduler").addFilter(_SkippedTicks())
        scheduler = BackgroundScheduler(daemon=True, timezone="Asia/Kolkata")
        # Every job: never two runs at once, missed runs collapse into one, and the first run happens at start-up.
        once = {"max_instances": 1, "coalesce": True, "next_run_time": datetime.now(IST)}
        scheduler.add_job(self.tick, "interval", seconds=tick, id="refresh", misfire_grace_time=None, **once)
        # Retention: once at start-up (the box is stopped at night, so that is the daily run) and at 16:00 IST for
        # a box that stays up. Refresher.prune only acts in the lease holder, so one process prunes.
        scheduler.add_job(
            self.refresher.prune,
            "cron",
            hour=16,
            minute=0,
            args=[self.config.retention_days],
            id="prune",
            misfire_grace_time=3600,
            **once,
        )
        # Day over day: cheap when nothing is missing (one read of the closes' ids); every few minutes, so a fresh
        # store's first expiries get their earlier sessions soon after the first refresh.
        scheduler.add_job(self.record_closes, "interval", minutes=5, id="closes", misfire_grace_time=None, **once)
        # ... and today's close once the session is over (15:30 IST), whatever the 5-minute phase.
        scheduler.add_job(
            self.record_today, "cron", hour=15, minute=31, id="close-of-day", misfire_grace_time=3600, **once
        )
        if self.token_watch is not None:
            scheduler.add_job(
                self.token_watch.run,
                "interval",
                seconds=WATCH_SECONDS,
                id="token-watch",
                misfire_grace_time=None,
                **once,
            )
        return scheduler

    def record_closes(self) -> closes.Recorded | None:
        """Store the closes of the earlier sessions the page can compare with (:func:`oi.closes.record`), in the
        lease holder only. Never raises."""
        if not self.config.compare_sessions:
            return None
        try:
            if not self.refresher.take_lease():
                return None
            self.record_today(lead=False)
            today = self.clock().astimezone(IST).date()
            pairs = self._close_pairs = self.views.followed(combined=False)
            days = closes.earlier_sessions(self.calendar, today, self.config.compare_sessions)
            done = closes.record(self.store, pairs, days, self.archive, skip=self._no_close)
        except Exception:
            log.warning("recording session closes failed; the next run retries", exc_info=True)
            return None
        self._no_close.update(done.missing)
        return done

    def record_today(self, lead: bool = True) -> int:
        """Store today's close so far from the views' in-memory session (:func:`oi.closes.record_today`), in the
        lease holder only (`lead`: take the lease first). Never raises; returns how many closes were written."""
        if not self.config.compare_sessions:
            return 0
        try:
            if lead and not self.refresher.take_lease():
                return 0
            series = {key: line for key, line in self.views.series.items() if key[1] != COMBINED}
            return closes.record_today(self.store, series, self._today_closes)
        except Exception:
            log.warning("recording today's session close failed; the next run retries", exc_info=True)
            return 0

    def close(self) -> None:
        """Stop refreshing and hand the lease over at once instead of after its TTL. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # let a tick in flight finish its write
        self.store_monitor.stop()
        if self.scheduler is not None:
            self.record_today()  # the box stops after the close: keep the session's last minutes (lease holder)
        self.refresher.stop()
        self.alerts.close()  # queued Telegram messages go out first

    # --- health policy ------------------------------------------------------------------------------------------
    @property
    def demo(self) -> bool:
        return self.source.name == "demo"

    def market_open(self, now: datetime) -> bool:
        return self.demo or self.calendar.is_open(now)

    def round_seconds(self) -> float:
        """One round over every (symbol, expiry) at the adaptive pace in force (oi/pace.py)."""
        targets = len(self.config.symbols) * self.config.expiries_per_symbol
        return round_seconds(self.views.status, self.config.dhan_min_interval_seconds, targets)

    def change_seconds(self) -> float:
        """How often /api/oi can change: the feed's publication period while the feed is live (ticks reach every
        worker once a second), else one REST round. Caches keep an answer half of it (oi/http.py)."""
        if (self.views.status.feed or {}).get("state") == "live":
            return self.refresher.publish_period
        return self.round_seconds()

    def freshness(self, now: datetime) -> tuple[bool, str | None]:
        """(stale, reason) for what we serve now: the store is unreachable, the token was rejected, or in market
        hours the last upstream call failed (the reason names the fault in plain words) or the data is too old."""
        status = self.views.status
        if self.store_down:
            return True, "store unreachable"
        if status.auth_failed:
            return True, "Dhan rejected the access token; data stopped updating"
        if not self.market_open(now):
            return False, None
        limit = 3 * self.round_seconds()
        if (status.feed or {}).get("state") == "live":  # REST relaxed: a quiet leg may not tick for a while
            limit = max(limit, 3 * self.config.rest_period_with_feed_seconds)
        oldest = min((v.chain.as_of for v in self.views.views.values()), default=None)
        if oldest is None:
            return True, "no data yet"
        if status.error:
            # The last call failed: we serve the last good data, and say why it is not moving.
            return True, status.reason or "data stopped updating"
        age = (now - oldest).total_seconds()
        if age > limit:
            return True, f"data is {int(age)} s old"
        return False, None

    def feed_state(self, local: bool = False) -> dict | None:
        """The feed as viewers see it: the lease holder's state (shared through the store), and when it is not live,
        how fresh REST keeps the data instead. None when OI_FEED=off. `local` adds this process's own counters when
        it holds the feed (for /healthz only: they change on every packet, and /api/oi answers are cached)."""
        feed = self.refresher.feed
        if feed is None:
            return None
        shared = self.views.status.feed or {}
        out = {"state": shared.get("state") or "off", "instruments": shared.get("instruments") or 0}
        why = shared.get("reason")
        if out["state"] != "live":
            rest = f"REST, every {self.round_seconds():g} s"
            why = f"{rest} ({why})" if why else rest
        if why:
            out["reason"] = why
        if local and feed.running:
            counters = feed.status()
            out.update(packets=counters.packets, skipped=counters.skipped, last_packet=counters.last_packet)
        return out

    def health(self) -> Health:
        """The service's health for /healthz and the morning flip: 'degraded' with a reason is a 503."""
        now = self.clock()
        store_ok = self.store_monitor.state().ok is not False
        views = [self.views.get(s, None) for s in self.config.symbols]
        newest = max((v.chain.as_of for v in views if v), default=None)
        oldest = min((v.chain.as_of for v in views if v), default=None)
        stale, reason = self.freshness(now)
        missing = [s for s, v in zip(self.config.symbols, views, strict=True) if v is None]
        watch = self.token_watch
        token_problem = watch.problem(now, self.views.status) if watch is not None else None
        if token_problem:
            reason = token_problem
        elif missing:
            reason = f"no snapshot for {', '.join(missing)}"
        elif not store_ok:
            reason = "store unreachable"
        elif not stale:
            reason = None
        return Health(
            status="degraded" if reason else "ok",
            market_open=self.market_open(now),
            source=self.source.name,
            last_refresh=newest,
            data_age_seconds=round((now - oldest).total_seconds(), 1) if oldest else None,
            store_ok=store_ok,
            pace_seconds=round(pace_seconds(self.views.status, self.config.dhan_min_interval_seconds), 3),
            reason=reason,
            token=watch.state(now).as_dict() if watch is not None and watch.expires_at is not None else None,
            store_repaired=getattr(self.store, "repaired", None),
            feed=self.feed_state(local=True),
            symbols_disabled=self.breadth.disabled,
            # A misspelt or unlisted stock must not keep the whole site dark (a 503 stops the morning flip): the
            # served symbols go live, and the warning names the others.
            warning=self.breadth.reason,
        )
