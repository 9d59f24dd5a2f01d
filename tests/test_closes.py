"""Day over day (issue #15 item 4): each session's closing OI kept per (symbol, expiry), cut from the store's history
while it has the day, read back from the published S3 archive once it does not, and served at /api/closes.

The page's side (the "Δ 25 Nov" column and the sessions chart, live and in the snapshot) is in
tests/glass/test_day_over_day.py; the store's side is in the contract suite, tests/test_store.py."""

from __future__ import annotations

from datetime import date, datetime, time

import boto3
import mongomock
import pytest

from oi import closes
from oi.archive import S3Archive, SpawnedArchive
from oi.cli import upload_main
from oi.closes import SessionClose
from oi.market.calendar import IST, MarketCalendar
from oi.store import Store, history_collection
from oi.web import create_app
from tests.fakes import closed_port_url
from tests.fakes.moto import aws_env, moto_server
from tests.helpers import make_config
from tests.session import record_session

D1, D2, D3 = date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)  # Wed, Thu, Fri
SYMBOLS = ("NIFTY", "BANKNIFTY")


def new_store() -> Store:
    return Store(mongomock.MongoClient()["oi"], "mongomock")


def recorded(days=(D1, D2), expiries: int = 1) -> tuple[Store, dict[str, list[str]]]:
    store = new_store()
    listed = {}
    for day in days:
        demo = record_session(store, SYMBOLS, day=day, seed=day.day, expiries=expiries)
        listed = {s: demo.expiries(s, day)[:expiries] for s in SYMBOLS}
    return store, listed


def pairs_of(listed: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(s, e) for s, es in listed.items() for e in es]


def last_frames(store: Store, pairs, days) -> dict[str, SessionClose]:
    return {
        closes.close_id(s, e, day): SessionClose.from_chain(store.history(s, e, day)[-1])
        for s, e in pairs
        for day in days
    }


def test_a_close_is_the_last_frame_of_its_day_and_is_recorded_once():
    store, listed = recorded()
    pairs = pairs_of(listed)
    done = closes.record(store, pairs, [D1, D2])
    assert sorted(done.from_store) == sorted(closes.close_id(s, e, d) for s, e in pairs for d in (D1, D2))
    assert not done.from_archive and not done.missing

    expected = last_frames(store, pairs, (D1, D2))
    stored = closes.load(store)
    for (symbol, expiry), got in stored.items():
        assert [c.day for c in got] == [D1, D2]  # oldest first
        for close in got:
            want = expected[close.id]
            assert close == want
            assert close.as_of.astimezone(IST).time() >= time(15, 29)  # the day's last minute, not its first
            assert close.ce_oi != stored[(symbol, expiry)][0].ce_oi or close.day == D1  # days differ

    stamp = store.closes_stamp()
    again = closes.record(store, pairs, [D1, D2])
    assert not again and not again.missing
    assert store.closes_stamp() == stamp  # nothing re-read by the views either


def test_days_neither_the_store_nor_the_archive_has_are_missing_and_asked_once():
    store, listed = recorded(days=(D2,))
    pairs = pairs_of(listed)

    class Counting:
        def __init__(self):
            self.asked = []

        def closes(self, wanted):
            self.asked.extend(wanted)
            return {closes.close_id(*w): None for w in wanted}  # it knows it has none of them

    archive = Counting()
    done = closes.record(store, pairs, [D1, D2], archive)
    assert sorted(done.missing) == sorted(closes.close_id(s, e, D1) for s, e in pairs)
    assert len(done.from_store) == len(pairs)
    assert sorted(archive.asked) == sorted((s, e, D1) for s, e in pairs)  # D2 came from the store
    # What a process already found missing is not asked again (Service keeps the set).
    archive.asked.clear()
    closes.record(store, pairs, [D1, D2], archive, skip=done.missing)
    assert archive.asked == []

    class Broken:
        calls = 0

        def closes(self, wanted):
            Broken.calls += 1
            raise ConnectionError("the child process died")

    # An archive that fails is asked once per run (one batch), and what the store has is still recorded.
    store2, _ = recorded(days=(D2,))
    done = closes.record(store2, pairs, [D1, D2], Broken())
    assert Broken.calls == 1
    assert len(done.from_store) == len(pairs)
    # Not found out about is not "missing": the service asks again on its next run instead of skipping them.
    assert not done.missing and sorted(done.unread) == sorted(closes.close_id(s, e, D1) for s, e in pairs)


def test_combined_expiries_sum_oi_on_the_days_every_expiry_has():
    store, listed = recorded(expiries=2)
    nifty = listed["NIFTY"]
    closes.record(store, pairs_of(listed), [D1, D2])
    stored = closes.load(store)
    near, far = (stored[("NIFTY", e)] for e in nifty)
    combined = closes.combine([near, far[1:]])  # the far expiry lacks D1: only D2 is combined
    assert [c.day for c in combined] == [D2]
    sums: dict[float, int] = {}
    for part in (near[1], far[1]):
        for k, oi in zip(part.strikes, part.ce_oi, strict=True):
            sums[k] = sums.get(k, 0) + oi
    assert dict(zip(combined[0].strikes, combined[0].ce_oi, strict=True)) == sums


