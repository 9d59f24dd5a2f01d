"""Adaptive pace (issue #14) at the wire: the fake Dhan's limiter refuses calls closer than a gap stricter than
Dhan's documentation (HTTP 429 + 805, as users report); the refresher runs on the real SDK and a fake timer.
"""

from __future__ import annotations

import json
import re

import pytest

from oi.pace import CAP_FACTOR, CLEAN_RUN, FLOOR_HOLD_SECONDS, PacePolicy, PaceState
from oi.refresher import PACE
from tests.test_faults import CHAIN, INTERVAL, STEP, Live

GAP = 3.6  # the strict limiter: 20% above the documented 3 s
MINUTE = 60.0
# These tests are about the limiter, not timeouts: a call slower than test_faults' 0.3 s (a busy machine) must not
# turn into a network error whose retry then lands inside the limiter's gap.
PATIENT = {"DHAN_TIMEOUT_SECONDS": "5"}


def run(live: Live, seconds: float) -> None:
    for _ in range(int(seconds / STEP)):
        live.rt.tick()
        live.timer.advance(STEP)


def good_calls(live: Live, since: float) -> list[float]:
    return [t for t, label in live.labels if t >= since and label == CHAIN]


def page_refresh_ms(live: Live) -> int:
    html = live.client.get("/").get_data(as_text=True)
    return json.loads(re.search(r"\"refresh_ms\":\s*(\d+)", html).group(0).join("{}"))["refresh_ms"]


def test_pace_settles_above_a_strict_limiter_within_a_minute(fake_dhan, store, timer):
    fake_dhan.min_gap = GAP
    live = Live(fake_dhan, store, timer, **PATIENT)
    start = timer()
    run(live, 5 * MINUTE)  # from an empty store: the expiry list, then chains as fast as the pace allows

    after_first_minute = start + MINUTE
    assert fake_dhan.limited, "the limiter never refused a call: the test does not exercise it"
    assert all(t < after_first_minute for t in fake_dhan.limited)  # no 805 after the first minute
    per_minute = len(good_calls(live, after_first_minute)) / ((timer() - after_first_minute) / MINUTE)
    assert per_minute >= 0.9 * MINUTE / GAP  # good calls keep flowing, near what the limiter allows
    health = live.client.get("/healthz").get_json()
    assert GAP < health["pace_seconds"] <= INTERVAL * CAP_FACTOR
    assert page_refresh_ms(live) == int(health["pace_seconds"] * 1000)  # the page polls at the pace in force


def test_without_a_limiter_the_pace_stays_at_the_minimum(fake_dhan, store, timer):
    live = Live(fake_dhan, store, timer, **PATIENT)
    start = timer()
    live.fill()
    run(live, 2 * MINUTE)
    assert fake_dhan.limited == []
    assert live.client.get("/healthz").get_json()["pace_seconds"] == INTERVAL
    assert len(good_calls(live, start)) >= 2 * MINUTE / (INTERVAL + 0.05 + STEP) - 1


def test_the_pace_is_shared_through_the_store(fake_dhan, store, timer):
    # A second process on the same store (a gunicorn worker, a new lease holder) sees the widened pace.
    fake_dhan.min_gap = GAP
    first = Live(fake_dhan, store, timer, **PATIENT)
    run(first, MINUTE)
    widened = store.pace(PACE)["pace"]
    assert widened > GAP
    other = Live(fake_dhan, store, timer, **PATIENT)
    other.rt.tick()  # picks up the shared status
    assert other.client.get("/healthz").get_json()["pace_seconds"] == pytest.approx(widened, abs=1e-3)
    assert other.rt.refresher.pace_policy.state(store.pace(PACE)).pace == widened


def test_the_pace_narrows_back_after_a_clean_run(fake_dhan, store, timer):
    live = Live(fake_dhan, store, timer, **PATIENT)
    live.fill()
    fake_dhan.script.append((429, {"data": {"805": "Too many requests"}, "status": "failed"}))
    assert live.next_call() == f"{CHAIN}: rate_limit"
    wide = store.pace(PACE)["pace"]
    assert wide == INTERVAL * 1.25
    for _ in range(CLEAN_RUN - 1):
        assert live.next_call() == CHAIN
    assert store.pace(PACE)["pace"] == wide  # not before a full clean run
    assert live.next_call() == CHAIN
    narrowed = store.pace(PACE)["pace"]
    assert INTERVAL <= narrowed < wide
    assert live.client.get("/healthz").get_json()["pace_seconds"] == pytest.approx(narrowed, abs=1e-3)


def test_policy_bounds():
    policy = PacePolicy(3.0)
    state = policy.state(None)
    assert state.pace == 3.0
    # widening is capped at 4 × the minimum, however many rate limits come
    for _ in range(20):
        state = policy.widen(state, now=0.0)
    assert state.pace == 12.0
    # narrowing stops at the floor above the last refused pace while it holds…
    refused = policy.widen(PaceState(3.5), now=0.0)
    for _ in range(50):
        refused = policy.narrow(refused, now=100.0)
    assert refused.pace == pytest.approx(3.5 * 1.05)
    # …and never goes below the minimum once the floor lapses
    for _ in range(50):
        refused = policy.narrow(refused, now=FLOOR_HOLD_SECONDS + 1)
    assert refused.pace == 3.0
    # a stored pace outside this process's bounds (other settings) is clamped
    assert policy.state({"pace": 100.0}).pace == 12.0 and policy.state({"pace": 0.5}).pace == 3.0


def test_the_lease_holder_keeps_its_own_sends_a_pace_apart(fake_dhan, store, timer):
    # A slot claimed on time but sent late (a busy CPU) must not let the next send come closer than the pace.
    live = Live(fake_dhan, store, timer, **PATIENT)
    live.fill()
    refresher = live.rt.refresher
    slept: list[float] = []
    refresher.sleep = lambda seconds: (slept.append(seconds), timer.advance(seconds))
    refresher._last_sent = timer() - 1.0  # the last call went out 1 s ago, though its slot was claimed earlier
    refresher._claimed_pace = INTERVAL
    refresher._space_from_last_send()
    assert slept == [pytest.approx(INTERVAL - 1.0)]
    refresher._last_sent = timer() - 10.0
    refresher._space_from_last_send()
    assert len(slept) == 1  # no wait when the pace has passed
