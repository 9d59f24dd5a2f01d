"""OI alerts (issue #15): rules from ``OI_ALERTS_FILE`` (TOML), evaluated on every new view, stored with the session,
sent to Telegram once.

Rules (see ``examples/alerts.toml``) are validated at start-up by :func:`load_rules`: a bad rule is a
:class:`~oi.config.ConfigError` whose one line names the rule. Kinds:

* ``oi_change`` — |OI now − OI ``interval`` minutes ago| ≥ ``threshold`` (``unit`` units or lots) at a strike's
  ``leg`` (ce/pe/both), labelled by the build-up it signals from the leg's price change over the same interval:
  price↑ OI↑ long build-up, price↓ OI↑ short build-up, price↑ OI↓ short covering, price↓ OI↓ long unwinding;
* ``pcr_cross`` — PCR crossing ``level`` (``direction`` up/down/both);
* ``max_pain_shift`` — max pain ≥ ``strikes`` chain strikes away from where it was when the rule last fired for
  that view (or from the session's first frame);
* ``level_cross`` — spot crossing the support and/or resistance strike (:func:`oi.analytics.levels`);
* ``wall`` — a strike leg's OI reaching ``share`` % of the chain's total OI of that side (it was below before).

Only the process holding the refresher lease evaluates (:meth:`Alerts.after_sync`, called by ``Service.tick``), and
only views whose chain changed since it last looked. An event fires once per (rule, symbol, expiry, strike,
direction) within the rule's cooldown (counted in market time, the chains' ``as_of``). "Once" holds across workers,
processes and lease hand-overs because the store decides: each firing of a key is the next number in that key's
sequence, inserted under a deterministic id (``Store.insert_event``), so two processes racing for the same firing
collide on the id and only the winner sends; and a new leader loads the day's events before it evaluates, so it
knows every key's last firing and cooldown. Every process keeps the day's events in memory (:class:`EventLog`),
re-read only when the store's event counter moves, so ``/api/events`` never queries the store.
"""

from __future__ import annotations

import bisect
import json
import logging
import re
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from urllib.parse import urlencode

from oi import analytics
from oi.analytics import COMBINED, INTERVALS
from oi.config import ConfigError
from oi.market.calendar import IST
from oi.market.model import OptionChain
from oi.notify import Notifier

log = logging.getLogger(__name__)

KINDS = ("oi_change", "pcr_cross", "max_pain_shift", "level_cross", "wall")
LEGS = ("ce", "pe")
DEFAULT_COOLDOWN_MINUTES = 15.0
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:-]{0,63}$")  # no "|": it separates the parts of an event id

# Parameters each kind takes (name → required); anything else in a rule is a typo worth refusing.
COMMON = {"name", "kind", "symbols", "expiry", "cooldown"}
PARAMS: dict[str, dict[str, bool]] = {
    "oi_change": {"interval": True, "threshold": True, "unit": False, "leg": False},
    "pcr_cross": {"level": True, "direction": False},
    "max_pain_shift": {"strikes": True, "direction": False},
    "level_cross": {"levels": False, "direction": False},
    "wall": {"share": True, "leg": False},
}


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    symbols: tuple[str, ...] | None = None  # None: every configured symbol
    expiry: str = "nearest"  # "nearest", or "all": every followed expiry (each on its own, not the combined sum)
    cooldown: float = DEFAULT_COOLDOWN_MINUTES  # minutes
    interval: int | None = None  # oi_change
    threshold: float = 0.0  # oi_change: in `unit`
    unit: str = "units"  # oi_change: "units" or "lots"
    leg: str = "both"  # oi_change, wall: "ce", "pe" or "both"
    level: float = 0.0  # pcr_cross
    direction: str = "both"  # pcr_cross, max_pain_shift, level_cross: "up", "down" or "both"
    strikes: int = 0  # max_pain_shift
    levels: tuple[str, ...] = ("support", "resistance")  # level_cross
    share: float = 0.0  # wall: percent

    @property
    def legs(self) -> tuple[str, ...]:
        return LEGS if self.leg == "both" else (self.leg,)

    def wants(self, direction: str) -> bool:
        return self.direction in ("both", direction)

    def threshold_units(self, lot_size: int | None) -> float:
        return self.threshold * (lot_size or 0) if self.unit == "lots" else self.threshold