def test_earlier_sessions_skip_weekends_and_holidays():
    calendar = MarketCalendar()  # 24 Nov 2026 is an NSE holiday
    assert closes.earlier_sessions(calendar, date(2026, 11, 30), 5) == [
        date(2026, 11, 20),
        date(2026, 11, 23),
        date(2026, 11, 25),
        date(2026, 11, 26),
        date(2026, 11, 27),
    ]
    assert closes.earlier_sessions(calendar, D1, 0) == []


@pytest.fixture
def app_at_d3():
    """The app on D3 with D1 and D2 recorded and their closes in the store, plus a close of D3 itself (a box that
    recorded today's history so far) which /api/closes must not offer as an *earlier* session."""
    store, listed = recorded(days=(D1, D2, D3), expiries=2)
    closes.record(store, pairs_of(listed), [D1, D2, D3])
    config = make_config(
        OI_SYMBOLS="NIFTY,BANKNIFTY",
        OI_SOURCE="demo",
        OI_EXPIRIES_PER_SYMBOL="2",
        OI_COMPARE_SESSIONS="1",
        OI_NOW="2026-11-27T15:30:00+05:30",
    )
    app = create_app(config, store=store)
    return app, store, listed


def test_api_closes_serves_earlier_sessions_only_up_to_the_configured_count(app_at_d3):
    app, store, listed = app_at_d3
    client = app.test_client()
    expiry = listed["NIFTY"][0]
    resp = client.get("/api/closes", query_string={"symbol": "NIFTY", "expiry": expiry})
    assert resp.status_code == 200
    body = resp.get_json()
    assert [s["day"] for s in body["sessions"]] == ["2026-11-26"]  # OI_COMPARE_SESSIONS=1, today left out
    want = SessionClose.from_chain(store.history("NIFTY", expiry, D2)[-1])
    got = body["sessions"][0]
    assert got["ce_oi"] == list(want.ce_oi) and got["pe_oi"] == list(want.pe_oi)
    assert got["strikes"] == [int(k) for k in want.strikes]
    assert got["ce_oi_total"] == sum(want.ce_oi) and got["pe_oi_total"] == sum(want.pe_oi)
    # Cacheable like the rest of the live API, and conditional.
    assert "no-store" not in resp.headers["Cache-Control"]
    again = client.get(
        "/api/closes",
        query_string={"symbol": "NIFTY", "expiry": expiry},
        headers={"If-None-Match": resp.headers["ETag"]},
    )
    assert again.status_code == 304

    combined = client.get("/api/closes", query_string={"symbol": "NIFTY", "expiry": "all"}).get_json()
    parts = [SessionClose.from_chain(store.history("NIFTY", e, D2)[-1]) for e in listed["NIFTY"]]
    assert combined["sessions"][0]["ce_oi_total"] == sum(sum(p.ce_oi) for p in parts)


def test_api_closes_refuses_bad_input_with_a_json_message(app_at_d3):
    client = app_at_d3[0].test_client()
    for query, status in (
        ({}, 400),
        ({"symbol": "NOPE"}, 400),
        ({"symbol": "NIFTY", "expiry": "tomorrow"}, 400),
        ({"symbol": "NIFTY", "expiry": "2030-01-01"}, 404),
    ):
        resp = client.get("/api/closes", query_string=query)
        assert resp.status_code == status, query
        assert resp.get_json()["error"]
        assert resp.headers["Cache-Control"] == "no-store"


