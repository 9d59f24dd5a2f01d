"""Issue #5 in Chromium: the live page and the static snapshot, driven through the same steps on the same session.

Each step (change the interval, toggle lots, move the replay slider, combine the expiries) must change the numbers
on the page to the expected ones, computed here in Python straight from the stored snapshots, independently of the
code that serves them.
"""

from __future__ import annotations

from datetime import datetime, time

import mongomock
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from oi import analytics, snapshot
from oi.market.calendar import IST
from oi.store import Store
from oi.web import create_app
from tests.browser import browser_page, serve, serve_dir
from tests.helpers import make_config
from tests.session import DAY, record_session

SYMBOLS = ("NIFTY", "BANKNIFTY")
LOT = 65  # NIFTY's default lot size (oi.config.DEFAULT_LOT_SIZES)


def inr(n: int, signed: bool = False) -> str:
    """Indian digit grouping, as the page's Intl.NumberFormat("en-IN") writes it: 1,23,45,678."""
    digits = str(abs(n))
    head, tail = digits[:-3], digits[-3:]
    groups = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    text = ",".join(([head] if head else []) + groups + [tail])
    return ("-" if n < 0 else "+" if signed and n > 0 else "") + text


class Session:
    """Expected values from the stored frames: {expiry: {HH:MM: chain}}."""

    def __init__(self, store: Store) -> None:
        expiries = store.expiries("NIFTY")[0][:2]
        self.expiries = expiries
        self.frames = {e: {f"{c.as_of:%H:%M}": c for c in store.history("NIFTY", e, DAY)} for e in expiries}

    def chain(self, hhmm: str, expiry: int = 0):
        return self.frames[self.expiries[expiry]][hhmm]

    def atm(self, hhmm: str) -> int:
        c = self.chain(hhmm)
        return int(analytics.atm_strike(c.strikes, c.spot))

    def ce_oi(self, hhmm: str, strike: int, expiry: int = 0) -> int:
        return next(s.ce.oi for s in self.chain(hhmm, expiry).strikes if s.strike == strike)

    def change(self, hhmm: str, strike: int, minutes: int) -> int | None:
        t = datetime.combine(DAY, time.fromisoformat(hhmm), IST)
        cutoff = t.timestamp() - 60 * minutes
        back = [k for k, c in self.frames[self.expiries[0]].items() if c.as_of.timestamp() <= cutoff]
        return None if not back else self.ce_oi(hhmm, strike) - self.ce_oi(max(back), strike)


@pytest.fixture(scope="module")
def recorded():
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    record_session(store, SYMBOLS, expiries=2)
    return store, Session(store)


CELL = """([strike, col]) => {
  const head = [...document.querySelectorAll('#chain-head tr:last-child th')];
  const i = head.findIndex((h) => h.dataset.col === col);
  const row = document.querySelector('#rows tr[data-strike="' + strike + '"]');
  return i < 0 || !row ? null : row.children[i].textContent;
}"""


def cell(page, strike: int, col: str) -> str | None:
    return page.evaluate(CELL, [strike, col])


def wait_cell(page, strike: int, col: str, text: str) -> None:
    try:
        page.wait_for_function(f"(a) => ({CELL})(a) === a[2]", arg=[strike, col, text], timeout=10000)
    except PlaywrightTimeout:
        pytest.fail(f"cell {col} at {strike}: expected {text!r}, page shows {cell(page, strike, col)!r}")


def wait_text(page, selector: str, text: str) -> None:
    try:
        page.wait_for_function("(a) => document.querySelector(a[0]).textContent === a[1]", arg=[selector, text])
    except PlaywrightTimeout:
        pytest.fail(f"{selector}: expected {text!r}, page shows {page.locator(selector).inner_text()!r}")


