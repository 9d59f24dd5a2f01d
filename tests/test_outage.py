"""A MongoDB outage: the store's client fails while a switch is on (and a real pymongo client at a closed port).

Meanwhile nothing crashes, viewers keep the last view marked stale ("store unreachable"), /healthz says the store
is down, and no upstream call is made: the lease and the pace slot live in the store, so without it the calls
could not be paced globally. When the store is back, writes resume and the stale flag clears.
"""

import logging
import socket

import mongomock
import pymongo
import pytest
from pymongo.errors import AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError

from oi.store import Store
from tests.test_faults import CHAIN, INTERVAL, STEP, Live


class Outage:
    """The switch: while `error` is set, every operation of the wrapped database raises it."""

    def __init__(self) -> None:
        self.error: type[Exception] | None = None

    def check(self) -> None:
        if self.error is not None:
            raise self.error("MongoDB is down (test)")


def _guarded(fn, outage: Outage):
    def call(*args, **kwargs):
        outage.check()
        return fn(*args, **kwargs)

    return call


class FlakyCollection:
    def __init__(self, collection, outage: Outage) -> None:
        self._collection, self._outage = collection, outage

    def __getattr__(self, name):
        attr = getattr(self._collection, name)
        return _guarded(attr, self._outage) if callable(attr) else attr


class FlakyDb:
    """A pymongo-like Database whose collections and database operations fail while the outage is on."""

    def __init__(self, db, outage: Outage) -> None:
        self._db, self._outage = db, outage

    def __getitem__(self, name: str) -> FlakyCollection:
        return FlakyCollection(self._db[name], self._outage)

    def __getattr__(self, name: str):
        if name in ("list_collection_names", "drop_collection", "command"):
            return _guarded(getattr(self._db, name), self._outage)
        return self[name]


@pytest.fixture
def outage() -> Outage:
    return Outage()


@pytest.fixture
def flaky_store(outage) -> Store:
    return Store(FlakyDb(mongomock.MongoClient()["oi"], outage), "mongomock")


def ticks(live: Live, seconds: float) -> None:
    for _ in range(int(seconds / STEP)):
        live.rt.tick()  # must not raise
        live.timer.advance(STEP)


def assert_serving_stale_last_view(live: Live, good: dict) -> None:
    seen = live.oi()
    assert (seen["stale"], seen["stale_reason"]) == (True, "store unreachable")
    assert (seen["as_of"], seen["spot"], seen["atm"], seen["strikes"]) == (
        good["as_of"],
        good["spot"],
        good["atm"],
        good["strikes"],
    )
    assert live.client.get("/").status_code == 200
    assert live.client.get("/api/symbols").status_code == 200
    health = live.client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["store"] == "down" and health.get_json()["reason"] == "store unreachable"


def assert_recovered(live: Live, good: dict) -> None:
    assert live.next_call() == CHAIN  # the first call after the outage is stored
    seen = live.oi()
    assert (seen["stale"], seen["stale_reason"]) == (False, None)
    assert seen["as_of"] > good["as_of"]
    assert live.store.latest("NIFTY", "2026-11-24").as_of.isoformat() == seen["as_of"]  # the write reached the store
    health = live.client.get("/healthz")
    assert health.status_code == 200 and health.get_json()["store"] == "ok"


@pytest.mark.parametrize("error", [AutoReconnect, ServerSelectionTimeoutError, NetworkTimeout])
def test_outage_serves_last_view_stale_makes_no_upstream_calls_and_recovers(
    fake_dhan, flaky_store, timer, outage, error, caplog
):
    live = Live(fake_dhan, flaky_store, timer)
    good = live.fill()
    calls = len(fake_dhan.calls)

    outage.error = error
    with caplog.at_level(logging.WARNING):
        ticks(live, 60)  # a minute down: every tick's lease, pace and view reads raise
    assert len(fake_dhan.calls) == calls  # without the lease and pace slot, no call to Dhan
    assert_serving_stale_last_view(live, good)
    # logged once per outage, not on every one of the 240 ticks
    assert sum("store unreachable" in r.getMessage() for r in caplog.records if r.name == "oi.refresher") == 1

    outage.error = None
    assert_recovered(live, good)


def test_store_failing_between_call_and_write(fake_dhan, flaky_store, timer, outage, monkeypatch):
    """The store goes away while the upstream call is in flight: the answer is dropped, nothing raises."""
    live = Live(fake_dhan, flaky_store, timer)
    good = live.fill()
    fetch = live.rt.source.chain

    def fetch_then_outage(*args):
        chain = fetch(*args)  # the real SDK call reaches the fake…
        outage.error = AutoReconnect  # …and the store is gone by the time we write
        return chain

    monkeypatch.setattr(live.rt.source, "chain", fetch_then_outage)
    assert live.next_call() == f"{CHAIN}: store"
    assert_serving_stale_last_view(live, good)
    monkeypatch.undo()
    outage.error = None
    assert_recovered(live, good)


def test_rate_limit_while_the_store_fails_is_contained(fake_dhan, flaky_store, timer, outage, monkeypatch):
    """A back-off that cannot be written (store gone right after a 429): no raise, and no calls until it is back."""
    from tests.test_faults import err

    live = Live(fake_dhan, flaky_store, timer)
    good = live.fill()
    fake_dhan.script.append(err("rate_limit_805"))
    delay_slot = flaky_store.delay_slot

    def delay_fails(*args):
        outage.error = AutoReconnect
        return delay_slot(*args)

    monkeypatch.setattr(flaky_store, "delay_slot", delay_fails)
    assert live.next_call() == f"{CHAIN}: rate_limit"
    calls = len(fake_dhan.calls)
    ticks(live, 30)
    assert len(fake_dhan.calls) == calls
    assert_serving_stale_last_view(live, good)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_pymongo_client_at_a_dead_server(fake_dhan, store, timer, caplog):
    """The real driver's errors (ServerSelectionTimeoutError after a short selection timeout) are handled the same."""
    live = Live(fake_dhan, store, timer)
    good = live.fill()
    calls = len(fake_dhan.calls)
    dead = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{closed_port()}/",
        serverSelectionTimeoutMS=100,
        connectTimeoutMS=100,
        socketTimeoutMS=100,
    )
    healthy_db, store.db = store.db, dead["oi"]
    try:
        with caplog.at_level(logging.WARNING):
            # one tick is enough: pymongo takes ≥ 0.5 s to give up on each operation (its minimum heartbeat)
            live.rt.tick()
            timer.advance(INTERVAL)
        assert len(fake_dhan.calls) == calls
        assert any("ServerSelectionTimeoutError" in r.getMessage() for r in caplog.records)
        assert_serving_stale_last_view(live, good)
    finally:
        store.db = healthy_db
        dead.close()
    assert_recovered(live, good)


def test_tick_survives_an_unexpected_refresher_error(fake_dhan, store, timer, monkeypatch):
    live = Live(fake_dhan, store, timer)
    good = live.fill()

    def broken():
        raise RuntimeError("bug")

    monkeypatch.setattr(live.rt.refresher, "run_once", broken)
    live.rt.tick()  # logged, not raised: APScheduler would keep the job, but one bad tick must not cost the views
    assert live.oi()["spot"] == good["spot"]