def test_sessions_the_store_lost_come_back_from_the_published_archive(monkeypatch):
    """Publish D1 and D2 to S3 (moto over HTTP) with the real upload path, lose them from the store, then start the
    service on D3: the lease holder reads their closes back from the archive objects, and /api/closes serves them."""
    store, listed = recorded(days=(D1, D2))
    pairs = pairs_of(listed)
    expected = last_frames(store, pairs, (D1, D2))
    with moto_server() as url:
        aws_env(monkeypatch, url)
        bucket = "closes-archive.example.com"
        boto3.client("s3", region_name="ap-south-1").create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-south-1"}
        )
        env = {"OI_SYMBOLS": "NIFTY,BANKNIFTY", "OI_SOURCE": "demo", "S3_BUCKET_NAME": bucket}
        for day in (D1, D2):
            published = upload_main(["--date", f"{day}"], {**env, "OI_NOW": f"{day}T16:00:00+05:30"}, store=store)
            assert published == 0
        # The store forgets: both days' history and every close (a new instance's empty disk, a lost volume).
        for day in (D1, D2):
            store.db.drop_collection(history_collection(day))
        store.db.drop_collection("closes")
        assert closes.load(store) == {}
        record_session(store, SYMBOLS, day=D3, seed=3, start=time(9, 15), end=time(9, 20))

        config = make_config(**env, OI_NOW=f"{D3}T09:21:00+05:30", OI_COMPARE_SESSIONS="5")
        app = create_app(config, store=store)
        rt = app.extensions["oi"]
        assert isinstance(rt.archive, SpawnedArchive)  # read in a child: this process never loads boto3 for it
        done = rt.record_closes()
        assert sorted(done.from_archive) == sorted(expected)  # every one of them, from S3
        assert not done.from_store
        client = app.test_client()
        rt.views.sync(D3)
        for symbol, expiry in pairs:
            body = client.get("/api/closes", query_string={"symbol": symbol, "expiry": expiry}).get_json()
            assert [s["day"] for s in body["sessions"]] == ["2026-11-25", "2026-11-26"]
            for got in body["sessions"]:
                want = expected[closes.close_id(symbol, expiry, date.fromisoformat(got["day"]))]
                assert got["ce_oi"] == list(want.ce_oi) and got["pe_oi"] == list(want.pe_oi)
                assert datetime.fromisoformat(got["as_of"]) == want.as_of
        # Missing days (the 20th, 23rd: never published) were asked once; a second run asks S3 nothing.
        assert done.missing and not done.unread
        calls = []
        monkeypatch.setattr(SpawnedArchive, "closes", lambda self, wanted: calls.append(wanted) or {})
        assert not rt.record_closes() and calls == []


def test_todays_close_is_kept_from_memory_and_the_next_day_reads_it_without_the_history():
    """The lease holder writes today's close from the views' session (no whole-day read of the store), rewrites it
    only when a newer minute arrived, and the next day serves it with the day's history gone."""
    store, listed = recorded(days=(D1,))
    config = make_config(OI_SYMBOLS="NIFTY,BANKNIFTY", OI_SOURCE="demo", OI_NOW=f"{D1}T15:30:00+05:30")
    rt = create_app(config, store=store).extensions["oi"]
    assert rt.record_today() == len(SYMBOLS)
    stamp = store.closes_stamp()
    assert rt.record_today() == 0 and store.closes_stamp() == stamp  # nothing new: nothing written
    expected = last_frames(store, pairs_of(listed), (D1,))
    assert {c.id: c for cs in closes.load(store).values() for c in cs} == expected

    store.db.drop_collection(history_collection(D1))
    next_day = make_config(OI_SYMBOLS="NIFTY,BANKNIFTY", OI_SOURCE="demo", OI_NOW=f"{D2}T09:30:00+05:30")
    record_session(store, SYMBOLS, day=D2, seed=2, start=time(9, 15), end=time(9, 29))
    client = create_app(next_day, store=store).test_client()
    expiry = listed["NIFTY"][0]
    body = client.get("/api/closes", query_string={"symbol": "NIFTY", "expiry": expiry}).get_json()
    assert [s["day"] for s in body["sessions"]] == ["2026-11-25"]
    assert body["sessions"][0]["ce_oi"] == list(expected[closes.close_id("NIFTY", expiry, D1)].ce_oi)


def test_an_unreachable_archive_is_logged_and_reading_stops(caplog):
    """A bucket that cannot be reached (here nothing listens) ends the reading at the first failure with a warning,
    instead of waiting out every (symbol, expiry, day) in turn."""
    from botocore.config import Config as BotoConfig

    client = boto3.client(
        "s3",
        region_name="ap-south-1",
        endpoint_url=closed_port_url(),
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=BotoConfig(connect_timeout=1, retries={"max_attempts": 1}),
    )
    wanted = [("NIFTY", "2026-12-01", D1), ("NIFTY", "2026-12-01", D2)]
    assert S3Archive(client, "nowhere").closes(wanted) == {}  # neither found nor known absent: both unread
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "cannot read s3://nowhere" in r.message]
    assert len(warnings) == 1 and "2026-11-25" in warnings[0].message


def test_the_service_asks_again_what_it_could_not_find_out_but_not_what_is_known_absent():
    store, _ = recorded(days=(D2,))
    config = make_config(OI_SYMBOLS="NIFTY,BANKNIFTY", OI_SOURCE="demo", OI_NOW=f"{D3}T10:00:00+05:30")
    rt = create_app(config, store=store).extensions["oi"]
    asked: list[int] = []

    class Flaky:
        def closes(self, wanted):
            asked.append(len(wanted))
            if len(asked) == 1:
                raise TimeoutError("the archive reader timed out")
            return {closes.close_id(*w): None for w in wanted}

    rt.archive = Flaky()
    first = rt.record_closes()
    assert first.unread and not first.missing and asked == [len(first.unread)]
    second = rt.record_closes()  # asked again: the first run never found out
    assert asked == [len(first.unread), len(first.unread)] and sorted(second.missing) == sorted(first.unread)
    rt.record_closes()  # known absent now: not asked a third time
    assert len(asked) == 2