def exercise(page, url: str, s: Session) -> None:
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("document.querySelectorAll('#rows tr').length === 21", timeout=15000)
    last, atm = "15:29", s.atm("15:29")

    # Interval change: 5 minutes is the default, then 15; the column and the summary follow.
    wait_cell(page, atm, "ce-oi_change_interval", inr(s.change(last, atm, 5), signed=True))
    page.select_option("#interval", "15")
    wait_cell(page, atm, "ce-oi_change_interval", inr(s.change(last, atm, 15), signed=True))
    assert page.locator("th[data-col='ce-oi_change_interval']").inner_text() == "Chg 15m"
    assert page.locator("#chart-change-title").text_content() == "Change in OI by strike, last 15 min"

    # Units → lots and back.
    wait_cell(page, atm, "ce-oi", inr(s.ce_oi(last, atm)))
    page.select_option("#units", "lots")
    wait_cell(page, atm, "ce-oi", inr(round(s.ce_oi(last, atm) / LOT)))
    page.select_option("#units", "units")
    wait_cell(page, atm, "ce-oi", inr(s.ce_oi(last, atm)))

    # Charts draw what the table shows: the OI chart's call series is the table's call OI, strike by strike.
    chart = page.evaluate("[window.OI.charts.oi.data[0], window.OI.charts.oi.data[1]]")
    table = page.evaluate("window.OI.state.last.strikes.map((r) => [r.strike, r.ce.oi])")
    assert [list(p) for p in zip(*chart, strict=True)] == table
    assert page.evaluate("window.OI.charts.intraday.data[0].length") == 40  # one point a minute, 14:50–15:29

    # Replay: 15:10 with a 15-minute interval reaches back to 14:55; 15:00 has nothing 15 minutes back (—).
    page.locator("#replay").fill("20")
    wait_text(page, "#replay-time", "15:10 IST")
    atm_then = s.atm("15:10")
    wait_cell(page, atm_then, "ce-oi", inr(s.ce_oi("15:10", atm_then)))
    assert cell(page, atm_then, "ce-oi_change_interval") == inr(s.change("15:10", atm_then, 15), signed=True)
    assert page.locator("#spot").inner_text() == format_inr_money(s.chain("15:10").spot)
    page.locator("#replay").fill("10")
    wait_text(page, "#replay-time", "15:00 IST")
    wait_cell(page, s.atm("15:00"), "ce-oi_change_interval", "—")
    page.click("#replay-latest")
    wait_cell(page, atm, "ce-oi", inr(s.ce_oi(last, atm)))

    # Combined expiries: OI summed over both, prices not shown.
    page.select_option("#expiry", "all")
    wait_cell(page, atm, "ce-oi", inr(s.ce_oi(last, atm, 0) + s.ce_oi(last, atm, 1)))
    assert cell(page, atm, "ce-ltp") == "—" and cell(page, atm, "pe-iv") == "—"

    # Greeks toggle adds the columns (single expiry: the delta is there, zero Greeks show as —).
    page.select_option("#expiry", s.expiries[0])
    page.check("#greeks")
    chain = s.chain(last)
    delta = next(x.ce.delta for x in chain.strikes if x.strike == atm)
    wait_cell(page, atm, "ce-delta", f"{delta:.3f}")
    assert errors == []


def format_inr_money(x: float) -> str:
    whole, frac = f"{x:.2f}".split(".")
    return inr(int(whole)) + "." + frac


def test_live_dashboard_features(recorded):
    store, s = recorded
    app = create_app(
        make_config(OI_SYMBOLS="NIFTY,BANKNIFTY", OI_EXPIRIES_PER_SYMBOL="2", OI_NOW="2026-11-23T15:30:00+05:30"),
        store=store,
    )
    with serve(app) as url, browser_page() as page:
        exercise(page, url, s)


def test_snapshot_dashboard_features(recorded, tmp_path):
    store, s = recorded
    site = tmp_path / "site"
    snapshot.render_site(snapshot.collect(store, SYMBOLS, 2, DAY), site, DAY, SYMBOLS, 10)
    with serve_dir(site) as url, browser_page() as page:
        exercise(page, url + "index.html", s)


def test_theme_toggle_narrow_screen_and_keyboard(recorded):
    store, _ = recorded
    app = create_app(make_config(OI_SYMBOLS="NIFTY,BANKNIFTY", OI_NOW="2026-11-23T15:30:00+05:30"), store=store)
    with serve(app) as url, browser_page(viewport={"width": 390, "height": 844}, color_scheme="dark") as page:
        page.goto(url)
        page.wait_for_function("document.querySelectorAll('#rows tr').length === 21", timeout=15000)
        background = "getComputedStyle(document.body).backgroundColor"
        dark = page.evaluate(background)
        assert page.locator("#theme").inner_text() == "◐ Auto"
        page.click("#theme")  # auto → light: pinned light despite the dark system preference
        assert page.evaluate("document.documentElement.dataset.theme") == "light"
        assert page.evaluate(background) != dark
        page.click("#theme")  # → dark
        assert page.evaluate(background) == dark
        page.reload()  # remembered
        page.wait_for_function("document.querySelectorAll('#rows tr').length === 21")
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        # 390 px: nothing sticks out of the page; the wide chain table scrolls inside its own box.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # Every control is reachable with the Tab key, in reading order (on a phone, once the drawer is open).
        page.click("#controls-toggle")
        page.locator("body").focus()
        reached = []
        for _ in range(16):
            page.keyboard.press("Tab")
            reached.append(page.evaluate("document.activeElement.id"))
        wanted = ["theme", "symbol", "expiry", "strikes", "interval", "units", "greeks", "quotes", "replay"]
        assert [r for r in reached if r in wanted][: len(wanted)] == wanted
        # and the slider moves with the keyboard
        page.focus("#replay")
        page.keyboard.press("Home")
        page.wait_for_function("document.querySelector('#replay-time').textContent === '14:50 IST'")
