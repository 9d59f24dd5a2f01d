"""Fired events: their ids and links, and :class:`EventLog`, the day's events every process serves from memory."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import urlencode

from oi.market.calendar import IST


def public(doc: Mapping) -> dict:
    """An event as /api/events and the snapshot show it (the store's id kept as ``id``)."""
    return {k: v for k, v in doc.items() if k != "_id"}


@dataclass
class EventLog:
    """The day's fired events as every process serves them; re-read from the store only when its counter moves."""

    day: date | None = None
    stamp: int = -1
    events: list[dict] = field(default_factory=list)  # oldest first
    fired: dict[tuple, tuple[int, float]] = field(default_factory=dict)  # key → (last seq, its ts)
    anchors: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (rule, symbol, expiry) → max pain
    _bodies: dict[tuple[str, str | None], bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sync(self, store, day: date, force: bool = False) -> bool:
        """Reload the day's events if the store's event counter moved (or the day changed). True if reloaded."""
        stamp = store.events_stamp()
        if not force and stamp == self.stamp and day == self.day:
            return False
        docs = store.events(day)
        with self._lock:
            self.day, self.stamp = day, stamp
            self.events, self.fired, self.anchors, self._bodies = [], {}, {}, {}
            for doc in docs:
                self._note(doc)
        return True

    def add(self, doc: dict) -> None:
        """An event this process just stored (the counter moved too, so the next sync re-reads: harmless)."""
        with self._lock:
            self._note(doc)
            self._bodies = {}

    def _note(self, doc: Mapping) -> None:
        self.events.append(public(doc))
        key = event_key(doc["rule"], doc["symbol"], doc["expiry"], doc.get("strike"), doc["direction"])
        last = self.fired.get(key)
        if last is None or doc["seq"] > last[0]:
            self.fired[key] = (doc["seq"], doc["ts"])
        if doc["kind"] == "max_pain_shift":
            self.anchors[(doc["rule"], doc["symbol"], doc["expiry"])] = doc["values"]["max_pain"]

    def body(self, symbol: str, expiry: str | None = None) -> bytes:
        """``/api/events``: the symbol's events of the session, newest first, memoized until the next change."""
        key = (symbol, expiry)
        cached = self._bodies.get(key)
        if cached is None:
            with self._lock:
                mine = [e for e in self.events if e["symbol"] == symbol and (expiry is None or e["expiry"] == expiry)]
                day = self.day
            mine.sort(key=lambda e: (e["ts"], e["id"]), reverse=True)
            body = {"symbol": symbol, "session": day.isoformat() if day else None, "events": mine}
            cached = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()  # as oi.views.dumps
            self._bodies[key] = cached
        return cached


def event_key(rule: str, symbol: str, expiry: str, strike: float | None, direction: str) -> tuple:
    return (rule, symbol, expiry, None if strike is None else float(strike), direction)


def event_id(key: tuple, seq: int) -> str:
    rule, symbol, expiry, strike, direction = key
    return f"{symbol}|{expiry}|{rule}|{'-' if strike is None else f'{strike:g}'}|{direction}|{seq}"


def view_url(domain: str, symbol: str, expiry: str, at: datetime, interval: int | None = None) -> str | None:
    """The dashboard's shareable URL of that view at that minute; None without a domain."""
    if not domain:
        return None
    query = {"symbol": symbol, "expiry": expiry}
    if interval:
        query["interval"] = str(interval)
    query["at"] = at.astimezone(IST).isoformat(timespec="seconds")
    return f"https://{domain}/?{urlencode(query)}"


def session_events(store, day: date) -> list[dict]:
    """The day's fired events for the snapshot, newest first, in /api/events' shape."""
    return sorted((public(d) for d in store.events(day)), key=lambda e: (e["ts"], e["id"]), reverse=True)
