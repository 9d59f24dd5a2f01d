"""Issue #11 at the glass: what Chromium actually paints, not the chart library's data arrays.

A chart is right when its canvas after a change (a poll with new data, another interval, other units) is the same
picture, within a small per-pixel tolerance, as the canvas of a page freshly opened on the same minute and settings.
"""

from __future__ import annotations

import base64
from datetime import datetime, time, timedelta

import mongomock
import pytest

from oi.market.calendar import IST
from oi.store import Store
from oi.web import create_app
from tests.browser import browser_page, serve, serve_dir
from tests.helpers import make_config
from tests.session import DAY, record_session

CHARTS = ("chart-oi", "chart-change", "chart-intraday")
ROWS = "document.querySelectorAll('#rows tr').length === 21"

PIXELS = """(ids) => ids.map((id) => {
  const c = document.querySelector('#' + id + ' canvas');
  if (!c) return null;
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let s = '';
  for (let i = 0; i < px.length; i += 8192) s += String.fromCharCode.apply(null, px.subarray(i, i + 8192));
  return [c.width, c.height, btoa(s)];
})"""

# Two animation frames: uPlot commits a redraw in a microtask or the next frame; after two, what is drawn is final.
SETTLE = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"


def pixels(page) -> list:
    page.evaluate(SETTLE)
    return page.evaluate(PIXELS, list(CHARTS))


