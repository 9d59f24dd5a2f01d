"""Issue #11 in Chromium, live page and snapshot alike: layout boxes, the URL round trip, contrast, and the new
views, whose numbers are computed here straight from the stored frames (as tests/test_dashboard.py does)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import mongomock
import pytest

from oi import snapshot
from oi.store import Store
from oi.web import create_app
from tests.browser import browser_page, serve, serve_dir
from tests.glass.test_dashboard import Session, cell, inr, wait_cell
from tests.helpers import make_config
from tests.session import DAY, record_session

SYMBOLS = ("NIFTY", "BANKNIFTY")
ROWS = "document.querySelectorAll('#rows tr').length === 21"
LOT = 65


@pytest.fixture(scope="module")
def recorded():
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    record_session(store, SYMBOLS, expiries=2)
    return store, Session(store)


@pytest.fixture(scope="module")
def live_url(recorded):
    store, _ = recorded
    config = make_config(OI_SYMBOLS="NIFTY,BANKNIFTY", OI_EXPIRIES_PER_SYMBOL="2", OI_NOW="2026-11-23T15:30:00+05:30")
    with serve(create_app(config, store=store)) as url:
        yield url


@pytest.fixture(scope="module")
def snapshot_url(recorded, tmp_path_factory):
    store, _ = recorded
    site = tmp_path_factory.mktemp("site")
    snapshot.render_site(snapshot.collect(store, SYMBOLS, 2, DAY), site, DAY, SYMBOLS, 10)
    with serve_dir(site) as url:
        yield url + "index.html"


@pytest.fixture(params=["live", "snapshot"])
def url(request):
    return request.getfixturevalue(f"{request.param}_url")


def box(page, selector: str) -> dict:
    return page.evaluate(
        "(s) => { const r = document.querySelector(s).getBoundingClientRect();"
        " return {x: r.left, y: r.top, w: r.width, h: r.height}; }",
        selector,
    )


def query(page) -> dict:
    parts = urlsplit(page.url)
    return {k: v[0] for k, v in parse_qs(parts.query or parts.fragment).items()}


# --- layout -----------------------------------------------------------------------------------------------------
def test_chain_first_on_a_desktop(url):
    with browser_page(viewport={"width": 1440, "height": 900}) as page:
        page.goto(url)
        page.wait_for_function(ROWS, timeout=15000)
        atm = box(page, "#rows tr.atm")
        assert atm["y"] >= 0 and atm["y"] + atm["h"] <= 900, f"ATM row at {atm}: not in the first screen"
        assert page.evaluate("document.documentElement.scrollWidth") <= 1440
        # Greeks and bid/ask on: the table scrolls sideways in its box, the strike column stays in view.
        page.check("#greeks")
        page.check("#quotes")
        page.wait_for_function("document.querySelector('th[data-col=\"ce-bid_qty\"]') !== null")
        page.evaluate("document.querySelector('#chain-wrap').scrollLeft = 100000")
        wrap, strike = box(page, "#chain-wrap"), box(page, "#rows tr.atm th.strike")
        assert strike["x"] >= wrap["x"] - 1 and strike["x"] + strike["w"] <= wrap["x"] + wrap["w"] + 1, (strike, wrap)


def test_compact_phone_layout(url):
    with browser_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True) as page:
        page.goto(url)
        page.wait_for_function(ROWS, timeout=15000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        strike = box(page, "#rows tr.atm th.strike")
        assert strike["x"] >= 0 and strike["x"] + strike["w"] <= 390, f"ATM strike cell at {strike}"
        shown = page.evaluate(
            "[...document.querySelectorAll('#chain-head tr:last-child th')]"
            ".filter((h) => getComputedStyle(h).display !== 'none').map((h) => h.dataset.col || 'strike')"
        )
        assert shown == ["ce-oi", "ce-oi_change_interval", "strike", "pe-oi_change_interval", "pe-oi"]
        # The controls live in a drawer: closed, then open.
        assert not page.locator("#symbol").is_visible()
        page.click("#controls-toggle")
        assert page.locator("#symbol").is_visible()
        # Scroll the chain: the header row stays on screen, pinned to the top of the chain's box.
        page.locator("#chain-wrap").scroll_into_view_if_needed()
        page.evaluate("document.querySelector('#chain-wrap').scrollTop = 400")
        page.evaluate("() => new Promise((r) => requestAnimationFrame(() => r(true)))")
        head, wrap = box(page, "#chain-head tr:last-child th.strike"), box(page, "#chain-wrap")
        assert 0 <= head["y"] <= 844 and wrap["y"] - 1 <= head["y"] <= wrap["y"] + 60, (head, wrap)
        # Other columns on demand.
        page.check("#allcols")
        page.wait_for_function("getComputedStyle(document.querySelector('th[data-col=\"ce-ltp\"]')).display !== 'none'")


# --- shareable state --------------------------------------------------------------------------------------------
def test_url_round_trip(url):
    with browser_page(viewport={"width": 1440, "height": 900}) as page:
        page.goto(url)
        page.wait_for_function(ROWS, timeout=15000)
        page.select_option("#symbol", "BANKNIFTY")
        page.wait_for_function(
            "document.body.dataset.loaded.includes('BANKNIFTY') || OI.state.last.symbol === 'BANKNIFTY'"
        )
        page.select_option("#interval", "15")
        page.select_option("#units", "lots")
        page.select_option("#strikes", "5")
        page.check("#greeks")
        page.check("#quotes")
        page.locator("#replay").fill("20")
        page.wait_for_function("document.querySelector('#replay-time').textContent === '15:10 IST'")
        page.locator("#rows tr.atm th.strike").click()
        page.wait_for_function(
            "OI.state.picks.length === 1 && document.body.dataset.loaded.endsWith(OI.state.picks[0])"
        )
        q = query(page)
        picked = page.evaluate("String(OI.state.picks[0])")
        assert q["symbol"] == "BANKNIFTY" and q["interval"] == "15" and q["units"] == "lots"
        assert q["strikes"] == "5" and q["greeks"] == "1" and q["quotes"] == "1" and q["pick"] == picked
        assert q["at"].startswith("2026-11-23T15:10")
        loaded = page.evaluate("document.body.dataset.loaded")
        table = page.locator("#rows").inner_text()
        shared = page.url
    with browser_page(viewport={"width": 1440, "height": 900}) as fresh:  # another browser: nothing remembered
        fresh.goto(shared)
        fresh.wait_for_function("document.querySelectorAll('#rows tr').length === 11", timeout=15000)
        fresh.wait_for_function("(l) => document.body.dataset.loaded === l", arg=loaded, timeout=15000)
        assert fresh.locator("#symbol").input_value() == "BANKNIFTY"
        assert fresh.locator("#interval").input_value() == "15"
        assert fresh.locator("#units").input_value() == "lots"
        assert fresh.locator("#greeks").is_checked() and fresh.locator("#quotes").is_checked()
        assert fresh.locator("#replay-time").inner_text() == "15:10 IST"
        assert fresh.locator("#rows").inner_text() == table
        assert fresh.locator("#rows tr.picked").count() == 1


def test_unknown_symbol_and_expiry_say_so(url):
    sep = "#" if url.endswith(".html") else "?"
    with browser_page() as page:
        page.goto(url + sep + "symbol=FOO")
        page.wait_for_function(ROWS, timeout=15000)
        assert page.locator("#notice").is_visible()
        assert "Unknown symbol “FOO”" in page.locator("#notice").inner_text()
        assert page.locator("#symbol").input_value() == "NIFTY"
        page.goto(url + sep + "symbol=NIFTY&expiry=2030-01-01")
        if sep == "#":
            # A new hash is not a new document: reload it. (A new query is; reloading it would race the page
            # replacing the unknown expiry in its own URL.)
            page.reload()
        page.wait_for_function(ROWS, timeout=15000)
        assert "expiry “2030-01-01”" in page.locator("#notice").inner_text()


# --- one look ---------------------------------------------------------------------------------------------------
# WCAG 2 contrast of every visible text (tests/contrast.js: an axe-core-like check without the dependency).
CONTRAST = (Path(__file__).parent / "contrast.js").read_text()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_and_identity(live_url, scheme):
    with browser_page(viewport={"width": 1440, "height": 900}, color_scheme=scheme) as page:
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(live_url + "?interval=5&quotes=1&greeks=1")
        page.wait_for_function(ROWS, timeout=15000)
        page.locator("#rows tr:nth-child(3) th.strike").click()
        page.wait_for_function("!document.querySelector('#picked-box').hidden")
        assert page.evaluate(CONTRAST) == []
        # CE/PE identity colours are not the up/down colours, and the legend names each.
        css = page.evaluate(
            "(n) => n.map((v) => getComputedStyle(document.documentElement).getPropertyValue(v).trim())",
            ["--ce", "--pe", "--up", "--down"],
        )
        assert len(set(css)) == 4
        assert " ".join(page.locator("#legend").inner_text().split()).startswith("■ Calls (CE) ■ Puts (PE) ▲ up ▼ down")
        assert page.title() == "NIFTY " + page.locator("#spot").inner_text() + " · OI"
        assert page.evaluate("new URL(document.querySelector('link[rel=icon]').href).pathname").endswith("favicon.svg")
        assert errors == []  # no 404 for a favicon, no CSP report


def test_collecting_history_message(recorded):
    store, _ = recorded
    config = make_config(OI_SYMBOLS="NIFTY,BANKNIFTY", OI_EXPIRIES_PER_SYMBOL="2", OI_NOW="2026-11-23T15:30:00+05:30")
    with serve(create_app(config, store=store)) as base, browser_page() as page:
        # The recording starts at 14:50: at 15:00, 15 minutes back is not there yet.
        page.goto(base + "?interval=15&at=2026-11-23T15:00:30%2B05:30")
        page.wait_for_function(ROWS, timeout=15000)
        assert page.locator("#history-note").inner_text() == "Collecting history: 15-min change available at 15:05 IST."
        assert cell(page, int(page.locator("#atm").inner_text().replace(",", "")), "ce-oi_change_interval") == "—"
        page.select_option("#interval", "5")
        page.wait_for_function("document.querySelector('#history-note').textContent === ''")


# --- the views traders use --------------------------------------------------------------------------------------
def nearest(chain):
    return min(chain.strikes, key=lambda s: (abs(s.strike - chain.spot), s.strike))


def buildup(d_oi: int, d_ltp: float) -> str:
    """The page's rule, stated in its footer: price by at least ₹0.05, OI by at least one lot."""
    oi = 1 if d_oi >= LOT else -1 if d_oi <= -LOT else 0
    p = 1 if d_ltp >= 0.05 else -1 if d_ltp <= -0.05 else 0
    if not oi or not p:
        return ""
    return {(1, 1): "LB", (1, -1): "SB", (-1, 1): "SC", (-1, -1): "LU"}[(oi, p)]