# --- the rules file ---------------------------------------------------------------------------------------------
def _number(
    rule: str, raw: dict, key: str, low: float, high: float | None = None, integer: bool = False, above: bool = False
) -> float:
    value = raw[key]
    ok = isinstance(value, int | float) and not isinstance(value, bool) and (not integer or isinstance(value, int))
    if not ok or not (value > low if above else value >= low) or (high is not None and value > high):
        span = f"{'above' if above else 'at least'} {low:g}" + (f" and at most {high:g}" if high is not None else "")
        what = "a whole number" if integer else "a number"
        raise ConfigError(f"OI_ALERTS_FILE: rule '{rule}': {key} must be {what} {span} (got {value!r})")
    return value


def _choice(rule: str, raw: dict, key: str, choices: tuple[str, ...], default: str) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise ConfigError(f"OI_ALERTS_FILE: rule '{rule}': {key} must be one of {', '.join(choices)} (got {value!r})")
    return value


def parse_rule(raw: object, index: int, symbols: tuple[str, ...], lot_sizes: Mapping[str, int]) -> Rule:
    """One ``[[rule]]`` table as a :class:`Rule`; :class:`ConfigError` naming the rule when anything is off."""
    if not isinstance(raw, dict):
        raise ConfigError(f"OI_ALERTS_FILE: rule #{index} is not a table ([[rule]] with key = value lines)")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(
            f"OI_ALERTS_FILE: rule #{index}: name must be 1-64 letters, digits, spaces or _.:- (got {name!r})"
        )
    kind = raw.get("kind")
    if kind not in PARAMS:
        raise ConfigError(f"OI_ALERTS_FILE: rule '{name}': kind must be one of {', '.join(KINDS)} (got {kind!r})")
    params = PARAMS[kind]
    unknown = sorted(set(raw) - COMMON - set(params))
    if unknown:
        raise ConfigError(f"OI_ALERTS_FILE: rule '{name}': unknown key(s) for kind {kind}: {', '.join(unknown)}")
    missing = [k for k, required in params.items() if required and k not in raw]
    if missing:
        raise ConfigError(f"OI_ALERTS_FILE: rule '{name}': kind {kind} needs {', '.join(missing)}")
    values: dict = {"name": name, "kind": kind}
    chosen = raw.get("symbols")
    if chosen is not None:
        if isinstance(chosen, str):
            chosen = [chosen]
        if not isinstance(chosen, list) or not chosen or not all(isinstance(s, str) for s in chosen):
            raise ConfigError(f"OI_ALERTS_FILE: rule '{name}': symbols must be a list of symbol names")
        chosen = tuple(dict.fromkeys(s.strip().upper() for s in chosen))
        unknown = [s for s in chosen if s not in symbols]
        if unknown:
            listed = ", ".join(symbols)
            raise ConfigError(
                f"OI_ALERTS_FILE: rule '{name}': symbol(s) {', '.join(unknown)} not in OI_SYMBOLS ({listed})"
            )
        values["symbols"] = chosen
    values["expiry"] = _choice(name, raw, "expiry", ("nearest", "all"), "nearest")
    if "cooldown" in raw:
        values["cooldown"] = _number(name, raw, "cooldown", 0, 24 * 60)
    if kind == "oi_change":
        interval = raw["interval"]
        if interval not in INTERVALS or isinstance(interval, bool):
            choices = ", ".join(map(str, INTERVALS))
            raise ConfigError(f"OI_ALERTS_FILE: rule '{name}': interval must be one of {choices} (got {interval!r})")
        values["interval"] = interval
        values["threshold"] = _number(name, raw, "threshold", 0, above=True)
        values["unit"] = _choice(name, raw, "unit", ("units", "lots"), "units")
        if values["unit"] == "lots":
            no_lot = [s for s in values.get("symbols") or symbols if not lot_sizes.get(s)]
            if no_lot:
                raise ConfigError(
                    f"OI_ALERTS_FILE: rule '{name}': unit 'lots' needs OI_LOT_SIZES for {', '.join(no_lot)}"
                )
    if kind in ("oi_change", "wall"):
        values["leg"] = _choice(name, raw, "leg", ("ce", "pe", "both"), "both")
    if kind in ("pcr_cross", "max_pain_shift", "level_cross"):
        values["direction"] = _choice(name, raw, "direction", ("up", "down", "both"), "both")
    if kind == "pcr_cross":
        values["level"] = _number(name, raw, "level", 0, above=True)
    if kind == "max_pain_shift":
        values["strikes"] = int(_number(name, raw, "strikes", 1, integer=True))
    if kind == "level_cross":
        chosen_levels = raw.get("levels", ["support", "resistance"])
        if isinstance(chosen_levels, str):
            chosen_levels = [chosen_levels]
        if (
            not isinstance(chosen_levels, list)
            or not chosen_levels
            or any(lv not in ("support", "resistance") for lv in chosen_levels)
        ):
            raise ConfigError(
                f"OI_ALERTS_FILE: rule '{name}': levels must be a list of 'support' and/or 'resistance' "
                f"(got {chosen_levels!r})"
            )
        values["levels"] = tuple(dict.fromkeys(chosen_levels))
    if kind == "wall":
        values["share"] = _number(name, raw, "share", 0, 100, above=True)
    return Rule(**values)


