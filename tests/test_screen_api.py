"""The server side of issue #11: /api/strikes, the history's straddle and ATM IV, the build-up's price change, and
the styled 404 page. Expected numbers are computed here from the stored frames, not by the code under test."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import mongomock
import pytest

from oi.market.calendar import IST
from oi.store import Store
from oi.web import create_app
from tests.helpers import make_config
from tests.session import DAY, record_session


@pytest.fixture(scope="module")
def session():
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    record_session(store, ("NIFTY",))
    app = create_app(make_config(OI_NOW="2026-11-23T15:30:00+05:30"), store=store)
    expiry = store.expiries("NIFTY")[0][0]
    return app.test_client(), store.history("NIFTY", expiry, DAY)


def nearest(chain):
    return min(chain.strikes, key=lambda s: (abs(s.strike - chain.spot), s.strike))


def test_strikes_answers_each_minute_of_the_chosen_legs(session):
    client, frames = session
    k1, k2 = nearest(frames[-1]).strike, nearest(frames[-1]).strike + 50
    r = client.get(f"/api/strikes?symbol=NIFTY&strikes={int(k1)},{int(k2)}")
    assert r.status_code == 200
    body = r.get_json()
    assert body["t"] == [c.as_of.isoformat() for c in frames]
    for k in (k1, k2):
        legs = body["strikes"][str(int(k))]
        rows = [next(s for s in c.strikes if s.strike == k) for c in frames]
        assert legs["ce_oi"] == [s.ce.oi for s in rows]
        assert legs["pe_oi"] == [s.pe.oi for s in rows]
        assert legs["pe_ltp"] == [s.pe.ltp or None for s in rows]
    # asked again (memoized columns): the same answer
    assert client.get(f"/api/strikes?symbol=NIFTY&strikes={int(k1)},{int(k2)}").get_json() == body


@pytest.mark.parametrize(
    "query",
    [
        "symbol=NIFTY",
        "symbol=NIFTY&strikes=",
        "symbol=NIFTY&strikes=abc",
        "symbol=NIFTY&strikes=1,2,3,4,5,6,7,8,9,10,11",
        "symbol=NIFTY&strikes=24000;drop",
        "symbol=FOO&strikes=24000",
        "symbol=NIFTY&strikes=24000&expiry=tomorrow",
    ],
)
def test_strikes_bad_input_is_400_json(session, query):
    client, _ = session
    r = client.get("/api/strikes?" + query)
    assert r.status_code == 400 and r.is_json and r.get_json()["error"]


def test_history_has_straddle_and_atm_iv(session):
    client, frames = session
    points = client.get("/api/history?symbol=NIFTY").get_json()["points"]
    for p, c in zip(points, frames, strict=True):
        atm = nearest(c)
        assert p["straddle"] == pytest.approx(atm.ce.ltp + atm.pe.ltp, abs=0.005)
        assert p["atm_iv"] == pytest.approx((atm.ce.iv + atm.pe.iv) / 2, abs=0.005)


def test_interval_view_has_the_price_change_for_build_up(session):
    client, frames = session
    d = client.get("/api/oi?symbol=NIFTY&interval=5&strikes=all").get_json()
    then_at = datetime.combine(DAY, time(15, 29), IST) - timedelta(minutes=5)
    then = {
        s.strike: s
        for s in next(c for c in frames if c.as_of <= then_at + timedelta(seconds=59) and c.as_of >= then_at).strikes
    }
    now = {s.strike: s for s in frames[-1].strikes}
    checked = 0
    for row in d["strikes"]:
        k = row["strike"]
        for side in ("ce", "pe"):
            a, b = getattr(now[k], side).ltp, getattr(then[k], side).ltp
            want = round(a - b, 2) if a > 0 and b > 0 else None
            got = row[side]["ltp_change_interval"]
            assert got == (pytest.approx(want, abs=1e-9) if want is not None else None), (k, side)
            checked += want is not None
    assert checked > 10


def test_unknown_page_is_a_styled_404(session):
    client, _ = session
    r = client.get("/no/such/page")
    assert r.status_code == 404 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "This page does not exist" in html and "/static/style.css" in html and "2026-11-23" in html
    assert "style=" not in html  # no inline style: the CSP forbids it
    assert client.get("/api/nope").is_json  # the API keeps its JSON errors
    assert client.get("/static/favicon.svg").status_code == 200
