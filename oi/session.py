"""The one session model: which expiries make up a symbol's session, its previous close, and its per-minute frames.

The live page (:class:`oi.views.ViewCache`) and the nightly snapshot (:func:`oi.snapshot.collect`) both ask these
functions, so a session published at night is the session the page showed by day: the same expiries, the same
previous close, the same combined series. The refresher asks :func:`nearest_expiries` which chains to fetch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

from oi.history import Series, combine
from oi.market.model import OptionChain


def nearest_expiries(expiries: Sequence[str], day: date, count: int) -> list[str]:
    """The `count` nearest expiries on or after `day` (an expiry is tradable until its close)."""
    return [e for e in sorted(expiries) if e >= day.isoformat()][:count]


def session_expiries(listed: Sequence[str] | None, day: date, count: int, have: Iterable[str]) -> list[str]:
    """The expiries that make up a symbol's session on `day`, nearest first.

    `listed` is the symbol's expiry list as last fetched (None when there is none yet); `have` the expiries that
    hold data. Normally the `count` nearest listed expiries that have data. When none has (the list rolled past the
    data, or no list yet) the session falls back to the nearest expiry with data that is still tradable on `day`,
    else the latest one: showing yesterday's chain beats showing nothing.
    """
    have = set(have)
    chosen = [e for e in nearest_expiries(listed or [], day, count) if e in have]
    if chosen or not have:
        return chosen
    live = sorted(e for e in have if e >= day.isoformat())
    return [live[0] if live else max(have)]


def prev_close(chains: Iterable[OptionChain], stored_spot: float | None) -> float:
    """The underlying's previous close: the source's when a chain carries it, else the last spot stored in the
    previous session (`stored_spot`, None when unknown), else 0."""
    return next((c.prev_close for c in chains if c.prev_close > 0), 0.0) or (stored_spot or 0.0)


def frames(symbol: str, expiry: str, day: date, chains: Iterable[OptionChain], compress: bool = True) -> Series:
    """A session's per-minute frames built from stored chains (the first chain of each minute)."""
    line = Series(symbol, expiry, day, compress=compress)
    for chain in chains:
        line.add(chain)
    return line


def combined(parts: Sequence[Series], into: Series | None = None, complete: bool = False) -> Series:
    """The symbol's expiries summed minute by minute (see :func:`oi.history.combine`)."""
    line = combine(parts, into=into, complete=complete)
    line.parts = tuple(parts)
    return line
