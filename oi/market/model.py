"""The one normalized option-chain model every source produces and every consumer reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Leg:
    """One side (CE or PE) of one strike. OI and volume are in units (lots × lot size), as Dhan reports them."""

    oi: int = 0
    previous_oi: int = 0
    ltp: float = 0.0
    previous_close: float = 0.0
    volume: int = 0
    iv: float = 0.0  # percent; 0 means "not available" (illiquid leg, expiry day)
    delta: float = 0.0
    gamma: float = 0.0
    theta: float = 0.0
    vega: float = 0.0
    bid: float = 0.0
    bid_qty: int = 0
    ask: float = 0.0
    ask_qty: int = 0

    @property
    def oi_change(self) -> int:
        return self.oi - self.previous_oi


@dataclass(frozen=True, slots=True)
class Strike:
    strike: float
    ce: Leg = field(default_factory=Leg)
    pe: Leg = field(default_factory=Leg)


@dataclass(frozen=True, slots=True)
class OptionChain:
    symbol: str
    expiry: str  # YYYY-MM-DD
    spot: float
    as_of: datetime  # timezone-aware
    strikes: tuple[Strike, ...]  # ascending by strike
    source: str
    # The underlying's previous session close when the source knows it (the demo does; Dhan's option chain does
    # not carry it), else 0 and the views fall back to the last spot stored in the previous session.
    prev_close: float = 0.0
    # Dhan's per-leg security ids, {(strike, "CE" | "PE"): id}, when the response carries them (the live feed
    # subscribes by these). Not stored: the store and the views never need them.
    security_ids: Mapping[tuple[float, str], int] | None = field(default=None, compare=False, repr=False)

    def to_doc(self) -> dict:
        """A storable document: plain types only, so every MongoDB stand-in round-trips it unchanged."""
        return {
            "symbol": self.symbol,
            "expiry": self.expiry,
            "spot": self.spot,
            "as_of": self.as_of.isoformat(),
            "ts": self.as_of.timestamp(),
            "source": self.source,
            "prev_close": self.prev_close,
            "strikes": [[s.strike, _values(s.ce), _values(s.pe)] for s in self.strikes],
        }

    @classmethod
    def from_doc(cls, doc: dict) -> OptionChain:
        return cls(
            symbol=doc["symbol"],
            expiry=doc["expiry"],
            spot=float(doc["spot"]),
            as_of=datetime.fromisoformat(doc["as_of"]),
            source=doc["source"],
            prev_close=float(doc.get("prev_close") or 0.0),
            strikes=tuple(Strike(float(k), Leg(*ce), Leg(*pe)) for k, ce, pe in doc["strikes"]),
        )


LEG_FIELDS = tuple(f.name for f in fields(Leg))


def _values(leg: Leg) -> list:
    # dataclasses.asdict deep-copies every value: ~25x slower, and this runs for every stored and archived chain.
    return [getattr(leg, name) for name in LEG_FIELDS]
