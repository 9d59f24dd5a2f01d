"""A deterministic simulated market: the embedded default feed, so the dashboard works with no credentials.

Everything is a pure function of (seed, symbol, expiry, time): two processes, or a test and the app, see the same
numbers for the same instant. The spot follows a seeded random walk in 3-second steps through the IST day, OI
builds from ``previous_oi`` as the day goes on, IV has a smile, prices and Greeks are Black-Scholes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from oi.config import DEFAULT_LOT_SIZES
from oi.market.calendar import CLOSE, IST, MarketCalendar
from oi.market.model import Leg, OptionChain, Strike

STEP_SECONDS = 3
RATE = 0.065


@dataclass(frozen=True)
class Underlying:
    spot: float
    step: float
    lot: int
    atm_iv: float  # percent
    weekly_weekday: int | None  # 1 = Tuesday, 3 = Thursday; None → monthly only


PROFILES = {
    "NIFTY": Underlying(23850, 50, DEFAULT_LOT_SIZES["NIFTY"], 12.5, 1),
    "BANKNIFTY": Underlying(51500, 100, DEFAULT_LOT_SIZES["BANKNIFTY"], 14.0, None),
    "FINNIFTY": Underlying(23400, 50, DEFAULT_LOT_SIZES["FINNIFTY"], 13.0, None),
    "MIDCPNIFTY": Underlying(12400, 25, DEFAULT_LOT_SIZES["MIDCPNIFTY"], 16.0, None),
    "SENSEX": Underlying(78500, 100, DEFAULT_LOT_SIZES["SENSEX"], 12.8, 3),
}
_FALLBACK = Underlying(1000, 10, 100, 20.0, None)
STRIKES_EACH_SIDE = 25


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def black_scholes(spot: float, strike: float, years: float, iv: float, call: bool) -> tuple[float, ...]:
    """Price, delta, gamma, theta per day, vega per 1 IV point."""
    sigma = iv / 100.0
    sq = math.sqrt(years)
    d1 = (math.log(spot / strike) + (RATE + 0.5 * sigma * sigma) * years) / (sigma * sq)
    d2 = d1 - sigma * sq
    disc = math.exp(-RATE * years)
    gamma = _pdf(d1) / (spot * sigma * sq)
    vega = spot * _pdf(d1) * sq / 100.0
    if call:
        price = spot * _phi(d1) - strike * disc * _phi(d2)
        delta = _phi(d1)
        theta = (-spot * _pdf(d1) * sigma / (2 * sq) - RATE * strike * disc * _phi(d2)) / 365.0
    else:
        price = strike * disc * _phi(-d2) - spot * _phi(-d1)
        delta = _phi(d1) - 1.0
        theta = (-spot * _pdf(d1) * sigma / (2 * sq) + RATE * strike * disc * _phi(-d2)) / 365.0
    return max(price, 0.05), delta, gamma, theta, vega


def _tick(x: float) -> float:
    return round(round(x / 0.05) * 0.05, 2)


@dataclass
class DemoSource:
    calendar: MarketCalendar
    seed: int = 7
    name: str = "demo"
    _paths: dict = field(default_factory=dict, repr=False)

    def _rng(self, *parts: object) -> random.Random:
        return random.Random("|".join(map(str, (self.seed, *parts))))

    def profile(self, symbol: str) -> Underlying:
        return PROFILES.get(symbol, _FALLBACK)

    def previous_close(self, symbol: str, day: date) -> float:
        return round(self.profile(symbol).spot * (1 + 0.01 * self._rng(symbol, day, "close").gauss(0, 1)), 2)

    def spot(self, symbol: str, at: datetime) -> float:
        local = at.astimezone(IST)
        day = local.date()
        steps = int((local - datetime.combine(day, time(0), IST)).total_seconds()) // STEP_SECONDS
        entry = self._paths.get((symbol, day))
        if entry is None:
            # Keep only today's paths: memory stays bounded however long the process runs.
            self._paths = {k: v for k, v in self._paths.items() if k[1] == day}
            rng = self._rng(symbol, day, "walk")
            start = self.previous_close(symbol, day) * (1 + 0.004 * rng.gauss(0, 1))
            entry = self._paths[(symbol, day)] = ([start], rng)
        path, rng = entry
        while len(path) <= steps:
            # ~0.9% daily volatility spread over 28,800 steps
            path.append(path[-1] * (1 + 0.00005 * rng.gauss(0, 1)))
        return round(path[steps], 2)

    def expiries(self, symbol: str, today: date) -> list[str]:
        profile = self.profile(symbol)
        out: set[date] = set()
        day = today
        while len(out) < 6:
            monthly = self._last_weekday(day.year, day.month, profile.weekly_weekday or 1)
            for candidate in [monthly] + ([day] if profile.weekly_weekday == day.weekday() else []):
                shifted = candidate
                while not self.calendar.is_trading_day(shifted):
                    shifted -= timedelta(days=1)
                if shifted >= today:
                    out.add(shifted)
            day += timedelta(days=1)
        return sorted(d.isoformat() for d in out)

    @staticmethod
    def _last_weekday(year: int, month: int, weekday: int) -> date:
        nxt = date(year + month // 12, month % 12 + 1, 1)
        last = nxt - timedelta(days=1)
        return last - timedelta(days=(last.weekday() - weekday) % 7)

    def chain(self, symbol: str, expiry: str, now: datetime) -> OptionChain:
        p = self.profile(symbol)
        local = now.astimezone(IST)
        day = local.date()
        spot = self.spot(symbol, local)
        prev_close_spot = self.previous_close(symbol, day)
        expires = datetime.combine(date.fromisoformat(expiry), CLOSE, IST)
        years = max((expires - local).total_seconds(), 600) / (365 * 86400)
        prev_years = years + 1 / 365
        centre = round(prev_close_spot / p.step) * p.step
        progress = (local - datetime.combine(day, time(0), IST)).total_seconds() / 86400
        rows = []
        for i in range(-STRIKES_EACH_SIDE, STRIKES_EACH_SIDE + 1):
            k = centre + i * p.step
            legs = []
            for call in (True, False):
                if abs(i) > STRIKES_EACH_SIDE - 2:  # far wings untraded, as real chains have
                    legs.append(Leg())
                    continue
                rng = self._rng(symbol, expiry, day, k, call)
                otm = (k - centre) / p.step if call else (centre - k) / p.step
                shape = math.exp(-((otm - 4) ** 2) / 60) + (0.6 if k % (p.step * 10) == 0 else 0.0)
                prev_oi = int(p.lot * 40000 * shape * rng.uniform(0.5, 1.2)) // p.lot * p.lot
                drift = rng.uniform(-0.25, 0.9)
                wiggle = 0.01 * math.sin(progress * 900 + rng.uniform(0, 6.28))
                oi = max(0, int(prev_oi * (1 + drift * progress + wiggle)) // p.lot * p.lot)
                moneyness = math.log(k / spot) / 0.05
                iv = p.atm_iv * (1 + 0.08 * moneyness**2 - (0.03 * moneyness))
                price, delta, gamma, theta, vega = black_scholes(spot, k, years, iv, call)
                prev_price = black_scholes(prev_close_spot, k, prev_years, iv, call)[0]
                volume = int(prev_oi * rng.uniform(2, 8) * progress) // p.lot * p.lot
                spread = max(0.05, _tick(price * 0.002))
                legs.append(
                    Leg(
                        oi=oi,
                        previous_oi=prev_oi,
                        ltp=_tick(price),
                        previous_close=_tick(prev_price),
                        volume=volume,
                        iv=round(iv, 2),
                        delta=round(delta, 5),
                        gamma=round(gamma, 5),
                        theta=round(theta, 5),
                        vega=round(vega, 5),
                        bid=_tick(price - spread),
                        bid_qty=p.lot * rng.randint(1, 40),
                        ask=_tick(price + spread),
                        ask_qty=p.lot * rng.randint(1, 40),
                    )
                )
            rows.append(Strike(float(k), legs[0], legs[1]))
        return OptionChain(symbol, expiry, spot, local, tuple(rows), self.name, prev_close_spot)
