"""The feed's one owner-facing object: a background thread with its own event loop running the connections.

``start()``/``stop()`` (the refresher starts it in the process that holds its lease), ``follow(chains)`` after each
REST chain (the subscription window moves with spot, rolls with expiries), ``apply(chain)`` to merge ticks in,
``changed()`` for the pairs that ticked since the last call, ``status()`` for /healthz and the page.

Failure policy (issue #13): a disconnect packet stops the feed with its reason — 805 retries once a minute at most,
806-810 wait for a new token (``token_replaced``) —; a drop or a stall in market hours reconnects with jittered
exponential back-off (tenacity) and resubscribes everything; after hours silence is normal.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime

from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

from oi.feed import protocol
from oi.feed.client import FeedClosedError, FeedConnection, FeedDroppedError, feed_url
from oi.feed.merge import Key, LegKey, TickBook
from oi.feed.protocol import SEGMENTS, Instrument
from oi.feed.subscriptions import Plan, wanted
from oi.market.calendar import IST, MarketCalendar
from oi.market.model import OptionChain

log = logging.getLogger(__name__)

OFF, CONNECTING, LIVE, STOPPED = "off", "connecting", "live", "stopped"
Pair = tuple[str, str]


@dataclass(frozen=True)
class FeedStatus:
    state: str = OFF
    reason: str | None = None
    last_packet: float | None = None  # epoch seconds of the last packet received
    instruments: int = 0
    connections: int = 0
    packets: int = 0
    skipped: int = 0

    @property
    def live(self) -> bool:
        return self.state == LIVE

    def as_dict(self) -> dict:
        return asdict(self)


class _LiveDropError(Exception):
    """A connection that had been up dropped: reconnect after a short jitter, with the back-off starting over."""


def _key(inst: Instrument) -> Key:
    return (SEGMENTS[inst[0]], int(inst[1]))


class FeedSupervisor:
    def __init__(
        self,
        url: str,
        client_id: str,
        token: str | Callable[[], str],
        resolver: Callable[[OptionChain], Mapping[LegKey, Instrument] | None],
        underlyings: Mapping[str, tuple[int, str]],
        strikes: int = 20,
        connections: int = 1,
        calendar: MarketCalendar | None = None,
        clock: Callable[[], datetime] | None = None,
        timer: Callable[[], float] = time.time,
        stall_timeout: float = 40.0,
        ping_interval: float | None = 10.0,
        ping_timeout: float | None = 30.0,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        cooldown_805: float = 60.0,
    ) -> None:
        self.url, self.client_id, self._token = url, client_id, token
        self.resolver, self.underlyings, self.strikes = resolver, dict(underlyings), strikes
        self.connections = max(1, min(4, connections))
        self.calendar, self.clock, self.timer = calendar, clock or (lambda: datetime.now(IST)), timer
        self.stall_timeout, self.ping_interval, self.ping_timeout = stall_timeout, ping_interval, ping_timeout
        self.backoff, self.max_backoff, self.cooldown_805 = backoff, max_backoff, cooldown_805
        self.book = TickBook(timer)
        self.plan = Plan(self.connections)
        self._chains: dict[Pair, OptionChain] = {}
        self._legs: dict[Pair, dict[LegKey, Key]] = {}
        self._pairs_of: dict[Key, frozenset[Pair]] = {}
        self._index_of: dict[str, Key] = {}
        self._lock = threading.Lock()
        self._conns: dict[int, FeedConnection] = {}
        self._tasks: dict[int, asyncio.Task] = {}
        self._conn_state: dict[int, tuple[str, str | None]] = {}
        self._unmapped: str | None = None
        self._last_packet: float | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._resume: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        # (connection, timer()) of the latest connect attempts, for tests and post-mortems
        self.attempts: deque[tuple[int, float]] = deque(maxlen=100)

    # --- owner API (any thread) ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="oi-feed", daemon=True)
        self._thread.start()
        ready.wait(5)
        log.info("market feed started (%s)", self.url.split("?")[0])

    def stop(self, timeout: float = 5.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            loop.call_soon_threadsafe(self._stop.set)
        except RuntimeError:  # loop already closed
            pass
        thread.join(timeout)
        self._thread = self._loop = None
        self._conn_state.clear()
        log.info("market feed stopped")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def follow(self, chains: Iterable[OptionChain]) -> None:
        """Follow these chains' (symbol, expiry) pairs with their current spot; pairs whose expiry has passed are
        dropped, so an expiry roll unsubscribes the old contracts."""
        today = self.clock().astimezone(IST).date().isoformat()
        with self._lock:
            for chain in chains:
                self._chains[(chain.symbol, chain.expiry)] = chain
            for pair in [p for p in self._chains if p[1] < today]:
                del self._chains[pair]
        self._signal(self._wake)

    def apply(self, chain: OptionChain) -> OptionChain:
        legs = self._legs.get((chain.symbol, chain.expiry))
        if not legs:
            return chain
        now = datetime.fromtimestamp(self.timer(), IST)
        return self.book.apply(chain, legs, self._index_of.get(chain.symbol), now)

    def changed(self) -> set[Pair]:
        """(symbol, expiry) pairs with a tick since the last call."""
        pairs: set[Pair] = set()
        for key in self.book.take_dirty():
            pairs |= self._pairs_of.get(key, frozenset())
        return pairs

    def token_replaced(self, token: str | None = None) -> None:
        """A new access token (given, or read from the token callable): used from the next connect, and it lifts a
        stop caused by a token problem."""
        if token is not None:
            self._token = token
        self._signal(self._resume)

    def _current_token(self) -> str:
        return self._token() if callable(self._token) else self._token

    def status(self) -> FeedStatus:
        states = dict(self._conn_state)
        instruments = len(self.plan.assigned)
        common = {
            "last_packet": self._last_packet,
            "instruments": instruments,
            "connections": sum(1 for s, _ in states.values() if s == LIVE),
            "packets": self.book.packets,
            "skipped": sum(c.skipped for c in list(self._conns.values())),
        }
        if not self.running:
            return FeedStatus(OFF, None, **common)
        stopped = [r for s, r in states.values() if s == STOPPED]
        if stopped:
            return FeedStatus(STOPPED, stopped[0], **common)
        if not instruments:
            return FeedStatus(CONNECTING, self._unmapped or "waiting for the first option chain", **common)
        if states and all(s == LIVE for s, _ in states.values()):
            return FeedStatus(LIVE, self._unmapped, **common)
        reasons = [r for _, r in states.values() if r]
        return FeedStatus(CONNECTING, reasons[0] if reasons else None, **common)

    # --- the feed thread ----------------------------------------------------------------------------------------
    def _signal(self, event: asyncio.Event | None) -> None:
        loop = self._loop
        if loop is not None and event is not None:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                pass

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._wake, self._resume, self._stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._conns, self._tasks = {}, {}
        if self._chains:
            self._wake.set()  # restarted after a lease change: resubscribe what we followed
        ready.set()
        planner = asyncio.create_task(self._planner())
        await self._stop.wait()
        tasks = [planner, *self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _in_market(self) -> bool:
        return self.calendar is None or self.calendar.is_open(self.clock())

    async def _planner(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._replan()
            except Exception:
                log.exception("feed subscription update failed")

    async def _replan(self) -> None:
        with self._lock:
            chains = list(self._chains.values())
        resolved: list[tuple[OptionChain, Mapping[LegKey, Instrument]]] = []
        unmapped = []
        for chain in chains:
            legs = await asyncio.to_thread(self.resolver, chain)
            if legs:
                resolved.append((chain, legs))
            else:
                unmapped.append(f"{chain.symbol} {chain.expiry}")
        reason = getattr(self.resolver, "reason", None) or "no security ids"
        self._unmapped = f"REST only for {', '.join(unmapped)}: {reason}" if unmapped else None
        indices: list[Instrument] = []
        index_of: dict[str, Key] = {}
        for chain, _ in resolved:
            sid, segment = self.underlyings.get(chain.symbol, (0, ""))
            if sid and segment in SEGMENTS:
                indices.append((segment, str(sid)))
                index_of[chain.symbol] = (SEGMENTS[segment], sid)
        want = wanted(resolved, self.strikes, indices)
        deltas = self.plan.update(want)
        held = {inst for (_, inst) in self.plan.assigned}
        legs_of: dict[Pair, dict[LegKey, Key]] = {}
        pairs_of: dict[Key, set[Pair]] = {}
        for chain, legs in resolved:
            pair = (chain.symbol, chain.expiry)
            mine = {leg: _key(inst) for leg, inst in legs.items() if inst in held}
            legs_of[pair] = mine
            for key in mine.values():
                pairs_of.setdefault(key, set()).add(pair)
            if chain.symbol in index_of:
                pairs_of.setdefault(index_of[chain.symbol], set()).add(pair)
        self._legs, self._index_of = legs_of, index_of
        self._pairs_of = {k: frozenset(v) for k, v in pairs_of.items()}
        self.book.forget(set(self._pairs_of))
        if self.plan.dropped:
            log.warning("feed: %d instrument(s) beyond %d connection(s)' capacity", self.plan.dropped, self.connections)
        for conn_index, delta in deltas.items():
            conn = self._conns.get(conn_index)
            if conn is not None:
                conn.send_delta(delta.subscribe, delta.unsubscribe)
        for conn_index in self.plan.used():
            if conn_index not in self._tasks:
                self._conns[conn_index] = FeedConnection(
                    conn_index,
                    lambda i=conn_index: self.plan.on(i),
                    self._on_packet,
                    self._in_market,
                    self.stall_timeout,
                    self.ping_interval,
                    self.ping_timeout,
                )
                self._tasks[conn_index] = asyncio.create_task(self._keep(conn_index))

    def _on_packet(self, packet: protocol.Packet) -> None:
        self._last_packet = self.timer()
        self.book.on_packet(packet)

    def _set(self, conn: int, state: str, reason: str | None = None) -> None:
        self._conn_state[conn] = (state, reason)

    async def _keep(self, index: int) -> None:
        """Keep connection `index` up for as long as the feed runs."""
        conn = self._conns[index]
        reason: str | None = None
        while True:
            retrying = AsyncRetrying(
                wait=wait_random_exponential(multiplier=self.backoff, max=self.max_backoff),
                retry=retry_if_exception_type(FeedDroppedError),
                reraise=True,
            )
            try:
                async for attempt in retrying:
                    with attempt:
                        self._set(index, CONNECTING, reason)
                        self.attempts.append((index, self.timer()))
                        task = asyncio.create_task(
                            conn.session(feed_url(self.url, self.client_id, self._current_token()))
                        )
                        watcher = asyncio.create_task(self._mark_live(index, conn))
                        try:
                            await task
                        except FeedDroppedError as exc:
                            reason = f"reconnecting: {exc}"
                            log.warning("feed connection %d: %s", index, exc)
                            if exc.was_live:
                                raise _LiveDropError(str(exc)) from None
                            raise
                        except (FeedClosedError, asyncio.CancelledError):
                            raise
                        except Exception as exc:  # a bug must not end the feed for the day: back off, retry
                            log.exception("feed connection %d failed", index)
                            reason = f"reconnecting: internal error ({type(exc).__name__})"
                            raise FeedDroppedError(reason) from None
                        finally:
                            watcher.cancel()
            except _LiveDropError:
                await asyncio.sleep(random.uniform(0, self.backoff))
                continue
            except FeedClosedError as exc:
                log.error("feed connection %d closed by Dhan: %s", index, exc)
                if exc.code == 805:
                    # Another connection took our place, or we asked too often: wait a full minute, once.
                    self._set(index, STOPPED, f"{exc}; retrying in {self.cooldown_805:g} s")
                    await asyncio.sleep(self.cooldown_805)
                else:
                    self._set(index, STOPPED, str(exc))
                    self._resume.clear()
                    await self._resume.wait()  # a new token (or a restart) is the only thing that can help
                reason = None

    async def _mark_live(self, index: int, conn: FeedConnection) -> None:
        while not conn.live:
            await asyncio.sleep(0.02)
        self._set(index, LIVE)
