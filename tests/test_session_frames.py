"""Only in-session frames make the day's history and replay (red team #14, finding 9): a 09:14:50 pre-open fetch
(the refresher fills an empty page once outside market hours) shows as the latest data but is not a minute of the
session."""

from __future__ import annotations

from datetime import datetime, timedelta

from oi.market.calendar import IST
from oi.web import create_app
from tests.helpers import make_config

PRE_OPEN = datetime(2026, 11, 23, 9, 14, 50, tzinfo=IST)  # a Monday
EXPIRY = "2026-11-24"


def test_pre_open_frame_is_shown_but_not_kept_in_history(dhan_env, store, timer):
    start = timer()
    clock = lambda: PRE_OPEN + timedelta(seconds=timer() - start)  # noqa: E731
    app = create_app(make_config(**dhan_env, OI_NOW=""), store=store, timer=timer, clock=clock)
    rt, client = app.extensions["oi"], app.test_client()
    while timer() - start < 40:  # 09:14:50 → 09:15:30
        rt.tick()
        timer.advance(0.25)

    day = PRE_OPEN.date()
    kept = [c.as_of for c in store.history("NIFTY", EXPIRY, day)]
    assert kept and all(t.time() >= datetime(2026, 11, 23, 9, 15).time() for t in kept), kept
    line = rt.views.series[("NIFTY", EXPIRY)]
    assert len(line) >= 1
    assert all(datetime.fromtimestamp(ts, IST) >= PRE_OPEN + timedelta(seconds=10) for ts in line.ts)
    assert client.get("/api/oi?symbol=NIFTY").status_code == 200
    # the replay cannot go to the pre-open minute: at 09:14:59 there is no session frame
    early = client.get("/api/oi?symbol=NIFTY&at=2026-11-23T09:14:59%2B05:30")
    assert early.status_code == 404


def test_a_pre_open_fetch_alone_leaves_the_history_empty(dhan_env, store, timer):
    start = timer()
    clock = lambda: PRE_OPEN + timedelta(seconds=timer() - start)  # noqa: E731
    app = create_app(make_config(**dhan_env, OI_NOW=""), store=store, timer=timer, clock=clock)
    rt = app.extensions["oi"]
    while timer() - start < 8:  # still before 09:15
        rt.tick()
        timer.advance(0.25)
    assert store.latest("NIFTY", EXPIRY).as_of < PRE_OPEN + timedelta(seconds=10)  # fetched, shown as the latest…
    assert store.history("NIFTY", EXPIRY, PRE_OPEN.date()) == []  # …but not a minute of the session
    assert len(rt.views.series[("NIFTY", EXPIRY)]) == 0
    assert app.test_client().get("/api/oi?symbol=NIFTY").status_code == 200
