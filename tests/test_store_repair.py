"""Damaged embedded store files (red team #14, finding 5): moved aside (kept, named in the log and on /healthz),
recreated, and the service goes on; no upstream call while an answer could not be stored; an unreadable history
document is skipped (and named) by the night snapshot instead of failing it.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import mongomock
import pytest

from oi import snapshot
from oi.store import Store, history_collection, open_store
from tests.session import DAY, record_session
from tests.test_faults import CHAIN, INTERVAL, STEP, Live
from tests.test_store import chain

EXPIRY = "2026-11-24"


def files(tmp_path: Path) -> Path:
    return tmp_path / "montydb" / "oi"


def ticks(live: Live, seconds: float) -> None:
    for _ in range(int(seconds / STEP)):
        live.rt.tick()
        live.timer.advance(STEP)


@pytest.mark.parametrize("damage", ["empty", "truncated", "not-sqlite", "bad-json"])
def test_damaged_file_found_at_start_is_moved_aside_and_recreated(tmp_path, damage, caplog):
    store = open_store("", "oi", tmp_path)
    store.save_chain(chain())
    store.save_expiries("NIFTY", [EXPIRY], DAY)
    latest = files(tmp_path) / "latest.collection"
    if damage == "empty":
        latest.write_bytes(b"")  # what a kill -9 during collection creation leaves
    elif damage == "truncated":
        latest.write_bytes(latest.read_bytes()[:100])
    elif damage == "not-sqlite":
        latest.write_bytes(b"\0" * 4096)
    else:
        with sqlite3.connect(latest) as conn:
            conn.execute("UPDATE documents SET v = '{broken'")
    with caplog.at_level(logging.WARNING):
        store = open_store("", "oi", tmp_path)  # start-up
    assert len(store.repaired) == 1 and store.repaired[0].startswith("latest.collection (")
    kept = [p for p in files(tmp_path).glob("latest.collection.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1 and kept[0].name in store.repaired[0]  # kept for a post-mortem, under the name reported
    assert any(kept[0].name in r.getMessage() for r in caplog.records if r.name == "oi.store_repair")
    # the collection starts empty and works; the undamaged ones are untouched
    assert store.latest_all() == []
    store.save_chain(chain(oi=5))
    assert store.latest("NIFTY", EXPIRY).strikes[0].ce.oi == 5
    assert store.expiries("NIFTY") == ([EXPIRY], DAY)
    assert open_store("", "oi", tmp_path).repaired == []  # healthy now: nothing more to move


def test_damage_while_running_heals_without_calling_dhan_for_answers_it_cannot_keep(fake_dhan, timer, tmp_path):
    store = open_store("", "oi", tmp_path)
    live = Live(fake_dhan, store, timer)
    good = live.fill()
    heal = store.heal
    store.heal = lambda: []  # first: damage that cannot be healed (the move fails)
    (files(tmp_path) / "latest.collection").write_bytes(b"")
    assert live.next_call() == f"{CHAIN}: store"  # this answer is lost…
    calls = len(fake_dhan.calls)
    ticks(live, 30)
    assert len(fake_dhan.calls) == calls  # …and no more are asked for while they could not be stored
    assert live.oi()["as_of"] == good["as_of"]  # viewers keep the last good data

    store.heal = heal  # the move works again: the next tick heals, and refreshing resumes
    assert live.next_call() == CHAIN
    assert store.latest("NIFTY", EXPIRY) is not None
    health = live.client.get("/healthz").get_json()
    # (by now SQLite has turned the 0-byte file into an empty database without montydb's table)
    (repaired,) = health["store_repaired"]
    assert repaired.startswith("latest.collection (") and " -> latest.collection.damaged-" in repaired
    assert live.oi()["as_of"] > good["as_of"]


def test_a_broken_meta_document_is_healed_without_a_traceback_per_tick(fake_dhan, timer, tmp_path, caplog):
    store = open_store("", "oi", tmp_path)
    live = Live(fake_dhan, store, timer)
    good = live.fill()
    with sqlite3.connect(files(tmp_path) / "meta.collection") as conn:
        conn.execute("UPDATE documents SET v = '{broken'")
    with caplog.at_level(logging.WARNING):
        ticks(live, 10 * INTERVAL)
    assert not [r for r in caplog.records if r.exc_info]  # before: "refresher step failed" + traceback every tick
    assert any(r.startswith("meta.collection (a document is not readable JSON)") for r in store.repaired)
    assert live.oi()["as_of"] > good["as_of"]  # refreshing went on with a fresh meta collection


def test_snapshot_skips_an_unreadable_history_document(caplog):
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    record_session(store, symbols=("NIFTY",))
    history = store.db[history_collection(DAY)]
    total = history.count_documents({})
    bad = history.find_one({}, sort=[("ts", 1)])["_id"]
    history.update_one({"_id": bad}, {"$unset": {"spot": ""}})  # no longer a chain
    with caplog.at_level(logging.WARNING):
        (dataset,) = snapshot.collect(store, ("NIFTY",), 1, DAY)
    assert len(dataset.chains) == total - 1
    assert any(bad in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records)
