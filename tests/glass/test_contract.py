"""The page's two providers answer alike: the static snapshot's JavaScript (static/snapshot.js) against the live API.

The snapshot is rendered from a recorded session; in Chromium its provider is asked for its view at several
minutes, intervals, windows and the combined expiries; the live app over the same store answers `/api/oi?at=…`.
Every field must be equal, except the few that describe the request rather than the data (whether the market is
open and the data stale: a snapshot is a closed session by definition).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, time

import mongomock
import pytest

from oi import snapshot
from oi.market.calendar import IST
from oi.store import Store
from oi.web import create_app
from tests.browser import browser_page, serve_dir
from tests.helpers import make_config
from tests.session import DAY, record_session

SYMBOLS = ("NIFTY", "BANKNIFTY")
PER_REQUEST = {"stale", "stale_reason", "market_open"}  # the live answer's head: about the moment, not the data


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    # Snapshots a few seconds into their minutes, unevenly, so an interval rule off by seconds picks other frames.
    record_session(store, SYMBOLS, expiries=2, seconds=lambda i: (i * 23) % 50)
    site = tmp_path_factory.mktemp("contract") / "site"
    snapshot.render_site(snapshot.collect(store, SYMBOLS, 2, DAY), site, DAY, SYMBOLS, 10)
    config = make_config(OI_SYMBOLS=",".join(SYMBOLS), OI_EXPIRIES_PER_SYMBOL="2", OI_NOW="2026-11-23T15:45:00+05:30")
    client = create_app(config, store=store).test_client()
    expiries = store.expiries("NIFTY")[0][:2]
    with serve_dir(site) as url, browser_page() as page:
        page.goto(url + "index.html")
        page.wait_for_function("window.OI_SNAPSHOT !== undefined")
        yield client, page, expiries


def differences(live: object, static: object, path: str = "") -> list[str]:
    """Every place where the two answers differ, by path; numbers compared exactly (both sides round alike)."""
    if isinstance(live, dict) and isinstance(static, dict):
        out = []
        for key in sorted(set(live) | set(static)):
            if key not in static or key not in live:
                out.append(f"{path}.{key}: only in {'live' if key in live else 'snapshot'}")
            else:
                out += differences(live[key], static[key], f"{path}.{key}")
        return out
    if isinstance(live, list) and isinstance(static, list):
        if len(live) != len(static):
            return [f"{path}: {len(live)} items live, {len(static)} in the snapshot"]
        return [d for i, (a, b) in enumerate(zip(live, static, strict=True)) for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(live, int | float) and isinstance(static, int | float) and not isinstance(live, bool):
        return [] if live == static else [f"{path}: live {live!r}, snapshot {static!r}"]
    return [] if live == static else [f"{path}: live {live!r}, snapshot {static!r}"]


ASK_MANY = """async (queries) => {
  const cfg = JSON.parse(document.getElementById("oi-config").textContent);
  const provider = window.OI_SNAPSHOT.provider(cfg);
  const out = [];
  for (const q of queries) out.push(await provider.oi(q));
  return out;
}"""

# Every third minute of the recorded session (14:50 … 15:29, asked 40 s past the minute), with each interval.
MINUTES = [time(14 + (50 + m) // 60, (50 + m) % 60, 40) for m in range(0, 40, 3)]
VARIANTS = [
    # (symbol, expiry index or "all", strikes)
    ("NIFTY", 0, "10"),
    ("NIFTY", 1, "5"),
    ("NIFTY", "all", "15"),  # the widest window a snapshot keeps (10 + EXTRA_STRIKES)
    ("BANKNIFTY", 0, "3"),
    ("BANKNIFTY", "all", "10"),
]


@pytest.mark.parametrize(("symbol", "expiry", "strikes"), VARIANTS)
def test_snapshot_provider_answers_like_the_live_api(both, symbol, expiry, strikes):
    client, page, expiries = both
    exp = "all" if expiry == "all" else expiries[expiry]
    queries = []
    for minute in MINUTES:
        at = datetime.combine(DAY, minute, IST).isoformat()
        for interval in (None, 3, 5, 10, 15, 30):
            query = {"symbol": symbol, "expiry": exp, "at": at, "strikes": strikes}
            queries.append(query if interval is None else {**query, "interval": str(interval)})
    static = page.evaluate(ASK_MANY, [{**q, "detail": True} for q in queries])
    problems = []
    for query, theirs in zip(queries, static, strict=True):
        response = client.get("/api/oi", query_string=query)
        assert response.status_code == 200, response.get_data(as_text=True)
        live = {k: v for k, v in response.get_json().items() if k not in PER_REQUEST}
        assert live["strikes"], "the case must have data to compare"
        found = differences(live, {k: v for k, v in theirs.items() if k not in PER_REQUEST})
        problems += [f"{query['at'][11:19]} {query.get('interval', '-')} min{p}" for p in found]
    kinds = sorted({re.sub(r"\[\d+\]", "[]", p.split(": live")[0].split(" min", 1)[1]) for p in problems})
    assert problems == [], json.dumps(kinds + problems[:10], indent=1)
