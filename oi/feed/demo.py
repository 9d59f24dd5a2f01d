"""Simulated ticks for the demo source, so a new user sees the dashboard stream without a Dhan account.

Every second the spot follows the demo's own walk and each traded leg's LTP follows it by its delta (plus a little
noise), its OI by a few lots either way; deterministic in (seed, leg, second), like the demo market itself.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from oi.feed.supervisor import LIVE, OFF, FeedStatus
from oi.market.calendar import IST
from oi.market.demo import DemoSource
from oi.market.model import Leg, OptionChain, Strike


def _tick(x: float) -> float:
    return round(max(0.05, round(x / 0.05) * 0.05), 2)


class DemoFeed:
    def __init__(self, source: DemoSource, timer: Callable[[], float] = time.time) -> None:
        self.source, self.timer = source, timer
        self._pairs: set[tuple[str, str]] = set()
        self._second = -1
        self._running = False
        self._lock = threading.Lock()
        self.packets = 0

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        self._running = True

    def stop(self) -> None:
        self._running = False

    def follow(self, chains: Iterable[OptionChain]) -> None:
        with self._lock:
            self._pairs |= {(c.symbol, c.expiry) for c in chains}

    def changed(self) -> set[tuple[str, str]]:
        """Every followed pair, once per second."""
        second = int(self.timer())
        with self._lock:
            if not self._running or second == self._second:
                return set()
            self._second = second
            return set(self._pairs)

    def apply(self, chain: OptionChain) -> OptionChain:
        if not self._running:
            return chain
        now = datetime.fromtimestamp(self.timer(), IST)
        second = int(now.timestamp())
        spot = self.source.spot(chain.symbol, now)
        lot = self.source.profile(chain.symbol).lot
        moved = spot - chain.spot
        rows = []
        for row in chain.strikes:
            rows.append(
                Strike(
                    row.strike,
                    self._leg(row.ce, moved, lot, (row.strike, "CE", second)),
                    self._leg(row.pe, moved, lot, (row.strike, "PE", second)),
                )
            )
        self.packets += 2 * len(rows)
        return dataclasses.replace(chain, strikes=tuple(rows), spot=spot, as_of=max(chain.as_of, now))

    def _leg(self, leg: Leg, moved: float, lot: int, key: tuple) -> Leg:
        if leg.ltp <= 0:
            return leg  # untraded wings stay untraded
        rng = random.Random(f"{self.source.seed}|{key}")
        ltp = _tick(leg.ltp + leg.delta * moved + 0.05 * rng.randint(-2, 2))
        oi = max(0, leg.oi + lot * rng.randint(-3, 6))
        return dataclasses.replace(leg, ltp=ltp, oi=oi, volume=leg.volume + lot * rng.randint(0, 10))

    def status(self) -> FeedStatus:
        if not self._running:
            return FeedStatus(OFF)
        return FeedStatus(LIVE, "simulated ticks", self.timer(), 0, 1, self.packets)

    def token_replaced(self, token: str | None = None) -> None:
        pass
