"""The feed inside the app, end to end: the real SDK against the fake Dhan REST server, our client against the fake
feed, the refresher's scheduler running for real. Also the instrument master against a loopback HTTP server."""

from __future__ import annotations

import copy
import logging
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from oi.feed import protocol
from oi.feed.instruments import MASTER_FILE, InstrumentMaster, Resolver
from oi.market.calendar import IST
from oi.market.dhan import normalize
from oi.refresher import nearest_expiries
from oi.web import create_app
from tests.fakes import closed_port_url
from tests.fakes.dhan import TOKEN
from tests.fakes.feed import FakeFeed
from tests.helpers import make_config
from tests.test_feed import wait_until

NSE_FNO = protocol.SEGMENTS["NSE_FNO"]
MASTER_CSV = Path(__file__).resolve().parent / "fixtures" / "feed" / "api-scrip-master.csv"


@pytest.fixture
def feed():
    server = FakeFeed().start()
    yield server
    server.stop()


@pytest.fixture
def live_app(dhan_env, feed, store, tmp_path):
    """The app with its scheduler running on the real clock, market open, feed on and pointed at the fake."""
    config = make_config(
        **dhan_env,
        OI_NOW="",
        OI_MARKET_ALWAYS_OPEN="1",
        OI_REFRESHER="1",
        OI_FEED="on",
        DHAN_FEED_URL=feed.url,
        DHAN_MIN_INTERVAL_SECONDS="0.5",
        OI_REST_PERIOD_WITH_FEED_SECONDS="30",
        OI_FEED_STRIKES="3",
        OI_DATA_DIR=str(tmp_path),
    )
    app = create_app(config, store=store)
    app.extensions["oi"].start()
    yield app
    app.extensions["oi"].close()


def leg(client, strike: float, side: str = "ce") -> dict:
    body = client.get("/api/oi?symbol=NIFTY&strikes=all").get_json()
    return next(s for s in body["strikes"] if s["strike"] == strike)[side]


def test_scripted_oi_change_reaches_api_within_1_5_s(live_app, feed, fake_dhan, caplog):
    caplog.set_level(logging.DEBUG)
    client = live_app.test_client()
    ce = fake_dhan.chain["data"]["oc"]["23850.000000"]["ce"]["security_id"]
    assert wait_until(lambda: (client.get("/healthz").get_json().get("feed") or {}).get("state") == "live", 10)
    conn = feed.open_connections()[0]
    assert (NSE_FNO, ce) in conn.held and (protocol.SEGMENTS["IDX_I"], 13) in conn.held
    assert len(conn.held) == 2 * 7 + 1  # ATM ± 3, both legs, and the index
    for oi in (4_444_000, 4_555_500):
        start = time.monotonic()
        feed.push(NSE_FNO, ce, ltp=155.55, oi=oi)
        assert wait_until(lambda oi=oi: leg(client, 23850.0)["oi"] == oi, 3)
        assert time.monotonic() - start <= 1.5
    got = leg(client, 23850.0)
    assert got["ltp"] == 155.55
    assert got["oi_change"] == 4_555_500 - fake_dhan.chain["data"]["oc"]["23850.000000"]["ce"]["previous_oi"]
    assert got["iv"] == pytest.approx(fake_dhan.chain["data"]["oc"]["23850.000000"]["ce"]["implied_volatility"], 1e-3)
    api = client.get("/api/oi?symbol=NIFTY").get_json()
    assert api["feed"]["state"] == "live" and api["stale"] is False
    assert TOKEN not in caplog.text  # the feed URL carries it: neither we nor websockets may log it


def test_ticks_publish_at_most_once_a_second_and_history_once_a_minute(live_app, feed, fake_dhan, store):
    client = live_app.test_client()
    assert wait_until(lambda: (client.get("/healthz").get_json().get("feed") or {}).get("state") == "live", 10)
    oc = fake_dhan.chain["data"]["oc"]
    ids = [oc[k][s]["security_id"] for k in ("23800.000000", "23850.000000", "23900.000000") for s in ("ce", "pe")]
    expiry = client.get("/api/oi?symbol=NIFTY").get_json()["expiry"]
    time.sleep(1.1)
    version, n, start = store.version(), 0, time.monotonic()
    while time.monotonic() - start < 3.0:  # ~300 ticks over six legs
        n += 1
        feed.push(NSE_FNO, ids[n % len(ids)], ltp=100.0 + n % 7, oi=1_000_000 + 75 * n)
        time.sleep(0.01)
    bumps = store.version() - version
    assert 2 <= bumps <= 5, bumps  # each publication is one write: ~3 in 3 s, not one per tick
    day = datetime.now(IST).date()
    stamps = [c.as_of.astimezone(IST).strftime("%H%M") for c in store.history("NIFTY", expiry, day)]
    assert len(stamps) == len(set(stamps))  # history keeps one snapshot a minute


