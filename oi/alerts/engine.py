"""Evaluation: what a view says (:class:`Facts`), the rule kinds, and firing once (:class:`Alerts`)."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property

from oi import analytics
from oi.alerts.events import EventLog, event_id, event_key, public, view_url
from oi.alerts.rules import Rule
from oi.analytics import COMBINED
from oi.market.calendar import IST
from oi.market.model import OptionChain
from oi.notify import Notifier

log = logging.getLogger(__name__)


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
