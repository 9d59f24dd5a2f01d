"""The background refresher: pulls option chains upstream and writes them to the store, single-flight and paced.

Many processes may run a refresher (gunicorn workers, a second box on the same MongoDB); exactly one of them, the
holder of the store's lease, talks to the source, and every upstream call first claims the store's global pace
slot, so the rate never exceeds one call per ``interval`` seconds in total whatever the number of viewers, threads,
workers or processes. :meth:`Refresher.run_once` does at most one upstream call, which makes it testable with an
injected clock and timer; APScheduler calls it every tick.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from oi.market.calendar import IST, Clock, MarketCalendar
from oi.market.dhan import AUTH, INVALID_EXPIRY, INVALID_SECURITY, RATE_LIMIT, DhanError
from oi.market.model import OptionChain
from oi.store import Store

log = logging.getLogger(__name__)

LEASE = "refresher"
PACE = "upstream"
MAX_BACKOFF_SECONDS = 120.0
# Slots are claimed where the call starts, but Dhan's limiter sees arrivals, which jitter by a few ms over the
# network; the slack keeps arrival gaps at or above the interval too (measured: 2.999 s without it).
PACE_SLACK_SECONDS = 0.05


class Source(Protocol):
    name: str

    def expiries(self, symbol: str, today: date) -> list[str]: ...

    def chain(self, symbol: str, expiry: str, now: datetime) -> OptionChain: ...


def nearest_expiries(expiries: list[str], today: date, count: int) -> list[str]:
    """The `count` nearest expiries on or after today (an expiry is tradable until its close)."""
    return [e for e in sorted(expiries) if e >= today.isoformat()][:count]


@dataclass
class Refresher:
    store: Store
    source: Source
    calendar: MarketCalendar
    clock: Clock
    symbols: tuple[str, ...]
    expiries_per_symbol: int = 1
    interval: float = 3.0
    call_timeout: float = 10.0
    timer: Callable[[], float] = time.time
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    rng: random.Random = field(default_factory=random.Random)
    # per-process bookkeeping: when each target was last attempted, and what has been bootstrapped
    _attempted: dict[tuple[str, str], float] = field(default_factory=dict)
    _stale_lists: set[str] = field(default_factory=set)
    _backoff_level: int = 0
    _status: dict = field(default_factory=dict)

    @property
    def lease_ttl(self) -> float:
        # Longer than the slowest possible call, so a live holder never loses the lease mid-call.
        return self.call_timeout + 2 * self.interval + 5

    def is_leader(self) -> bool:
        return self.store.lease_holder(LEASE, self.timer()) == self.holder

    def stop(self) -> None:
        self.store.release_lease(LEASE, self.holder)

    # --- choosing the next call ---------------------------------------------------------------------------------
    def next_task(self, now: datetime) -> tuple[str, str, str | None] | None:
        """("expiries", symbol, None) or ("chain", symbol, expiry), or None when nothing is due."""
        market_open = self.calendar.is_open(now) or self.source.name == "demo"
        today = now.astimezone(IST).date()
        disabled = set(self._status.get("disabled", []))
        candidates: list[tuple[float, int, str, str]] = []
        for order, symbol in enumerate(self.symbols):
            if symbol in disabled:
                continue
            stored = self.store.expiries(symbol)
            targets = nearest_expiries(stored[0], today, self.expiries_per_symbol) if stored else []
            list_due = stored is None or not targets or symbol in self._stale_lists or stored[1] != today
            # After hours a list is only worth a call when the symbol has nothing to show at all.
            if list_due and (market_open or not any(self.store.latest(symbol, e) for e in targets)):
                if self._due((symbol, "")):
                    return ("expiries", symbol, None)
                continue
            for expiry in targets:
                last = self._attempted.get((symbol, expiry))
                if market_open:
                    candidates.append((last if last is not None else float("-inf"), order, symbol, expiry))
                elif last is None and self.store.latest(symbol, expiry) is None:
                    # After hours only fill gaps once, so the page is never empty.
                    candidates.append((float("-inf"), order, symbol, expiry))
        if not candidates:
            return None
        _, _, symbol, expiry = min(candidates)
        return ("chain", symbol, expiry)

    def _due(self, key: tuple[str, str]) -> bool:
        # An expiry list that just failed is retried no sooner than a full round later.
        last = self._attempted.get(key)
        return last is None or self.timer() - last >= self.interval * max(1, len(self.symbols))

    # --- one step -----------------------------------------------------------------------------------------------
    def run_once(self) -> str | None:
        """Do at most one upstream call if this process holds the lease and the pace slot is due."""
        if not self.store.acquire_lease(LEASE, self.holder, self.timer(), self.lease_ttl):
            return None
        if self._status.get("auth_failed"):
            return None  # polling with a dead token risks a block; wait for an operator (or a renewed token)
        now = self.clock()
        task = self.next_task(now)
        if task is None:
            return None
        if not self.store.claim_slot(PACE, self.timer(), self.interval + PACE_SLACK_SECONDS):
            return None
        kind, symbol, expiry = task
        self._attempted[(symbol, expiry or "")] = self.timer()
        label = f"{kind} {symbol}{' ' + expiry if expiry else ''}"
        try:
            if kind == "expiries":
                expiries = self.source.expiries(symbol, now.astimezone(IST).date())
                if not expiries:
                    raise DhanError("upstream", f"empty expiry list for {symbol}")
                self.store.save_expiries(symbol, expiries, now.astimezone(IST).date())
                self._stale_lists.discard(symbol)
            else:
                chain = self.source.chain(symbol, expiry, now)
                if not chain.strikes:
                    raise DhanError("upstream", f"empty option chain for {symbol} {expiry}")
                self.store.save_chain(chain)
        except DhanError as exc:
            self._on_error(exc, symbol)
            return f"{label}: {exc.kind}"
        except Exception as exc:
            log.exception("refresh %s failed", label)
            self._set_status(error=f"{type(exc).__name__}: {exc}", error_kind="internal")
            return f"{label}: internal"
        self._backoff_level = 0
        if self._status.get("error"):
            log.info("refresh recovered: %s", label)
            self._set_status(error=None, error_kind=None)
        log.debug("refreshed %s", label)
        return label

    def _on_error(self, exc: DhanError, symbol: str) -> None:
        log.warning("upstream error for %s: %s", symbol, exc)
        if exc.kind == RATE_LIMIT:
            self._backoff_level += 1
            delay = min(MAX_BACKOFF_SECONDS, self.interval * 2**self._backoff_level)
            delay *= 1 + 0.25 * self.rng.random()  # jitter, so restarts do not synchronize
            self.store.delay_slot(PACE, self.timer() + delay)
            log.warning("rate limited: next upstream call in %.1f s", delay)
        elif exc.kind == AUTH:
            log.error("Dhan rejected the access token (%s): polling stopped until it is replaced", exc)
            self._set_status(auth_failed=True)
        elif exc.kind == INVALID_EXPIRY:
            self._stale_lists.add(symbol)
        elif exc.kind == INVALID_SECURITY:
            disabled = sorted(set(self._status.get("disabled", [])) | {symbol})
            log.error("Dhan does not know %s's security id: skipping it (fix OI_UNDERLYINGS)", symbol)
            self._set_status(disabled=disabled)
        self._set_status(error=str(exc), error_kind=exc.kind)

    def _set_status(self, **changes: object) -> None:
        self._status.update(changes)
        self._status["holder"] = self.holder
        try:
            self.store.set_status(self._status)
        except Exception:
            log.warning("could not record refresher status", exc_info=True)
