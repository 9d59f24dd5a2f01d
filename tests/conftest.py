from __future__ import annotations

import os
from datetime import datetime

import mongomock
import pytest

from oi import config as config_mod
from oi.market.calendar import IST
from oi.store import Store, open_store
from oi.web import create_app
from tests.fakes.dhan import CLIENT_ID, TOKEN, FakeDhan

# A Monday in a regular session; 2026-11-24 (the fixture's nearest expiry) is an NSE holiday, 2026-11-23 is not.
MONDAY_1100 = datetime(2026, 11, 23, 11, 0, tzinfo=IST)


class FakeTimer:
    """A wall clock for pacing and leases that only moves when told to."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_config(**env: str) -> config_mod.Config:
    # No market feed unless a test asks for one (tests/test_feed_app.py): it would dial Dhan's real endpoint.
    base = {"OI_SYMBOLS": "NIFTY", "OI_REFRESHER": "0", "OI_NOW": MONDAY_1100.isoformat(), "OI_FEED": "off"}
    base.update(env)
    return config_mod.from_env(base)


@pytest.fixture
def fake_dhan():
    server = FakeDhan().start()
    yield server
    server.stop()


@pytest.fixture
def dhan_env(fake_dhan) -> dict[str, str]:
    return {"DHAN_CLIENT_ID": CLIENT_ID, "DHAN_ACCESS_TOKEN": TOKEN, "DHAN_API_BASE": fake_dhan.base_url}


@pytest.fixture
def store() -> Store:
    return Store(mongomock.MongoClient()["oi"], "mongomock")


@pytest.fixture
def timer() -> FakeTimer:
    return FakeTimer()


@pytest.fixture
def app(dhan_env, store, timer):
    """The app on the real SDK against the fake Dhan server; the refresher is driven by tests via rt.tick()."""
    application = create_app(make_config(**dhan_env), store=store, timer=timer)
    application.config.update(TESTING=True)
    return application


@pytest.fixture
def rt(app):
    return app.extensions["oi"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory) -> str:
    """A real MongoDB server for the session: OI_TEST_MONGO_URI if set, else a SecantusDB subprocess on loopback."""
    uri = os.environ.get("OI_TEST_MONGO_URI")
    if uri:
        yield uri
        return
    from tests.mongo_server import MongoServer

    server = MongoServer(tmp_path_factory.mktemp("mongo") / "data").start()
    yield server.uri
    server.stop()


def real_mongo_store(db_name: str, uri: str) -> Store:
    """A Store on the MongoDB at `uri` (the `mongo_uri` fixture), database `db_name` emptied."""
    store = open_store(uri, db_name, None)
    store.db.client.drop_database(db_name)
    return store
