"""Alert evaluation cost per refresh: 50 rules over 10 (symbol, expiry) pairs (goal ≤ 5 ms).

5 symbols × 2 expiries of the demo market: an hour of session recorded in the embedded store (the default), then
the live loop as the lease holder runs it — one refresh writes one pair's chain, the views sync, and the alerts
evaluate every view whose chain changed (just that one). Only the evaluation is timed (rule checks, the interval
references decoded from the session series, and storing any event fired; Telegram is off, it is sent off the
tick's thread anyway). Also timed: all 10 pairs changed at once (a worker catching up, or a new leader).

    python benchmarks/alerts.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time as clock
from collections import Counter
from datetime import datetime, time, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oi.alerts import Alerts, parse_rule  # noqa: E402
from oi.config import DEFAULT_LOT_SIZES  # noqa: E402
from oi.market.calendar import IST  # noqa: E402
from oi.store import open_store  # noqa: E402
from oi.views import ViewCache  # noqa: E402
from tests.session import DAY, record_session  # noqa: E402

SYMBOLS = ("NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "SENSEX")
EXPIRIES = 2
REFRESHES = 300  # 30 rounds over the 10 pairs: 15 minutes of session
END = time(10, 14)  # an hour recorded first, so every interval (up to 30 min) has its reference


def rules() -> list:
    raw: list[dict] = []
    for i in range(20):
        raw.append(
            {
                "kind": "oi_change",
                "interval": (3, 5, 10, 15, 30)[i % 5],
                # lots; in the demo a strike's largest 5-minute move is ~800 NIFTY lots, ~1,600 BANKNIFTY lots
                "threshold": (1000, 1500, 2000, 3000)[i % 4],
                "unit": "lots",
                "leg": ("ce", "pe", "both")[i % 3],
            }
        )
    raw += [{"kind": "pcr_cross", "level": 0.7 + 0.06 * i} for i in range(10)]
    raw += [{"kind": "max_pain_shift", "strikes": 1 + i} for i in range(5)]
    raw += [{"kind": "level_cross", "levels": ["support", "resistance"][: 1 + i % 2]} for i in range(5)]
    raw += [{"kind": "wall", "share": 12 + i, "leg": ("ce", "pe", "both")[i % 3]} for i in range(10)]
    return [
        parse_rule({"name": f"r{i}", "expiry": "all", **r}, i + 1, SYMBOLS, DEFAULT_LOT_SIZES)
        for i, r in enumerate(raw)
    ]


def ms(xs: list[float]) -> str:
    xs = sorted(xs)
    return (
        f"median {statistics.median(xs) * 1e3:.2f} ms, p90 {xs[int(0.9 * len(xs))] * 1e3:.2f} ms, "
        f"max {xs[-1] * 1e3:.2f} ms"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store("", "oi", Path(tmp) / "var")
        t0 = clock.perf_counter()
        demo = record_session(store, symbols=SYMBOLS, start=time(9, 15), end=END, expiries=EXPIRIES)
        print(
            f"recorded {len(SYMBOLS)} symbols × {EXPIRIES} expiries × 60 minutes in {clock.perf_counter() - t0:.1f} s"
        )
        pairs = [(s, e) for s in SYMBOLS for e in demo.expiries(s, DAY)[:EXPIRIES]]
        assert len(pairs) == 10, pairs
        set_of_rules = rules()
        assert len(set_of_rules) == 50
        views = ViewCache(store, SYMBOLS, EXPIRIES, DEFAULT_LOT_SIZES)
        views.sync(DAY)
        alerts = Alerts(set_of_rules, store, lot_sizes=DEFAULT_LOT_SIZES)
        inserts: list[float] = []
        insert_event = store.insert_event

        def timed_insert(day, doc):
            t = clock.perf_counter()
            try:
                return insert_event(day, doc)
            finally:
                inserts.append(clock.perf_counter() - t)

        store.insert_event = timed_insert
        alerts.log.sync(store, DAY)

        # The lease holder taking over: every view is new to it.
        t = clock.perf_counter()
        first = alerts.evaluate(views)
        all_ten = clock.perf_counter() - t
        print(f"all 10 pairs new at once (a new leader's first pass): {all_ten * 1e3:.2f} ms, {len(first)} events")
        inserts.clear()

        at = datetime.combine(DAY, END, IST) + timedelta(minutes=1)  # the session goes on where the recording ends
        per_refresh, fired, sync, quiet = [], [], [], []
        for i in range(REFRESHES):
            symbol, expiry = pairs[i % len(pairs)]
            at += timedelta(seconds=3)  # the global pace: one chain every 3 s
            store.save_chain(demo.chain(symbol, expiry, at))
            t = clock.perf_counter()
            views.sync(DAY)
            sync.append(clock.perf_counter() - t)
            t = clock.perf_counter()
            new = alerts.evaluate(views)
            per_refresh.append(clock.perf_counter() - t)
            if not new:
                quiet.append(per_refresh[-1])
            fired += new
        print(f"{REFRESHES} refreshes (one pair's chain each), 50 rules × 10 pairs:")
        print(f"  alert evaluation per refresh: {ms(per_refresh)} (goal ≤ 5 ms); {len(fired)} events fired and stored")
        kinds = Counter(f"{e['kind']}{'/' + str(e['interval']) if e['interval'] else ''}" for e in fired)
        print(f"  events by kind: {dict(sorted(kinds.items()))}")
        print(f"  refreshes that fired nothing ({len(quiet)}): {ms(quiet)}")
        print(
            f"  mean {statistics.fmean(per_refresh) * 1e3:.2f} ms, "
            f"of which storing the events: {sum(inserts) * 1e3 / len(per_refresh):.2f} ms"
        )
        if inserts:
            print(f"  one event stored (embedded store): {ms(inserts)}")
        print(f"  for scale, the view sync of the same refresh: {ms(sync)}")

        # Same loop, all 10 pairs changing between two evaluations (a follower that became leader mid-session).
        worst = []
        for _ in range(10):
            for symbol, expiry in pairs:
                at += timedelta(seconds=3)
                store.save_chain(demo.chain(symbol, expiry, at))
            views.sync(DAY)
            t = clock.perf_counter()
            alerts.evaluate(views)
            worst.append(clock.perf_counter() - t)
        print(f"  all 10 pairs changed between evaluations: {ms(worst)}")


if __name__ == "__main__":
    main()