def test_window_follows_the_index_tick_between_rest_chains(live_app, feed, fake_dhan):
    client = live_app.test_client()
    assert wait_until(lambda: (client.get("/healthz").get_json().get("feed") or {}).get("state") == "live", 10)
    oc = fake_dhan.chain["data"]["oc"]
    far = oc["24050.000000"]["ce"]["security_id"]
    assert (NSE_FNO, far) not in feed.held(0)  # ATM 23850 ± 3 strikes
    feed.push(protocol.SEGMENTS["IDX_I"], 13, ltp=23952.0, oi=0)  # spot moves up two strikes
    assert wait_until(lambda: (NSE_FNO, far) in feed.held(0), 5)
    assert (NSE_FNO, oc["23700.000000"]["ce"]["security_id"]) not in feed.held(0)
    assert client.get("/api/oi?symbol=NIFTY").get_json()["spot"] == 23952.0


def test_rest_relaxes_while_live_and_takes_over_when_the_feed_stops(live_app, feed, fake_dhan):
    client = live_app.test_client()
    assert wait_until(lambda: (client.get("/healthz").get_json().get("feed") or {}).get("state") == "live", 10)
    before = len(fake_dhan.chain_calls())
    time.sleep(2.0)  # four pace slots at 0.5 s: all skipped while the feed is live
    assert len(fake_dhan.chain_calls()) == before
    feed.disconnect(807)
    assert wait_until(lambda: client.get("/healthz").get_json()["feed"]["state"] == "stopped", 5)
    state = client.get("/healthz").get_json()["feed"]
    assert state["reason"].startswith("REST, every 0.5 s") and "807" in state["reason"]
    assert client.get("/api/oi?symbol=NIFTY").get_json()["feed"]["state"] == "stopped"
    assert wait_until(lambda: len(fake_dhan.chain_calls()) >= before + 2, 3)  # REST's pace is back at once


def test_lease_holder_only_runs_the_feed(dhan_env, feed, store, tmp_path):
    config = make_config(
        **dhan_env,
        OI_NOW="",
        OI_MARKET_ALWAYS_OPEN="1",
        OI_FEED="on",
        DHAN_FEED_URL=feed.url,
        DHAN_MIN_INTERVAL_SECONDS="0.05",
    )
    first, second = create_app(config, store=store), create_app(config, store=store)
    a, b = first.extensions["oi"], second.extensions["oi"]

    def ticking(cond, *rts) -> bool:
        return wait_until(lambda: [rt.tick() for rt in rts] and cond(), 5)

    try:
        assert ticking(lambda: len(feed.open_connections()) == 1, a, b)
        assert a.refresher.feed.running and not b.refresher.feed.running
        time.sleep(0.3)
        assert len(feed.connections) == 1  # one connection per account, however many workers
        a.close()  # the lease moves: the feed follows it
        assert not a.refresher.feed.running
        assert ticking(lambda: b.refresher.feed.running and len(feed.open_connections()) == 1, b)
        assert wait_until(lambda: feed.held(-1) == feed.held(0))  # the new holder subscribes the same set
    finally:
        a.close()
        b.close()


def test_demo_feed_ticks_every_second(store):
    config = make_config(OI_SOURCE="demo", OI_FEED="auto", OI_NOW="", DHAN_MIN_INTERVAL_SECONDS="0.2")
    app = create_app(config, store=store)
    rt, client = app.extensions["oi"], app.test_client()
    try:
        seen = set()
        end = time.monotonic() + 3.5
        while time.monotonic() < end:
            rt.tick()
            body = client.get("/api/oi?symbol=NIFTY").get_json()
            if "as_of" in body:
                seen.add((body["as_of"], sum(s["ce"]["oi"] for s in body["strikes"])))
            time.sleep(0.1)
        assert len({a for a, _ in seen}) >= 3 and len({o for _, o in seen}) >= 3  # it moved every second
        assert body["feed"]["state"] == "live"
    finally:
        rt.close()


