"""Retention: history older than OI_RETENTION_DAYS is dropped (a prune job on every backend, run by the lease
holder at start-up and daily; a TTL index on real MongoDB as the server-side backstop)."""

from datetime import UTC, datetime, timedelta

import mongomock
import pytest
from pymongo.errors import AutoReconnect

from oi.config import ConfigError, from_env
from oi.market.calendar import IST, MarketCalendar, fixed_clock
from oi.market.model import Leg, OptionChain, Strike
from oi.refresher import Refresher
from oi.store import TTL_FIELD, TTL_INDEX, Store, history_collection, open_store
from oi.web import create_app
from tests.helpers import MONDAY_1100, FakeTimer, make_config, real_mongo_store

TODAY = MONDAY_1100.date()
AGES = (0, 1, 9, 10, 11, 29, 30, 31, 45)  # days before today that hold history


def chain(days_ago: int, spot: float = 23850.0) -> OptionChain:
    at = MONDAY_1100 - timedelta(days=days_ago)
    return OptionChain("NIFTY", "2026-11-24", spot, at, (Strike(23850.0, Leg(oi=10), Leg(oi=7)),), "demo")


def seed(store: Store, ages=AGES) -> None:
    for age in ages:
        store.save_chain(chain(age))


def days(*ages: int) -> list:
    return sorted(TODAY - timedelta(days=a) for a in ages)


@pytest.fixture(params=["mongomock", "mongomock-ng", "embedded"])
def backend(request, tmp_path):
    if request.param == "mongomock":
        return Store(mongomock.MongoClient()["oi"], "mongomock")
    if request.param == "mongomock-ng":
        mongomock_ng = pytest.importorskip("mongomock_ng")
        return Store(mongomock_ng.MongoClient()["oi"], "mongomock-ng")
    return open_store("", "oi", tmp_path)


@pytest.mark.parametrize("keep", [30, 10])
def test_prune_drops_exactly_the_days_older_than_the_cutoff(backend, keep):
    seed(backend)
    dropped = backend.prune(TODAY, keep)
    assert dropped == days(*(a for a in AGES if a > keep))
    assert backend.history_days() == days(*(a for a in AGES if a <= keep))
    # what is kept is intact, and the latest view is not history
    assert len(backend.history("NIFTY", "2026-11-24", TODAY - timedelta(days=keep))) == 1
    assert backend.latest("NIFTY", "2026-11-24") is not None
    assert backend.prune(TODAY, keep) == []  # idempotent


def refresher(store: Store, timer=None) -> Refresher:
    kwargs = {"timer": timer} if timer else {}
    return Refresher(store, None, MarketCalendar(), fixed_clock(MONDAY_1100), ("NIFTY",), **kwargs)


def test_only_the_lease_holder_prunes(store, timer):
    seed(store)
    leader, other = refresher(store, timer), refresher(store, timer)
    assert store.acquire_lease("refresher", leader.holder, timer(), leader.lease_ttl)
    assert other.prune(30) == []
    assert store.history_days() == days(*AGES)
    assert leader.prune(30) == days(31, 45)
    assert store.history_days() == days(*(a for a in AGES if a <= 30))
    # the leader goes away: after its lease lapses the other one prunes
    timer.advance(leader.lease_ttl + 1)
    assert other.prune(10) == days(11, 29, 30)


def test_prune_never_raises_when_the_store_is_down(store, timer, monkeypatch):
    seed(store)

    def down(*args):
        raise AutoReconnect("MongoDB is down (test)")

    monkeypatch.setattr(store, "prune", down)
    assert refresher(store, timer).prune(30) == []


