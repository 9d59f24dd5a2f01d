"""The market feed against a fake Dhan feed on loopback: protocol, subscriptions, merging and every failure."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from datetime import datetime
from pathlib import Path

import pytest
from websockets.sync.client import connect as ws_connect

from oi.feed import protocol
from oi.feed.instruments import Resolver
from oi.feed.merge import TickBook
from oi.feed.subscriptions import FULL, TICKER, Plan, wanted, window
from oi.feed.supervisor import LIVE, OFF, STOPPED, FeedSupervisor
from oi.market.calendar import IST
from oi.market.dhan import normalize
from tests.fakes.dhan import CLIENT_ID, TOKEN
from tests.fakes.feed import FakeFeed

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "dhan"
AT = datetime(2026, 11, 23, 11, 0, tzinfo=IST)
NSE_FNO, IDX = protocol.SEGMENTS["NSE_FNO"], protocol.SEGMENTS["IDX_I"]
GOLDEN = bytes.fromhex("08a20002f4d90000cd4c18434b00")


def recorded_chain(**changes):
    raw = json.loads((FIXTURES / "optionchain_NIFTY.json").read_text())["data"]
    chain = normalize("NIFTY", "2026-11-24", raw, AT)
    return dataclasses.replace(chain, **changes) if changes else chain


def wait_until(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


class Open:
    def __init__(self, is_open: bool = True) -> None:
        self.open = is_open

    def is_open(self, now) -> bool:
        return self.open


# --- protocol -------------------------------------------------------------------------------------------------
def test_golden_full_packet_header_and_ltp():
    packet = protocol.parse(GOLDEN + bytes(162 - len(GOLDEN)))
    assert packet.code == protocol.FULL and packet.segment == NSE_FNO and packet.security_id == 55796
    assert packet.ltp == 152.3  # float32 152.3000030517578 rounded to the tick
    assert protocol.HEADER.unpack_from(GOLDEN) == (8, 162, 2, 55796)
    assert int.from_bytes(GOLDEN[12:14], "little") == 75  # LTQ, where our layout reads it


def test_full_packet_fields_at_documented_offsets():
    data = protocol.full_packet(2, 42528, 101.25, 123450, volume=999, bid=101.2, bid_qty=75, ask=101.3, ask_qty=150)
    assert len(data) == 162
    assert int.from_bytes(data[34:38], "little") == 123450  # OI @34
    assert int.from_bytes(data[22:26], "little") == 999  # volume @22
    tick = protocol.parse(data)
    assert (tick.ltp, tick.oi, tick.volume, tick.bid, tick.bid_qty, tick.ask, tick.ask_qty) == (
        101.25,
        123450,
        999,
        101.2,
        75,
        101.3,
        150,
    )


def test_short_unknown_and_other_packets():
    full = protocol.full_packet(2, 1, 10.0, 5)
    assert protocol.parse(full[:100]) is None  # declared 162, 100 arrived
    assert protocol.parse(b"\x08\x00") is None
    assert protocol.parse(protocol.HEADER.pack(1, 20, 0, 13) + bytes(12)) is None  # index packet: undocumented
    assert protocol.parse(protocol.HEADER.pack(99, 8, 0, 0)) is None
    assert protocol.parse(protocol.disconnect_packet(807)).reason == 807
    prev = protocol.parse(protocol.prev_close_packet(2, 7, 99.95, 1000))
    assert (prev.prev_close, prev.prev_oi) == (99.95, 1000)
    assert protocol.parse(protocol.ticker_packet(0, 13, 23850.5)).ltp == 23850.5


def test_requests_batch_at_most_100_with_string_ids():
    messages = [json.loads(m) for m in protocol.requests([("NSE_FNO", i) for i in range(250)])]
    assert [m["InstrumentCount"] for m in messages] == [100, 100, 50]
    assert all(m["RequestCode"] == 21 for m in messages)
    assert messages[0]["InstrumentList"][0] == {"ExchangeSegment": "NSE_FNO", "SecurityId": "0"}
    assert json.loads(next(protocol.requests([("IDX_I", 13)], "ticker", subscribe=False)))["RequestCode"] == 16


# --- subscriptions --------------------------------------------------------------------------------------------
def test_window_is_atm_plus_minus_n():
    chain = recorded_chain()  # spot 23847.35 → ATM 23850, strikes every 50
    picked = window(chain, 2)
    assert picked[0] == 23850.0 and sorted(picked) == [23750.0, 23800.0, 23850.0, 23900.0, 23950.0]


def test_plan_moves_window_without_gap_and_respects_capacity():
    chain = recorded_chain()
    legs = Resolver(None)(chain)
    plan = Plan(connections=2, capacity=10)
    first = plan.update(wanted([(chain, legs)], 2, [("IDX_I", "13")]))
    assert sum(len(d.subscribe) for d in first.values()) == 11 and plan.dropped == 0
    assert (TICKER, ("IDX_I", "13")) in first[0].subscribe
    moved = dataclasses.replace(chain, spot=23952.0)  # ATM 23950: 23750 leaves, 24000 and 24050 join
    deltas = plan.update(wanted([(moved, legs)], 2, [("IDX_I", "13")]))
    added = {w for d in deltas.values() for w in d.subscribe}
    removed = {w for d in deltas.values() for w in d.unsubscribe}
    assert added == {(FULL, legs[(k, s)]) for k in (24000.0, 24050.0) for s in ("CE", "PE")}
    assert removed == {(FULL, legs[(k, s)]) for k in (23750.0, 23800.0) for s in ("CE", "PE")}
    small = Plan(connections=1, capacity=5)
    small.update(wanted([(chain, legs)], 2, [("IDX_I", "13")]))
    assert len(small.assigned) == 5 and small.dropped == 6
    # the index and the nearest strikes are kept, the far wings dropped
    assert (TICKER, ("IDX_I", "13")) in small.assigned and (FULL, legs[(23850.0, "CE")]) in small.assigned


# --- merging --------------------------------------------------------------------------------------------------
def test_ticks_merge_onto_recorded_chain():
    chain = recorded_chain()
    ids = chain.security_ids
    legs = {k: (NSE_FNO, v) for k, v in ids.items()}
    book = TickBook(timer=lambda: 0.0)
    ce = ids[(23800.0, "CE")]
    book.on_packet(protocol.parse(protocol.prev_close_packet(NSE_FNO, ce, 140.0, 4_700_000)))
    book.on_packet(protocol.parse(protocol.full_packet(NSE_FNO, ce, 150.05, 3_500_000, 9000, 150.0, 75, 150.1, 150)))
    book.on_packet(protocol.parse(protocol.ticker_packet(IDX, 13, 23861.4)))
    later = datetime(2026, 11, 23, 11, 0, 5, tzinfo=IST)
    merged = book.apply(chain, legs, (IDX, 13), later)
    row = next(s for s in merged.strikes if s.strike == 23800.0)
    before = next(s for s in chain.strikes if s.strike == 23800.0)
    assert (row.ce.ltp, row.ce.oi, row.ce.previous_oi, row.ce.oi_change) == (150.05, 3_500_000, 4_700_000, -1_200_000)
    assert (row.ce.bid, row.ce.ask, row.ce.volume, row.ce.previous_close) == (150.0, 150.1, 9000, 140.0)
    assert row.ce.iv == before.ce.iv and row.ce.delta == before.ce.delta  # IV and Greeks stay from REST
    assert row.pe == before.pe  # no tick: REST's values
    assert merged.spot == 23861.4 and merged.as_of == later
    assert book.apply(chain, {}, None, later) is chain


# --- the supervisor against the fake feed ---------------------------------------------------------------------
@pytest.fixture
def feed():
    server = FakeFeed().start()
    yield server
    server.stop()


def supervisor(url: str, token: str = TOKEN, **kw) -> FeedSupervisor:
    kw.setdefault("calendar", Open(True))
    kw.setdefault("backoff", 0.05)
    kw.setdefault("max_backoff", 0.2)
    kw.setdefault("ping_interval", None)
    kw.setdefault("clock", lambda: AT)
    return FeedSupervisor(url, CLIENT_ID, token, Resolver(None), {"NIFTY": (13, "IDX_I")}, strikes=2, **kw)


@pytest.fixture
def sup(feed):
    s = supervisor(feed.url)
    yield s
    s.stop()


def expected_set(chain) -> set[tuple[int, int]]:
    ids = chain.security_ids
    return {(NSE_FNO, ids[(k, s)]) for k in window(chain, 2) for s in ("CE", "PE")} | {(IDX, 13)}


def test_subscribes_window_and_streams_ticks(feed, sup):
    chain = recorded_chain()
    ce = chain.security_ids[(23850.0, "CE")]
    feed.prev[(NSE_FNO, ce)] = (120.0, 2_000_000)
    feed.quotes[(NSE_FNO, ce)] = {"ltp": 125.5, "oi": 2_100_000}
    sup.start()
    sup.follow([chain])
    assert wait_until(lambda: sup.status().live)
    conn = feed.open_connections()[0]
    assert conn.query == {"version": "2", "token": TOKEN, "clientId": CLIENT_ID, "authType": "2"}
    assert set(conn.held) == expected_set(chain)
    assert conn.held[(IDX, 13)] == "ticker" and conn.held[(NSE_FNO, ce)] == "full"
    assert wait_until(lambda: ("NIFTY", "2026-11-24") in sup.changed())
    atm = next(s for s in sup.apply(chain).strikes if s.strike == 23850.0)
    assert (atm.ce.ltp, atm.ce.oi, atm.ce.previous_oi) == (125.5, 2_100_000, 2_000_000)
    feed.push(NSE_FNO, ce, oi=2_150_000, ltp=126.0)
    assert wait_until(lambda: next(s for s in sup.apply(chain).strikes if s.strike == 23850.0).ce.oi == 2_150_000)
    assert sup.status().packets >= 3 and sup.status().instruments == 11


def test_window_moves_with_spot_subscribing_before_unsubscribing(feed, sup):
    chain = recorded_chain()
    sup.start()
    sup.follow([chain])
    assert wait_until(lambda: sup.status().live)
    conn = feed.open_connections()[0]
    n = len(conn.requests)
    sup.follow([dataclasses.replace(chain, spot=23952.0)])
    assert wait_until(lambda: set(conn.held) == expected_set(dataclasses.replace(chain, spot=23952.0)))
    codes = [r["RequestCode"] for r in conn.requests[n:]]
    assert codes == [21, 22]  # new strikes first, then the old ones go


def test_wrong_token_is_refused_and_never_live(feed):
    s = supervisor(feed.url, token="wrong-token")
    s.start()
    try:
        s.follow([recorded_chain()])
        assert wait_until(lambda: s.status().state == STOPPED)
        assert "HTTP 401" in s.status().reason and feed.rejected[0]["token"] == "wrong-token"
        time.sleep(0.3)
        assert len(s.attempts) == 1  # a refused handshake is not retried until the token changes
        s.token_replaced(TOKEN)
        assert wait_until(lambda: s.status().live)
    finally:
        s.stop()


@pytest.mark.parametrize("code", [806, 807, 808, 809, 810])
def test_disconnect_code_stops_with_reason_and_no_reconnect(feed, sup, code):
    sup.start()
    sup.follow([recorded_chain()])
    assert wait_until(lambda: sup.status().live)
    feed.disconnect(code)
    assert wait_until(lambda: sup.status().state == STOPPED)
    assert f"code {code}" in sup.status().reason
    time.sleep(0.5)  # many back-off periods
    assert len(sup.attempts) == 1 and len(feed.connections) == 1


def test_sixth_connection_drops_oldest_with_805_and_no_storm(feed):
    s = supervisor(feed.url, cooldown_805=60.0)
    s.start()
    others = contextlib.ExitStack()
    try:
        s.follow([recorded_chain()])
        assert wait_until(lambda: s.status().live)
        url = f"{feed.url}?version=2&token={TOKEN}&clientId={CLIENT_ID}&authType=2"
        for _ in range(5):
            others.enter_context(ws_connect(url))
        assert wait_until(lambda: s.status().state == STOPPED)
        assert "805" in s.status().reason
        time.sleep(1.0)
        assert len(s.attempts) == 1  # at most one attempt in the next minute
    finally:
        others.close()
        s.stop()


def test_805_retries_once_after_cooldown(feed):
    s = supervisor(feed.url, cooldown_805=1.0)
    s.start()
    try:
        s.follow([recorded_chain()])
        assert wait_until(lambda: s.status().live)
        feed.disconnect(805)
        assert wait_until(lambda: s.status().state == STOPPED)
        assert "retrying in 1 s" in s.status().reason
        time.sleep(0.3)
        assert len(s.attempts) == 1
        assert wait_until(lambda: s.status().live)
        assert len(s.attempts) == 2
    finally:
        s.stop()


def test_abrupt_drop_reconnects_and_resubscribes_same_set(feed, sup):
    chain = recorded_chain()
    sup.start()
    sup.follow([chain])
    assert wait_until(lambda: sup.status().live)
    before = feed.held(0)
    feed.drop(0)
    assert wait_until(lambda: len(feed.open_connections()) == 1 and len(feed.connections) == 2)
    assert wait_until(lambda: feed.held(1) == before == expected_set(chain))
    assert wait_until(lambda: sup.status().live)


def test_stall_in_market_hours_reconnects(feed):
    s = supervisor(feed.url, stall_timeout=0.3)
    s.start()
    try:
        s.follow([recorded_chain()])
        assert wait_until(lambda: s.status().live)
        assert wait_until(lambda: len(feed.connections) >= 2, 5)  # silent server, no pings: a stall
        assert wait_until(lambda: feed.held(1) == feed.held(0))  # resubscribed in full
    finally:
        s.stop()


def test_pings_keep_a_quiet_feed_alive():
    server = FakeFeed(ping_interval=0.05).start()
    s = supervisor(server.url, stall_timeout=0.6)
    try:
        s.start()
        s.follow([recorded_chain()])
        assert wait_until(lambda: s.status().live)
        time.sleep(1.0)
        assert len(server.connections) == 1 and s.status().live
    finally:
        s.stop()
        server.stop()


def test_after_hours_silence_is_normal(feed):
    s = supervisor(feed.url, stall_timeout=0.2, calendar=Open(False))
    s.start()
    try:
        s.follow([recorded_chain()])
        assert wait_until(lambda: s.status().live)
        time.sleep(1.0)
        assert len(feed.connections) == 1 and s.status().live
    finally:
        s.stop()


def test_malformed_packets_are_skipped_without_stalling(feed, sup):
    chain = recorded_chain()
    ce = chain.security_ids[(23850.0, "CE")]
    sup.start()
    sup.follow([chain])
    assert wait_until(lambda: sup.status().live)
    for junk in (b"\x08\x00", protocol.full_packet(NSE_FNO, ce, 1.0, 1)[:60], protocol.HEADER.pack(1, 8, 0, 13)):
        feed.send_raw(junk)
    feed.push(NSE_FNO, ce, ltp=99.5, oi=777)
    assert wait_until(lambda: next(s for s in sup.apply(chain).strikes if s.strike == 23850.0).ce.oi == 777)
    assert sup.status().skipped == 3 and len(feed.connections) == 1


def test_stop_closes_and_reports_off(feed, sup):
    sup.start()
    sup.follow([recorded_chain()])
    assert wait_until(lambda: sup.status().live)
    sup.stop()
    assert sup.status().state == OFF
    assert wait_until(lambda: not feed.open_connections())
    assert LIVE == "live"


def test_feed_settings_are_validated():
    from oi.config import ConfigError, from_env

    assert from_env({}).feed == "demo"  # auto: simulated ticks without credentials
    assert from_env({"DHAN_CLIENT_ID": "1", "DHAN_ACCESS_TOKEN": "tok-123456"}).feed == "dhan"
    assert from_env({"DHAN_CLIENT_ID": "1", "DHAN_ACCESS_TOKEN": "tok-123456", "OI_FEED": "off"}).feed == "off"
    cfg = from_env({"OI_FEED_STRIKES": "5", "OI_FEED_CONNECTIONS": "4", "DHAN_FEED_URL": "ws://127.0.0.1:9"})
    assert (cfg.feed_strikes, cfg.feed_connections, cfg.dhan_feed_url) == (5, 4, "ws://127.0.0.1:9")
    for bad, name in (
        ({"OI_FEED": "sometimes"}, "OI_FEED"),
        ({"OI_FEED_CONNECTIONS": "5"}, "OI_FEED_CONNECTIONS"),
        ({"OI_FEED_CONNECTIONS": "0"}, "OI_FEED_CONNECTIONS"),
        ({"OI_FEED_STRIKES": "x"}, "OI_FEED_STRIKES"),
        ({"DHAN_FEED_URL": "https://api-feed.dhan.co"}, "DHAN_FEED_URL"),
        ({"DHAN_INSTRUMENTS_URL": "ftp://x"}, "DHAN_INSTRUMENTS_URL"),
        ({"OI_REST_PERIOD_WITH_FEED_SECONDS": "0"}, "OI_REST_PERIOD_WITH_FEED_SECONDS"),
    ):
        with pytest.raises(ConfigError, match=name):
            from_env(bad)


def test_an_unexpected_error_reconnects_instead_of_ending_the_feed(feed, sup, monkeypatch):
    chain = recorded_chain()
    sup.start()
    sup.follow([chain])
    assert wait_until(lambda: sup.status().live)
    calls = []

    def broken(packet):
        calls.append(packet)
        if len(calls) == 1:
            raise RuntimeError("bug in a callback")
        sup.book.on_packet(packet)

    for conn in sup._conns.values():
        monkeypatch.setattr(conn, "on_packet", broken)
    ce = chain.security_ids[(23850.0, "CE")]
    feed.push(NSE_FNO, ce, ltp=1.0, oi=1)
    assert wait_until(lambda: len(feed.connections) == 2 and sup.status().live)
    feed.push(NSE_FNO, ce, ltp=2.0, oi=2)
    assert wait_until(lambda: next(s for s in sup.apply(chain).strikes if s.strike == 23850.0).ce.oi == 2)