# --- the instrument master ------------------------------------------------------------------------------------
class MasterServer:
    def __init__(self, body: bytes) -> None:
        self.body, self.hits, self.fail = body, 0, False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.hits += 1
                if fake.fail:
                    self.send_response(503)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(fake.body)))
                self.end_headers()
                self.wfile.write(fake.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api-scrip-master.csv"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def master_server():
    server = MasterServer(MASTER_CSV.read_bytes())
    yield server
    server.close()


def chain_without_ids(fake_chain: dict):
    """The recorded-2025 shape: no security_id per leg (and, as there, the master must fill in)."""
    raw = copy.deepcopy(fake_chain["data"])
    for row in raw["oc"].values():
        for side in ("ce", "pe"):
            row[side].pop("security_id", None)
    return normalize("NIFTY", "2026-11-24", raw, datetime(2026, 11, 23, 11, 0, tzinfo=IST))


def test_chain_without_security_ids_streams_through_the_master(dhan_env, feed, fake_dhan, store, tmp_path):
    """The recorded-2025 shape end to end: no security_id in the chain, ids from the instrument master."""
    for row in fake_dhan.chain["data"]["oc"].values():
        for side in ("ce", "pe"):
            row[side].pop("security_id", None)
    expiry = nearest_expiries(fake_dhan.expiries["data"], datetime.now(IST).date(), 1)[0]
    lines = [MASTER_CSV.read_text().splitlines()[0]]
    ids = {}
    for n, key in enumerate(fake_dhan.chain["data"]["oc"]):
        strike = float(key)
        for kind in ("CE", "PE"):
            ids[(strike, kind)] = sid = 80_000 + 2 * n + (kind == "PE")
            lines.append(
                f"NSE,D,{sid},OPTIDX,0,NIFTY-X-{strike:.0f}-{kind},75.0,NIFTY {strike:.0f} {kind},"
                f"{expiry} 14:30:00,{strike:.5f},{kind},5.0000,W,OPTIDX,NA,"
            )
    master = MasterServer(("\n".join(lines) + "\n").encode())
    config = make_config(
        **dhan_env,
        OI_NOW="",
        OI_MARKET_ALWAYS_OPEN="1",
        OI_FEED="on",
        DHAN_FEED_URL=feed.url,
        DHAN_INSTRUMENTS_URL=master.url,
        DHAN_MIN_INTERVAL_SECONDS="0.05",
        OI_FEED_STRIKES="2",
        OI_DATA_DIR=str(tmp_path),
    )
    app = create_app(config, store=store)
    rt, client = app.extensions["oi"], app.test_client()
    try:
        assert wait_until(lambda: rt.tick() or rt.refresher.feed.status().live, 10)
        held = feed.held(0)
        assert (NSE_FNO, ids[(23850.0, "CE")]) in held and (NSE_FNO, ids[(23750.0, "PE")]) in held
        assert len(held) == 2 * 5 + 1 and master.hits == 1
        feed.push(NSE_FNO, ids[(23850.0, "PE")], ltp=88.8, oi=7_777_725)
        assert wait_until(lambda: rt.tick() or leg(client, 23850.0, "pe")["oi"] == 7_777_725, 5)
    finally:
        rt.close()
        master.close()


def test_master_maps_legs_by_symbol_expiry_strike_and_type(master_server, tmp_path, fake_dhan):
    now = [datetime(2026, 11, 23, 9, 0, tzinfo=IST)]
    master = InstrumentMaster(master_server.url, tmp_path, ["NIFTY"], lambda: now[0], timeout=5)
    chain = chain_without_ids(fake_dhan.chain)
    assert chain.security_ids is None
    legs = Resolver(master)(chain)
    assert legs[(23850.0, "CE")] == ("NSE_FNO", "47090") and legs[(23850.0, "PE")] == ("NSE_FNO", "47091")
    assert (23800.0, "CE") in legs
    # the BANKNIFTY row with the same strike and expiry, the other expiry and the futures row are not taken
    assert "99999" not in {sid for _, sid in legs.values()} and "47500" not in {sid for _, sid in legs.values()}
    assert master.lot_sizes["NIFTY"] == 75
    assert master_server.hits == 1
    Resolver(master)(chain)
    assert master_server.hits == 1  # at most once a day
    assert (tmp_path / MASTER_FILE).exists()
    now[0] += timedelta(days=1)
    import os

    day_old = (now[0] - timedelta(days=1)).timestamp()
    os.utime(tmp_path / MASTER_FILE, (day_old, day_old))
    Resolver(master)(chain)
    assert master_server.hits == 2  # a new day, a new master


def test_master_unavailable_means_rest_only_with_a_reason(master_server, tmp_path, fake_dhan):
    master_server.fail = True
    master = InstrumentMaster(
        master_server.url, tmp_path, ["NIFTY"], lambda: datetime(2026, 11, 23, tzinfo=IST), timeout=5
    )
    resolver = Resolver(master)
    assert resolver(chain_without_ids(fake_dhan.chain)) is None
    assert "instrument master unavailable" in resolver.reason
    hits = master_server.hits
    assert resolver(chain_without_ids(fake_dhan.chain)) is None and master_server.hits == hits  # no retry storm


def test_no_mapping_means_rest_only_said_on_healthz(dhan_env, feed, fake_dhan, store, tmp_path):
    for row in fake_dhan.chain["data"]["oc"].values():
        for side in ("ce", "pe"):
            row[side].pop("security_id", None)
    config = make_config(
        **dhan_env,
        OI_NOW="",
        OI_MARKET_ALWAYS_OPEN="1",
        OI_FEED="on",
        DHAN_FEED_URL=feed.url,
        DHAN_INSTRUMENTS_URL=closed_port_url() + "/api-scrip-master.csv",
        DHAN_MIN_INTERVAL_SECONDS="0.05",
        OI_DATA_DIR=str(tmp_path),
    )
    app = create_app(config, store=store)
    rt, client = app.extensions["oi"], app.test_client()
    try:

        def reason() -> str:
            rt.tick()
            return (client.get("/healthz").get_json().get("feed") or {}).get("reason") or ""

        assert wait_until(lambda: "instrument master unavailable" in reason(), 10)
        assert reason().startswith("REST, every") and "REST only for NIFTY" in reason()
        assert not feed.connections  # nothing to subscribe: no connection at all
    finally:
        rt.close()
