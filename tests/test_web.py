"""The HTTP API and dashboard, on the real SDK against the fake Dhan server, refresher driven by hand."""

from datetime import datetime

import pytest

from oi.config import from_env
from oi.market.calendar import IST
from oi.refresher import PACE_SLACK_SECONDS
from oi.web import create_app
from tests.helpers import make_config


def fill(rt, timer, calls=3):
    """Run the refresher until it made `calls` upstream calls (expiry list + chain + …)."""
    for _ in range(calls):
        rt.tick()
        timer.advance(rt.config.dhan_min_interval_seconds + PACE_SLACK_SECONDS)


def test_api_oi_shape_and_definitions(client, rt, timer):
    fill(rt, timer, 2)
    r = client.get("/api/oi?symbol=NIFTY")
    assert r.status_code == 200 and r.mimetype == "application/json"
    d = r.get_json()
    assert list(d)[:3] == ["stale", "stale_reason", "market_open"]
    assert (d["symbol"], d["expiry"], d["spot"], d["source"]) == ("NIFTY", "2026-11-24", 23847.35, "dhan")
    assert d["as_of"] == "2026-11-23T11:00:00+05:30"
    assert (d["atm"], d["max_pain"], d["pcr"]) == (23850, 23850, 0.9243)
    assert d["totals"] == {"ce_oi": 119783105, "pe_oi": 110711510, "ce_oi_change": 11094200, "pe_oi_change": 9178585}
    assert d["stale"] is False and d["market_open"] is True
    strikes = [s["strike"] for s in d["strikes"]]
    assert len(strikes) == 21 and strikes[10] == 23850  # ATM ± 10 by default
    row = d["strikes"][10]
    assert row["ce"]["oi"] == 6340035 and row["ce"]["oi_change"] == 6340035 - 5870020
    assert {"oi", "oi_change", "ltp", "iv", "volume"} <= set(row["ce"]) and row["pe"]["ltp"] == 108.45


def test_strikes_parameter(client, rt, timer):
    fill(rt, timer, 2)
    assert len(client.get("/api/oi?symbol=nifty&strikes=2").get_json()["strikes"]) == 5
    assert len(client.get("/api/oi?symbol=NIFTY&strikes=all").get_json()["strikes"]) == 24
    # near the top of the chain the window is cut, not padded
    assert len(client.get("/api/oi?symbol=NIFTY&strikes=100").get_json()["strikes"]) == 24
    assert client.get("/api/oi?symbol=NIFTY&expiry=2026-11-24").status_code == 200


def test_api_symbols(client, rt, timer):
    assert client.get("/api/symbols").get_json() == {
        "symbols": [{"symbol": "NIFTY", "kind": "index", "expiries": [], "lot_size": 65}]
    }
    fill(rt, timer, 2)
    listed = client.get("/api/symbols").get_json()
    assert listed == {"symbols": [{"symbol": "NIFTY", "kind": "index", "expiries": ["2026-11-24"], "lot_size": 65}]}


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 400, "'symbol' is required"),
        ("symbol=", 400, "'symbol' is required"),
        ("symbol=APPLE", 400, "unknown symbol"),
        ("symbol=NIFTY&symbol=NIFTY", 400, "more than once"),
        ("symbol[$ne]=x", 400, "'symbol' is required"),
        ("symbol=NIFTY&expiry=tomorrow", 400, "YYYY-MM-DD"),
        ('symbol=NIFTY&expiry={"$gt":""}', 400, "YYYY-MM-DD"),
        ("symbol=NIFTY&strikes=-1", 400, "'strikes'"),
        ("symbol=NIFTY&strikes=1e3", 400, "'strikes'"),
        ("symbol=NIFTY&strikes=0", 400, "'strikes'"),
        ("symbol=NIFTY&expiry=2030-01-01", 404, "no data"),
    ],
)
def test_bad_input_is_a_clear_json_error(client, rt, timer, query, status, message):
    fill(rt, timer, 2)
    r = client.get("/api/oi?" + query)
    assert r.status_code == status
    assert message in r.get_json()["error"]


def test_no_user_markup_is_reflected(client, rt, timer):
    r = client.get("/api/oi?symbol=<script>alert(1)</script>")
    assert r.status_code == 400 and b"<script>" not in r.data


def test_unknown_route_is_json_404(client):
    r = client.get("/api/nope")
    assert r.status_code == 404 and "error" in r.get_json()


def test_healthz(client, rt, timer):
    r = client.get("/healthz")
    assert r.status_code == 503
    assert r.get_json()["status"] == "degraded" and "NIFTY" in r.get_json()["reason"]
    fill(rt, timer, 2)
    d = client.get("/healthz").get_json()
    assert d == {
        "status": "ok",
        "market_open": True,
        "source": "dhan",
        "last_refresh": "2026-11-23T11:00:00+05:30",
        "data_age_seconds": 0.0,
        "store": "ok",
        "pace_seconds": 3.0,  # issue #14: the adaptive pace in force
    }


