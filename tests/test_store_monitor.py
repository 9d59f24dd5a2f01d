"""MONGO_URI pointing at nothing must not hang the app (red team #14, finding 4): /healthz answers from the
background check's cached state, concurrent probes do not queue behind the store, the outage is logged once with
the host only, and upload.py says one line and exits 1.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from werkzeug.serving import make_server

from oi.store_monitor import StoreMonitor, describe_store
from oi.web import create_app
from tests.helpers import make_config
from tests.mongo_server import free_port

PASSWORD = "s3cr3t-pw"


@pytest.fixture
def dead_uri() -> str:
    return f"mongodb://oiuser:{PASSWORD}@127.0.0.1:{free_port()}/oi?authSource=admin"


@pytest.fixture
def served(dead_uri, caplog):
    """The app with its refresher and store monitor running, on a real threaded HTTP server on loopback."""
    caplog.set_level(logging.INFO)
    app = create_app(make_config(MONGO_URI=dead_uri, OI_REFRESHER="1", OI_SOURCE="demo"))
    rt = app.extensions["oi"]
    rt.start()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", rt
    finally:
        server.shutdown()
        rt.close()


def wait_down(rt, seconds: float = 15.0) -> None:
    done = threading.Event()
    for _ in range(int(seconds / 0.1)):
        if rt.store_monitor.state().ok is False:
            return
        done.wait(0.1)
    raise AssertionError("the store monitor never saw the dead store")


def test_healthz_answers_from_the_cached_state_while_the_store_hangs(served, caplog):
    url, rt = served
    wait_down(rt)

    def probe(path: str) -> requests.Response:
        # 1 s is the failure detector: a probe that touched the dead store would wait its 2 s selection timeout
        return requests.get(url + path, timeout=1.0)

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(probe, ["/healthz"] * 8 + ["/api/oi?symbol=NIFTY", "/", "/api/symbols", "/healthz"]))
    for health in answers[:8] + answers[-1:]:
        assert health.status_code == 503 and health.json()["store"] == "down"
    assert answers[9].status_code == 200 and answers[10].status_code == 200

    messages = [r.getMessage() for r in caplog.records]
    host = describe_store(rt.config.mongo_uri)
    assert host.startswith("MONGO_URI=mongodb://127.0.0.1:")
    assert sum(m == f"store unreachable: {host} (ping failed)" for m in messages) == 1  # once, not per probe
    assert not any(PASSWORD in m for m in messages)
    assert not any(r.exc_info for r in caplog.records if r.name in ("oi.web", "oi.store", "oi.store_monitor"))


def test_monitor_logs_each_transition_once(caplog):
    up = {"ok": True}

    def ping() -> bool:
        if up["ok"] is None:
            raise OSError("boom")
        return up["ok"]

    monitor = StoreMonitor(ping, "MONGO_URI=mongodb://db:27017")
    with caplog.at_level(logging.INFO, logger="oi.store_monitor"):
        assert monitor.state().label == "ok"
        up["ok"] = False
        assert [monitor.check().ok for _ in range(5)] == [False] * 5
        up["ok"] = None  # a ping that raises is "down" too, and does not kill the check
        assert monitor.check().error == "OSError"
        up["ok"] = True
        assert monitor.check().ok is True
    assert [r.getMessage() for r in caplog.records] == [
        "store unreachable: MONGO_URI=mongodb://db:27017 (ping failed)",
        "store reachable again: MONGO_URI=mongodb://db:27017",
    ]


def test_monitor_thread_starts_and_stops():
    calls = threading.Semaphore(0)

    def ping() -> bool:
        calls.release()
        return True

    monitor = StoreMonitor(ping, "x", interval=0.01).start()
    assert calls.acquire(timeout=5) and calls.acquire(timeout=5)  # it keeps checking
    assert monitor.running and monitor.state().ok is True
    monitor.stop()
    assert not monitor.running


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("", "the embedded store (OI_DATA_DIR)"),
        ("mongodb://u:p@h1:27017,h2:27018/db?replicaSet=rs", "MONGO_URI=mongodb://h1:27017,h2:27018"),
        ("mongodb+srv://user:pw@cluster0.example.net/oi", "MONGO_URI=mongodb+srv://cluster0.example.net"),
    ],
)
def test_describe_store_never_shows_credentials(uri, shown):
    assert describe_store(uri) == shown


def test_upload_says_one_line_and_exits_1_when_the_store_is_unreachable(dead_uri, capsys, tmp_path):
    from oi.cli import upload_main

    env = {"MONGO_URI": dead_uri, "OI_SOURCE": "demo", "OI_DATA_DIR": str(tmp_path)}
    assert upload_main(["--out", str(tmp_path / "site")], env) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("upload.py: store unreachable: MONGO_URI=mongodb://127.0.0.1:")
    assert PASSWORD not in err[0]


def test_healthz_during_an_outage_logs_no_traceback_per_call(fake_dhan, timer, caplog):
    # red team #14: every /healthz during a store outage logged a full traceback (the ping's warning)
    import mongomock

    from oi.store import Store
    from tests.test_faults import Live
    from tests.test_outage import FlakyDb, Outage

    outage = Outage()
    live = Live(fake_dhan, Store(FlakyDb(mongomock.MongoClient()["oi"], outage), "mongomock"), timer)
    live.fill()
    outage.error = ConnectionError
    with caplog.at_level(logging.INFO):
        answers = [live.client.get("/healthz") for _ in range(5)]
    assert all(a.status_code == 503 and a.get_json()["store"] == "down" for a in answers)
    assert not [r for r in caplog.records if r.exc_info]
    assert sum("store unreachable" in r.getMessage() for r in caplog.records) == 1  # said once, not per call
