"""A scripted market for the alert tests: crafted chains served by a source the real refresher polls, so each test
states the numbers minute by minute and every service (sharing one store) sees them through the real path —
refresher → store → view sync → alert evaluation → store → Telegram."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from oi.alerts import public
from oi.market.calendar import IST
from oi.market.model import Leg, OptionChain, Strike
from oi.refresher import PACE_SLACK_SECONDS
from oi.web import create_app
from tests.helpers import FakeTimer, make_config

DAY = date(2026, 11, 23)
EXPIRY = "2026-11-26"
START = datetime(2026, 11, 23, 10, 0, tzinfo=IST)
STRIKES = (23700.0, 23750.0, 23800.0, 23850.0, 23900.0, 23950.0, 24000.0)
NIFTY_LOT = 65


@dataclass
class Market:
    """The chain now: per strike (ce oi, ce ltp, pe oi, pe ltp), spot. Tests edit it between minutes."""

    spot: float = 23850.0
    ce: dict[float, list[float]] = field(default_factory=lambda: {k: [100_000, 50.0] for k in STRIKES})
    pe: dict[float, list[float]] = field(default_factory=lambda: {k: [100_000, 50.0] for k in STRIKES})

    def chain(self, at: datetime) -> OptionChain:
        strikes = tuple(
            Strike(
                k,
                Leg(oi=int(self.ce[k][0]), previous_oi=90_000, ltp=self.ce[k][1]),
                Leg(oi=int(self.pe[k][0]), previous_oi=90_000, ltp=self.pe[k][1]),
            )
            for k in STRIKES
        )
        return OptionChain("NIFTY", EXPIRY, self.spot, at, strikes, "demo", prev_close=23800.0)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class ScriptedSource:
    """The source the refresher polls: today's one expiry, and the market's chain as of the call."""

    name = "demo"  # the demo source's name: the market counts as open

    def __init__(self, market: Market) -> None:
        self.market = market
        self.calls = 0

    def expiries(self, symbol: str, today: date) -> list[str]:
        return [EXPIRY]

    def chain(self, symbol: str, expiry: str, now: datetime) -> OptionChain:
        self.calls += 1
        return self.market.chain(now)


def rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(text)
    return path


class Harness:
    """Services sharing one store, one market, one clock and one pace timer."""

    def __init__(self, env: dict[str, str], store_factory, market: Market | None = None) -> None:
        self.market = market or Market()
        self.clock = Clock()
        self.timer = FakeTimer()
        self.env = {"DHAN_MIN_INTERVAL_SECONDS": "1", **env}
        self.store_factory = store_factory
        self.services = []

    def service(self):
        app = create_app(
            make_config(**self.env),
            store=self.store_factory(),
            source=ScriptedSource(self.market),
            clock=self.clock,
            timer=self.timer,
        )
        rt = app.extensions["oi"]
        self.services.append(rt)
        return rt, app.test_client()

    def minute(self, at: datetime | None = None) -> list[dict]:
        """Move to the next minute (or `at`) and tick every open service until the chain of that time is stored;
        returns the events fired during it, by any service."""
        self.clock.now = at or self.clock.now + timedelta(minutes=1)
        for _ in range(4):  # the expiry list first, then the chain; each call needs a pace slot
            self.timer.advance(1 + PACE_SLACK_SECONDS)
            for rt in self.services:
                if not rt.closed:
                    rt.tick()
            stored = self.services[0].store.latest("NIFTY", EXPIRY)
            if stored is not None and stored.as_of == self.clock.now:
                # one more tick so every service syncs the events the leader just stored
                for rt in self.services:
                    if not rt.closed:
                        rt.tick()
                break
        for rt in self.services:
            rt.alerts.drain()
        day = self.clock.now.astimezone(IST).date()
        return [public(e) for e in self.services[0].store.events(day) if e["at"] == self.clock.now.isoformat()]

    def close(self) -> None:
        for rt in self.services:
            rt.close()
