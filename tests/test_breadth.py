"""Breadth (#13 item 6): F&O stocks in OI_SYMBOLS resolved from Dhan's instrument master served on loopback, their
chains fetched by the real SDK from the fake Dhan REST server, unknown ones reported and skipped, lot sizes from the
master, kinds on /api/symbols, and the picker's groups in Chromium."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from oi.config import ConfigError, from_env
from oi.feed.instruments import InstrumentMaster
from oi.web import create_app
from tests.browser import browser_page, serve
from tests.fakes import closed_port_url
from tests.fakes.dhan import CLIENT_ID, TOKEN
from tests.helpers import MONDAY_1100, make_config
from tests.test_feed_app import MASTER_CSV, MasterServer
from tests.test_web import fill

RELIANCE, HDFCBANK = 2885, 1333  # the NSE equity rows' ids in the fixture (BSE's RELIANCE row is 500325)


@pytest.fixture
def master_server():
    server = MasterServer(MASTER_CSV.read_bytes())
    yield server
    server.close()


def app_for(dhan_env, store, timer, tmp_path, master_url: str, **env: str):
    config = make_config(**dhan_env, DHAN_INSTRUMENTS_URL=master_url, OI_DATA_DIR=str(tmp_path), **env)
    return create_app(config, store=store, timer=timer)


def chain_payloads(fake_dhan) -> list[tuple[object, object]]:
    return [(p.get("UnderlyingScrip"), p.get("UnderlyingSeg")) for _, _, p in fake_dhan.chain_calls()]


def test_stock_resolved_from_the_master_and_its_chain_fetched(
    dhan_env, fake_dhan, store, timer, tmp_path, master_server
):
    fake_dhan.add_underlying(RELIANCE, "NSE_EQ")
    app = app_for(dhan_env, store, timer, tmp_path, master_server.url, OI_SYMBOLS="NIFTY,RELIANCE")
    rt, client = app.extensions["oi"], app.test_client()
    assert rt.config.underlyings["RELIANCE"] == (RELIANCE, "NSE_EQ")  # NSE's equity row, not BSE's
    fill(rt, timer, 4)  # expiry list + chain, for each symbol
    assert (RELIANCE, "NSE_EQ") in chain_payloads(fake_dhan) and (13, "IDX_I") in chain_payloads(fake_dhan)
    r = client.get("/api/oi?symbol=RELIANCE")
    assert r.status_code == 200 and r.get_json()["symbol"] == "RELIANCE"
    listed = {s["symbol"]: s for s in client.get("/api/symbols").get_json()["symbols"]}
    assert (listed["NIFTY"]["kind"], listed["RELIANCE"]["kind"]) == ("index", "stock")
    assert listed["RELIANCE"]["lot_size"] == 500  # from the master's option rows
    assert listed["NIFTY"]["lot_size"] == 75  # the master's, over the built-in 65
    health = client.get("/healthz").get_json()
    assert health["status"] == "ok" and "symbols_disabled" not in health
    assert master_server.hits == 1
    # a second process on the same data dir reads today's cached copy
    app_for(dhan_env, store, timer, tmp_path, master_server.url, OI_SYMBOLS="NIFTY,RELIANCE")
    assert master_server.hits == 1


def test_wrong_segment_is_refused_by_the_fake(dhan_env, fake_dhan, store, timer, tmp_path, master_server):
    """The fake checks UnderlyingSeg: a stock asked for as an index (IDX_I) is Dhan's 813, so the test above means
    something."""
    fake_dhan.add_underlying(RELIANCE, "NSE_EQ")
    app = app_for(
        dhan_env, store, timer, tmp_path, master_server.url, OI_SYMBOLS="RELIANCE", OI_UNDERLYINGS="RELIANCE:2885"
    )
    rt = app.extensions["oi"]
    fill(rt, timer, 2)
    assert rt.views.status.error and "security id" in (rt.views.status.reason or "")
    assert master_server.hits == 0  # OI_UNDERLYINGS overrides: the master is not needed


def test_unknown_stock_is_reported_and_the_others_served(
    dhan_env, fake_dhan, store, timer, tmp_path, master_server, caplog
):
    caplog.set_level(logging.ERROR, logger="oi.breadth")
    fake_dhan.add_underlying(HDFCBANK, "NSE_EQ")
    app = app_for(dhan_env, store, timer, tmp_path, master_server.url, OI_SYMBOLS="NIFTY,NOSUCHCO,HDFCBANK")
    rt, client = app.extensions["oi"], app.test_client()
    assert "NOSUCHCO is not served: not in Dhan's instrument master" in caplog.text
    fill(rt, timer, 4)
    assert {scrip for scrip, _ in chain_payloads(fake_dhan)} == {13, HDFCBANK}  # nothing asked for NOSUCHCO
    assert [s["symbol"] for s in client.get("/api/symbols").get_json()["symbols"]] == ["NIFTY", "HDFCBANK"]
    assert client.get("/api/oi?symbol=HDFCBANK").status_code == 200
    assert client.get("/api/oi?symbol=NOSUCHCO").status_code == 400
    r = client.get("/healthz")
    # the served symbols go live: a 200 (the morning flip proceeds) that names the disabled one
    assert r.status_code == 200 and "NOSUCHCO disabled (not in Dhan's instrument master)" in r.get_json()["warning"]
    assert r.get_json()["symbols_disabled"] == {"NOSUCHCO": "not in Dhan's instrument master"}
    assert rt.config.underlyings["HDFCBANK"] == (HDFCBANK, "NSE_EQ")  # the EQ series row, not BE's 99333


def test_an_alert_rule_naming_a_disabled_stock_does_not_stop_the_service(
    dhan_env, fake_dhan, store, timer, tmp_path, master_server
):
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "pcr"\nkind = "pcr_cross"\nlevel = 1\nsymbols = ["NOSUCHCO"]\n')
    app = app_for(
        dhan_env, store, timer, tmp_path, master_server.url, OI_SYMBOLS="NIFTY,NOSUCHCO", OI_ALERTS_FILE=str(rules)
    )
    assert app.extensions["oi"].config.symbols == ("NIFTY",)


def test_master_unavailable_disables_unresolved_stocks_only(dhan_env, fake_dhan, store, timer, tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="oi.breadth")
    url = closed_port_url() + "/api-scrip-master.csv"
    app = app_for(dhan_env, store, timer, tmp_path, url, OI_SYMBOLS="NIFTY,RELIANCE")
    rt, client = app.extensions["oi"], app.test_client()
    assert rt.config.symbols == ("NIFTY",)
    assert "RELIANCE is not served: instrument master unavailable" in caplog.text
    assert "add it to OI_UNDERLYINGS" in caplog.text
    fill(rt, timer, 2)
    assert client.get("/api/oi?symbol=NIFTY").status_code == 200
    assert "RELIANCE disabled (instrument master unavailable" in client.get("/healthz").get_json()["warning"]


def test_oi_lot_sizes_beats_the_master(dhan_env, fake_dhan, store, timer, tmp_path, master_server):
    fake_dhan.add_underlying(HDFCBANK, "NSE_EQ")
    # NIFTY:65 equals the built-in value: set explicitly, it must still win over the master's 75
    app = app_for(
        dhan_env, store, timer, tmp_path, master_server.url, OI_SYMBOLS="NIFTY,HDFCBANK", OI_LOT_SIZES="NIFTY:65"
    )
    lots = app.extensions["oi"].config.lot_sizes
    assert (lots["NIFTY"], lots["HDFCBANK"], lots["BANKNIFTY"]) == (65, 550, 30)  # BANKNIFTY: the master's 30


def test_master_read_by_header_names(tmp_path):
    """Columns in another order: read by header name, still the right ids and lot sizes."""
    rows = [line.split(",") for line in MASTER_CSV.read_text().splitlines()]
    order = list(reversed(range(len(rows[0]))))
    (tmp_path / "src.csv").write_text("\n".join(",".join(r[i] for i in order) for r in rows) + "\n")
    server = MasterServer((tmp_path / "src.csv").read_bytes())
    try:
        symbols = ["RELIANCE", "HDFCBANK", "NIFTY"]
        master = InstrumentMaster(server.url, tmp_path, symbols, lambda: MONDAY_1100, timeout=5)
        assert master.ensure()
        assert master.underlyings == {
            "RELIANCE": (RELIANCE, "NSE_EQ"),
            "HDFCBANK": (HDFCBANK, "NSE_EQ"),
            "NIFTY": (13, "IDX_I"),
        }
        assert master.lot_sizes == {"NIFTY": 75, "RELIANCE": 500, "HDFCBANK": 550}
        # the feed's legs of a stock's options come from the same read
        assert master.legs("RELIANCE", "2026-11-25", [1300.0, 1310.0]) == {
            (1300.0, "CE"): ("NSE_FNO", "60001"),
            (1300.0, "PE"): ("NSE_FNO", "60002"),
        }
    finally:
        server.close()


def test_config_accepts_stock_names_for_dhan_only_and_without_the_network():
    dhan = {"DHAN_CLIENT_ID": CLIENT_ID, "DHAN_ACCESS_TOKEN": TOKEN}
    assert from_env({**dhan, "OI_SYMBOLS": "NIFTY,reliance,M&M,BAJAJ-AUTO"}).symbols[1:] == (
        "RELIANCE",
        "M&M",
        "BAJAJ-AUTO",
    )
    for bad in ("NIFTY 50", "RELIANCE$", "1ABC"):
        with pytest.raises(ConfigError, match="OI_SYMBOLS"):
            from_env({**dhan, "OI_SYMBOLS": bad})
    with pytest.raises(ConfigError, match="OI_SYMBOLS"):  # the demo has no master to ask
        from_env({"OI_SYMBOLS": "NIFTY,RELIANCE"})
    assert from_env({"OI_LOT_SIZES": "NIFTY:65"}).lot_sizes.explicit == {"NIFTY"}


def test_picker_groups_indices_and_stocks_in_chromium(tmp_path):
    env = {
        "OI_DATA_DIR": str(tmp_path),
        "DHAN_MIN_INTERVAL_SECONDS": "0.1",
        "OI_SYMBOLS": "NIFTY,RELIANCE,BANKNIFTY",
        "OI_UNDERLYINGS": "RELIANCE:2885:NSE_EQ",
    }
    app = create_app(from_env(env))
    rt = app.extensions["oi"]
    rt.start()
    try:
        with serve(app) as url, browser_page() as page:
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_function("document.querySelectorAll('#symbol optgroup').length === 2", timeout=15000)
            groups = page.evaluate(
                "Array.from(document.querySelectorAll('#symbol optgroup'))"
                ".map((g) => [g.label, Array.from(g.children).map((o) => o.value)])"
            )
            assert groups == [["Indices", ["NIFTY", "BANKNIFTY"]], ["Stocks", ["RELIANCE"]]]
            page.select_option("#symbol", "RELIANCE")
            page.wait_for_function("new URLSearchParams(location.search).get('symbol') === 'RELIANCE'")
            page.wait_for_function("document.querySelector('#rows tr') !== null", timeout=15000)
            assert page.locator("#symbol").input_value() == "RELIANCE"
            assert errors == []
    finally:
        rt.close()


def test_snapshot_provider_gives_the_same_kinds(store, tmp_path):
    from oi import snapshot
    from tests.browser import serve_dir
    from tests.session import DAY, record_session

    symbols = ("NIFTY", "RELIANCE")
    record_session(store, symbols)
    site = tmp_path / "site"
    kinds = {"NIFTY": "index", "RELIANCE": "stock"}
    snapshot.render_site(snapshot.collect(store, symbols, 1, DAY), site, DAY, symbols, 10, kinds=kinds)
    with serve_dir(site) as url, browser_page() as page:
        page.goto(url + "index.html")
        page.wait_for_function("document.querySelectorAll('#symbol optgroup').length === 2", timeout=15000)
        labels = page.evaluate("Array.from(document.querySelectorAll('#symbol optgroup')).map((g) => g.label)")
        assert labels == ["Indices", "Stocks"]
        assert page.evaluate("document.querySelector('optgroup[label=Stocks] option').value") == "RELIANCE"


def test_workers_starting_together_download_the_master_once(tmp_path, master_server):
    """gunicorn's workers resolve at the same moment: the cross-process lock lets one download, the others read."""
    handler = master_server.server.RequestHandlerClass
    original = handler.do_GET

    def slow_get(self):
        time.sleep(0.5)  # a slow download keeps the others waiting on the lock
        original(self)

    handler.do_GET = slow_get
    masters = [
        InstrumentMaster(master_server.url, tmp_path, ["RELIANCE"], lambda: MONDAY_1100, timeout=5) for _ in range(3)
    ]
    threads = [threading.Thread(target=m.ensure) for m in masters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert master_server.hits == 1
    assert all(m.underlyings == {"RELIANCE": (RELIANCE, "NSE_EQ")} for m in masters)


def test_nightly_snapshot_uses_the_resolved_symbols_kinds_and_lot_sizes(store, tmp_path, monkeypatch):
    """upload --out with Dhan credentials: the master already on disk (never downloaded here) gives RELIANCE's kind
    and lot size; NOSUCHCO, which the service left out, has no data and does not block the render."""
    import json
    import shutil

    from oi.cli import upload_main
    from oi.feed.instruments import MASTER_FILE
    from tests.session import record_session

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    data = tmp_path / "var"
    data.mkdir()
    shutil.copy(MASTER_CSV, data / MASTER_FILE)
    record_session(store, ("NIFTY", "RELIANCE"))
    env = {
        "DHAN_CLIENT_ID": CLIENT_ID,
        "DHAN_ACCESS_TOKEN": TOKEN,
        "OI_SYMBOLS": "NIFTY,RELIANCE,NOSUCHCO",
        "OI_DATA_DIR": str(data),
        "DHAN_INSTRUMENTS_URL": closed_port_url() + "/api-scrip-master.csv",
        "OI_NOW": "2026-11-23T16:00:00+05:30",
    }
    assert upload_main(["--out", str(tmp_path / "site")], env, store=store) == 0
    html = (tmp_path / "site" / "index.html").read_text()
    raw = html.split('id="oi-config">', 1)[1].split("</script>", 1)[0]
    page = json.loads(raw)
    assert page["symbols"] == ["NIFTY", "RELIANCE"]
    assert page["kinds"] == {"NIFTY": "index", "RELIANCE": "stock"}
    main = next(p for p in (tmp_path / "site" / "data").glob("RELIANCE_*.js") if ".detail." not in p.name)
    assert '"lot_size":500' in main.read_text()  # the master's (no built-in size for a stock)


def test_a_slow_master_costs_the_stocks_not_the_start_up(dhan_env, fake_dhan, store, timer, tmp_path, monkeypatch):
    """gunicorn kills a worker silent for 30 s: a master trickling in is abandoned at the start-up budget."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import oi.breadth

    filler = "".join(f"BSE,E,{9 * 10**5 + n},EQUITY,,SCRIP{n},1.0,S,,0,XX,0.01,NA,ES,A,S\n" for n in range(40_000))
    body = MASTER_CSV.read_bytes() + filler.encode()  # ~2 MB, as the real one is tens of MB
    stop = threading.Event()

    class Trickle(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(0, len(body), 16_384):  # 160 KB/s: over 10 s for the whole file
                if stop.wait(0.1):
                    return
                self.wfile.write(body[i : i + 16_384])
                self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setattr(oi.breadth, "START_BUDGET_SECONDS", 1.0)
    try:
        url = f"http://127.0.0.1:{server.server_port}/api-scrip-master.csv"
        app = app_for(dhan_env, store, timer, tmp_path, url, OI_SYMBOLS="NIFTY,RELIANCE")
        rt = app.extensions["oi"]
        assert rt.config.symbols == ("NIFTY",)
        assert rt.breadth.disabled["RELIANCE"].startswith("instrument master unavailable (TimeoutError)")
        assert not list(tmp_path.glob("*.part"))  # the partial download is not left behind
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


def test_the_feed_follows_a_stock_resolved_from_the_master(dhan_env, fake_dhan, store, tmp_path, master_server):
    """With the feed on, the stock's option legs and the stock itself (NSE_EQ, its master id) are subscribed."""
    from oi.feed import protocol
    from tests.fakes.feed import FakeFeed
    from tests.test_feed import wait_until

    fake_dhan.add_underlying(RELIANCE, "NSE_EQ")
    feed = FakeFeed().start()
    config = make_config(
        **dhan_env,
        OI_SYMBOLS="RELIANCE",
        OI_NOW="",
        OI_MARKET_ALWAYS_OPEN="1",
        OI_FEED="on",
        DHAN_FEED_URL=feed.url,
        DHAN_INSTRUMENTS_URL=master_server.url,
        DHAN_MIN_INTERVAL_SECONDS="0.05",
        OI_FEED_STRIKES="2",
        OI_DATA_DIR=str(tmp_path),
    )
    rt = create_app(config, store=store).extensions["oi"]
    try:
        assert wait_until(lambda: rt.tick() or rt.refresher.feed.status().live, 10)
        held = feed.held(0)
        assert (protocol.SEGMENTS["NSE_EQ"], RELIANCE) in held
        assert len(held) == 2 * 5 + 1  # ATM ± 2, both legs, and the stock
        assert master_server.hits == 1  # one download for resolution and the feed
    finally:
        rt.close()
        feed.stop()


def test_a_master_without_legs_of_the_followed_symbols_still_resolves(
    dhan_env, fake_dhan, store, timer, tmp_path, master_server
):
    """No SENSEX options in the fixture: the master was read all the same, so NOSUCHCO is unknown, not unavailable."""
    app = app_for(dhan_env, store, timer, tmp_path, master_server.url, OI_SYMBOLS="SENSEX,NOSUCHCO")
    assert app.extensions["oi"].breadth.disabled == {"NOSUCHCO": "not in Dhan's instrument master"}
