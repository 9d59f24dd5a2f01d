"""Helpers the tests import: the pinned clock and config, a fake timer, a store on the test MongoDB server.

Fixtures live in conftest.py (pytest finds them there); anything a test module imports lives here, so no test
imports conftest.
"""

from __future__ import annotations

from datetime import datetime

from oi import config as config_mod
from oi.market.calendar import IST
from oi.store import Store, open_store

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


def real_mongo_store(db_name: str, uri: str) -> Store:
    """A Store on the MongoDB at `uri` (the `mongo_uri` fixture), database `db_name` emptied."""
    store = open_store(uri, db_name, None)
    store.db.client.drop_database(db_name)
    return store
