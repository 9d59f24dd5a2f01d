"""Interval OI change, as-of answers, levels, /api/history and the combined expiry view, against hand-computed values.

The recorded sequence (NIFTY, strikes 100/110/120, expiry E1 plus a flat second expiry E2):

    frame k = 0..6 at 10:0k:05 IST   spot 110 + k/2   CE110 OI 1000 + 100k   PE110 OI 2000 − 50k
    latest (not a new minute) 10:06:40  spot 111    CE110 OI 1650          PE110 OI 1690
    every other leg constant: CE100 500, CE120 4000, PE100 3000, PE120 100; E2: CE 10 and PE 20 everywhere
    previous OI: CE 400/900/4100, PE 2900/1500/100; the previous session (Friday) closed with spot 105.5
"""

from datetime import date, datetime

import mongomock
import pytest

from oi.market.calendar import IST
from oi.market.model import Leg, OptionChain, Strike
from oi.store import Store
from oi.web import create_app
from tests.helpers import make_config

DAY = date(2026, 11, 23)
E1, E2 = "2026-11-26", "2026-12-29"
PREV = {100: (400, 2900), 110: (900, 1500), 120: (4100, 100)}


def at(hh: int, mm: int, ss: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=IST)


def chain(expiry: str, when: datetime, spot: float, ce110: int, pe110: int) -> OptionChain:
    if expiry == E2:
        oi = {100: (10, 20), 110: (10, 20), 120: (10, 20)}
    else:
        oi = {100: (500, 3000), 110: (ce110, pe110), 120: (4000, 100)}
    strikes = tuple(
        Strike(
            float(k),
            Leg(oi=oi[k][0], previous_oi=PREV[k][0], ltp=10.0 + k / 100, iv=12.5, delta=0.5),
            Leg(oi=oi[k][1], previous_oi=PREV[k][1], ltp=9.0, iv=0.0),
        )
        for k in (100, 110, 120)
    )
    return OptionChain("NIFTY", expiry, spot, when, strikes, "dhan")


@pytest.fixture
def client():
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    store.save_expiries("NIFTY", [E1, E2], DAY)
    store.save_chain(chain(E1, at(15, 29, 30, date(2026, 11, 20)), 105.5, 900, 1500))  # previous session
    for k in range(7):
        store.save_chain(chain(E1, at(10, k, 5), 110 + k / 2, 1000 + 100 * k, 2000 - 50 * k))
        store.save_chain(chain(E2, at(10, k, 15), 110 + k / 2, 0, 0))
    store.save_chain(chain(E1, at(10, 6, 40), 111.0, 1650, 1690))
    store.save_chain(chain(E2, at(10, 6, 50), 111.0, 0, 0))
    app = create_app(make_config(OI_NOW=at(10, 7).isoformat(), OI_EXPIRIES_PER_SYMBOL="2"), store=store)
    return app.test_client()


def legs(body: dict, side: str, field: str) -> dict:
    return {s["strike"]: s[side][field] for s in body["strikes"]}


def test_interval_change_against_the_snapshot_m_minutes_back(client):
    d = client.get("/api/oi?symbol=NIFTY&interval=5").get_json()
    assert d["as_of"] == "2026-11-23T10:06:40+05:30"
    assert d["interval"] == 5 and d["interval_from"] == "2026-11-23T10:01:05+05:30"  # at or before 10:01:40
    assert legs(d, "ce", "oi_change_interval") == {100: 0, 110: 1650 - 1100, 120: 0}
    assert legs(d, "pe", "oi_change_interval") == {100: 0, 110: 1690 - 1950, 120: 0}
    assert d["totals"]["ce_oi_change_interval"] == 550 and d["totals"]["pe_oi_change_interval"] == -260
    assert d["pcr_change_interval"] == round(-260 / 550, 4)
    assert d["levels"]["resistance_by_interval"] == 110 and d["levels"]["support_by_interval"] is None


def test_interval_is_null_until_history_reaches_back(client):
    d = client.get("/api/oi?symbol=NIFTY&interval=10").get_json()  # 09:56:40 is before the first frame
    assert d["interval_from"] is None and d["pcr_change_interval"] is None
    assert set(legs(d, "ce", "oi_change_interval").values()) == {None}
    assert d["totals"]["ce_oi_change_interval"] is None
    # Without `interval` the field is not there at all.
    assert "oi_change_interval" not in client.get("/api/oi?symbol=NIFTY").get_json()["strikes"][0]["ce"]


def test_levels_pcr_of_change_and_spot_change(client):
    d = client.get("/api/oi?symbol=NIFTY").get_json()
    assert d["levels"] == {
        "support": 100,  # PE OI 3000
        "resistance": 120,  # CE OI 4000
        "support_by_change": 110,  # PE +190 beats +100
        "resistance_by_change": 110,  # CE +750
    }
    assert d["pcr_change"] == round((100 + 190 + 0) / (100 + 750 - 100), 4)
    assert (d["spot_prev_close"], d["spot_change"], d["spot_change_pct"]) == (105.5, 5.5, 5.21)
    assert d["lot_size"] == 65
    # A zero IV is reported as 0 (the page shows "—"); prices are there for a single expiry.
    assert legs(d, "pe", "iv")[110] == 0 and legs(d, "ce", "ltp")[110] == 11.1


