"""Take the README's screenshots in headless Chromium: python scripts/screenshots.py.

The demo market is recorded for a whole session first (one snapshot a minute, two expiries), so the charts and the
replay have a day behind them, then the live page is shot on a desktop in the light theme and on a 390 px phone in
the dark theme, and each of the trader's views on its own.
"""

import sys
from datetime import time
from pathlib import Path

import mongomock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from oi import closes
from oi.archive import DemoArchive
from oi.config import from_env
from oi.market.calendar import MarketCalendar
from oi.store import Store
from oi.web import create_app
from tests.browser import browser_page, serve
from tests.session import DAY, record_session

OUT = Path(__file__).resolve().parent.parent / "docs"
DESKTOP = {"viewport": {"width": 1440, "height": 900}, "color_scheme": "light"}
PHONE = {"viewport": {"width": 390, "height": 844}, "color_scheme": "dark", "is_mobile": True, "has_touch": True}
# (file, element to shoot): the views, from one desktop page with two strikes picked
VIEWS = (
    ("view-chain.png", "#chain-wrap"),
    ("view-strikes.png", "#picked-box"),
    ("view-totals.png", "#chart-totals"),
    ("view-straddle.png", "#chart-straddle"),
    ("view-smile.png", "#chart-smile"),
)
READY = "window.OI && window.OI.charts.intraday && document.querySelectorAll('#rows tr').length > 0"


def main() -> None:
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    demo = record_session(store, ("NIFTY", "BANKNIFTY"), DAY, start=time(9, 15), end=time(14, 45), expiries=2)
    # Ten earlier sessions' closes for day over day, replayed from the demo market as the live demo does.
    calendar = MarketCalendar()
    pairs = [(s, e) for s in ("NIFTY", "BANKNIFTY") for e in demo.expiries(s, DAY)[:2]]
    closes.record(store, pairs, closes.earlier_sessions(calendar, DAY, 10), DemoArchive(demo, calendar))
    config = from_env(
        {
            "OI_REFRESHER": "0",
            "OI_NOW": f"{DAY.isoformat()}T14:45:20+05:30",
            "OI_EXPIRIES_PER_SYMBOL": "2",
            "OI_SYMBOLS": "NIFTY,BANKNIFTY",
            "OI_FEED": "off",  # a recorded session, not a streaming one: no "REST, every N s" beside the time
        }
    )
    app = create_app(config, store=store)
    with serve(app) as url:
        with browser_page(**DESKTOP) as page:
            page.goto(url)
            page.wait_for_function(READY, timeout=20000)
            page.screenshot(path=str(OUT / "dashboard.png"))
            print(f"wrote {OUT / 'dashboard.png'}")
            atm = page.locator("#rows tr.atm")
            atm.locator("th.strike").click()
            atm.locator("xpath=following-sibling::tr[2]").locator("th.strike").click()
            page.wait_for_function("window.OI.charts.picked && window.OI.charts.picked.data.length === 5")
            for name, selector in VIEWS:
                target = page.locator(selector)
                target = target if selector.endswith(("wrap", "box")) else target.locator("xpath=..")
                target.screenshot(path=str(OUT / name))
                print(f"wrote {OUT / name}")
            # Day over day: against the close five sessions back, its column in the chain and its mark on the chart.
            page.select_option("#vs", index=5)
            page.wait_for_function("document.querySelector('[data-col=\"ce-oi_vs\"]') !== null")
            for name, selector in (("view-day-over-day.png", "#chain-wrap"), ("view-sessions.png", "#sessions-box")):
                page.locator(selector).screenshot(path=str(OUT / name))
                print(f"wrote {OUT / name}")
        with browser_page(**PHONE) as page:
            page.goto(url)
            page.wait_for_function(READY, timeout=20000)
            page.screenshot(path=str(OUT / "dashboard-mobile-dark.png"))
            print(f"wrote {OUT / 'dashboard-mobile-dark.png'}")


if __name__ == "__main__":
    main()
