"""The events strip (issue #15 item 2) in Chromium, live and in the snapshot: the session's stored alerts, newest
first, for the shown symbol; a click replays the event's minute, and the table then shows what /api/oi?at=… says."""

from __future__ import annotations

from datetime import datetime, time

import mongomock
import pytest

from oi import alerts, snapshot
from oi.alerts.events import event_id, event_key
from oi.market.calendar import IST
from oi.store import Store
from oi.web import create_app
from tests.browser import browser_page, serve, serve_dir
from tests.glass.test_dashboard import cell, inr
from tests.helpers import make_config
from tests.session import DAY, record_session

SYMBOLS = ("NIFTY", "BANKNIFTY")
ROWS = "document.querySelectorAll('#rows tr').length === 21"


def fire(store: Store, symbol: str, expiry: str, hhmm: str, strike: float, interval: int | None, text: str) -> dict:
    """Store an event as the alert engine does (same fields, same id)."""
    at = datetime.combine(DAY, time.fromisoformat(hhmm), IST)
    key = event_key("oi-jump", symbol, expiry, strike, "ce+")
    doc = {
        "_id": event_id(key, 1),
        "id": event_id(key, 1),
        "day": DAY.isoformat(),
        "at": at.isoformat(),
        "ts": at.timestamp(),
        "rule": "oi-jump",
        "kind": "oi_change",
        "symbol": symbol,
        "expiry": expiry,
        "strike": strike,
        "direction": "ce+",
        "label": "long build-up",
        "text": text,
        "values": {},
        "interval": interval,
        "url": None,
        "seq": 1,
    }
    assert store.insert_event(DAY, doc)
    return doc


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    demo = record_session(store, SYMBOLS)
    nifty, bank = (demo.expiries(s, DAY)[0] for s in SYMBOLS)
    fire(store, "NIFTY", nifty, "15:05", 24000.0, 15, "NIFTY 24000 CE: long build-up over 15 min")
    fire(store, "NIFTY", nifty, "15:20", 24050.0, None, "NIFTY 24050 CE: a wall")
    fire(store, "BANKNIFTY", bank, "15:10", 52000.0, 5, "BANKNIFTY 52000 CE: long build-up")
    config = make_config(OI_SYMBOLS="NIFTY,BANKNIFTY", OI_NOW="2026-11-23T15:30:00+05:30")
    app = create_app(config, store=store)
    site = tmp_path_factory.mktemp("site")
    snapshot.render_site(
        snapshot.collect(store, SYMBOLS, 1, DAY), site, DAY, SYMBOLS, 10, events=alerts.session_events(store, DAY)
    )
    with serve(app) as live, serve_dir(site) as static:
        yield {"live": live, "snapshot": static.rstrip("/") + "/index.html", "api": app.test_client(), "nifty": nifty}


@pytest.mark.parametrize("where", ["live", "snapshot"])
def test_the_strip_lists_the_events_and_a_click_replays_that_minute(market, where):
    with browser_page(viewport={"width": 1440, "height": 900}) as page:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(market[where] + "#symbol=NIFTY&interval=5")
        page.wait_for_function(ROWS, timeout=15000)
        page.wait_for_function("document.querySelectorAll('#events button').length === 2", timeout=15000)
        # Newest first, this symbol's only.
        assert page.locator("#events button").all_inner_texts() == [
            "15:20NIFTY 24050 CE: a wall",
            "15:05NIFTY 24000 CE: long build-up over 15 min",
        ]
        assert page.locator("#replay-time").inner_text() in ("Live", "15:29 IST")

        page.locator("#events button").nth(1).click()
        page.wait_for_function("document.querySelector('#replay-time').textContent === '15:05 IST'", timeout=10000)
        page.wait_for_function("document.body.dataset.loaded.includes('|15|')", timeout=10000)
        assert page.locator("#interval").input_value() == "15"
        assert page.locator("#events button").nth(1).get_attribute("aria-current") == "true"
        assert "at=2026-11-23T15%3A05%3A00%2B05%3A30" in page.url or "at=2026-11-23T15:05:00+05:30" in page.url

        # The table shows that minute's numbers, as the live API gives them for it.
        api = (
            market["api"]
            .get(
                "/api/oi",
                query_string={
                    "symbol": "NIFTY",
                    "expiry": market["nifty"],
                    "at": "2026-11-23T15:05:00+05:30",
                    "interval": "15",
                    "strikes": "10",
                },
            )
            .get_json()
        )
        assert api["as_of"].startswith("2026-11-23T15:05")
        compared = 0
        for row in api["strikes"]:
            strike = int(row["strike"])
            assert cell(page, strike, "ce-oi") == inr(row["ce"]["oi"]), strike
            assert cell(page, strike, "pe-oi") == inr(row["pe"]["oi"]), strike
            change = row["ce"]["oi_change_interval"]
            assert cell(page, strike, "ce-oi_change_interval") == inr(change, signed=True), strike
            compared += 1
        assert compared == 21

        # Another symbol: its own events.
        page.select_option("#symbol", "BANKNIFTY")
        page.wait_for_function(
            "[...document.querySelectorAll('#events button')].map((b) => b.textContent).join() === "
            "'15:10BANKNIFTY 52000 CE: long build-up'",
            timeout=10000,
        )
        assert errors == []
