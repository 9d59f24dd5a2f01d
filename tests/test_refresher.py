"""Pacing, single flight and market-hours behaviour, with injected clock and timer."""

import itertools
import multiprocessing
import os
from datetime import datetime, timedelta

from oi.config import DEFAULT_UNDERLYINGS
from oi.market.calendar import IST, MarketCalendar, fixed_clock
from oi.market.dhan import DhanSource
from oi.refresher import Refresher
from oi.store import open_store
from tests.fakes.dhan import CLIENT_ID, ERRORS, TOKEN
from tests.helpers import MONDAY_1100

SATURDAY = datetime(2026, 11, 21, 11, 0, tzinfo=IST)


def make(store, fake_dhan, timer, now=MONDAY_1100, symbols=("NIFTY", "BANKNIFTY"), interval=3.0):
    source = DhanSource.create(CLIENT_ID, TOKEN, fake_dhan.base_url, 2.0, DEFAULT_UNDERLYINGS)
    return Refresher(store, source, MarketCalendar(), fixed_clock(now), symbols, 1, interval, 2.0, timer=timer)


def drive(refreshers, timer, seconds, step=0.25):
    """Tick every refresher every `step` seconds of fake time; return (fake time, label) of each upstream call."""
    done = []
    for _ in range(int(seconds / step)):
        for r in refreshers:
            label = r.run_once()
            if label:
                done.append((timer(), r.holder, label))
        timer.advance(step)
    return done


def test_one_call_per_interval_in_total(store, fake_dhan, timer):
    calls = drive([make(store, fake_dhan, timer)], timer, 30)
    times = [t for t, _, _ in calls]
    assert len(calls) == 10  # 30 s / 3 s
    assert min(b - a for a, b in itertools.pairwise(times)) >= 3.0
    labels = [label for _, _, label in calls]
    assert labels[:4] == [
        "expiries NIFTY",
        "expiries BANKNIFTY",
        "chain NIFTY 2026-11-24",
        "chain BANKNIFTY 2026-11-24",
    ]
    # then round-robin over (symbol, expiry)
    assert labels[4:8] == ["chain NIFTY 2026-11-24", "chain BANKNIFTY 2026-11-24"] * 2
    assert len(fake_dhan.calls) == 10


def test_two_refreshers_sharing_a_store_never_overlap(store, fake_dhan, timer):
    a, b = make(store, fake_dhan, timer), make(store, fake_dhan, timer)
    calls = drive([a, b], timer, 30)
    assert {holder for _, holder, _ in calls} == {a.holder}  # single flight: the lease holder only
    assert len(calls) == 10
    # the leader goes away: the other takes over, and the pace still holds across the handover
    a.stop()
    later = drive([b], timer, 12)
    assert {holder for _, holder, _ in later} == {b.holder}
    times = [t for t, _, _ in calls + later]
    assert min(y - x for x, y in itertools.pairwise(times)) >= 3.0


def test_a_crashed_leader_is_replaced_after_its_lease_expires(store, fake_dhan, timer):
    a, b = make(store, fake_dhan, timer), make(store, fake_dhan, timer)
    drive([a, b], timer, 6)
    # a stops ticking without releasing (killed worker): b waits for the TTL, then refreshes
    calls = drive([b], timer, a.lease_ttl + 6)
    assert calls and calls[0][0] >= a.lease_ttl - 0.25


def test_after_hours_fetches_each_missing_symbol_once(store, fake_dhan, timer):
    calls = drive([make(store, fake_dhan, timer, now=SATURDAY)], timer, 60)
    assert [label for _, _, label in calls] == [
        "expiries NIFTY",
        "expiries BANKNIFTY",
        "chain NIFTY 2026-11-24",
        "chain BANKNIFTY 2026-11-24",
    ]
    # a restart after hours with data already stored makes no call at all
    assert drive([make(store, fake_dhan, timer, now=SATURDAY)], timer, 30) == []


