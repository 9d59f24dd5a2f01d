"""Day over day (issue #15 item 4) in Chromium, live and in the snapshot: "OI vs close of" adds a Δ column whose cells
and total are the OI shown minus the OI at that session's close; the sessions chart draws OI at each close and now,
for the ATM strike or the chosen ones, with the compared session marked."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import mongomock
import pytest

from oi import closes, snapshot
from oi.closes import SessionClose
from oi.store import Store
from oi.web import create_app
from tests.browser import browser_page, serve, serve_dir
from tests.glass.test_charts import PIXELS, SETTLE, differing
from tests.glass.test_dashboard import cell, inr
from tests.helpers import make_config
from tests.session import record_session

D1, D2, D3 = date(2026, 11, 23), date(2026, 11, 25), date(2026, 11, 26)  # Mon, Wed, Thu (the 24th is a holiday)
SYMBOLS = ("NIFTY", "BANKNIFTY")
ROWS = "document.querySelectorAll('#rows tr').length === 21"
FOOT = """(col) => {
  const head = [...document.querySelectorAll('#chain-head tr:last-child th')];
  const i = head.findIndex((h) => h.dataset.col === col);
  return i < 0 ? null : document.querySelector('#chain-foot tr').children[i].textContent;
}"""


# Whether the marker's label box (CSS px in the canvas, as drawn) keeps clear of every point of every series.
LABEL_CLEAR = """() => {
  const u = window.OI.charts.sessions;
  const box = window.OI.charts.labels.sessions[0];
  const dpr = devicePixelRatio;
  for (let s = 1; s < u.data.length; s++)
    for (let i = 0; i < u.data[0].length; i++) {
      if (u.data[s][i] === null) continue;
      const x = u.valToPos(u.data[0][i], 'x', true) / dpr;
      const y = u.valToPos(u.data[s][i], 'y', true) / dpr;
      if (x >= box.x - 4 && x <= box.x + box.w + 4 && y >= box.y - 4 && y <= box.y + box.h + 4) return false;
    }
  return true;
}"""


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    for day in (D1, D2, D3):
        demo = record_session(store, SYMBOLS, day=day, seed=day.day, expiries=2)  # the 23rd expires itself
    expiry = demo.expiries("NIFTY", D3)[0]
    closes.record(store, [(s, demo.expiries(s, D3)[0]) for s in SYMBOLS], [D1, D2])
    config = make_config(OI_SYMBOLS="NIFTY,BANKNIFTY", OI_NOW="2026-11-26T15:30:00+05:30")
    app = create_app(config, store=store)
    site = tmp_path_factory.mktemp("site")
    datasets = snapshot.collect(store, SYMBOLS, 1, D3)
    snapshot.attach_closes(store, datasets, D3, config.compare_sessions)
    snapshot.render_site(datasets, site, D3, SYMBOLS, 10)
    with serve(app) as live, serve_dir(site) as static:
        yield {
            "live": live,
            "snapshot": static.rstrip("/") + "/index.html",
            "api": app.test_client(),
            "store": store,
            "expiry": expiry,
        }


def sessions_canvas(page) -> list:
    page.evaluate(SETTLE)
    return page.evaluate(PIXELS, ["chart-sessions"])[0]


@pytest.mark.parametrize("where", ["live", "snapshot"])
def test_oi_vs_an_earlier_close_in_the_table_and_the_sessions_chart(market, where):
    store, expiry = market["store"], market["expiry"]
    close = SessionClose.from_chain(store.history("NIFTY", expiry, D1)[-1])
    close_oi = {k: (c, p) for k, c, p in zip(close.strikes, close.ce_oi, close.pe_oi, strict=True)}
    now = market["api"].get("/api/oi", query_string={"symbol": "NIFTY", "strikes": "10"}).get_json()

    with browser_page(viewport={"width": 1440, "height": 900}, accept_downloads=True) as page:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(market[where] + "#symbol=NIFTY&interval=5&vs=2026-11-23")
        page.wait_for_function(ROWS, timeout=15000)
        page.wait_for_function("document.querySelector('[data-col=\"ce-oi_vs\"]') !== null", timeout=10000)
        # The picker offers the earlier sessions, newest first; the URL's day is chosen.
        options = page.eval_on_selector("#vs", "s => [...s.options].map((o) => o.value)")
        assert options == ["", "2026-11-25", "2026-11-23"]
        assert page.locator("#vs").input_value() == "2026-11-23"
        assert page.locator('[data-col="ce-oi_vs"]').inner_text() == "Δ 23 Nov"

        # Every cell: OI shown minus OI at the 23rd's close, for both legs; the total over the whole chain.
        for row in now["strikes"]:
            k = row["strike"]
            ce, pe = close_oi[float(k)]
            assert cell(page, k, "ce-oi_vs") == inr(row["ce"]["oi"] - ce, signed=True), k
            assert cell(page, k, "pe-oi_vs") == inr(row["pe"]["oi"] - pe, signed=True), k
        assert page.evaluate(FOOT, "ce-oi_vs") == inr(now["totals"]["ce_oi"] - sum(close.ce_oi), signed=True)
        assert page.evaluate(FOOT, "pe-oi_vs") == inr(now["totals"]["pe_oi"] - sum(close.pe_oi), signed=True)

        # The sessions chart: one tick per earlier session and one for now (the snapshot's own day), the compared
        # session marked, and the ATM strike's legs drawn until a strike is chosen.
        assert page.locator("#sessions-box").is_visible()
        last = "Now" if where == "live" else "26 Nov"
        assert page.evaluate("window.OI.charts.sessions.axes[0]._values") == ["23 Nov", "25 Nov", last]
        assert [b["text"] for b in page.evaluate("window.OI.charts.labels.sessions")] == ["vs 23 Nov"]
        atm = now["atm"]
        assert page.locator("#chart-sessions-title").inner_text().endswith(inr(atm))
        series = page.evaluate("window.OI.charts.sessions.data")
        assert series[1][-1] == next(s["ce"]["oi"] for s in now["strikes"] if s["strike"] == atm)
        assert series[1][0] == close_oi[float(atm)][0]
        before = sessions_canvas(page)
        pick = atm + 100
        page.locator(f'#rows tr[data-strike="{pick}"] th.strike').click()
        page.wait_for_function(
            "(t) => document.querySelector('#chart-sessions-title').textContent.endsWith(t)", arg=inr(pick)
        )
        assert differing(before, sessions_canvas(page)) > 0.002, "the chart did not redraw for the chosen strike"

        # The CSV names the session its Δ columns are against.
        with page.expect_download() as dl:
            page.click("#csv")
        lines = Path(dl.value.path()).read_text().splitlines()
        header = [h.strip('"') for h in lines[0].split(",")]
        assert "ce-oi_vs_2026-11-23" in header and "pe-oi_vs_2026-11-23" in header

        # "—": the column goes, and so does the URL's vs.
        page.select_option("#vs", "")
        page.wait_for_function("document.querySelector('[data-col=\"ce-oi_vs\"]') === null", timeout=10000)
        assert "vs=" not in page.url
        assert page.evaluate("window.OI.charts.labels.sessions") == []
        assert errors == []


def test_the_vs_label_never_covers_the_top_point(market):
    """The compared session's label sits at the top of the chart: with the highest point of the chart right under it
    (a strike whose OI peaked at that session's close), the label must still keep clear of it."""
    store, expiry = market["store"], market["expiry"]
    now = market["api"].get("/api/oi", query_string={"symbol": "NIFTY", "strikes": "10"}).get_json()
    days = {d: SessionClose.from_chain(store.history("NIFTY", expiry, d)[-1]) for d in (D1, D2)}
    chosen = None
    for row in now["strikes"]:
        k = float(row["strike"])
        points = [(row[side]["oi"], None) for side in ("ce", "pe")]
        for day, close in days.items():
            j = close.strikes.index(k)
            points += [(close.ce_oi[j], day), (close.pe_oi[j], day)]
        _, day = max(points, key=lambda p: p[0])
        if day is not None:
            chosen = (row["strike"], day)
            break
    assert chosen, "no strike peaked at an earlier close in this recording"
    strike, day = chosen
    with browser_page(viewport={"width": 1440, "height": 900}) as page:
        page.goto(market["live"] + f"?symbol=NIFTY&pick={strike}&vs={day}")
        page.wait_for_function(ROWS, timeout=15000)
        page.wait_for_function("(window.OI.charts.labels.sessions || []).length === 1", timeout=10000)
        assert page.evaluate(LABEL_CLEAR), f"the 'vs' label covers a point ({strike} on {day})"


def test_a_day_without_a_stored_close_is_said_and_ignored(market):
    with browser_page(viewport={"width": 1440, "height": 900}) as page:
        page.goto(market["live"] + "?symbol=NIFTY&vs=2026-11-20")
        page.wait_for_function(ROWS, timeout=15000)
        page.wait_for_function("!document.querySelector('#notice').hidden", timeout=10000)
        assert "No stored close for 2026-11-20" in page.locator("#notice").inner_text()
        assert page.locator('[data-col="ce-oi_vs"]').count() == 0
        assert page.locator("#vs").input_value() == ""


def test_the_snapshot_carries_what_the_live_api_serves(market):
    """The snapshot provider's closes answer like /api/closes (on the strikes the snapshot keeps)."""
    api = (
        market["api"]
        .get("/api/closes", query_string={"symbol": "NIFTY", "expiry": market["expiry"]})
        .get_json()["sessions"]
    )
    with browser_page() as page:
        page.goto(market["snapshot"] + "#symbol=NIFTY")
        page.wait_for_function(ROWS, timeout=15000)
        got = page.evaluate("window.OI.state.closes")
    assert [s["day"] for s in got] == [s["day"] for s in api] == ["2026-11-23", "2026-11-25"]
    for mine, theirs in zip(got, api, strict=True):
        by_strike = dict(zip(theirs["strikes"], zip(theirs["ce_oi"], theirs["pe_oi"], strict=True), strict=True))
        assert mine["strikes"] and set(mine["strikes"]) <= set(by_strike)
        assert [by_strike[k] for k in mine["strikes"]] == list(zip(mine["ce_oi"], mine["pe_oi"], strict=True))
        for key in ("as_of", "spot", "ce_oi_total", "pe_oi_total"):
            assert mine[key] == theirs[key], key