def test_trader_views_show_the_stored_numbers(url, recorded):
    _, s = recorded
    frames = list(s.frames[s.expiries[0]].values())
    last = s.chain("15:29")
    atm = nearest(last).strike
    with browser_page(viewport={"width": 1440, "height": 900}, accept_downloads=True) as page:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_function(ROWS, timeout=15000)
        page.wait_for_function("window.OI.charts.totals && window.OI.charts.totals.data[0].length === 40")

        # Totals, PCR and max pain, straddle and ATM IV through the session.
        totals = page.evaluate("OI.charts.totals.data")
        assert totals[1] == [sum(x.ce.oi for x in c.strikes) for c in frames]
        assert totals[2] == [sum(x.pe.oi for x in c.strikes) for c in frames]

        # Max pain by brute force (writers' payout at every strike), PCR from the sums.
        def pain(c, k):
            return sum(x.ce.oi * max(0, k - x.strike) + x.pe.oi * max(0, x.strike - k) for x in c.strikes)

        assert totals[3] == [min((pain(c, x.strike), x.strike) for x in c.strikes)[1] for c in frames]
        pcr = page.evaluate("OI.charts.intraday.data[2]")
        want_pcr = [sum(x.pe.oi for x in c.strikes) / sum(x.ce.oi for x in c.strikes) for c in frames]
        assert pcr == pytest.approx(want_pcr, abs=0.0001)
        straddle = page.evaluate("OI.charts.straddle.data")
        want = [nearest(c).ce.ltp + nearest(c).pe.ltp for c in frames]
        assert straddle[1] == pytest.approx(want, abs=0.006)
        want_iv = [(nearest(c).ce.iv + nearest(c).pe.iv) / 2 for c in frames]
        assert straddle[2] == pytest.approx(want_iv, abs=0.006)
        # The IV smile now, across the chain's window.
        smile = page.evaluate("OI.charts.smile.data")
        ivs = {x.strike: x.ce.iv or None for x in last.strikes}
        assert smile[1] == pytest.approx([ivs[k] for k in smile[0]], abs=0.006)

        # Totals row: over every strike.
        assert page.locator("#chain-foot td").first.inner_text() == inr(sum(x.ce.oi for x in last.strikes))

        # Build-up labels over the default 5 minutes.
        ref = s.chain("15:24")
        then = {x.strike: x for x in ref.strikes}
        checked = 0
        for row in last.strikes:
            if f'data-strike="{int(row.strike)}"' not in page.inner_html("#rows"):
                continue
            for side in ("ce", "pe"):
                now_leg, old_leg = getattr(row, side), getattr(then[row.strike], side)
                if now_leg.ltp <= 0 or old_leg.ltp <= 0:
                    continue
                label = buildup(now_leg.oi - old_leg.oi, round(now_leg.ltp - old_leg.ltp, 2))
                assert cell(page, int(row.strike), f"{side}-buildup") == label, (row.strike, side)
                checked += 1
        assert checked >= 30

        # Click two strikes: their OI through the session, a CE and a PE line each.
        page.locator(f'#rows tr[data-strike="{int(atm)}"] th.strike').click()
        page.locator(f'#rows tr[data-strike="{int(atm) + 50}"] th.strike').click()
        page.wait_for_function("OI.charts.picked && OI.charts.picked.data.length === 5")
        picked = page.evaluate("OI.charts.picked.data")
        for i, k in enumerate((atm, atm + 50)):
            rows = [next(x for x in c.strikes if x.strike == k) for c in frames]
            assert picked[1 + 2 * i] == [x.ce.oi for x in rows]
            assert picked[2 + 2 * i] == [x.pe.oi for x in rows]
        page.locator(f'#rows tr[data-strike="{int(atm) + 50}"] th.strike').press("Enter")  # keyboard: unpick
        page.wait_for_function("OI.charts.picked.data.length === 3")

        # Bid/ask quantities in bid/ask mode.
        page.check("#quotes")
        page.wait_for_function("document.querySelector('th[data-col=\"ce-bid_qty\"]') !== null")
        row = next(x for x in last.strikes if x.strike == atm)
        wait_cell(page, int(atm), "ce-bid_qty", inr(row.ce.bid_qty))
        wait_cell(page, int(atm), "pe-ask_qty", inr(row.pe.ask_qty))

        # CSV of the chain as shown.
        with page.expect_download() as dl:
            page.click("#csv")
        with open(dl.value.path(), encoding="utf-8") as f:
            text = f.read()
        lines = text.splitlines()
        assert lines[0].split(",")[0] == '"ce-oi"' and '"strike"' in lines[0] and '"pe-bid_qty"' in lines[0]
        atm_line = next(line for line in lines if f'"{inr(int(atm))}"' in line)
        assert atm_line.startswith(f'"{inr(row.ce.oi)}"')

        # Custom window 15:00 → 15:20, from two as-of views.
        page.select_option("#interval", "custom")
        page.wait_for_function("!document.querySelector('#window-box').hidden")
        page.select_option("#window-from", label="15:00")
        page.select_option("#window-to", label="15:20")
        k = s.atm("15:20")
        want_chg = s.ce_oi("15:20", k) - s.ce_oi("15:00", k)
        wait_cell(page, k, "ce-oi_change_interval", inr(want_chg, signed=True))
        assert page.locator("th[data-col='ce-oi_change_interval']").inner_text() == "Chg 15:00–15:20"
        page.select_option("#interval", "5")

        # Expiry as traders say it.
        assert page.locator("#expiry option").first.inner_text() == "23 Nov (Mon) · expires today"
        assert page.locator("#expiry option").nth(1).inner_text() == "01 Dec (Tue) · 8 d"

        # Replay: one minute back, forward, play and pause.
        page.click("#replay-back")
        page.wait_for_function("document.querySelector('#replay-time').textContent === '15:28 IST'")
        page.click("#replay-fwd")
        page.wait_for_function("OI.state.at === null")
        page.click("#replay-play")
        page.wait_for_function("document.querySelector('#replay-time').textContent === '14:52 IST'", timeout=10000)
        page.click("#replay-play")
        stopped = page.locator("#replay-time").inner_text()
        page.wait_for_timeout(1500)
        assert page.locator("#replay-time").inner_text() == stopped
        assert errors == []


def test_keyboard_reaches_every_control(live_url):
    with browser_page(viewport={"width": 1440, "height": 900}) as page:
        page.goto(live_url + "?interval=custom")
        page.wait_for_function(ROWS, timeout=15000)
        page.wait_for_function("!document.querySelector('#window-box').hidden")
        page.locator("#replay-back").click()  # replaying: every replay button is live
        page.wait_for_function("OI.state.at !== null")
        page.click("h1")  # start the Tab order from the top
        reached = []
        for _ in range(40):
            page.keyboard.press("Tab")
            reached.append(page.evaluate("document.activeElement.id || document.activeElement.className"))
        wanted = ["theme", "symbol", "expiry", "strikes", "interval", "window-from", "window-to", "units", "greeks"]
        wanted += ["quotes", "csv", "replay-back", "replay-play", "replay-fwd", "replay", "replay-latest", "strike"]
        assert [r for r in reached if r in wanted][: len(wanted)] == wanted, reached
