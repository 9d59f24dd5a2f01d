"""Day over day: each session's closing OI per (symbol, expiry), so the page can compare now with any earlier session.

A session's close is its last in-session frame, cut down to what a comparison needs (per strike: CE and PE OI) —
a few KB (4.8 KB for Dhan's 246-strike NIFTY chain) against a day's ~375 full frames. Closes live in the store's
``closes`` collection, one document per (symbol, expiry, day), and outlive the history they were cut from: history
is dropped after ``OI_RETENTION_DAYS``, a close only that long after its expiry has passed.

:func:`record_today` keeps today's close up to date from the session the views already hold in memory (the lease
holder, every few minutes, after the close and at shut-down), so the next day has it for free. :func:`record` fills
in what is still missing of the last ``OI_COMPARE_SESSIONS`` trading days of every followed expiry: from the
store's history while it still has that day (one pass per day: on the embedded store any query reads the whole
day), else from the published archive (:mod:`oi.archive`); the demo replays its own market. ``upload.py`` runs it
too before it renders, so the snapshot carries the same closes as the live page.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol

from oi import analytics
from oi.history import Series
from oi.market.calendar import IST, MarketCalendar
from oi.market.model import OptionChain
from oi.store import Store

log = logging.getLogger(__name__)


class Archive(Protocol):
    """Where a session's frames are kept after the store lets go of them (:mod:`oi.archive`)."""

    def closes(self, wanted: Sequence[tuple[str, str, date]]) -> dict[str, SessionClose | None]:
        """The closes of the (symbol, expiry, day)s `wanted`, by close id: None for a day it knows it lacks; a day
        it could not find out about (a failure part-way) is left out."""


@dataclass(frozen=True)
class SessionClose:
    symbol: str
    expiry: str
    day: date
    as_of: datetime
    spot: float
    strikes: tuple[float, ...]
    ce_oi: tuple[int, ...]
    pe_oi: tuple[int, ...]

    @property
    def id(self) -> str:
        return close_id(self.symbol, self.expiry, self.day)

    @classmethod
    def from_chain(cls, chain: OptionChain) -> SessionClose:
        rows = chain.strikes
        return cls(
            chain.symbol,
            chain.expiry,
            chain.as_of.astimezone(IST).date(),
            chain.as_of,
            chain.spot,
            tuple(s.strike for s in rows),
            tuple(s.ce.oi for s in rows),
            tuple(s.pe.oi for s in rows),
        )

    def to_doc(self) -> dict:
        return {
            "_id": self.id,
            "symbol": self.symbol,
            "expiry": self.expiry,
            "day": self.day.isoformat(),
            "as_of": self.as_of.isoformat(),
            "spot": self.spot,
            "strikes": list(self.strikes),
            "ce_oi": list(self.ce_oi),
            "pe_oi": list(self.pe_oi),
        }

    @classmethod
    def from_doc(cls, doc: dict) -> SessionClose:
        return cls(
            doc["symbol"],
            doc["expiry"],
            date.fromisoformat(doc["day"]),
            datetime.fromisoformat(doc["as_of"]),
            float(doc["spot"]),
            tuple(float(k) for k in doc["strikes"]),
            tuple(int(v) for v in doc["ce_oi"]),
            tuple(int(v) for v in doc["pe_oi"]),
        )

    def as_json(self, strikes: Collection[float] | None = None) -> dict:
        """The shape /api/closes and the snapshot give the page: the totals over the whole chain, and per strike the
        OI of `strikes` only (all by default; the snapshot keeps the strikes its page can show)."""
        keep = [j for j, k in enumerate(self.strikes) if strikes is None or k in strikes]
        return {
            "day": self.day.isoformat(),
            "as_of": self.as_of.astimezone(IST).isoformat(),
            "spot": self.spot,
            "ce_oi_total": sum(self.ce_oi),
            "pe_oi_total": sum(self.pe_oi),
            "strikes": [analytics.json_number(self.strikes[j]) for j in keep],
            "ce_oi": [self.ce_oi[j] for j in keep],
            "pe_oi": [self.pe_oi[j] for j in keep],
        }


def close_id(symbol: str, expiry: str, day: date) -> str:
    return f"{symbol}|{expiry}|{day.isoformat()}"


def combine(per_expiry: Sequence[Sequence[SessionClose]], expiry: str = analytics.COMBINED) -> list[SessionClose]:
    """The combined expiries' closes: OI summed per strike on the days every expiry has a close (a day one of them
    lacks would show as a drop in OI that never happened)."""
    if not per_expiry:
        return []
    by_day = [{c.day: c for c in closes} for closes in per_expiry]
    days = sorted(set.intersection(*(set(d) for d in by_day)))
    out = []
    for day in days:
        parts = [d[day] for d in by_day]
        ce: dict[float, int] = {}
        pe: dict[float, int] = {}
        for part in parts:
            for k, c, p in zip(part.strikes, part.ce_oi, part.pe_oi, strict=True):
                ce[k] = ce.get(k, 0) + c
                pe[k] = pe.get(k, 0) + p
        strikes = tuple(sorted(ce))
        last = max(parts, key=lambda c: c.as_of)
        out.append(
            SessionClose(
                last.symbol,
                expiry,
                day,
                last.as_of,
                last.spot,
                strikes,
                tuple(ce[k] for k in strikes),
                tuple(pe[k] for k in strikes),
            )
        )
    return out