def test_stale_in_market_hours(dhan_env, store, timer):
    app = create_app(make_config(**dhan_env), store=store, timer=timer)
    rt = app.extensions["oi"]
    fill(rt, timer, 2)
    later = datetime(2026, 11, 23, 11, 1, tzinfo=IST)  # 60 s > 3 refresh periods of 3 s
    rt.clock = lambda: later
    c = app.test_client()
    d = c.get("/api/oi?symbol=NIFTY").get_json()
    assert d["stale"] is True and "60 s old" in d["stale_reason"]
    assert c.get("/healthz").status_code == 503


def test_after_hours_data_is_not_stale(dhan_env, store, timer):
    env = dict(dhan_env, OI_NOW="2026-11-21T20:00:00+05:30")  # Saturday night
    app = create_app(make_config(**env), store=store, timer=timer)
    fill(app.extensions["oi"], timer, 2)
    c = app.test_client()
    d = c.get("/api/oi?symbol=NIFTY").get_json()
    assert (d["stale"], d["market_open"]) == (False, False)
    assert c.get("/healthz").get_json()["status"] == "ok"


def test_auth_failure_makes_data_stale_and_health_degraded(client, rt, timer, fake_dhan):
    fill(rt, timer, 2)
    fake_dhan.token = "rotated"
    fill(rt, timer, 1)
    d = client.get("/api/oi?symbol=NIFTY").get_json()
    assert d["stale"] is True and "token" in d["stale_reason"]
    assert d["spot"] == 23847.35  # the last good data is still served
    assert client.get("/healthz").status_code == 503


def test_requests_do_not_touch_the_store(client, rt, timer, monkeypatch):
    fill(rt, timer, 2)

    def boom(*a, **k):
        raise AssertionError("store queried during a request")

    for name in ("latest", "latest_all", "expiries", "version", "status", "history"):
        monkeypatch.setattr(rt.store, name, boom)
    assert client.get("/api/oi?symbol=NIFTY").status_code == 200
    assert client.get("/api/symbols").status_code == 200


def test_follower_process_picks_up_new_data_via_version(dhan_env, store, timer):
    leader = create_app(make_config(**dhan_env), store=store, timer=timer).extensions["oi"]
    follower_app = create_app(make_config(**dhan_env), store=store, timer=timer)
    follower = follower_app.extensions["oi"]
    fill(leader, timer, 2)
    assert follower_app.test_client().get("/api/oi?symbol=NIFTY").status_code == 503  # #14: was 404; warming up
    follower.tick()  # not the lease holder: makes no upstream call, only notices the new version
    assert follower_app.test_client().get("/api/oi?symbol=NIFTY").status_code == 200


def test_dashboard_page(client, rt, timer):
    fill(rt, timer, 2)
    r = client.get("/")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert 'id="symbol"' in html and 'id="rows"' in html and "static/app.js" in html
    assert "test-token" not in html  # no secret in the page


def test_demo_source_by_default(tmp_path, timer):
    env = {"OI_REFRESHER": "0", "OI_DATA_DIR": str(tmp_path), "OI_NOW": "2026-11-21T20:00:00+05:30"}
    app = create_app(from_env(env), timer=timer)
    assert app.extensions["oi"].store.backend == "embedded"
    fill(app.extensions["oi"], timer, 4)
    d = app.test_client().get("/api/oi?symbol=BANKNIFTY").get_json()
    assert d["source"] == "demo" and d["market_open"] is True and len(d["strikes"]) == 21
    assert d["atm"] == min((s["strike"] for s in d["strikes"]), key=lambda k: (abs(k - d["spot"]), k))


def test_no_data_yet_is_503_warming_up_with_retry_after(client, rt, timer):
    # Issue #14 item 5: a configured symbol with no data yet is a start-up state, not a client error.
    for query in ("symbol=NIFTY", "symbol=NIFTY&expiry=2026-11-24", "symbol=NIFTY&interval=5"):
        r = client.get("/api/oi?" + query)
        assert r.status_code == 503, query
        assert r.headers["Retry-After"] == "3"  # one round at the pace: 1 symbol × 3 s
        assert r.get_json() == {"error": "warming up: no data for NIFTY yet", "warming_up": True}
    fill(rt, timer, 2)
    assert client.get("/api/oi?symbol=NIFTY").status_code == 200
    assert client.get("/api/oi?symbol=NIFTY&expiry=2030-01-01").status_code == 404  # data, not that expiry


@pytest.mark.parametrize("path", ["//healthz", "//", "/static//app.js", "//static//app.js?v=1"])
def test_slash_redirects_never_echo_the_host_header(client, path):
    # red team #14: werkzeug's merge-slashes 308 put the request's Host into an absolute Location
    r = client.get(path, headers={"Host": "evil.example"})
    assert r.status_code == 308
    location = r.headers["Location"]
    assert "evil.example" not in location and location.startswith("/") and not location.startswith("//")
    assert client.get(location).status_code in (200, 503)  # lands on the page it meant
