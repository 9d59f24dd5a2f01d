"""The session's per-minute history in process memory: what interval changes, as-of answers and /api/history read.

A :class:`Series` holds one (symbol, expiry)'s snapshots of one session, at most one a minute (the first seen, the
same rule as the store's history), each kept as zlib-compressed JSON (~3 KB for a 51-strike chain, so a whole
session of five symbols is a few MB) plus its small summary point. Requests never query the store: a worker loads
the session from the store once, then appends what its view sync sees. Frames only ever append, so anything
derived from them (a frame's decoded chain, the combined series) can be memoized safely.
"""

from __future__ import annotations

import bisect
import json
import threading
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from datetime import date, datetime

from oi import analytics
from oi.market.calendar import IST
from oi.market.model import OptionChain

DECODED_CACHE = 48  # decoded chains kept per process: the refs of the intervals and a replay's neighbourhood


def minute_of(as_of: datetime) -> int:
    return int(as_of.timestamp()) // 60


class Series:
    """One (symbol, expiry)'s frames for one session day, oldest first."""

    def __init__(self, symbol: str, expiry: str, day: date, compress: bool = True) -> None:
        self.symbol, self.expiry, self.day = symbol, expiry, day
        # A live worker keeps a whole session for hours, so it compresses; a one-off reader (the snapshot) holds
        # the chains as they are and skips the round trip.
        self.compress = compress
        self.ts: list[float] = []
        self.minutes: list[int] = []
        self.points: list[dict] = []
        self._blobs: list[bytes | OptionChain] = []
        self._decoded: OrderedDict[int, OptionChain] = OrderedDict()
        self._lock = threading.Lock()
        self.parts: tuple[Series, ...] = ()  # for a combined series: the part series it is built from

    def __len__(self) -> int:
        return len(self.ts)

    def add(self, chain: OptionChain) -> bool:
        """Append `chain` if it opens a new minute of this series' day; False if it is not the minute's first."""
        if chain.as_of.astimezone(IST).date() != self.day:
            return False
        minute = minute_of(chain.as_of)
        if self.minutes and minute <= self.minutes[-1]:
            return False
        blob = zlib.compress(json.dumps(chain.to_doc(), separators=(",", ":")).encode(), 6) if self.compress else chain
        with self._lock:
            self._blobs.append(blob)
            self.points.append(analytics.history_point(chain))
            self.minutes.append(minute)
            self.ts.append(chain.as_of.timestamp())  # last: readers bisect on ts and then index the other lists
        return True

    def index_at(self, when: datetime) -> int | None:
        """Index of the latest frame at or before `when`, None if the series starts later."""
        i = bisect.bisect_right(self.ts, when.timestamp()) - 1
        return i if i >= 0 else None

    def chain(self, i: int) -> OptionChain:
        blob = self._blobs[i]
        if isinstance(blob, OptionChain):
            return blob
        with self._lock:
            cached = self._decoded.get(i)
            if cached is not None:
                self._decoded.move_to_end(i)
                return cached
        chain = OptionChain.from_doc(json.loads(zlib.decompress(blob)))
        with self._lock:
            self._decoded[i] = chain
            while len(self._decoded) > DECODED_CACHE:
                self._decoded.popitem(last=False)
        return chain

    def chain_at(self, when: datetime) -> OptionChain | None:
        i = self.index_at(when)
        return None if i is None else self.chain(i)

    @property
    def size_bytes(self) -> int:
        return sum(len(b) for b in self._blobs if isinstance(b, bytes))


def combine(parts: Sequence[Series], into: Series | None = None, complete: bool = False) -> Series:
    """The summed-across-expiries series: at each minute any part has a frame, merge every part's latest frame.

    A minute is final once every part has reached it; until then a part may still add that minute, so only final
    minutes are built (all of them with `complete`, for a finished session). `into` is extended in place.
    """
    first = parts[0]
    out = into or Series(first.symbol, analytics.COMBINED, first.day, compress=first.compress)
    live = [p for p in parts if len(p)]
    if not live:
        return out
    last_final = max(p.minutes[-1] for p in live) if complete else min(p.minutes[-1] for p in parts if len(p))
    if not complete and len(live) < len(parts):
        return out
    done = out.minutes[-1] if out.minutes else -1
    # Only the parts' minutes after the last one built: this runs on every view sync, a few times a minute.
    new = (p.minutes[bisect.bisect_right(p.minutes, done) :] for p in live)
    minutes = sorted({m for part in new for m in part if m <= last_final})
    for minute in minutes:
        chains = []
        for p in live:
            i = bisect.bisect_right(p.minutes, minute) - 1
            if i >= 0:
                chains.append(p.chain(i))
        if chains:
            out.add(analytics.merge(chains))
    return out


STRIKES_KEPT = 40  # per series: the strikes whose session columns /api/strikes has extracted and keeps extending
_strike_columns: weakref.WeakKeyDictionary[Series, OrderedDict] = weakref.WeakKeyDictionary()
_strike_lock = threading.Lock()


def strike_series(line: Series, strikes: Sequence[float]) -> dict:
    """Per minute of the session: OI and LTP of `strikes`' CE and PE legs (None where a frame lacks the strike, or
    a price is missing). Each strike's columns are kept per series and extended by the new frames only, so asking
    again costs the frames added since (a few a minute), not a decode of the whole session."""
    n = len(line)
    with _strike_lock:
        kept = _strike_columns.setdefault(line, OrderedDict())
        wanted = {}
        for k in strikes:
            wanted[k] = kept.setdefault(k, {"ce_oi": [], "pe_oi": [], "ce_ltp": [], "pe_ltp": []})
            kept.move_to_end(k)
        while len(kept) > max(STRIKES_KEPT, len(wanted)):
            kept.popitem(last=False)
        start = min((len(c["ce_oi"]) for c in wanted.values()), default=n)
        for i in range(start, n):
            by_strike = {s.strike: s for s in line.chain(i).strikes}
            for k, cols in wanted.items():
                if len(cols["ce_oi"]) > i:
                    continue
                row = by_strike.get(k)
                for side in ("ce", "pe"):
                    leg = getattr(row, side) if row is not None else None
                    cols[f"{side}_oi"].append(leg.oi if leg is not None else None)
                    cols[f"{side}_ltp"].append(leg.ltp if leg is not None and leg.ltp > 0 else None)
        return {
            "t": [p["as_of"] for p in line.points[:n]],
            "strikes": {
                str(analytics.json_number(k)): {name: col[:n] for name, col in c.items()} for k, c in wanted.items()
            },
        }