def load_rules(path: Path, symbols: tuple[str, ...], lot_sizes: Mapping[str, int]) -> tuple[Rule, ...]:
    """The rules in `path` (TOML: an array of ``[[rule]]`` tables), validated. Raises :class:`ConfigError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"OI_ALERTS_FILE: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"OI_ALERTS_FILE: {path} is not valid TOML: {exc}") from None
    extra = sorted(set(doc) - {"rule"})
    if extra:
        raise ConfigError(f"OI_ALERTS_FILE: {path}: unknown top-level key(s) {', '.join(extra)}; rules go in [[rule]]")
    raw_rules = doc.get("rule", [])
    if not isinstance(raw_rules, list):
        raise ConfigError(f"OI_ALERTS_FILE: {path}: 'rule' must be an array of tables ([[rule]])")
    rules = [parse_rule(raw, i + 1, symbols, lot_sizes) for i, raw in enumerate(raw_rules)]
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ConfigError(f"OI_ALERTS_FILE: rule '{rule.name}' is defined twice (names identify fired events)")
        seen.add(rule.name)
    return tuple(rules)


# --- what a view says, computed once per evaluation and shared by every rule -------------------------------------
class Facts:
    """The numbers rules look at for one chain; each is computed on first use."""

    def __init__(self, chain: OptionChain, ref: Callable[[int], OptionChain | None]) -> None:
        self.chain = chain
        self._ref = ref
        self._moves: dict[int, list[tuple] | None] = {}

    @cached_property
    def totals(self) -> tuple[int, int]:
        return sum(s.ce.oi for s in self.chain.strikes), sum(s.pe.oi for s in self.chain.strikes)

    @cached_property
    def pcr(self) -> float | None:
        ce, pe = self.totals
        return analytics.ratio(pe, ce)

    @cached_property
    def max_pain(self) -> float | None:
        return analytics.max_pain(self.chain.strikes)

    @cached_property
    def levels(self) -> dict:
        """Support and resistance as :func:`oi.analytics.levels` defines them (without the by-change ones)."""
        ks = self.strike_list
        return {
            "support": analytics.top_strike(ks, [s.pe.oi for s in self.chain.strikes]),
            "resistance": analytics.top_strike(ks, [s.ce.oi for s in self.chain.strikes]),
        }

    @cached_property
    def strike_list(self) -> list[float]:
        return [s.strike for s in self.chain.strikes]

    @cached_property
    def shares(self) -> dict[tuple[float, str], float]:
        """Each leg's OI as a percentage of its side's total, largest first (rules stop at their threshold)."""
        ce, pe = self.totals
        out = []
        for s in self.chain.strikes:
            if ce:
                out.append(((s.strike, "ce"), 100.0 * s.ce.oi / ce))
            if pe:
                out.append(((s.strike, "pe"), 100.0 * s.pe.oi / pe))
        out.sort(key=lambda kv: -kv[1])
        return dict(out)

    def moves(self, interval: int) -> list[tuple] | None:
        """(strike, leg, oi change, ltp change, oi then, oi now, ltp now) over `interval` minutes, largest |OI
        change| first (rules stop at their threshold); None without a snapshot that far back."""
        if interval not in self._moves:
            ref = self._ref(interval)
            if ref is None:
                self._moves[interval] = None
            else:
                before = {s.strike: s for s in ref.strikes}
                out = []
                for s in self.chain.strikes:
                    old = before.get(s.strike)
                    if old is None:
                        continue
                    # Spelled out per leg: this runs for every interval of every new chain.
                    c, oc, p, op = s.ce, old.ce, s.pe, old.pe
                    out.append((s.strike, "ce", c.oi - oc.oi, c.ltp - oc.ltp, oc.oi, c.oi, c.ltp))
                    out.append((s.strike, "pe", p.oi - op.oi, p.ltp - op.ltp, op.oi, p.oi, p.ltp))
                out.sort(key=lambda m: -abs(m[2]))
                self._moves[interval] = out
        return self._moves[interval]


@dataclass
class Before:
    """What a view looked like at the previous evaluation (or the previous stored minute): for crossings."""

    day: date
    spot: float
    pcr: float | None
    shares: Callable[[], dict[tuple[float, str], float]]


def buildup(oi_change: float, price_change: float) -> str:
    """The build-up a leg's OI and price moves signal (a flat price only says build-up or unwinding)."""
    if oi_change > 0:
        return "long build-up" if price_change > 0 else "short build-up" if price_change < 0 else "build-up"
    return "short covering" if price_change > 0 else "long unwinding" if price_change < 0 else "unwinding"


