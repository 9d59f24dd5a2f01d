"""The in-process, pre-serialized views that requests are served from.

A request never queries the store: it looks up a dict and concatenates bytes. :meth:`ViewCache.sync` (run by the
refresher tick in every process) compares the store's version stamp with the one it last loaded and rebuilds the
views only when it changed, so a worker that does not hold the refresher lease still sees new data within a tick.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import date

from oi import analytics
from oi.market.model import OptionChain
from oi.refresher import nearest_expiries
from oi.store import Store

log = logging.getLogger(__name__)


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class View:
    chain: OptionChain
    data: dict  # analytics.chain_view(chain), every strike
    _bodies: dict[int | None, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def body(self, around: int | None) -> bytes:
        """The serialized response for ATM ± `around` strikes (None = all), memoized per window size."""
        cached = self._bodies.get(around)
        if cached is None:
            strikes = self.data["strikes"]
            strikes = strikes[analytics.window_slice([s["strike"] for s in strikes], self.data["atm"], around)]
            cached = dumps({**self.data, "strikes": strikes})
            with self._lock:
                if len(self._bodies) < 64:  # bounded: window sizes are few in practice
                    self._bodies[around] = cached
        return cached


@dataclass
class ViewCache:
    store: Store
    symbols: tuple[str, ...]
    expiries_per_symbol: int
    version: int = -1
    views: dict[tuple[str, str], View] = field(default_factory=dict)
    expiries: dict[str, list[str]] = field(default_factory=dict)  # per symbol, nearest first, with data only
    symbols_json: bytes = b'{"symbols":[]}'
    status: dict = field(default_factory=dict)  # the refresher's shared status (errors, auth failure)

    def sync(self, today: date) -> bool:
        """Reload from the store if its version moved. Returns True when the views changed."""
        version = self.store.version()
        if version == self.version:
            return False
        chains = {(c.symbol, c.expiry): c for c in self.store.latest_all()}
        views: dict[tuple[str, str], View] = {}
        expiries: dict[str, list[str]] = {}
        for symbol in self.symbols:
            stored = self.store.expiries(symbol)
            wanted = nearest_expiries(stored[0], today, self.expiries_per_symbol) if stored else []
            have = [e for e in wanted if (symbol, e) in chains]
            if not have:
                # Expiry rollover, or no list yet: show the freshest data we hold for the symbol rather than nothing.
                mine = sorted((c for (s, _), c in chains.items() if s == symbol), key=lambda c: c.as_of)
                have = [mine[-1].expiry] if mine else []
            expiries[symbol] = have
            for expiry in have:
                old = self.views.get((symbol, expiry))
                chain = chains[(symbol, expiry)]
                if old is not None and old.chain.as_of == chain.as_of:
                    views[(symbol, expiry)] = old
                else:
                    views[(symbol, expiry)] = View(chain, analytics.chain_view(chain))
        # Swap whole dicts: readers on other threads see the old or the new state, never a mix.
        self.symbols_json = dumps({"symbols": [{"symbol": s, "expiries": expiries[s]} for s in self.symbols]})
        self.status = self.store.status()
        self.views, self.expiries, self.version = views, expiries, version
        return True

    def get(self, symbol: str, expiry: str | None) -> View | None:
        expiries = self.expiries.get(symbol) or []
        if expiry is None:
            expiry = expiries[0] if expiries else None
        return self.views.get((symbol, expiry)) if expiry else None
