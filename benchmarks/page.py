"""The page's own cost in Chromium (issue #11): time from a poll's answers to the painted frame, and the first
load's transfer size.

    python benchmarks/page.py

A demo session (NIFTY, BANKNIFTY) is recorded from 09:15 to 13:49, the live app serves it, and the page shows
ATM ± 20 with the 5-minute interval. Then 100 polls, each after one more minute of data has arrived (13:50 to
15:29: new numbers everywhere, the history one point longer, ATM moving now and then), like a trader's day; and
100 replay steps three minutes apart (ATM moving more often, so charts are rebuilt more). The page marks
`oi:response` when a poll's answers are in and
`oi:painted` once the next frame after rendering is painted (a message posted from requestAnimationFrame).
Goals: p99 ≤ 50 ms; first load ≤ 120 KB gzipped.
"""

from __future__ import annotations

import gzip
import statistics
import sys
from datetime import datetime, time, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mongomock  # noqa: E402

from oi import closes  # noqa: E402
from oi.archive import DemoArchive  # noqa: E402
from oi.config import from_env  # noqa: E402
from oi.market.calendar import IST, MarketCalendar  # noqa: E402
from oi.store import Store  # noqa: E402
from oi.web import create_app  # noqa: E402
from tests.browser import browser_page, serve  # noqa: E402
from tests.session import DAY, record_session  # noqa: E402

POLLS = 100
# A poll as the page's own timer makes it. The page also polls by itself: wait out one in flight, and until the
# page shows the minute just added (a refresh asked for while another runs only queues one).
POLL = """async (expected) => {
  const idle = async () => { while (OI.state.inflight) await new Promise((r) => setTimeout(r, 2)); };
  await idle();
  await OI.refresh();
  while (Date.parse(OI.state.last.as_of) < Date.parse(expected)) {
    await idle();
    await OI.refresh();
  }
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 0))));
}"""
STEP = """async (i) => {
  const pts = OI.state.points;
  OI.state.at = pts[(i * 3) % (pts.length - 1)].as_of;
  await OI.refresh();
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 0))));
}"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    demo = record_session(store, ("NIFTY", "BANKNIFTY"), DAY, start=time(9, 15), end=time(13, 49))
    # Twenty earlier sessions' closes, so the day-over-day chart is drawn on every poll too.
    calendar = MarketCalendar()
    pairs = [(s, demo.expiries(s, DAY)[0]) for s in ("NIFTY", "BANKNIFTY")]
    closes.record(store, pairs, closes.earlier_sessions(calendar, DAY, 20), DemoArchive(demo, calendar))
    config = from_env(
        {
            "OI_REFRESHER": "0",
            "OI_NOW": f"{DAY.isoformat()}T15:29:30+05:30",
            "OI_SYMBOLS": "NIFTY,BANKNIFTY",
            "OI_FEED": "off",  # a recorded session: the page polls on the REST cadence
        }
    )
    app = create_app(config, store=store)
    rt = app.extensions["oi"]
    with serve(app) as url, browser_page(viewport={"width": 1440, "height": 900}) as page:
        bodies: list[tuple[str, bytes]] = []
        page.on("response", lambda r: bodies.append((r.url, r.body())) if r.status == 200 else None)
        page.goto(url + "?strikes=20&interval=5")
        page.wait_for_function("document.querySelectorAll('#rows tr').length === 41", timeout=30000)
        page.wait_for_function("OI.charts.intraday && OI.charts.intraday.data[0].length === 275", timeout=30000)
        page.wait_for_load_state("networkidle")
        raw = sum(len(b) for _, b in bodies)
        packed = sum(len(gzip.compress(b, 6)) for _, b in bodies)
        print(
            f"first load: {len(bodies)} responses, {raw / 1024:.1f} KB raw, "
            f"{packed / 1024:.1f} KB gzipped (goal ≤ 120 KB)"
        )
        for name, b in sorted(bodies, key=lambda x: -len(x[1]))[:5]:
            print(f"  {len(gzip.compress(b, 6)) / 1024:6.1f} KB gz  {name.replace(url, '/')}")

        # Answers carry max-age (oi/http.py): the browser would answer the next poll from its cache until it lapses,
        # where the page's own polling waits for it. Here each poll follows a new minute at once, so no cache.
        # (Chromium applies it only with the Network domain enabled. Without this, the last session's runs rendered
        # the history's new point but a cached /api/oi: the table and bar charts did not change on most polls.)
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        results = {}
        page.evaluate("performance.clearMeasures()")
        for i in range(POLLS):
            at = datetime.combine(DAY, time(13, 50), IST) + timedelta(minutes=i, seconds=5)
            for symbol in ("NIFTY", "BANKNIFTY"):
                store.save_chain(demo.chain(symbol, demo.expiries(symbol, DAY)[0], at))
            rt.views.sync(DAY)
            page.evaluate(POLL, at.isoformat())
        assert page.evaluate("OI.charts.intraday.data[0].length") == 275 + POLLS
        assert page.evaluate("OI.charts.sessions.data[0].length") == 21  # 20 closes and now
        results["live polls, a new minute each"] = measures(page)
        for i in range(POLLS):
            page.evaluate(STEP, i + 1)
        results["replay steps, 3 minutes apart"] = measures(page)
    for name, (times, js) in results.items():
        print(
            f"{name}: answered → painted over {len(times)} at ATM ± 20: p50 {statistics.median(times):.1f} ms, "
            f"p99 {percentile(times, 0.99):.1f} ms, max {max(times):.1f} ms (goal p99 ≤ 50 ms); "
            f"script alone p50 {statistics.median(js):.1f} ms, p99 {percentile(js, 0.99):.1f} ms"
        )


def measures(page) -> tuple[list[float], list[float]]:
    times = page.evaluate("performance.getEntriesByName('oi:poll').map((e) => e.duration)")
    js = page.evaluate("performance.getEntriesByName('oi:render').map((e) => e.duration)")
    page.evaluate("performance.clearMeasures()")
    return times, js


if __name__ == "__main__":
    main()
