"""Against a real MongoDB wire server (SecantusDB, tests/mongo_server.py): the server killed and restarted under the
live app, and gunicorn -w 4 sharing it (single-flight refresher, global pace) against the fake Dhan.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pymongo
import pytest
import requests

from oi.store import Store
from tests.fakes.dhan import CLIENT_ID, TOKEN
from tests.mongo_server import MongoServer, free_port
from tests.test_faults import INTERVAL, Live
from tests.test_outage import assert_recovered, assert_serving_stale_last_view

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def own_server(tmp_path):
    """A server of this test's own (the session's one is shared, and this one gets killed)."""
    server = MongoServer(tmp_path / "mongo").start()
    yield server
    server.stop()


def short_timeout_store(uri: str, db: str = "oi") -> Store:
    # Short waits: each operation against the dead server gives up in well under a second.
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=300, connectTimeoutMS=300, socketTimeoutMS=2000)
    client.drop_database(db)
    return Store(client[db], "mongodb")


def test_server_killed_and_restarted_on_the_same_data(own_server, fake_dhan, timer):
    store = short_timeout_store(own_server.uri)
    live = Live(fake_dhan, store, timer)
    good = live.fill()
    calls = len(fake_dhan.calls)

    own_server.kill()  # SIGKILL: connections refused from now on
    for _ in range(4):
        live.rt.tick()  # must not raise
        timer.advance(INTERVAL)
    assert len(fake_dhan.calls) == calls  # no lease, no pace slot: no call to Dhan
    assert_serving_stale_last_view(live, good)  # viewers: last good data, stale; /healthz 503 "store"

    own_server.start()  # same port, same data directory
    assert store.latest("NIFTY", "2026-11-24").as_of.isoformat() == good["as_of"]  # the data survived the kill
    assert_recovered(live, good)  # the next call is a chain (the stored expiry list is still there); writes resume
    assert len(fake_dhan.calls) == calls + 1


def _lease_holders(uri: str, seconds: float) -> tuple[set[str], int]:
    """Poll the refresher lease for `seconds`: the distinct holders seen and the number of polls."""
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=2000)
    holders, polls = set(), 0
    stop = time.monotonic() + seconds
    try:
        while time.monotonic() < stop:
            doc = client.oi_gunicorn.meta.find_one({"_id": "lease:refresher"})
            if doc:
                holders.add(doc["holder"])
                polls += 1
            time.sleep(0.1)
    finally:
        client.close()
    return holders, polls


def test_gunicorn_four_workers_on_mongodb_keep_single_flight_and_the_pace(mongo_uri, fake_dhan, tmp_path):
    pymongo.MongoClient(mongo_uri).drop_database("oi_gunicorn")
    interval = 1.0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OI_", "DHAN_", "MONGO_", "ORIGIN_"))}
    env.update(
        OI_SOURCE="dhan",
        DHAN_CLIENT_ID=CLIENT_ID,
        DHAN_ACCESS_TOKEN=TOKEN,
        DHAN_API_BASE=fake_dhan.base_url,
        DHAN_MIN_INTERVAL_SECONDS=str(interval),
        MONGO_URI=mongo_uri,
        MONGO_DB="oi_gunicorn",
        OI_SYMBOLS="NIFTY",
        OI_MARKET_ALWAYS_OPEN="1",
        OI_DATA_DIR=str(tmp_path / "var"),
        LOG_LEVEL="WARNING",
    )
    argv = [sys.executable, "-m", "gunicorn", "-w", "4", "-b", f"127.0.0.1:{port}", "app:app"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "gunicorn exited"
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/oi?symbol=NIFTY", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "no data from gunicorn within 60 s"
            time.sleep(0.2)
        start = len(fake_dhan.calls)
        holders, polls = _lease_holders(mongo_uri, 8.0)
        workers = {int(line) for line in subprocess.check_output(["pgrep", "-P", str(proc.pid)]).split()}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    times = [t for t, _, _ in fake_dhan.calls]
    assert polls > 20
    assert len(holders) == 1  # single flight: one worker held the lease the whole time
    (holder,) = holders
    assert int(holder.split(":")[1]) in workers  # …and it is one of the four workers
    assert len(workers) == 4
    assert len(times) - start >= 5  # calls kept flowing (about one a second)
    gaps = [b - a for a, b in itertools.pairwise(sorted(times))]
    assert min(gaps) >= interval  # the global pace held across the four processes
