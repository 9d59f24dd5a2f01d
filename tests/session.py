"""Build a recorded session in a store: the demo market sampled once a minute, as the refresher would keep it."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from oi.market.calendar import IST, MarketCalendar
from oi.market.demo import DemoSource
from oi.store import Store

DAY = date(2026, 11, 23)  # a Monday; its nearest demo expiry is the 23rd itself (the 24th is a holiday)


def record_session(
    store: Store,
    symbols=("NIFTY", "BANKNIFTY"),
    day: date = DAY,
    start=time(14, 50),
    end=time(15, 29),
    seed=7,
    expiries: int = 1,
    seconds=lambda minute: 0,
) -> DemoSource:
    """`seconds(i)` offsets the i-th minute's snapshot into its minute, as a refresher's cadence does."""
    demo = DemoSource(MarketCalendar(), seed=seed)
    for symbol in symbols:
        listed = demo.expiries(symbol, day)
        store.save_expiries(symbol, listed, day)
        at, i = datetime.combine(day, start, IST), 0
        while at.time() <= end:
            for expiry in listed[:expiries]:
                store.save_chain(demo.chain(symbol, expiry, at + timedelta(seconds=seconds(i))))
            at, i = at + timedelta(minutes=1), i + 1
    return demo
