"""The background refresher: pulls option chains upstream and writes them to the store, single-flight and paced.

Many processes may run a refresher (gunicorn workers, a second box on the same MongoDB); exactly one of them, the
holder of the store's lease, talks to the source, and every upstream call first claims the store's global pace
slot, so the rate never exceeds one call per ``interval`` seconds in total whatever the number of viewers, threads,
workers or processes. :meth:`Refresher.run_once` does at most one upstream call, which makes it testable with an
injected clock and timer; APScheduler calls it every tick.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from oi.market.calendar import IST, Clock, MarketCalendar
from oi.market.dhan import AUTH, INVALID_EXPIRY, INVALID_SECURITY, RATE_LIMIT, UPSTREAM, DhanError
from oi.market.model import OptionChain
from oi.pace import CLEAN_RUN, PacePolicy
from oi.session import nearest_expiries
from oi.store import Store, minute_id, store_errors

if TYPE_CHECKING:
    from oi.feed import Feed

log = logging.getLogger(__name__)

LEASE = "refresher"
PACE = "upstream"
# Slots are claimed where the call starts, but Dhan's limiter sees arrivals, which jitter by a few ms over the
# network; the slack keeps arrival gaps at or above the interval too (measured: 2.999 s without it).
PACE_SLACK_SECONDS = 0.05


class Source(Protocol):
    name: str

    def expiries(self, symbol: str, today: date) -> list[str]: ...

    def chain(self, symbol: str, expiry: str, now: datetime) -> OptionChain: ...


@dataclass(frozen=True)
class RefreshStatus:
    """What the lease holder last said about upstream, shared with every process through the store."""

    error: str | None = None  # the last call's failure, None once a call works again
    error_kind: str | None = None  # oi.market.dhan's classification: rate_limit, auth, upstream, …
    reason: str | None = None  # the failure in plain words, for viewers
    auth_failed: bool = False  # Dhan rejected the token: polling stops until a new one is in force
    disabled: tuple[str, ...] = ()  # symbols Dhan does not know (813)
    holder: str | None = None  # the process that wrote it
    pace_seconds: float | None = None  # the shared adaptive pace (oi/pace.py) when the holder last changed it
    feed: dict | None = None  # the market feed's state in the lease holder: {"state", "reason", "instruments"}

    @classmethod
    def from_doc(cls, doc: dict) -> RefreshStatus:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in known}
        values["disabled"] = tuple(values.get("disabled") or ())
        values["auth_failed"] = bool(values.get("auth_failed"))
        return cls(**values)

    def to_doc(self) -> dict:
        return {**dataclasses.asdict(self), "disabled": list(self.disabled)}


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
    _clean_calls: int = 0  # clean calls in a row at the current pace (oi/pace.py narrows after CLEAN_RUN)
    sleep: Callable[[float], None] = time.sleep
    _last_sent: float | None = None  # when this process last sent an upstream call (it is the only one that does)
    _claimed_pace: float = 0.0
    _unstored: bool = False  # the last answer could not be written: no upstream call until the store takes writes
    _status: RefreshStatus = field(default_factory=RefreshStatus)
    store_down: bool = False  # the last store operation failed; cleared by the next one that works
    # The market feed (oi/feed/), run while this process holds the lease: ticks are merged into the last REST chain
    # and published at most every `publish_period` s per (symbol, expiry); while it is live, REST refreshes each
    # pair only every `rest_period_with_feed` s (IV, Greeks and the chain's shape).
    feed: Feed | None = None
    rest_period_with_feed: float = 30.0
    publish_period: float = 1.0
    on_publish: Callable[[list[OptionChain]], None] | None = None
    _leading: bool = False
    _feed_base: dict[tuple[str, str], OptionChain] = field(default_factory=dict)
    _feed_last_publish: float = float("-inf")
    _feed_pending: set[tuple[str, str]] = field(default_factory=set)
    _feed_minute: dict[tuple[str, str], str] = field(default_factory=dict)  # the minute of the last history write
    _feed_seen: tuple | None = None

    @property
    def lease_ttl(self) -> float:
        # Longer than the slowest possible call, so a live holder never loses the lease mid-call.
        return self.call_timeout + 2 * self.interval + 5

    def in_session(self, when: datetime) -> bool:
        """Whether a chain of `when` belongs in the day's history and replay (a 09:14:50 pre-open one does not)."""
        return self.source.name == "demo" or self.calendar.is_open(when)

    def take_lease(self) -> bool:
        """Take (or renew) the refresher lease now: background jobs only one process should run (retention, day
        over day) call this first, as the refresher's own tick may not have run yet."""
        return self.store.acquire_lease(LEASE, self.holder, self.timer(), self.lease_ttl)

    def is_leader(self) -> bool:
        return self.store.lease_holder(LEASE, self.timer()) == self.holder

    def stop(self) -> None:
        if self.feed is not None:
            self.feed.stop()
        try:
            self.store.release_lease(LEASE, self.holder)
        except Exception:
            log.warning("could not release the refresher lease; it lapses after %.0f s", self.lease_ttl, exc_info=True)

    def token_replaced(self) -> None:
        """A new access token is in force (renewed, or reloaded from the token file): lift an auth-failure stop."""
        if self._status.auth_failed or RefreshStatus.from_doc(self.store.status()).auth_failed:
            log.info("new Dhan access token in force: polling resumes")
            self._set_status(auth_failed=False, error=None, error_kind=None, reason=None)
        if self.feed is not None:
            self.feed.token_replaced()

    # --- choosing the next call ---------------------------------------------------------------------------------
    def next_task(self, now: datetime) -> tuple[str, str, str | None] | None:
        """("expiries", symbol, None) or ("chain", symbol, expiry), or None when nothing is due."""
        market_open = self.calendar.is_open(now) or self.source.name == "demo"
        today = now.astimezone(IST).date()
        disabled = set(self._status.disabled)
        relaxed = self.feed is not None and self.feed.status().live
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
                    if relaxed and last is not None and self.timer() - last < self.rest_period_with_feed:
                        continue  # the feed keeps LTP/OI moving; REST only refreshes IV, Greeks and the shape
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
        """Do at most one upstream call if this process holds the lease and the pace slot is due.

        Upstream faults and store outages never raise out of it: an upstream fault is recorded in the shared status
        (with a plain-words ``reason`` for viewers), a store outage in :attr:`store_down`."""
        try:
            claimed = self._claim()
        except store_errors() as exc:
            # The lease and the pace slot live in the store: without it this process cannot know whether another
            # one is calling Dhan, nor keep the global pace, so it makes no upstream call until the store is back.
            self._store_failed(exc)
            return None
        self._store_ok()
        if self.feed is not None and self._leading:
            try:
                self._feed_tick()
            except store_errors() as exc:
                self._store_failed(exc)
                return None
        if claimed is None:
            return None
        now, (kind, symbol, expiry) = claimed
        today = now.astimezone(IST).date()
        self._attempted[(symbol, expiry or "")] = self.timer()
        label = f"{kind} {symbol}{' ' + expiry if expiry else ''}"
        self._space_from_last_send()
        try:
            if kind == "expiries":
                result = self.source.expiries(symbol, today)
                if not result:
                    raise DhanError(UPSTREAM, f"empty expiry list for {symbol}", reason="empty expiry list from Dhan")
            else:
                result = self.source.chain(symbol, expiry, now)
                if not result.strikes:
                    raise DhanError(
                        UPSTREAM, f"empty option chain for {symbol} {expiry}", reason="empty option chain from Dhan"
                    )
        except DhanError as exc:
            self._on_error(exc, symbol)
            return f"{label}: {exc.kind}"
        except Exception as exc:
            log.exception("refresh %s failed", label)
            self._set_status(
                error=f"{type(exc).__name__}: {exc}", error_kind="internal", reason="internal error while refreshing"
            )
            return f"{label}: internal"
        try:
            if kind == "expiries":
                self.store.save_expiries(symbol, result, today)
                self._stale_lists.discard(symbol)
            else:
                chain = self._with_good_spot(result)
                if self.feed is not None:
                    self._feed_base[(symbol, expiry)] = chain
                    self.feed.follow([chain])
                    chain = self.feed.apply(chain)
                    self._feed_minute[(symbol, expiry)] = minute_id(chain)
                self.store.save_chain(chain, history=self.in_session(chain.as_of))
        except store_errors() as exc:
            self._unstored = True
            self._store_failed(exc)  # this answer is lost; the next round fetches a fresh one, once it can be stored
            return f"{label}: store"
        self._on_clean_call()
        if self._status.error:
            log.info("refresh recovered: %s", label)
            self._set_status(error=None, error_kind=None, reason=None)
        log.debug("refreshed %s", label)
        return label

    def _claim(self) -> tuple[datetime, tuple[str, str, str | None]] | None:
        """The lease, the next task and its pace slot, or None when this process should not call now."""
        leading = self.store.acquire_lease(LEASE, self.holder, self.timer(), self.lease_ttl)
        self._lead(leading)
        if not leading:
            return None
        if self._status.auth_failed:
            return None  # polling with a dead token risks a block; wait for an operator (or a renewed token)
        now = self.clock()
        task = self.next_task(now)
        if task is None:
            return None
        if self._unstored:
            self.store.can_store(now.astimezone(IST).date())  # raises while writes still fail: no call to Dhan
            self._unstored = False
        pace = self.pace_policy.state(self.store.pace(PACE)).pace
        if not self.store.claim_slot(PACE, self.timer(), pace + PACE_SLACK_SECONDS):
            return None
        self._claimed_pace = pace
        return now, task

    def _space_from_last_send(self) -> None:
        """Slots are claimed a little before the call is sent, and that delay varies under CPU load (measured: up to
        ~0.3 s on a busy box); Dhan's limiter sees arrivals. So the lease holder also keeps its own sends a full pace
        apart, which a limiter a few percent stricter than the pace would otherwise catch."""
        if self._last_sent is not None:
            wait = self._last_sent + self._claimed_pace - self.timer()
            if 0 < wait <= self._claimed_pace:
                self.sleep(wait)
        self._last_sent = self.timer()

    @property
    def pace_policy(self) -> PacePolicy:
        return PacePolicy(self.interval)

    def _on_clean_call(self) -> None:
        self._clean_calls += 1
        if self._clean_calls < CLEAN_RUN:
            return
        self._clean_calls = 0
        try:
            state = self.pace_policy.state(self.store.pace(PACE))
            narrowed = self.pace_policy.narrow(state, self.timer())
            if narrowed.pace < state.pace:
                self.store.set_pace(PACE, narrowed.as_doc())
                log.info("upstream pace narrowed to %.2f s after %d clean calls", narrowed.pace, CLEAN_RUN)
                self._set_status(pace_seconds=round(narrowed.pace, 3))
        except store_errors() as exc:
            self._store_failed(exc)

    # --- the market feed ----------------------------------------------------------------------------------------
    def _lead(self, leading: bool) -> None:
        """Run the feed exactly where the lease is: one connection set per account, whatever the worker count."""
        self._leading = leading
        if self.feed is None or leading == self.feed.running:
            return
        if leading:
            self.feed.start()
        else:
            log.info("lost the refresher lease: stopping the market feed")
            self.feed.stop()

    def _feed_tick(self) -> None:
        """Share the feed's state with every worker (on change only), and publish each (symbol, expiry) that ticked,
        at most once per `publish_period`: the saved chain bumps the store's version, which the views pick up."""
        feed = self.feed
        state = feed.status()
        seen = (state.state, state.reason, state.instruments)
        if seen != self._feed_seen:
            self._feed_seen = seen
            self._set_status(feed={"state": state.state, "reason": state.reason, "instruments": state.instruments})
        self._feed_pending |= feed.changed()
        now = self.timer()
        # One publication for every pair that ticked, at most every `publish_period`: one write, one version bump
        # and one view reload per second in every worker, whatever the number of pairs.
        if not self._feed_pending or now - self._feed_last_publish < self.publish_period:
            return
        self._feed_last_publish = now
        due, self._feed_pending = sorted(self._feed_pending), set()
        latest, minute = [], []
        for pair in due:
            base = self._feed_base.get(pair)
            if base is None:
                continue  # no REST chain yet: the first one carries the ticks
            chain = feed.apply(base)
            # The first chain of a minute also goes to history (as every REST chain does); the rest only replace
            # the latest view, all in one write with one version bump.
            (minute if minute_id(chain) != self._feed_minute.get(pair) else latest).append(chain)
        # The live spot (the index's ticks) moves the subscription window between REST chains.
        feed.follow(minute + latest)
        if self.on_publish is not None:
            try:
                self.on_publish(minute + latest)  # this process's own views first: no store round trip
            except Exception:
                log.exception("publishing ticks to this process's views failed")
        for chain in minute:
            self.store.save_chain(chain, history=self.in_session(chain.as_of))
            self._feed_minute[(chain.symbol, chain.expiry)] = minute_id(chain)
        self.store.save_latest(latest)

    def _with_good_spot(self, chain: OptionChain) -> OptionChain:
        """Dhan sends spot 0 on holidays, before the open and in glitches: keep the symbol's last good spot, so ATM
        (and the strike window around it) does not jump. With none stored yet, the chain is kept as it is."""
        if chain.spot > 0 and math.isfinite(chain.spot):
            return chain
        good = [c for c in self.store.latest_all() if c.symbol == chain.symbol and c.spot > 0]
        if not good:
            return chain
        spot = max(good, key=lambda c: c.as_of).spot
        log.warning(
            "%s %s came with spot %s: keeping the last good spot %s", chain.symbol, chain.expiry, chain.spot, spot
        )
        return dataclasses.replace(chain, spot=spot)

    def _store_failed(self, exc: Exception) -> None:
        if not self.store_down:  # once per outage: the scheduler ticks several times a second
            log.warning("store unreachable, no upstream calls until it is back: %s: %s", type(exc).__name__, exc)
        self.store_down = True
        try:
            self.store.heal()  # the embedded store's damaged files, moved aside and recreated (oi/store_repair.py)
        except store_errors():
            pass  # the store is down for another reason; the next failure tries again

    def _store_ok(self) -> None:
        if self.store_down:
            log.info("store reachable again: refreshing resumes")
        self.store_down = False

    # --- retention ----------------------------------------------------------------------------------------------
    def prune(self, keep_days: int) -> list[date]:
        """Drop history days older than `keep_days` (and keep MongoDB's TTL index in step), if this process holds
        the refresher lease: one process prunes, the others skip. Never raises; returns the days dropped."""
        try:
            if not self.take_lease():
                return []
            dropped = self.store.prune(self.clock().astimezone(IST).date(), keep_days)
            self.store.ensure_ttl(keep_days)
        except Exception:
            log.warning("history prune failed; the next run retries", exc_info=True)
            return []
        if dropped:
            log.info("pruned %d history day(s) older than %d days: %s", len(dropped), keep_days, dropped[0])
        return dropped

    def _on_error(self, exc: DhanError, symbol: str) -> None:
        log.warning("upstream error for %s: %s", symbol, exc)
        if exc.kind == RATE_LIMIT:
            # Widen the shared pace (oi/pace.py); wait out the slot the refused call spent (a limiter may count it)
            # plus one widened pace. Bounded by the pace's cap, so a burst of rate limits costs seconds, never
            # minutes of silence.
            self._clean_calls = 0
            now = self.timer()
            try:
                state = self.pace_policy.state(self.store.pace(PACE))
                wider = self.pace_policy.widen(state, now)
                self.store.set_pace(PACE, wider.as_doc())
                delay = (state.pace + wider.pace) * (1 + 0.25 * self.rng.random())  # jitter: restarts do not sync
                self.store.delay_slot(PACE, now + delay)
            except store_errors() as err:
                self._store_failed(err)  # no calls at all then, which is the safest back-off
            else:
                log.warning("rate limited: pace widened to %.2f s, next upstream call in %.1f s", wider.pace, delay)
                # recorded with the error just below
                self._status = dataclasses.replace(self._status, pace_seconds=round(wider.pace, 3))
        elif exc.kind == AUTH:
            log.error("Dhan rejected the access token (%s): polling stopped until it is replaced", exc)
            self._set_status(auth_failed=True)
        elif exc.kind == INVALID_EXPIRY:
            self._stale_lists.add(symbol)
        elif exc.kind == INVALID_SECURITY:
            disabled = tuple(sorted(set(self._status.disabled) | {symbol}))
            log.error("Dhan does not know %s's security id: skipping it (fix OI_UNDERLYINGS)", symbol)
            self._set_status(disabled=disabled)
        self._set_status(error=str(exc), error_kind=exc.kind, reason=exc.reason)

    def _set_status(self, **changes: object) -> None:
        self._status = dataclasses.replace(self._status, **changes, holder=self.holder)
        try:
            self.store.set_status(self._status.to_doc())
        except Exception:
            log.warning("could not record refresher status", exc_info=True)
