"""NSE trading calendar and clock, in IST.

Pure and pandas-free on purpose: pandas-based calendars cost tens of MB per process on a 512 MB box and, as of
late 2026, do not list 2027 either. The built-in table covers the years in ``NSE_HOLIDAYS``; operators add dates
with ``OI_HOLIDAYS`` or a file (``OI_HOLIDAYS_FILE``, one ISO date per line, ``#`` comments) without a code change.
A year with no holiday list at all is logged loudly once, because treating every weekday as open is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

log = logging.getLogger(__name__)

IST = timezone(timedelta(hours=5, minutes=30), "IST")
OPEN = time(9, 15)
CLOSE = time(15, 30)

# NSE equity-derivatives trading holidays (weekday closures). pandas_market_calendars and exchange_calendars agree.
NSE_HOLIDAYS: dict[int, frozenset[date]] = {
    2026: frozenset(
        date(2026, m, d)
        for m, d in [
            (1, 15), (1, 26), (3, 3), (3, 26), (3, 31), (4, 3), (4, 14), (5, 1),
            (5, 28), (6, 26), (9, 14), (10, 2), (10, 20), (11, 10), (11, 24), (12, 25),
        ]
    ),
}  # fmt: skip

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(IST)


def fixed_clock(at: datetime) -> Clock:
    """A clock pinned to `at` (OI_NOW): operators' dry runs and tests."""
    pinned = at.astimezone(IST)
    return lambda: pinned


def read_holidays_file(path: Path) -> frozenset[date]:
    """Dates from a file, one ISO date per line; blank lines and `#` comments ignored."""
    out = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if text:
            try:
                out.add(date.fromisoformat(text))
            except ValueError:
                raise ValueError(f"{path}:{n}: {text!r} is not a date (YYYY-MM-DD)") from None
    return frozenset(out)


class MarketCalendar:
    """Answers "is the market open?" for NSE in IST. `always_open` is OI_MARKET_ALWAYS_OPEN."""

    def __init__(
        self,
        extra_holidays: Iterable[date] = (),
        always_open: bool = False,
        table: dict[int, frozenset[date]] | None = None,
    ) -> None:
        self.table = NSE_HOLIDAYS if table is None else table
        self.extra = frozenset(extra_holidays)
        self.always_open = always_open
        self._warned: set[int] = set()

    def covers(self, year: int) -> bool:
        return year in self.table or any(d.year == year for d in self.extra)

    def _check_coverage(self, year: int) -> None:
        if not self.covers(year) and year not in self._warned:
            self._warned.add(year)
            log.warning(
                "NSE HOLIDAY LIST DOES NOT COVER %d: every weekday will be treated as a trading day. "
                "Add that year's holidays with OI_HOLIDAYS or OI_HOLIDAYS_FILE.",
                year,
            )

    def is_holiday(self, day: date) -> bool:
        self._check_coverage(day.year)
        return day in self.extra or day in self.table.get(day.year, frozenset())

    def is_trading_day(self, day: date) -> bool:
        return day.weekday() < 5 and not self.is_holiday(day)

    def session(self, day: date) -> tuple[datetime, datetime]:
        return datetime.combine(day, OPEN, IST), datetime.combine(day, CLOSE, IST)

    def is_open(self, now: datetime) -> bool:
        if self.always_open:
            return True
        local = now.astimezone(IST)
        return self.is_trading_day(local.date()) and OPEN <= local.time() < CLOSE

    def last_session_day(self, now: datetime) -> date:
        """The trading day whose session started most recently at or before `now`."""
        local = now.astimezone(IST)
        day = local.date()
        if local.time() < OPEN:
            day -= timedelta(days=1)
        for _ in range(30):
            if self.is_trading_day(day):
                return day
            day -= timedelta(days=1)
        raise RuntimeError("no trading day in the last 30 days: check the holiday list")

    def next_open(self, now: datetime) -> datetime:
        local = now.astimezone(IST)
        day = local.date()
        if local.time() >= OPEN:
            day += timedelta(days=1)
        for _ in range(30):
            if self.is_trading_day(day):
                return datetime.combine(day, OPEN, IST)
            day += timedelta(days=1)
        raise RuntimeError("no trading day in the next 30 days: check the holiday list")

    def status(self, now: datetime) -> dict:
        """A small JSON-able summary for pages and /healthz."""
        open_now = self.is_open(now)
        out = {"market_open": open_now}
        if not open_now:
            out["next_open"] = self.next_open(now).isoformat()
        return out


def calendar_from_config(config) -> MarketCalendar:
    """The calendar the config asks for: built-in table + OI_HOLIDAYS + OI_HOLIDAYS_FILE."""
    extra = set(config.extra_holidays)
    if config.holidays_file is not None:
        extra |= read_holidays_file(config.holidays_file)
    return MarketCalendar(extra, always_open=config.market_always_open)


def clock_from_config(config) -> Clock:
    return fixed_clock(config.now) if config.now is not None else system_clock
