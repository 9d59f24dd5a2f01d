"""The in-process, pre-serialized views that requests are served from.

A request never queries the store: it looks up a dict and concatenates bytes. :meth:`ViewCache.sync` (run by the
refresher tick in every process) compares the store's version stamp with the one it last loaded and rebuilds the
views only when it changed, so a worker that does not hold the refresher lease still sees new data within a tick.
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from oi import analytics, closes, session
from oi.analytics import COMBINED
from oi.breadth import symbol_kind
from oi.history import Series
from oi.market.calendar import IST
from oi.market.model import OptionChain
from oi.refresher import RefreshStatus
from oi.store import Store

log = logging.getLogger(__name__)

AT_VIEWS = 32  # as-of views kept per process: a replay being scrubbed back and forth


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class View:
    """One chain as the API serves it, with the session series it belongs to (for interval changes)."""

    chain: OptionChain
    series: Series | None = None
    prev_close: float = 0.0
    lot_size: int | None = None
    _data: dict[int | None, dict] = field(default_factory=dict)
    _bodies: dict[tuple[int | None, int | None], bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ref(self, interval: int) -> OptionChain | None:
        """The stored snapshot at or before `interval` minutes before this chain."""
        if self.series is None:
            return None
        return self.series.chain_at(self.chain.as_of - timedelta(minutes=interval))

    def data(self, interval: int | None = None) -> dict:
        cached = self._data.get(interval)
        if cached is None:
            ref = self.ref(interval) if interval else None
            cached = analytics.chain_view(self.chain, ref, interval, self.prev_close, self.lot_size)
            with self._lock:
                self._data[interval] = cached
        return cached

    def body(self, around: int | None, interval: int | None = None) -> bytes:
        """The serialized response for ATM ± `around` strikes (None = all), memoized per window and interval."""
        key = (around, interval)
        cached = self._bodies.get(key)
        if cached is None:
            data = self.data(interval)
            strikes = data["strikes"]
            strikes = strikes[analytics.window_slice([s["strike"] for s in strikes], data["atm"], around)]
            cached = dumps({**data, "strikes": strikes})
            with self._lock:
                if len(self._bodies) < 64:  # bounded: window sizes and intervals are few in practice
                    self._bodies[key] = cached
        return cached


@dataclass
class ViewCache:
    store: Store
    symbols: tuple[str, ...]
    expiries_per_symbol: int
    lot_sizes: dict[str, int] = field(default_factory=dict)
    # Whether a frame's time is in the session: only those join the in-memory series (the replay), as in the store.
    in_session: Callable[[datetime], bool] = lambda when: True
    kinds: dict[str, str] = field(default_factory=dict)  # symbol → "index" / "stock", for the picker's groups
    version: int = -1
    views: dict[tuple[str, str], View] = field(default_factory=dict)
    expiries: dict[str, list[str]] = field(default_factory=dict)  # per symbol, nearest first, with data only
    series: dict[tuple[str, str], Series] = field(default_factory=dict)  # the current session, per expiry
    symbols_json: bytes = b'{"symbols":[]}'
    status: RefreshStatus = field(default_factory=RefreshStatus)  # the lease holder's, as last synced
    compare_sessions: int = 20  # day over day: earlier sessions' closes served per expiry (OI_COMPARE_SESSIONS)
    # /api/closes per followed (symbol, expiry), serialized: 20 sessions of a 246-strike chain are ~70 KB as JSON,
    # ~3.5 MB as Python ints, so only the bytes are kept.
    closes_bodies: dict[tuple[str, str], bytes] = field(default_factory=dict)
    _closes_stamp: tuple[int, date | None] = (-1, None)
    _prev_close: dict[tuple[str, date], float] = field(default_factory=dict)
    _at_views: OrderedDict = field(default_factory=OrderedDict)
    _history: dict[tuple[str, str], tuple[int, Series, bytes]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sync(self, today: date) -> bool:
        """Reload from the store if its version moved. Returns True when the views changed."""
        version = self.store.version()
        if version == self.version:
            return False
        chains = {(c.symbol, c.expiry): c for c in self.store.latest_all()}
        views: dict[tuple[str, str], View] = {}
        series: dict[tuple[str, str], Series] = {}
        expiries: dict[str, list[str]] = {}
        for symbol in self.symbols:
            stored = self.store.expiries(symbol)
            with_data = (e for (s, e) in chains if s == symbol)
            have = session.session_expiries(stored[0] if stored else None, today, self.expiries_per_symbol, with_data)
            for expiry in have:
                chain = chains[(symbol, expiry)]
                line = series[(symbol, expiry)] = self._series(symbol, expiry, chain)
                if self.in_session(chain.as_of):
                    line.add(chain)
                old = self.views.get((symbol, expiry))
                if old is not None and old.chain.as_of == chain.as_of and old.series is line:
                    views[(symbol, expiry)] = old
                else:
                    views[(symbol, expiry)] = self._view(chain, line)
            if len(have) > 1:
                self._combine(symbol, have, chains, views, series)
            expiries[symbol] = have + ([COMBINED] if len(have) > 1 else [])
        # Swap whole dicts: readers on other threads see the old or the new state, never a mix.
        self.symbols_json = dumps(
            {
                "symbols": [
                    {
                        "symbol": s,
                        "kind": self.kinds.get(s) or symbol_kind(s, {}),
                        "expiries": expiries[s],
                        "lot_size": self.lot_sizes.get(s),
                    }
                    for s in self.symbols
                ]
            }
        )
        self.status = RefreshStatus.from_doc(self.store.status())
        self.views, self.series, self.expiries, self.version = views, series, expiries, version
        self._sync_closes(today)
        return True

    def _sync_closes(self, today: date) -> None:
        """Re-read the session closes when one was stored (or the day turned): rarely, a few a day."""
        stamp = (self.store.closes_stamp(), today)
        if stamp == self._closes_stamp and all(key in self.closes_bodies for key in self.followed()):
            return
        found = closes.for_views(closes.load(self.store), self.expiries, today, self.compare_sessions)
        bodies = {
            (symbol, expiry): dumps({"symbol": symbol, "expiry": expiry, "sessions": [c.as_json() for c in kept]})
            for (symbol, expiry), kept in found.items()
        }
        self.closes_bodies, self._closes_stamp = bodies, stamp

    def followed(self, combined: bool = True) -> list[tuple[str, str]]:
        """The (symbol, expiry) pairs served, the combined ones too unless `combined` is False."""
        return [(s, e) for s, have in self.expiries.items() for e in have if combined or e != COMBINED]

    def closes_body(self, symbol: str, expiry: str | None) -> bytes | None:
        """Earlier sessions' closing OI for (symbol, expiry) as /api/closes answers, oldest first; None if that
        expiry is not followed."""
        expiry = self.resolve_expiry(symbol, expiry)
        return self.closes_bodies.get((symbol, expiry)) if expiry else None

    def put(self, chains: list[OptionChain]) -> None:
        """Serve these chains at once in this process (the market feed's lease holder publishing ticks), ahead of
        the store round trip that brings them to the other workers; the next :meth:`sync` reconciles."""
        views = dict(self.views)
        for chain in chains:
            key = (chain.symbol, chain.expiry)
            if key in views:
                views[key] = self._view(chain, self.series.get(key))
        self.views = views

    def _series(self, symbol: str, expiry: str, chain: OptionChain) -> Series:
        """This session's series for (symbol, expiry): kept, or loaded from the store once (start-up, new day)."""
        day = chain.as_of.astimezone(IST).date()
        line = self.series.get((symbol, expiry))
        if line is not None and line.day == day:
            return line
        try:
            return session.frames(symbol, expiry, day, self.store.history(symbol, expiry, day))
        except Exception:
            log.warning("could not load %s %s history; intervals start from now", symbol, expiry, exc_info=True)
            return Series(symbol, expiry, day)

    def _combine(self, symbol: str, have: list[str], chains: dict, views: dict, series: dict) -> None:
        parts = [series[(symbol, e)] for e in have]
        old = self.series.get((symbol, COMBINED))
        # A new part series (new day, reload) means rebuilding the combined one from scratch.
        same = old is not None and [id(p) for p in old.parts] == [id(p) for p in parts]  # parts are kept alive
        line = series[(symbol, COMBINED)] = session.combined(parts, into=old if same else None)
        merged = analytics.merge([chains[(symbol, e)] for e in have])
        old_view = self.views.get((symbol, COMBINED))
        if old_view is not None and old_view.chain == merged and old_view.series is line:
            views[(symbol, COMBINED)] = old_view
        else:
            views[(symbol, COMBINED)] = self._view(merged, line)

    def _view(self, chain: OptionChain, line: Series | None) -> View:
        return View(chain, line, self.prev_close(chain), self.lot_sizes.get(chain.symbol))

    def prev_close(self, chain: OptionChain) -> float:
        """The underlying's previous close by :func:`oi.session.prev_close`; the stored spot is read once a day."""
        if chain.prev_close > 0:
            return chain.prev_close
        key = (chain.symbol, chain.as_of.astimezone(IST).date())
        if key not in self._prev_close:
            try:
                self._prev_close[key] = session.prev_close((), self.store.last_spot_before(*key))
            except Exception:
                log.warning("could not read %s's previous close", chain.symbol, exc_info=True)
                return 0.0
        return self._prev_close[key]

    def resolve_expiry(self, symbol: str, expiry: str | None) -> str | None:
        expiries = self.expiries.get(symbol) or []
        if expiry is None:
            return expiries[0] if expiries else None
        return expiry if expiry in expiries else None

    def get(self, symbol: str, expiry: str | None) -> View | None:
        expiry = self.resolve_expiry(symbol, expiry)
        return self.views.get((symbol, expiry)) if expiry else None

    def at(self, symbol: str, expiry: str | None, when: datetime) -> View | None:
        """The view as of `when`: the latest snapshot at or before it (the live one if `when` is later)."""
        expiry = self.resolve_expiry(symbol, expiry)
        latest = self.views.get((symbol, expiry)) if expiry else None
        if latest is None:
            return None
        if latest.chain.as_of <= when:
            return latest
        line = self.series.get((symbol, expiry))
        i = line.index_at(when) if line is not None else None
        if i is None:
            return None
        key = (symbol, expiry, line.day, i)
        with self._lock:
            view = self._at_views.get(key)
            if view is not None:
                self._at_views.move_to_end(key)
                return view
        view = self._view(line.chain(i), line)
        with self._lock:
            self._at_views[key] = view
            while len(self._at_views) > AT_VIEWS:
                self._at_views.popitem(last=False)
        return view

    def history(self, symbol: str, expiry: str | None, since: datetime | None = None) -> bytes | None:
        """The session's per-minute series as JSON, memoized until the series grows; with `since`, only the points
        after it (what a page that already holds the rest needs)."""
        expiry = self.resolve_expiry(symbol, expiry)
        line = self.series.get((symbol, expiry)) if expiry else None
        if line is None:
            return None
        first = bisect.bisect_right(line.ts, since.timestamp()) if since is not None else 0
        if first:
            n = len(line)
            return dumps(
                {"symbol": symbol, "expiry": expiry, "session": line.day.isoformat(), "points": line.points[first:n]}
            )
        key = (symbol, expiry)
        cached = self._history.get(key)
        if cached is not None and cached[0] == len(line) and cached[1] is line:
            return cached[2]
        body = dumps(
            {
                "symbol": symbol,
                "expiry": expiry,
                "session": line.day.isoformat(),
                "points": line.points[: len(line)],
            }
        )
        self._history[key] = (len(line), line, body)
        return body