def _fmt(n: float) -> str:
    return f"{n:+,.0f}"


def _strike(k: float | None) -> float | int | None:
    return None if k is None else analytics.json_number(k)


# --- the session's fired events, in memory ----------------------------------------------------------------------
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


# --- evaluation -------------------------------------------------------------------------------------------------
class Alerts:
    """Evaluates the rules in the lease holder and keeps every process's :class:`EventLog` in step."""

    def __init__(
        self,
        rules: Iterable[Rule],
        store,
        notifier: Notifier | None = None,
        domain: str = "",
        lot_sizes: Mapping[str, int] | None = None,
    ) -> None:
        self.rules = tuple(rules)
        self.store = store
        self.notifier = notifier or Notifier()
        self.domain = domain
        self.lot_sizes = dict(lot_sizes or {})
        self.log = EventLog()
        self.leading = False
        self._seen: dict[tuple[str, str], datetime] = {}  # view → the chain time last evaluated
        self._before: dict[tuple[str, str], Before] = {}
        self._sender: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    # --- the Service.tick hook ----------------------------------------------------------------------------------
    def after_sync(self, views, changed: bool, is_leader: Callable[[], bool], today: date) -> list[dict]:
        """After a view sync: refresh the event log; in the lease holder, evaluate views with a new chain. Never
        raises (a failing rule or store must not stop the views); returns the events fired."""
        try:
            if (not changed or not self.rules) and self.log.day == today:
                return []  # nothing new; or no rules here, so no events to pick up (the day's empty list is loaded)
            self.log.sync(self.store, today)
            if not self.rules:
                return []
            leading = is_leader()
            if leading and not self.leading:
                # Taking over: what the previous leader fired is in the store; forget this process's stale view of
                # the market, so crossings compare with the stored minutes, not with what it saw long ago.
                self.log.sync(self.store, today, force=True)
                self._seen.clear()
                self._before.clear()
            self.leading = leading
            return self.evaluate(views) if leading else []
        except Exception:
            log.exception("alert evaluation failed; the next view change retries")
            return []

    def evaluate(self, views) -> list[dict]:
        """Evaluate every rule against every view whose chain changed since the last call."""
        fired: list[dict] = []
        for (symbol, expiry), view in list(views.views.items()):
            if expiry == COMBINED or self._seen.get((symbol, expiry)) == view.chain.as_of:
                continue
            listed = [e for e in views.expiries.get(symbol, []) if e != COMBINED]
            rules = [
                r
                for r in self.rules
                if (r.symbols is None or symbol in r.symbols)
                and (r.expiry == "all" or (listed and listed[0] == expiry))
            ]
            facts = Facts(view.chain, view.ref)
            if rules:
                before = self._before.get((symbol, expiry))
                if before is None or before.day != view.chain.as_of.astimezone(IST).date():
                    before = self._stored_before(view)  # a new leader, or a new session: not yesterday's close
                for rule in rules:
                    fired.extend(getattr(self, f"_{rule.kind}")(rule, view, facts, before))
            self._seen[(symbol, expiry)] = view.chain.as_of
            self._before[(symbol, expiry)] = Before(
                view.chain.as_of.astimezone(IST).date(), view.chain.spot, facts.pcr, lambda f=facts: f.shares
            )
        return fired

    def _stored_before(self, view) -> Before | None:
        """The last stored minute before the view's chain: what a new leader compares crossings with."""
        line = view.series
        if line is None:
            return None
        i = bisect.bisect_left(line.ts, view.chain.as_of.timestamp()) - 1
        if i < 0:
            return None
        point = line.points[i]
        return Before(line.day, point["spot"], point["pcr"], lambda: Facts(line.chain(i), lambda _: None).shares)

    # --- the kinds ----------------------------------------------------------------------------------------------
    def _oi_change(self, rule: Rule, view, facts: Facts, before: Before | None) -> list[dict]:
        chain = facts.chain
        moves = facts.moves(rule.interval)
        if not moves:
            return []
        lot = self.lot_sizes.get(chain.symbol)
        limit = rule.threshold_units(lot)
        priced = chain.expiry != COMBINED
        out = []
        for strike, side, d_oi, d_px, then, now, ltp in moves:
            if abs(d_oi) < limit or d_oi == 0:
                break  # sorted: the rest are smaller
            if side not in rule.legs:
                continue
            label = buildup(d_oi, d_px if priced else 0.0)
            lots = f" ({d_oi / lot:+,.1f} lots)" if lot else ""
            price = f", LTP {ltp:,.2f} ({d_px:+,.2f})" if priced else ""
            text = (
                f"{chain.symbol} {chain.expiry} {analytics.json_number(strike)} {side.upper()}: {label} — "
                f"OI {_fmt(d_oi)}{lots} in {rule.interval} min ({then:,} → {now:,}){price}"
            )
            values = {"oi_change": d_oi, "oi_before": then, "oi": now, "ltp": ltp, "ltp_change": round(d_px, 2)}
            direction = f"{side}{'+' if d_oi > 0 else '-'}"
            out += self._fire(rule, view, strike, direction, label, text, values, rule.interval)
        return out

    def _pcr_cross(self, rule: Rule, view, facts: Facts, before: Before | None) -> list[dict]:
        now, level = facts.pcr, rule.level
        then = before.pcr if before else None
        if now is None or then is None:
            return []
        if then < level <= now and rule.wants("up"):
            direction = "up"
        elif then >= level > now and rule.wants("down"):
            direction = "down"
        else:
            return []
        chain = facts.chain
        label = f"PCR crossed {'above' if direction == 'up' else 'below'} {level:g}"
        text = f"{chain.symbol} {chain.expiry}: {label} — {then:.2f} → {now:.2f}"
        values = {"pcr": now, "pcr_before": then, "level": level}
        return self._fire(rule, view, None, direction, label, text, values)

    def _max_pain_shift(self, rule: Rule, view, facts: Facts, before: Before | None) -> list[dict]:
        chain, now = facts.chain, facts.max_pain
        anchor = self.log.anchors.get((rule.name, chain.symbol, chain.expiry))
        if anchor is None and view.series is not None and len(view.series):
            anchor = view.series.points[0]["max_pain"]
        if now is None or anchor is None:
            return []
        ks = facts.strike_list
        steps = bisect.bisect_left(ks, now) - bisect.bisect_left(ks, anchor)
        direction = "up" if steps > 0 else "down"
        if abs(steps) < rule.strikes or not rule.wants(direction):
            return []
        label = f"max pain moved {'up' if steps > 0 else 'down'} {abs(steps)} strikes"
        text = f"{chain.symbol} {chain.expiry}: {label} — {_strike(anchor)} → {_strike(now)}"
        values = {"max_pain": _strike(now), "max_pain_before": _strike(anchor), "strikes": steps}
        return self._fire(rule, view, None, direction, label, text, values)

    def _level_cross(self, rule: Rule, view, facts: Facts, before: Before | None) -> list[dict]:
        chain = facts.chain
        then, now = (before.spot if before else 0.0), chain.spot
        if then <= 0 or now <= 0:
            return []
        out = []
        for which in rule.levels:
            level = facts.levels[which]
            if level is None:
                continue
            if then < level <= now and rule.wants("up"):
                direction = "up"
            elif then > level >= now and rule.wants("down"):
                direction = "down"
            else:
                continue
            label = f"spot crossed {'above' if direction == 'up' else 'below'} {which} {level}"
            text = f"{chain.symbol} {chain.expiry}: {label} — spot {then:,.2f} → {now:,.2f}"
            values = {"spot": now, "spot_before": then, "level": which}
            out += self._fire(rule, view, level, direction, label, text, values)
        return out

    def _wall(self, rule: Rule, view, facts: Facts, before: Before | None) -> list[dict]:
        chain = facts.chain
        old = before.shares() if before else {}
        out = []
        ce_total, pe_total = facts.totals
        for (strike, side), share in facts.shares.items():
            if share < rule.share:
                break  # sorted: the rest are smaller
            if side not in rule.legs or old.get((strike, side), 0.0) >= rule.share:
                continue
            total = ce_total if side == "ce" else pe_total
            oi = round(share * total / 100)
            label = f"{side.upper()} wall"
            text = (
                f"{chain.symbol} {chain.expiry} {analytics.json_number(strike)} {side.upper()}: wall — "
                f"{share:.1f}% of all {side.upper()} OI ({oi:,} of {total:,})"
            )
            values = {"share": round(share, 2), "oi": oi, "total": total}
            out += self._fire(rule, view, strike, side, label, text, values)
        return out

    # --- firing -------------------------------------------------------------------------------------------------
    def _fire(
        self,
        rule: Rule,
        view,
        strike: float | None,
        direction: str,
        label: str,
        text: str,
        values: dict,
        interval: int | None = None,
    ) -> list[dict]:
        chain = view.chain
        at = chain.as_of
        key = event_key(rule.name, chain.symbol, chain.expiry, strike, direction)
        last = self.log.fired.get(key)
        if last is not None and at.timestamp() - last[1] < rule.cooldown * 60:
            return []
        seq = last[0] + 1 if last else 1
        url = view_url(self.domain, chain.symbol, chain.expiry, at, interval)
        day = at.astimezone(IST).date()
        doc = {
            "_id": event_id(key, seq),
            "id": event_id(key, seq),
            "day": day.isoformat(),
            "at": at.astimezone(IST).isoformat(),
            "ts": at.timestamp(),
            "rule": rule.name,
            "kind": rule.kind,
            "symbol": chain.symbol,
            "expiry": chain.expiry,
            "strike": _strike(strike),
            "direction": direction,
            "label": label,
            "text": text,
            "values": values,
            "interval": interval,
            "url": url,
            "seq": seq,
        }
        if not self.store.insert_event(day, doc):
            # Another process stored this firing first (it sends it): catch up with what it fired.
            self.log.sync(self.store, day, force=True)
            return []
        self.log.add(doc)
        log.info("alert: %s [%s]", text, rule.name)
        self._send(f"{text}\nrule: {rule.name}, {at.astimezone(IST):%H:%M} IST" + (f"\n{url}" if url else ""))
        return [public(doc)]

    def _send(self, text: str) -> None:
        """Telegram off the tick's thread: a slow or failing Telegram never holds up the refresher."""
        if not self.notifier.enabled:
            return
        if self._sender is None:
            self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oi-alerts")
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._sender.submit(self.notifier.send, text))

    def drain(self, timeout: float = 10.0) -> None:
        """Wait for queued Telegram messages (tests, shutdown)."""
        for future in list(self._pending):
            future.result(timeout=timeout)
        self._pending = []

    def close(self) -> None:
        if self._sender is not None:
            self._sender.shutdown(wait=True)
            self._sender = None