def earlier_sessions(calendar: MarketCalendar, today: date, count: int) -> list[date]:
    """The `count` trading days before `today`, oldest first."""
    days: list[date] = []
    day = today
    for _ in range(count * 2 + 30):  # weekends and holidays: never more than this many calendar days per session
        if len(days) == count:
            break
        day -= timedelta(days=1)
        if calendar.is_trading_day(day):
            days.append(day)
    return days[::-1]


@dataclass
class Recorded:
    from_store: list[str] = field(default_factory=list)
    from_archive: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # neither the store nor the archive has that day
    unread: list[str] = field(default_factory=list)  # the archive could not be asked (a failure): try again later

    def __bool__(self) -> bool:
        return bool(self.from_store or self.from_archive)


def record(
    store: Store,
    pairs: Iterable[tuple[str, str]],
    days: Sequence[date],
    archive: Archive | None = None,
    skip: Iterable[str] = (),
) -> Recorded:
    """Store the close of every (symbol, expiry) in `pairs` on every day of `days` that the store does not hold a
    close of yet: cut from the store's history when it still has that day, else read from `archive`. A day after
    an expiry's own expiry date is skipped, and so are the ids in `skip` (days found missing before: the caller keeps
    :attr:`Recorded.missing`, never :attr:`Recorded.unread`). Idempotent: a second run reads and writes nothing."""
    done = store.close_ids() | set(skip)
    pairs = list(pairs)
    in_store = set(store.history_days())
    wanted = [(s, e, day) for day in days for s, e in pairs if close_id(s, e, day) not in done and day.isoformat() <= e]
    frames: dict[date, dict[tuple[str, str], OptionChain]] = {}
    out = Recorded()
    elsewhere: list[tuple[str, str, date]] = []
    for symbol, expiry, day in wanted:
        chain = None
        if day in in_store:
            if day not in frames:
                frames = {day: store.last_frames(day)}  # one day's pass at a time: each is a whole collection
            chain = frames[day].get((symbol, expiry))
        if chain is None:
            elsewhere.append((symbol, expiry, day))
            continue
        store.save_close(SessionClose.from_chain(chain).to_doc())
        out.from_store.append(close_id(symbol, expiry, day))
    found: dict[str, SessionClose | None] = {}
    if elsewhere and archive is not None:
        try:
            found = archive.closes(elsewhere)
        except Exception:  # a child that died, a timeout: the page has fewer sessions to compare until next time
            log.warning("could not read %d session(s) from the archive", len(elsewhere), exc_info=True)
    for symbol, expiry, day in elsewhere:
        key = close_id(symbol, expiry, day)
        close = found.get(key)
        if close is None:
            # Known absent (or no archive to ask) is missing for good; not found out about is worth another try.
            (out.unread if archive is not None and key not in found else out.missing).append(key)
            continue
        store.save_close(close.to_doc())
        out.from_archive.append(key)
    if out:
        log.info(
            "recorded %d session close(s): %d from the store, %d from the archive; %d day(s) have none, %d unread",
            len(out.from_store) + len(out.from_archive),
            len(out.from_store),
            len(out.from_archive),
            len(out.missing),
            len(out.unread),
        )
    return out


def record_today(store: Store, series: Mapping[tuple[str, str], Series], saved: dict[str, datetime]) -> int:
    """Store today's close so far for every expiry in `series` (the views' in-memory session, in-session frames
    only), so tomorrow finds it without reading a whole day back from the store. `saved` (close id → the frame's
    time) is the caller's memory of what it wrote: an unchanged close is not written again. Returns how many were."""
    written = 0
    for line in series.values():
        if not len(line):
            continue
        chain = line.chain(len(line) - 1)
        close = SessionClose.from_chain(chain)
        if saved.get(close.id) == chain.as_of:
            continue
        store.save_close(close.to_doc(), announce=False)  # served from tomorrow, when every process re-reads
        saved[close.id] = chain.as_of
        written += 1
    return written


def load(store: Store) -> dict[tuple[str, str], list[SessionClose]]:
    """Every stored close, per (symbol, expiry), oldest first. Unreadable documents are left out."""
    out: dict[tuple[str, str], list[SessionClose]] = {}
    for doc in store.closes():
        try:
            close = SessionClose.from_doc(doc)
        except (KeyError, TypeError, ValueError):
            log.warning("skipped an unreadable session close: %s", doc.get("_id"))
            continue
        out.setdefault((close.symbol, close.expiry), []).append(close)
    for closes in out.values():
        closes.sort(key=lambda c: c.day)
    return out


def for_views(
    stored: Mapping[tuple[str, str], Sequence[SessionClose]],
    expiries: Mapping[str, Sequence[str]],
    day: date,
    count: int,
) -> dict[tuple[str, str], list[SessionClose]]:
    """What each view offers to compare with, for the live page and the snapshot alike: per (symbol, expiry) the last
    `count` closes before `day`, and for a symbol with several expiries the combined ones (:func:`combine`)."""
    out: dict[tuple[str, str], list[SessionClose]] = {}
    for symbol, have in expiries.items():
        parts = [e for e in have if e != analytics.COMBINED]
        for expiry in parts:
            out[(symbol, expiry)] = before(stored.get((symbol, expiry), []), day, count)
        if len(parts) > 1:
            out[(symbol, analytics.COMBINED)] = combine([out[(symbol, e)] for e in parts])
    return out


def before(closes: Sequence[SessionClose], day: date, count: int) -> list[SessionClose]:
    """The last `count` closes of sessions before `day`, oldest first."""
    return [c for c in closes if c.day < day][-count:] if count > 0 else []
