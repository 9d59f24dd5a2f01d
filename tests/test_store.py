"""One contract suite, run against every MongoDB backend available here.

"mongodb" is a real MongoDB wire server: SecantusDB started by the session's `mongo_uri` fixture, or the server at
OI_TEST_MONGO_URI.
"""

from datetime import date, datetime, timedelta

import mongomock
import pytest

from oi.market.calendar import IST
from oi.market.model import Leg, OptionChain, Strike
from oi.store import Store, open_store
from tests.helpers import real_mongo_store

T0 = datetime(2026, 11, 23, 9, 15, 3, tzinfo=IST)


def _mongomock_ng():
    mongomock_ng = pytest.importorskip("mongomock_ng")
    return Store(mongomock_ng.MongoClient()["oi"], "mongomock-ng")


def _real_mongo(uri: str):
    return real_mongo_store("oi_contract_test", uri)


@pytest.fixture(params=["mongomock", "mongomock-ng", "embedded", "mongodb"])
def backend(request, tmp_path):
    if request.param == "mongomock":
        return Store(mongomock.MongoClient()["oi"], "mongomock")
    if request.param == "mongomock-ng":
        return _mongomock_ng()
    if request.param == "embedded":
        return open_store("", "oi", tmp_path)
    return _real_mongo(request.getfixturevalue("mongo_uri"))


def chain(symbol="NIFTY", expiry="2026-11-24", at=T0, oi=100, spot=23850.0):
    return OptionChain(symbol, expiry, spot, at, (Strike(23850.0, Leg(oi=oi, previous_oi=90), Leg(oi=7)),), "demo")


def test_latest_is_one_document_per_symbol_expiry(backend):
    backend.save_chain(chain(oi=1))
    backend.save_chain(chain(oi=2, at=T0 + timedelta(seconds=6)))
    backend.save_chain(chain(expiry="2026-12-01", oi=3))
    assert backend.latest("NIFTY", "2026-11-24").strikes[0].ce.oi == 2
    assert sorted((c.expiry, c.strikes[0].ce.oi) for c in backend.latest_all()) == [
        ("2026-11-24", 2),
        ("2026-12-01", 3),
    ]
    assert backend.latest("NIFTY", "2099-01-01") is None


def test_history_expiries_are_the_ones_a_day_holds(backend):
    backend.save_chain(chain(expiry="2026-11-24"))
    backend.save_chain(chain(expiry="2026-12-01", at=T0 + timedelta(minutes=1)))
    backend.save_chain(chain(symbol="BANKNIFTY", expiry="2026-11-25"))
    assert backend.history_expiries("NIFTY", T0.date()) == ["2026-11-24", "2026-12-01"]
    assert backend.history_expiries("NIFTY", T0.date() + timedelta(days=1)) == []


def test_history_keeps_first_snapshot_of_each_minute(backend):
    grew = [backend.save_chain(chain(oi=i, at=T0 + timedelta(seconds=20 * i))) for i in range(7)]
    # 09:15:03, :23, :43 → minute 09:15; 09:16:03, :23, :43 → 09:16; 09:17:03 → 09:17
    assert grew == [True, False, False, True, False, False, True]
    history = backend.history("NIFTY", "2026-11-24", T0.date())
    assert [c.strikes[0].ce.oi for c in history] == [0, 3, 6]
    assert [c.as_of for c in history] == sorted(c.as_of for c in history)
    until = backend.history("NIFTY", "2026-11-24", T0.date(), until=T0 + timedelta(seconds=90))
    assert [c.strikes[0].ce.oi for c in until] == [0, 3]
    assert [c.strikes[0].ce.oi for c in backend.history("NIFTY", "2026-11-24", T0.date(), limit=1)] == [6]
    assert backend.history("BANKNIFTY", "2026-11-24", T0.date()) == []


def test_round_trip_is_exact(backend):
    c = chain()
    backend.save_chain(c)
    assert backend.latest("NIFTY", "2026-11-24") == c
    assert backend.history("NIFTY", "2026-11-24", T0.date()) == [c]


def test_expiry_lists(backend):
    assert backend.expiries("NIFTY") is None
    backend.save_expiries("NIFTY", ["2026-11-24", "2026-12-01"], date(2026, 11, 23))
    backend.save_expiries("NIFTY", ["2026-12-01"], date(2026, 11, 25))
    assert backend.expiries("NIFTY") == (["2026-12-01"], date(2026, 11, 25))


def test_version_moves_on_every_write(backend):
    v0 = backend.version()
    backend.save_chain(chain())
    v1 = backend.version()
    backend.save_expiries("NIFTY", ["2026-11-24"], date(2026, 11, 23))
    v2 = backend.version()
    backend.set_status({"error": "x"})
    assert v0 < v1 < v2 < backend.version()
    assert backend.status() == {"error": "x"}


def test_lease_is_exclusive_until_it_expires(backend):
    assert backend.acquire_lease("r", "a", now=100.0, ttl=10)
    assert not backend.acquire_lease("r", "b", now=105.0, ttl=10)
    assert backend.acquire_lease("r", "a", now=105.0, ttl=10)  # renewal
    assert backend.lease_holder("r", 110.0) == "a"
    assert not backend.acquire_lease("r", "b", now=114.9, ttl=10)
    assert backend.acquire_lease("r", "b", now=115.1, ttl=10)  # a stopped renewing
    assert backend.lease_holder("r", 116.0) == "b"
    backend.release_lease("r", "b")
    assert backend.acquire_lease("r", "a", now=116.0, ttl=10)


