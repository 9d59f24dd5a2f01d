"""Take the README's screenshots in headless Chromium: python scripts/screenshots.py.

The demo market is recorded for a whole session first (one snapshot a minute, two expiries), so the charts and the
replay have a day behind them, then the live page is shot on a desktop in the light theme and on a 390 px phone in
the dark theme.
"""

import sys
from datetime import time
from pathlib import Path

import mongomock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from oi.config import from_env
from oi.store import Store
from oi.web import create_app
from tests.browser import browser_page, serve
from tests.session import DAY, record_session

OUT = Path(__file__).resolve().parent.parent / "docs"
SHOTS = (
    ("dashboard.png", {"viewport": {"width": 1280, "height": 900}, "color_scheme": "light"}),
    ("dashboard-mobile-dark.png", {"viewport": {"width": 390, "height": 844}, "color_scheme": "dark"}),
)


def main() -> None:
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    record_session(store, ("NIFTY", "BANKNIFTY"), DAY, start=time(9, 15), end=time(14, 45), expiries=2)
    config = from_env(
        {
            "OI_REFRESHER": "0",
            "OI_NOW": f"{DAY.isoformat()}T14:45:20+05:30",
            "OI_EXPIRIES_PER_SYMBOL": "2",
            "OI_SYMBOLS": "NIFTY,BANKNIFTY",
        }
    )
    app = create_app(config, store=store)
    with serve(app) as url:
        for name, context in SHOTS:
            with browser_page(**context) as page:
                page.goto(url)
                page.wait_for_function("window.OI && window.OI.charts.intraday", timeout=20000)
                page.screenshot(path=str(OUT / name), full_page=True)
            print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
