"""The feed in the service as deployed, but with four workers: gunicorn -w 4 on the embedded store, the real SDK
against the fake Dhan, the fake feed. One worker (the lease holder) holds the only feed connection; a scripted OI
change reaches /api/oi on every worker within 1.5 s; a drop is followed by one reconnection with the same set."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from oi.feed import protocol
from tests.fakes.dhan import CLIENT_ID, TOKEN, FakeDhan
from tests.fakes.feed import FakeFeed
from tests.test_feed import wait_until

ROOT = Path(__file__).resolve().parent.parent
NSE_FNO = protocol.SEGMENTS["NSE_FNO"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def stack(tmp_path):
    dhan, feed = FakeDhan().start(), FakeFeed().start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OI_", "DHAN_", "MONGO_", "ORIGIN_"))}
    env.update(
        DHAN_CLIENT_ID=CLIENT_ID,
        DHAN_ACCESS_TOKEN=TOKEN,
        DHAN_API_BASE=dhan.base_url,
        DHAN_FEED_URL=feed.url,
        DHAN_MIN_INTERVAL_SECONDS="0.5",
        OI_FEED="on",
        OI_FEED_STRIKES="3",
        OI_SYMBOLS="NIFTY",
        OI_MARKET_ALWAYS_OPEN="1",
        OI_DATA_DIR=str(tmp_path),
        LOG_LEVEL="WARNING",
    )
    argv = [sys.executable, "-m", "gunicorn", "-w", "4", "--threads", "4", "-b", f"127.0.0.1:{port}", "app:app"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        yield url, dhan, feed
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        feed.stop()
        dhan.stop()


def fresh_get(url: str) -> dict | None:
    """One request on a new connection, so the kernel hands it to any of the workers."""
    try:
        with requests.Session() as s:
            s.headers["Connection"] = "close"
            resp = s.get(url, timeout=5)
        return resp.json()
    except (requests.RequestException, ValueError):
        return None


def ce_oi(body: dict | None, strike: float) -> int | None:
    if not body or "strikes" not in body:
        return None
    return next((s["ce"]["oi"] for s in body["strikes"] if s["strike"] == strike), None)


def test_four_workers_one_connection_every_worker_sees_the_tick(stack):
    url, dhan, feed = stack
    api = f"{url}/api/oi?symbol=NIFTY&strikes=all"
    assert wait_until(lambda: ((fresh_get(f"{url}/healthz") or {}).get("feed") or {}).get("state") == "live", 60)
    assert wait_until(lambda: len(feed.open_connections()) == 1, 10)
    time.sleep(1.0)
    assert len(feed.connections) == 1  # four workers, one feed connection
    ce = dhan.chain["data"]["oc"]["23850.000000"]["ce"]["security_id"]
    start = time.monotonic()
    feed.push(NSE_FNO, ce, ltp=150.0, oi=5_000_025)
    assert wait_until(lambda: ce_oi(fresh_get(api), 23850.0) == 5_000_025, 5)
    # then every worker: many requests on fresh connections all show it, all within 1.5 s of the tick
    seen = 0
    while seen < 24 and time.monotonic() - start < 1.5:
        seen = seen + 1 if ce_oi(fresh_get(api), 23850.0) == 5_000_025 else 0
    assert seen >= 24, f"only {seen} consecutive answers had the tick {time.monotonic() - start:.2f} s after it"

    before = feed.held(0)
    feed.drop(0)
    assert wait_until(lambda: len(feed.connections) == 2 and feed.held(1) == before, 10)
    time.sleep(1.0)
    assert len(feed.connections) == 2  # one reconnection, by the lease holder only