def test_pace_slot_and_backoff(backend):
    assert backend.claim_slot("p", 100.0, 3)
    assert not backend.claim_slot("p", 102.9, 3)
    assert backend.claim_slot("p", 103.0, 3)
    backend.delay_slot("p", 200.0)
    assert not backend.claim_slot("p", 150.0, 3)
    backend.delay_slot("p", 120.0)  # never pulls the slot earlier
    assert not backend.claim_slot("p", 199.0, 3)
    assert backend.claim_slot("p", 200.0, 3)


def test_prune_drops_whole_days(backend):
    for days in (0, 1, 40):
        backend.save_chain(chain(at=T0 - timedelta(days=days)))
    dropped = backend.prune(T0.date(), keep_days=30)
    assert dropped == [T0.date() - timedelta(days=40)]
    assert backend.history_days() == [T0.date() - timedelta(days=1), T0.date()]


def test_ping(backend):
    assert backend.ping()


def test_prune_drops_latest_of_long_expired_expiries(backend):
    # red team #14 finding 8: a `latest` document per expired expiry stayed forever, read on every view reload
    for expiry in ("2026-09-01", "2026-10-20", "2026-10-27", "2026-11-24"):
        backend.save_chain(chain(expiry=expiry))
    version = backend.version()
    backend.prune(T0.date(), keep_days=30)  # cutoff 2026-10-24
    assert sorted(c.expiry for c in backend.latest_all()) == ["2026-10-27", "2026-11-24"]
    assert backend.latest("NIFTY", "2026-11-24") == chain()  # what is kept is intact
    assert backend.version() > version  # other processes reload their views
    backend.prune(T0.date(), keep_days=30)
    assert len(backend.latest_all()) == 2


def event(eid, ts, **extra):
    return {"_id": eid, "id": eid, "ts": ts, "rule": "r", "values": {"oi": 1}, **extra}


def test_events_are_inserted_once_per_id_and_read_back_in_time_order(backend):
    day = T0.date()
    stamp, version = backend.events_stamp(), backend.version()
    assert backend.events(day) == []
    assert backend.insert_event(day, event("b|1", 20.0))
    assert backend.insert_event(day, event("a|1", 10.0))
    assert backend.events_stamp() == stamp + 2 and backend.version() > version
    # the same firing from a second process: refused, and nothing moves
    stamp, version = backend.events_stamp(), backend.version()
    assert not backend.insert_event(day, event("b|1", 30.0, rule="other"))
    assert backend.events_stamp() == stamp and backend.version() == version
    assert [(e["_id"], e["ts"], e["rule"], e["values"]) for e in backend.events(day)] == [
        ("a|1", 10.0, "r", {"oi": 1}),
        ("b|1", 20.0, "r", {"oi": 1}),
    ]
    assert backend.events(day - timedelta(days=1)) == []
    assert backend.history_days() == []  # events are not history


def test_prune_drops_old_event_days(backend):
    for days in (0, 40):
        backend.insert_event(T0.date() - timedelta(days=days), event(f"e{days}", float(days)))
    backend.prune(T0.date(), keep_days=30)
    assert len(backend.events(T0.date())) == 1
    assert backend.events(T0.date() - timedelta(days=40)) == []


def close_doc(expiry: str, day: str, oi: int) -> dict:
    return {"_id": f"NIFTY|{expiry}|{day}", "symbol": "NIFTY", "expiry": expiry, "day": day, "ce_oi": [oi]}


def test_session_closes_are_kept_per_id_and_go_with_their_expiry(backend):
    stamp = backend.closes_stamp()
    backend.save_close(close_doc("2026-10-20", "2026-10-19", 1))
    backend.save_close(close_doc("2026-11-24", "2026-10-01", 2))
    backend.save_close(close_doc("2026-11-24", "2026-10-01", 3))  # the same session again: replaced, not added
    assert backend.closes_stamp() > stamp  # other processes re-read them
    assert backend.close_ids() == {"NIFTY|2026-10-20|2026-10-19", "NIFTY|2026-11-24|2026-10-01"}
    assert sorted(d["ce_oi"][0] for d in backend.closes()) == [1, 3]
    # History is dropped after the retention; a close outlives it (the 1 Oct one), until its expiry is as old.
    backend.save_chain(chain(at=T0 - timedelta(days=40)))
    stamp = backend.closes_stamp()
    backend.prune(T0.date(), keep_days=30)  # cutoff 2026-10-24
    assert backend.close_ids() == {"NIFTY|2026-11-24|2026-10-01"}
    assert backend.closes_stamp() > stamp


def test_a_day_is_read_in_one_pass_per_symbol_and_expiry(backend):
    for minute in (2, 0, 1):  # stored out of order: read back oldest first
        backend.save_chain(chain(at=T0 + timedelta(minutes=minute), oi=minute))
    backend.save_chain(chain(expiry="2026-12-01", oi=9))
    backend.save_chain(chain(symbol="BANKNIFTY", oi=8))
    backend.save_chain(chain(at=T0 - timedelta(days=1), oi=7))  # another day
    day = backend.day_history(T0.date())
    assert sorted(day) == [("BANKNIFTY", "2026-11-24"), ("NIFTY", "2026-11-24"), ("NIFTY", "2026-12-01")]
    assert [c.strikes[0].ce.oi for c in day[("NIFTY", "2026-11-24")]] == [0, 1, 2]
    assert day[("NIFTY", "2026-11-24")] == backend.history("NIFTY", "2026-11-24", T0.date())
    assert {k: c.strikes[0].ce.oi for k, c in backend.last_frames(T0.date()).items()} == {
        ("BANKNIFTY", "2026-11-24"): 8,
        ("NIFTY", "2026-11-24"): 2,
        ("NIFTY", "2026-12-01"): 9,
    }
