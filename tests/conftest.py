"""pytest fixtures: the app on the fake Dhan server, its store, timer and clients, a real MongoDB server."""

from __future__ import annotations

import os

import mongomock
import pytest

from oi.store import Store
from oi.web import create_app
from tests.fakes.dhan import CLIENT_ID, TOKEN, FakeDhan
from tests.helpers import FakeTimer, make_config


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
