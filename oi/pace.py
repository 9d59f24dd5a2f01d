"""Adaptive pace: the gap between upstream calls follows what Dhan's limiter actually accepts.

Dhan documents "one unique request per 3 s" for the option chain, but its limiter has been seen to answer 805 at
3.2 s spacing and 429 at 4 s. A fixed pace at the documented minimum then oscillates (805, back-off, back to 3 s,
805 again), and Dhan warns that repeated 805s may get the user blocked. So the pace:

* widens ×1.25 on every rate-limit answer (805, DH-904, 429), capped at 4× the minimum; the pace that was refused
  becomes a floor (×1.05) for the next hours, so narrowing never walks back into the same rejection;
* narrows ×0.97 after a long run of clean calls, never below the floor nor ``DHAN_MIN_INTERVAL_SECONDS``;
* a rate limit delays the next call by the refused slot plus one widened pace (jittered), not an exponential
  back-off: at most 2 × the cap (24 s at the 3 s minimum), so a burst of 805s never becomes minutes of silence.

The state lives in the store's pace document (next to the pace slot), so every process and a new lease holder
share it. :class:`PacePolicy` is pure arithmetic on that state; the refresher applies it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the refresher imports this module
    from oi.refresher import RefreshStatus

from dataclasses import dataclass

WIDEN = 1.25
NARROW = 0.97
CAP_FACTOR = 4.0
FLOOR_MARGIN = 1.05
FLOOR_HOLD_SECONDS = 6 * 3600.0  # about a session: the limiter that refused a pace today will refuse it again today
# Clean calls at the current pace before one narrowing step: with 3-4 s calls, a step every 5-6 minutes at most.
CLEAN_RUN = 100


@dataclass(frozen=True)
class PaceState:
    pace: float
    floor: float = 0.0
    floor_until: float = 0.0

    def as_doc(self) -> dict:
        return {"pace": self.pace, "floor": self.floor, "floor_until": self.floor_until}


@dataclass(frozen=True)
class PacePolicy:
    minimum: float  # DHAN_MIN_INTERVAL_SECONDS

    @property
    def cap(self) -> float:
        return self.minimum * CAP_FACTOR

    def state(self, doc: dict | None) -> PaceState:
        """The stored state, clamped to this process's bounds (another process may run with other settings)."""
        doc = doc or {}
        pace = float(doc.get("pace") or self.minimum)
        return PaceState(
            min(self.cap, max(self.minimum, pace)), float(doc.get("floor") or 0.0), float(doc.get("floor_until") or 0)
        )

    def widen(self, state: PaceState, now: float) -> PaceState:
        """After a rate limit at `state.pace`: a wider pace, and a floor just above the refused one."""
        refused = state.pace
        floor = min(self.cap, refused * FLOOR_MARGIN)
        if now < state.floor_until:
            floor = max(floor, state.floor)
        return PaceState(min(self.cap, max(self.minimum, refused * WIDEN)), floor, now + FLOOR_HOLD_SECONDS)

    def narrow(self, state: PaceState, now: float) -> PaceState:
        """After a clean run: one step back towards the minimum, not below a floor still in force."""
        floor = state.floor if now < state.floor_until else 0.0
        return PaceState(max(self.minimum, floor, state.pace * NARROW), state.floor, state.floor_until)


def pace_seconds(status: RefreshStatus, minimum: float) -> float:
    """The pace in force, as the refresher last published it in the shared status (the minimum until it widens)."""
    published = status.pace_seconds
    return max(minimum, float(published)) if isinstance(published, (int, float)) else minimum


def round_seconds(status: RefreshStatus, minimum: float, targets: int) -> float:
    """How long one full round over every (symbol, expiry) takes at the pace in force."""
    return pace_seconds(status, minimum) * max(1, targets)