def differing(a, b) -> float:
    """Share of pixels whose channels differ by more than 40 (of 255) between two canvases of the same size."""
    if a is None or b is None or a[:2] != b[:2]:
        return 1.0
    x, y = base64.b64decode(a[2]), base64.b64decode(b[2])
    bad = sum(1 for i in range(0, len(x), 4) if max(abs(x[i + k] - y[i + k]) for k in range(4)) > 40)
    return bad / (len(x) // 4)


def assert_same_picture(page, fresh, why: str) -> None:
    for name, a, b in zip(CHARTS, pixels(page), pixels(fresh), strict=True):
        share = differing(a, b)
        assert share < 0.002, f"{why}: {name} differs from a freshly loaded page in {share:.1%} of its pixels"


@pytest.fixture
def live():
    """The live app on a recorded 14:50–15:29 session, its clock at 15:30:20, no refresher: the test adds minutes."""
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    demo = record_session(store, ("NIFTY", "BANKNIFTY"))
    config = make_config(
        OI_SYMBOLS="NIFTY,BANKNIFTY", DHAN_MIN_INTERVAL_SECONDS="1", OI_NOW="2026-11-23T15:30:20+05:30"
    )
    app = create_app(config, store=store)
    rt = app.extensions["oi"]

    def add_minute(hhmm: str) -> None:
        at = datetime.combine(DAY, time.fromisoformat(hhmm), IST) + timedelta(seconds=5)
        for symbol in ("NIFTY", "BANKNIFTY"):
            store.save_chain(demo.chain(symbol, demo.expiries(symbol, DAY)[0], at))
        rt.views.sync(DAY)

    with serve(app) as url:
        yield url, add_minute


def open_page(context, url: str):
    page = context.new_page()
    page.goto(url)
    page.wait_for_function(ROWS, timeout=15000)
    page.wait_for_function("window.OI.charts.intraday !== null", timeout=15000)
    return page


def test_charts_follow_polls_interval_and_units(live):
    url, add_minute = live
    with browser_page(viewport={"width": 1440, "height": 900}) as first:
        context = first.context
        errors = []
        first.on("pageerror", lambda e: errors.append(str(e)))
        first.goto(url)
        first.wait_for_function(ROWS, timeout=15000)
        first.wait_for_function("document.body.dataset.loaded.includes('15:29')", timeout=15000)
        before = pixels(first)

        # A poll brings a new minute: every chart repaints, and shows what a fresh page shows.
        add_minute("15:30")
        first.wait_for_function("document.body.dataset.loaded.includes('15:30')", timeout=15000)
        after = pixels(first)
        for name, a, b in zip(CHARTS, before, after, strict=True):
            assert differing(a, b) > 0.0005, f"{name} did not repaint after a poll with new data"
        assert_same_picture(first, open_page(context, url), "after a poll")

        # Another interval: the change chart is redrawn for it.
        first.select_option("#interval", "15")
        first.wait_for_function("document.body.dataset.loaded.includes('|15|')")
        assert_same_picture(first, open_page(context, url), "after the interval change")

        # Lots: bars and axis in lots.
        first.select_option("#units", "lots")
        first.wait_for_function("document.body.dataset.loaded.includes('|lots|')")
        assert_same_picture(first, open_page(context, url), "after the units change")
        assert errors == []


def axis_labels(page, chart: str) -> list[str]:
    """The y axis' tick labels as uPlot drew them on the canvas (its last computed tick strings)."""
    page.evaluate(SETTLE)
    return page.evaluate(f"window.OI.charts[{chart!r}].axes[1]._values")


def test_axis_labels_follow_units_and_marker_labels_do_not_overlap(live):
    url, _ = live
    with browser_page(viewport={"width": 1440, "height": 900}) as page:
        page.goto(url)
        page.wait_for_function(ROWS, timeout=15000)
        page.wait_for_function("window.OI.charts.oi !== null")
        units = axis_labels(page, "oi")
        assert units and all(v == "0" or v.endswith((" L", " Cr")) for v in units), units
        page.select_option("#units", "lots")
        page.wait_for_function("document.body.dataset.loaded.includes('|lots|')")
        lots = axis_labels(page, "oi")
        assert lots != units, "the OI axis kept its units ticks after switching to lots"
        # NIFTY's ATM OI in lots is tens of thousands: the axis says "50K"-style Indian numbers, not lakh of units
        assert all(not v.endswith(" Cr") for v in lots), lots

        # Spot right beside max pain, mid-chart: their labels must not print on top of each other.
        page.evaluate(
            "() => { const d = structuredClone(window.OI.state.last);"
            " d.max_pain = d.atm; d.spot = d.atm + 5; window.OI.render(d); }"
        )
        page.evaluate(SETTLE)
        for chart in ("oi", "change"):
            boxes = page.evaluate(f"window.OI.charts.labels[{chart!r}]")
            assert len(boxes) >= 1, f"{chart}: no marker labels drawn"
            for i, a in enumerate(boxes):
                for b in boxes[i + 1 :]:
                    apart = a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                    apart = apart or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"]
                    assert apart, f"{chart}: labels {a['text']!r} and {b['text']!r} overlap"
            assert any("spot" in b["text"] for b in boxes) and any("max pain" in b["text"] for b in boxes)


@pytest.fixture
def snapshot_site(tmp_path):

    from oi import snapshot

    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    record_session(store, ("NIFTY", "BANKNIFTY"))
    site = tmp_path / "site"
    snapshot.render_site(snapshot.collect(store, ("NIFTY", "BANKNIFTY"), 1, DAY), site, DAY, ("NIFTY", "BANKNIFTY"), 10)
    with serve_dir(site) as url:
        yield url + "index.html"


def test_snapshot_charts_follow_replay_interval_and_units(snapshot_site):
    url = snapshot_site
    with browser_page(viewport={"width": 1440, "height": 900}) as first:
        context = first.context
        first.goto(url)
        first.wait_for_function(ROWS, timeout=15000)
        first.wait_for_function("window.OI.charts.intraday !== null")
        before = pixels(first)
        # Another minute of the replay is the snapshot's "poll": every chart repaints.
        first.locator("#replay").fill("20")
        first.wait_for_function("document.querySelector('#replay-time').textContent === '15:10 IST'")
        after = pixels(first)
        for name, a, b in zip(CHARTS, before, after, strict=True):
            assert differing(a, b) > 0.0005, f"{name} did not repaint for another minute"
        # The same view opened fresh from its URL (the hash) paints the same picture.
        assert_same_picture(first, open_page(context, first.url), "after a replay step")
        first.select_option("#interval", "15")
        first.wait_for_function("document.body.dataset.loaded.includes('|15|')")
        assert_same_picture(first, open_page(context, first.url), "after the interval change")
        first.select_option("#units", "lots")
        first.wait_for_function("document.body.dataset.loaded.includes('|lots|')")
        assert_same_picture(first, open_page(context, first.url), "after the units change")


def test_polling_manners(live):
    url, add_minute = live
    with browser_page() as page:
        calls = []
        page.on("request", lambda r: calls.append(r.url) if "/api/" in r.url else None)
        page.goto(url)
        page.wait_for_function(ROWS, timeout=15000)
        page.wait_for_timeout(4000)  # a few polls on unchanged data
        assert sum("/api/symbols" in u for u in calls) == 1, "symbols are read once"
        assert sum("/api/oi" in u for u in calls) >= 2

        # A new minute: history is asked only for what is newer than the last point, and merged without duplicates.
        calls.clear()
        add_minute("15:30")
        page.wait_for_function("document.body.dataset.loaded.includes('15:30')", timeout=15000)
        history = [u for u in calls if "/api/history" in u]
        assert history and all("since=2026-11-23T15%3A29" in u for u in history), history
        page.wait_for_function("OI.charts.intraday.data[0].length === 41")
        assert page.evaluate("new Set(OI.state.points.map((p) => p.as_of)).size") == 41

        # A hidden tab does not poll; it catches up at once when shown again.
        hide = "(h) => { Object.defineProperty(document, 'hidden', {value: h, configurable: true});"
        hide += " document.dispatchEvent(new Event('visibilitychange')); }"
        page.evaluate(hide, True)
        page.wait_for_timeout(300)
        calls.clear()
        page.wait_for_timeout(4000)
        assert calls == [], f"polled while hidden: {calls}"
        page.evaluate(hide, False)
        page.wait_for_timeout(700)
        assert any("/api/oi" in u for u in calls)


def test_tooltip_at_the_cursor_and_under_a_finger(live):
    url, _ = live
    with browser_page(viewport={"width": 1440, "height": 900}, has_touch=True) as page:
        page.goto(url)
        page.wait_for_function(ROWS, timeout=15000)
        page.wait_for_function("window.OI.charts.oi !== null")
        over = page.locator("#chart-oi .u-over")
        over.scroll_into_view_if_needed()
        b = over.bounding_box()
        x, y = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
        page.mouse.move(x, y)
        tip = page.locator("#chart-oi").locator("xpath=..").locator(".tip")
        tip.wait_for(state="visible")
        t = tip.bounding_box()
        assert abs(t["x"] - x) < 40 and abs(t["y"] - y) < 40, (t, x, y)
        strike = page.evaluate("OI.charts.oi.data[0][OI.charts.oi.cursor.idx]")
        lines = tip.inner_text().splitlines()
        assert lines[0].replace(",", "") == str(strike)
        assert lines[1].startswith("Calls: ") and lines[2].startswith("Puts: ")
        # A tap elsewhere moves it there.
        page.mouse.move(0, 0)
        page.touchscreen.tap(b["x"] + 20, b["y"] + 20)
        page.wait_for_function("OI.charts.oi.cursor.left > 0 && OI.charts.oi.cursor.left < 40")
        t2 = tip.bounding_box()
        assert t2 and abs(t2["x"] - (b["x"] + 20)) < 40
