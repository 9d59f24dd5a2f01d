"""The live API behind a real HTTP cache (Varnish, tests/varnish.py) on loopback, the app on a real threaded server.

50 pollers poll through the cache for a few refresh cycles; the origin counts what reaches it. The origin may see at
most one request per cache TTL per URL variant, and every poller must see each new version of the data within a TTL
(plus its own polling interval: it cannot see a version before it asks).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from contextlib import contextmanager

import pytest
import requests
from werkzeug.serving import make_server

from oi.config import from_env
from oi.refresher import PACE_SLACK_SECONDS
from oi.web import create_app
from tests import varnish
from tests.helpers import FakeTimer

pytestmark = pytest.mark.skipif(
    not varnish.available(), reason="varnishd is not installed (apt-get install varnish; `make test` does)"
)

SECRET = "edge-test-origin-secret"
OI = "/api/oi?symbol=NIFTY&strikes=10"
SYMBOLS = "/api/symbols"


class Counting:
    """WSGI middleware at the origin: counts every request by URL and the Accept-Encoding it came with."""

    def __init__(self, app) -> None:
        self.app = app
        self.seen: Counter = Counter()
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        url = environ["PATH_INFO"] + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")
        with self.lock:
            self.seen[(url, environ.get("HTTP_ACCEPT_ENCODING", ""))] += 1
        return self.app(environ, start_response)


@pytest.fixture
def origin(tmp_path):
    """The demo app (one symbol, one expiry, so one refresh period = DHAN_MIN_INTERVAL_SECONDS = 2 s and the
    cache TTL is 1 s), locked with an origin secret, on a threaded werkzeug server; the test drives refreshes."""
    env = {
        "OI_DATA_DIR": str(tmp_path),
        "OI_SYMBOLS": "NIFTY",
        "OI_REFRESHER": "0",
        "DHAN_MIN_INTERVAL_SECONDS": "2",
        "ORIGIN_SECRET": SECRET,
    }
    timer = FakeTimer()
    app = create_app(from_env(env), timer=timer)
    rt = app.extensions["oi"]

    def refresh() -> None:
        timer.advance(rt.config.dhan_min_interval_seconds + PACE_SLACK_SECONDS)
        rt.tick()

    for _ in range(2):  # expiry list, first chain
        refresh()
    counting = Counting(app)
    server = make_server("127.0.0.1", 0, counting, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rt, refresh, counting, server.server_port
    finally:
        server.shutdown()
        rt.close()


def ttl_of(response: requests.Response) -> int:
    directives = dict(d.strip().partition("=")[::2] for d in response.headers["Cache-Control"].split(",") if "=" in d)
    return int(directives["s-maxage"])


def test_pollers_through_the_cache(origin):
    rt, refresh, counting, port = origin
    pollers, interval, cycles = 50, 0.25, 5
    period = rt.config.refresh_period_seconds
    with varnish.varnish(port, SECRET) as edge:
        direct = requests.get(f"http://127.0.0.1:{port}{OI}", timeout=5)
        assert direct.status_code == 403  # the origin answers nobody without the secret the edge adds
        first = requests.get(edge.url + OI, timeout=5)
        assert first.status_code == 200 and SECRET not in str(first.headers) and SECRET.encode() not in first.content
        ttl = ttl_of(first)
        assert 1 <= ttl <= period / 2

        published: dict[str, float] = {json.loads(first.content)["as_of"]: time.monotonic()}
        seen: list[dict[str, float]] = [{} for _ in range(pollers)]
        errors: list[str] = []
        stop = threading.Event()

        def poll(i: int) -> None:
            with requests.Session() as s:
                while not stop.is_set():
                    try:
                        r = s.get(edge.url + OI, timeout=5)
                        s.get(edge.url + SYMBOLS, timeout=5).raise_for_status()
                        r.raise_for_status()
                        seen[i].setdefault(json.loads(r.content)["as_of"], time.monotonic())
                    except (requests.RequestException, ValueError) as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    stop.wait(interval)

        threads = [threading.Thread(target=poll, args=(i,)) for i in range(pollers)]
        before = counting.seen.copy()
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for _ in range(cycles):
            time.sleep(period)
            refresh()
            published.setdefault(rt.views.get("NIFTY", None).chain.as_of.isoformat(), time.monotonic())
        time.sleep(ttl + interval + 1)  # let the last version reach everyone
        stop.set()
        for t in threads:
            t.join(10)
        elapsed = time.monotonic() - t0
        origin_hits = counting.seen - before

    assert errors == []
    assert len(published) == cycles + 1  # every refresh made a new version
    # At the origin: at most one request per TTL for each URL and encoding the cache asked for (plus the first).
    limit = math.ceil(elapsed / ttl) + 1
    assert origin_hits and max(origin_hits.values()) <= limit, (dict(origin_hits), limit)
    through_cache = pollers * 2 * elapsed / interval
    assert sum(origin_hits.values()) < through_cache / 20  # the crowd did not reach the origin
    # Every poller saw every version, each within one TTL of it being published (+ its own polling interval and a
    # little for the threads of this one process to be scheduled).
    slack = 0.75
    for i, versions in enumerate(seen):
        for as_of, at in published.items():
            if as_of == next(iter(published)):
                continue  # published before the pollers started
            assert as_of in versions, f"poller {i} never saw {as_of}"
            assert versions[as_of] - at <= ttl + interval + slack, (i, as_of, versions[as_of] - at)


def test_errors_are_not_cached_by_the_edge(origin):
    _, _, counting, port = origin
    with varnish.varnish(port, SECRET) as edge:
        for _ in range(5):
            r = requests.get(edge.url + "/api/oi?symbol=NOPE", timeout=5)
            assert r.status_code == 400 and r.headers["Cache-Control"] == "no-store"
            h = requests.get(edge.url + "/healthz", timeout=5)
            assert h.headers["Cache-Control"] == "no-store"
        assert counting.seen[("/api/oi?symbol=NOPE", "gzip")] == 5
        assert counting.seen[("/healthz", "gzip")] == 5


def test_the_page_works_through_the_cache(tmp_path, monkeypatch):
    """The dashboard's browser test as it is, with the page and its API calls going through the cache."""
    from tests import browser
    from tests.glass import test_live_page

    @contextmanager
    def serve_behind_cache(app):
        with browser.serve(app) as url, varnish.varnish(int(url.rstrip("/").rsplit(":", 1)[1])) as edge:
            yield edge.url + "/"

    monkeypatch.setattr(test_live_page, "serve", serve_behind_cache)
    test_live_page.test_dashboard_renders_and_updates_without_reload(tmp_path)