def test_expiry_lists_refresh_daily(store, fake_dhan, timer):
    first = make(store, fake_dhan, timer)
    drive([first], timer, 12)
    first.stop()
    next_day = make(store, fake_dhan, timer, now=MONDAY_1100 + timedelta(days=2))  # Wednesday
    labels = [label for _, _, label in drive([next_day], timer, 9)]
    assert labels[:2] == ["expiries NIFTY", "expiries BANKNIFTY"]
    assert labels[2] == "chain NIFTY 2026-12-01"  # the 24th expired: the next one is nearest


def test_rate_limit_backs_off_beyond_the_pace(store, fake_dhan, timer):
    r = make(store, fake_dhan, timer, symbols=("NIFTY",))
    drive([r], timer, 6)  # list + first chain
    fake_dhan.script.append((429, ERRORS["rate_limit_805"]["body"]))
    calls = drive([r], timer, 30)
    assert calls[0][2] == "chain NIFTY 2026-11-24: rate_limit"
    assert calls[1][0] - calls[0][0] >= 6.0  # at least 2 × the 3 s pace after a rate limit
    assert calls[1][2] == "chain NIFTY 2026-11-24"


def test_auth_failure_stops_polling(store, fake_dhan, timer):
    r = make(store, fake_dhan, timer, symbols=("NIFTY",))
    fake_dhan.token = "rotated"  # Dhan no longer accepts ours
    calls = drive([r], timer, 30)
    assert [label for _, _, label in calls] == ["expiries NIFTY: auth"]
    assert store.status()["auth_failed"] is True


def test_invalid_expiry_refetches_the_list(store, fake_dhan, timer):
    r = make(store, fake_dhan, timer, symbols=("NIFTY",))
    drive([r], timer, 6)
    fake_dhan.script.append((400, ERRORS["invalid_expiry_811"]["body"]))
    labels = [label for _, _, label in drive([r], timer, 9)]
    assert labels == ["chain NIFTY 2026-11-24: invalid_expiry", "expiries NIFTY", "chain NIFTY 2026-11-24"]


def _worker(base_url, data_dir, interval, clock, barrier, steps, out):
    """One process's refresher, stepped in lockstep with the others on a clock shared by every process."""
    store = open_store("", "oi", data_dir)
    source = DhanSource.create(CLIENT_ID, TOKEN, base_url, 2.0, DEFAULT_UNDERLYINGS)
    r = Refresher(
        store,
        source,
        MarketCalendar(),
        fixed_clock(MONDAY_1100),
        ("NIFTY", "BANKNIFTY"),
        1,
        interval,
        timer=lambda: clock.value,
    )
    made = []
    for _ in range(steps):
        barrier.wait()  # the driver moved the clock: every process tries its step at once
        label = r.run_once()
        if label is not None:
            made.append((clock.value, label))
        barrier.wait()  # every process is done with this step
    out.put((os.getpid(), made))


def test_processes_sharing_the_embedded_store_keep_the_pace(fake_dhan, tmp_path):
    """Real processes and the on-disk store, on a shared fake clock: the flock-guarded lease and pace hold across
    processes, with no dependence on how the machine schedules them."""
    interval, step, steps, n = 0.5, 0.1, 60, 3
    ctx = multiprocessing.get_context("spawn")
    clock, barrier, out = ctx.Value("d", 1_000_000.0), ctx.Barrier(n + 1, timeout=60), ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(fake_dhan.base_url, tmp_path, interval, clock, barrier, steps, out))
        for _ in range(n)
    ]
    for w in workers:
        w.start()
    for _ in range(steps):
        clock.value += step
        barrier.wait()
        barrier.wait()
    results = [out.get(timeout=30) for _ in workers]
    for w in workers:
        w.join(30)
    callers = [pid for pid, made in results if made]
    times = sorted(t for _, made in results for t, _ in made)
    assert len(callers) == 1  # single flight: only the lease holder calls upstream
    assert len(times) == len(fake_dhan.calls) >= 5
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= interval  # the pace, in the processes' own (shared) time
    assert len(times) <= steps * step / interval + 1
