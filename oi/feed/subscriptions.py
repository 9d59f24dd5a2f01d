"""Which instruments the feed follows, and on which connection.

The wanted set is both legs of ATM ± N strikes of every followed (symbol, expiry), in Full mode, plus each index in
Ticker mode (its packet layout in Full mode is undocumented). :class:`Plan` keeps each instrument on the
connection it was first given (no churn as the window slides), fills connections up to Dhan's 5,000, and turns a
new wanted set into per-connection deltas: the caller sends the subscriptions before the unsubscriptions, so a
moving window never has a gap.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from oi.feed.merge import LegKey
from oi.feed.protocol import MAX_PER_CONNECTION, Instrument
from oi.market.model import OptionChain

FULL, TICKER = "full", "ticker"
Wanted = tuple[str, Instrument]  # (mode, instrument)


def window(chain: OptionChain, strikes: int) -> list[float]:
    """ATM ± `strikes` of the chain's strikes, ATM = the strike nearest spot, nearest first."""
    values = [s.strike for s in chain.strikes]
    if not values:
        return []
    i = bisect.bisect_left(values, chain.spot)
    if i > 0 and (i == len(values) or chain.spot - values[i - 1] <= values[i] - chain.spot):
        i -= 1
    picked = values[max(0, i - strikes) : i + strikes + 1]
    return sorted(picked, key=lambda k: (abs(k - values[i]), k))


def wanted(
    chains: Iterable[tuple[OptionChain, Mapping[LegKey, Instrument]]],
    strikes: int,
    indices: Iterable[Instrument] = (),
) -> list[Wanted]:
    """The wanted instruments in priority order (indices, then by distance from ATM across all pairs), so a set
    larger than the connections hold loses the far wings first."""
    out: list[Wanted] = [(TICKER, i) for i in dict.fromkeys(indices)]
    ranked: list[tuple[int, int, Wanted]] = []
    for n, (chain, legs) in enumerate(chains):
        for rank, strike in enumerate(window(chain, strikes)):
            for kind in ("CE", "PE"):
                inst = legs.get((strike, kind))
                if inst is not None:
                    ranked.append((rank, n, (FULL, inst)))
    ranked.sort(key=lambda r: (r[0], r[1]))
    out.extend(w for _, _, w in ranked)
    return list(dict.fromkeys(out))


@dataclass
class Delta:
    subscribe: list[Wanted] = field(default_factory=list)
    unsubscribe: list[Wanted] = field(default_factory=list)


@dataclass
class Plan:
    connections: int = 1
    capacity: int = MAX_PER_CONNECTION
    assigned: dict[Wanted, int] = field(default_factory=dict)
    dropped: int = 0  # wanted but beyond every connection's capacity

    def update(self, want: list[Wanted]) -> dict[int, Delta]:
        """Move to `want`; returns the per-connection changes to send."""
        deltas: dict[int, Delta] = {}
        wanted_set = set(want)
        load = [0] * self.connections
        keep: dict[Wanted, int] = {}
        for w in want:
            conn = self.assigned.get(w)
            if conn is not None:
                keep[w] = conn
                load[conn] += 1
        removed = [(w, c) for w, c in self.assigned.items() if w not in wanted_set]
        # New instruments count against capacity as if the removed ones were already gone: the unsubscriptions
        # follow within the same update, and Dhan's limit is about instruments held.
        self.dropped = 0
        for w in want:
            if w in keep:
                continue
            conn = next((c for c in range(self.connections) if load[c] < self.capacity), None)
            if conn is None:
                self.dropped += 1
                continue
            keep[w] = conn
            load[conn] += 1
            deltas.setdefault(conn, Delta()).subscribe.append(w)
        for w, conn in removed:
            deltas.setdefault(conn, Delta()).unsubscribe.append(w)
        self.assigned = keep
        return deltas

    def on(self, conn: int) -> list[Wanted]:
        """Everything connection `conn` holds: resubscribed in full after every (re)connect."""
        return [w for w, c in self.assigned.items() if c == conn]

    def used(self) -> list[int]:
        return sorted(set(self.assigned.values()))
