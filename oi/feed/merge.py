"""The tick book: the latest feed values per instrument, and applying them onto a REST :class:`OptionChain`.

The feed thread writes (:meth:`TickBook.on_packet`), the refresher reads (:meth:`TickBook.apply`); one lock guards
both, held for a dict update or a copy, never for I/O. IV and Greeks are not in the feed: they stay from REST.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from oi.feed.protocol import OiUpdate, Packet, PrevClose, Tick
from oi.market.model import Leg, OptionChain, Strike

Key = tuple[int, int]  # (exchange segment code, security id), as packets carry them
LegKey = tuple[float, str]  # (strike, "CE" | "PE")


@dataclasses.dataclass(slots=True)
class Quote:
    """The latest values seen for one instrument. None = not seen yet (keep what REST said)."""

    ltp: float | None = None
    volume: int | None = None
    oi: int | None = None
    bid: float | None = None
    bid_qty: int | None = None
    ask: float | None = None
    ask_qty: int | None = None
    prev_close: float | None = None
    prev_oi: int | None = None
    at: float = 0.0  # receive time (the feed's own LTT is reported to be IST-shifted: not trusted)


class TickBook:
    def __init__(self, timer: Callable[[], float]) -> None:
        self.timer = timer
        self._quotes: dict[Key, Quote] = {}
        self._lock = threading.Lock()
        self._dirty: set[Key] = set()
        self.packets = 0

    def on_packet(self, packet: Packet) -> Key | None:
        """Record a packet; returns the instrument it updated (None for packets that carry no values)."""
        if isinstance(packet, Tick):
            key = (packet.segment, packet.security_id)
            with self._lock:
                q = self._quotes.get(key) or self._quotes.setdefault(key, Quote())
                q.ltp, q.at = packet.ltp, self.timer()
                if packet.volume is not None:
                    q.volume = packet.volume
                if packet.oi is not None:
                    q.oi = packet.oi
                if packet.bid is not None:
                    q.bid, q.bid_qty, q.ask, q.ask_qty = packet.bid, packet.bid_qty, packet.ask, packet.ask_qty
                self._dirty.add(key)
                self.packets += 1
            return key
        if isinstance(packet, (OiUpdate, PrevClose)):
            key = (packet.segment, packet.security_id)
            with self._lock:
                q = self._quotes.get(key) or self._quotes.setdefault(key, Quote())
                if isinstance(packet, OiUpdate):
                    q.oi, q.at = packet.oi, self.timer()
                else:
                    # 0 means "no previous session" (a new contract): REST's figure is no worse.
                    q.prev_close = packet.prev_close or q.prev_close
                    q.prev_oi = packet.prev_oi or q.prev_oi
                self._dirty.add(key)
                self.packets += 1
            return key
        return None

    def take_dirty(self) -> set[Key]:
        """Instruments updated since the last call."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        return dirty

    def get(self, key: Key) -> Quote | None:
        with self._lock:
            q = self._quotes.get(key)
            return dataclasses.replace(q) if q else None

    def forget(self, keep: set[Key]) -> None:
        """Drop instruments no longer subscribed, so the book stays bounded as the window moves all day."""
        with self._lock:
            for key in [k for k in self._quotes if k not in keep]:
                del self._quotes[key]

    def __len__(self) -> int:
        return len(self._quotes)

    def apply(
        self, chain: OptionChain, legs: Mapping[LegKey, Key], index: Key | None = None, now: datetime | None = None
    ) -> OptionChain:
        """`chain` with each mapped leg's LTP, volume, OI, bid/ask and previous OI/close from the book, and the spot
        from the index's tick. `as_of` moves to `now` when any value changed. Unmapped legs keep REST's values."""
        with self._lock:
            quotes = {k: dataclasses.replace(q) for k in legs.values() if (q := self._quotes.get(k)) is not None}
            spot_quote = self._quotes.get(index) if index is not None else None
            spot = spot_quote.ltp if spot_quote is not None else None
        if not quotes and not spot:
            return chain
        changed = False
        strikes = []
        for row in chain.strikes:
            ce = _merged(row.ce, quotes.get(legs.get((row.strike, "CE"), (-1, -1))))
            pe = _merged(row.pe, quotes.get(legs.get((row.strike, "PE"), (-1, -1))))
            if ce is not row.ce or pe is not row.pe:
                changed = True
                row = Strike(row.strike, ce, pe)
            strikes.append(row)
        new_spot = spot if spot and spot > 0 else chain.spot
        if not changed and new_spot == chain.spot:
            return chain
        as_of = max(chain.as_of, now) if now is not None else chain.as_of
        return dataclasses.replace(chain, strikes=tuple(strikes), spot=new_spot, as_of=as_of)


def _merged(leg: Leg, q: Quote | None) -> Leg:
    if q is None:
        return leg
    values = {
        "ltp": q.ltp,
        "volume": q.volume,
        "oi": q.oi,
        "bid": q.bid,
        "bid_qty": q.bid_qty,
        "ask": q.ask,
        "ask_qty": q.ask_qty,
        "previous_close": q.prev_close,
        "previous_oi": q.prev_oi,
    }
    changes = {k: v for k, v in values.items() if v is not None and getattr(leg, k) != v}
    return dataclasses.replace(leg, **changes) if changes else leg