def test_as_of_answers_from_the_snapshot_at_or_before(client):
    d = client.get("/api/oi?symbol=NIFTY&at=2026-11-23T10:03:30%2B05:30&interval=3").get_json()
    assert d["as_of"] == "2026-11-23T10:03:05+05:30" and d["at"] == "2026-11-23T10:03:30+05:30"
    assert (d["spot"], legs(d, "ce", "oi")[110], legs(d, "pe", "oi")[110]) == (111.5, 1300, 1850)
    assert d["interval_from"] == "2026-11-23T10:00:05+05:30"
    assert legs(d, "ce", "oi_change_interval")[110] == 300 and legs(d, "pe", "oi_change_interval")[110] == -150
    # A naive time means IST; UTC works too; a time after the latest answers with the latest.
    assert client.get("/api/oi?symbol=NIFTY&at=2026-11-23T10:03:30").get_json()["as_of"].startswith("2026-11-23T10:03")
    assert client.get("/api/oi?symbol=NIFTY&at=2026-11-23T04:33:30Z").get_json()["as_of"] == d["as_of"]
    assert client.get("/api/oi?symbol=NIFTY&at=2026-11-23T15:00:00%2B05:30").get_json()["spot"] == 111.0
    r = client.get("/api/oi?symbol=NIFTY&at=2026-11-23T09:00:00%2B05:30")
    assert r.status_code == 404 and "at or before" in r.get_json()["error"]


def test_history_series_one_point_a_minute(client):
    d = client.get("/api/history?symbol=NIFTY").get_json()
    assert (d["symbol"], d["expiry"], d["session"]) == ("NIFTY", E1, "2026-11-23")
    assert [p["as_of"][11:16] for p in d["points"]] == [f"10:0{k}" for k in range(7)]
    p = d["points"][2]
    assert (p["spot"], p["ce_oi"], p["pe_oi"]) == (111.0, 500 + 1200 + 4000, 3000 + 1900 + 100)
    assert p["pcr"] == round(5000 / 5700, 4)
    # pain(100) = 1900·10 + 100·20 = 21000, pain(110) = 500·10 + 100·10 = 6000, pain(120) = 500·20 + 1200·10
    assert p["max_pain"] == 110


def test_combined_expiries_sum_oi(client):
    symbols = client.get("/api/symbols").get_json()["symbols"]
    assert symbols[0]["expiries"] == [E1, E2, "all"]
    d = client.get("/api/oi?symbol=NIFTY&expiry=all&interval=5").get_json()
    assert d["combined"] is True and d["as_of"] == "2026-11-23T10:06:50+05:30"
    assert legs(d, "ce", "oi") == {100: 510, 110: 1660, 120: 4010}
    assert legs(d, "pe", "oi") == {100: 3020, 110: 1710, 120: 120}
    assert d["pcr"] == round(4850 / 6180, 4)
    assert set(legs(d, "ce", "ltp").values()) == {None}  # prices do not add up across expiries
    # 5 minutes back from 10:06:50 is 10:01:50: the combined minute 10:01 = E1 frame 1 + E2 frame 1.
    assert legs(d, "ce", "oi_change_interval")[110] == 1660 - 1110
    h = client.get("/api/history?symbol=NIFTY&expiry=all").get_json()
    assert len(h["points"]) == 7 and h["points"][0]["ce_oi"] == 500 + 1000 + 4000 + 30
    back = client.get("/api/oi?symbol=NIFTY&expiry=all&at=2026-11-23T10:02:30%2B05:30").get_json()
    assert legs(back, "ce", "oi")[110] == 1200 + 10


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("symbol=NIFTY&interval=7", 400, "'interval' must be one of 3, 5, 10, 15, 30"),
        ("symbol=NIFTY&interval=5&interval=3", 400, "more than once"),
        ("symbol=NIFTY&at=yesterday", 400, "'at' must be an ISO-8601 time"),
        ("symbol=NIFTY&expiry=everything", 400, "'expiry' must be YYYY-MM-DD or 'all'"),
        ("symbol=NIFTY&expiry=2027-01-01", 404, "no data for NIFTY expiry 2027-01-01"),
    ],
)
def test_bad_parameters_get_a_clear_400(client, query, status, message):
    r = client.get("/api/oi?" + query)
    assert r.status_code == status and message in r.get_json()["error"]


def test_history_for_an_unknown_symbol_is_400(client):
    r = client.get("/api/history?symbol=NOPE")
    assert r.status_code == 400 and "unknown symbol" in r.get_json()["error"]