def test_scheduler_prunes_at_start_up_and_daily_at_16_ist(dhan_env, store, timer):
    seed(store)
    app = create_app(make_config(**dhan_env, OI_RETENTION_DAYS="10"), store=store, timer=timer)
    rt = app.extensions["oi"]
    # The schedule as start() would run it, inspected without a scheduler thread: no waiting on a real clock.
    scheduler = rt.schedule()
    job = next(j for j in scheduler.get_jobs() if j.id == "prune")
    assert job.args == (10,) and job.func == rt.refresher.prune
    fields = {f.name: str(f) for f in job.trigger.fields}
    assert (fields["hour"], fields["minute"], str(job.trigger.timezone)) == ("16", "0", "Asia/Kolkata")
    # the first run is at start-up …
    started = datetime.now(IST)
    assert abs((job.next_run_time - started).total_seconds()) < 60
    job.func(*job.args)
    assert store.history_days() == days(0, 1, 9, 10)
    # … and after it, the next one is at 16:00 IST
    assert job.trigger.get_next_fire_time(None, started).astimezone(IST).time().isoformat() == "16:00:00"


def test_mongodb_gets_a_ttl_index_on_each_history_collection():
    # mongomock stands in for the server here: it records create_index with its options (it does not expire).
    store = Store(mongomock.MongoClient()["oi"], "mongodb")
    seed(store, (0, 3))
    created = store.db[history_collection(TODAY)].find_one()[TTL_FIELD]
    # a BSON date of the snapshot's time (drivers hand it back as naive UTC), which a TTL index can read
    assert isinstance(created, datetime)
    assert (created if created.tzinfo else created.replace(tzinfo=UTC)) == MONDAY_1100
    assert store.ensure_ttl(30) == [history_collection(d) for d in days(0, 3)]
    for day in days(0, 3):
        index = store.db[history_collection(day)].index_information()[TTL_INDEX]
        assert (index["key"], index["expireAfterSeconds"]) == ([(TTL_FIELD, 1)], 30 * 86400)
    store.ensure_ttl(7)  # the retention changed: the index follows
    index = store.db[history_collection(TODAY)].index_information()[TTL_INDEX]
    assert index["expireAfterSeconds"] == 7 * 86400
    assert store.history("NIFTY", "2026-11-24", TODAY)[0] == chain(0)  # the extra field does not leak into reads


def test_prune_job_keeps_the_ttl_index_in_step(timer):
    store = Store(mongomock.MongoClient()["oi"], "mongodb")
    seed(store, (0, 12))
    assert refresher(store, timer).prune(10) == days(12)
    index = store.db[history_collection(TODAY)].index_information()[TTL_INDEX]
    assert index["expireAfterSeconds"] == 10 * 86400


def test_other_backends_keep_plain_documents_and_no_index(backend):
    seed(backend, (0,))
    assert backend.ensure_ttl(30) == []
    assert TTL_FIELD not in backend.db[history_collection(TODAY)].find_one()


def test_retention_setting():
    assert from_env({}).retention_days == 30
    assert from_env({"OI_RETENTION_DAYS": "7"}).retention_days == 7
    for bad in ("0", "-3", "abc", "1.5"):
        with pytest.raises(ConfigError, match="OI_RETENTION_DAYS"):
            from_env({"OI_RETENTION_DAYS": bad})


def test_history_of_a_day_is_kept_whole_until_it_is_dropped(backend):
    # Pruning works on whole days in IST: a snapshot at 00:10 IST belongs to that IST day, not the UTC one before.
    early = datetime(2026, 10, 24, 0, 10, tzinfo=IST)  # 2026-10-23 18:40 UTC
    backend.save_chain(OptionChain("NIFTY", "2026-11-24", 1.0, early, (Strike(1.0),), "demo"))
    assert backend.prune(TODAY, 30) == []  # 2026-10-24 is exactly 30 days back: kept
    assert backend.prune(TODAY + timedelta(days=1), 30) == [early.date()]


def test_ttl_index_on_a_real_mongodb(mongo_uri):
    store = real_mongo_store("oi_retention_test", mongo_uri)
    try:
        seed(store, (0, 12))
        assert refresher(store, FakeTimer()).prune(10) == days(12)
        index = store.db[history_collection(TODAY)].index_information()[TTL_INDEX]
        assert (index["key"], index["expireAfterSeconds"]) == ([(TTL_FIELD, 1)], 10 * 86400)
        store.ensure_ttl(5)
        assert store.db[history_collection(TODAY)].index_information()[TTL_INDEX]["expireAfterSeconds"] == 5 * 86400
    finally:
        store.db.client.drop_database("oi_retention_test")
