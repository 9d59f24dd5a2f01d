"""Upstream faults at the wire: the real dhanhq SDK against the fake Dhan server, the refresher driven on a fake
timer and clock, and the Flask test client for what viewers see.

For every fault: run_once never raises, viewers get the last good data with ``stale: true`` and a plain-words
``stale_reason``, calls never come faster than the pace, and the next call after the fault clears recovers.
"""

import copy
import itertools
import json
import random
from datetime import timedelta

import mongomock
import pytest

from oi.market.calendar import IST
from oi.pace import CAP_FACTOR, WIDEN
from oi.store import Store
from oi.web import create_app
from tests.fakes import closed_port_url
from tests.fakes.dhan import CLIENT_ID, DROP, ERRORS, FIXTURES, SLEEP, TOKEN
from tests.helpers import MONDAY_1100, make_config

INTERVAL = 3.0
STEP = 0.25  # fake seconds between scheduler ticks
TIMEOUT = 0.3  # DHAN_TIMEOUT_SECONDS: the fake stalls longer than this to make the SDK time out
EXPIRY = "2026-11-24"
CHAIN = f"chain NIFTY {EXPIRY}"


class Live:
    """An app on the real SDK and the fake Dhan, its clock following the fake timer, and a log of refresher calls."""

    def __init__(self, fake_dhan, store, timer, **env: str) -> None:
        start = timer()
        fake_dhan.clock = timer  # the fake records call times on the same fake timer the pace uses
        config = make_config(
            **{
                "DHAN_CLIENT_ID": CLIENT_ID,
                "DHAN_ACCESS_TOKEN": TOKEN,
                "DHAN_API_BASE": fake_dhan.base_url,
                "DHAN_TIMEOUT_SECONDS": str(TIMEOUT),
                "DHAN_MIN_INTERVAL_SECONDS": str(INTERVAL),
                **env,  # a test may override any of these
            }
        )
        clock = lambda: (MONDAY_1100 + timedelta(seconds=timer() - start)).astimezone(IST)  # noqa: E731
        self.app = create_app(config, store=store, timer=timer, clock=clock)
        self.app.config.update(TESTING=True)
        self.rt = self.app.extensions["oi"]
        self.client = self.app.test_client()
        self.fake, self.store, self.timer = fake_dhan, store, timer
        self.labels: list[tuple[float, str]] = []
        run_once = self.rt.refresher.run_once

        def spy() -> str | None:  # what each run_once did, as the refresher reports it
            label = run_once()
            if label:
                self.labels.append((timer(), label))
            return label

        self.rt.refresher.run_once = spy

    def next_call(self, step: float = STEP, limit: float = 400.0) -> str:
        """Tick (run_once + view sync) every `step` fake seconds until the refresher makes one upstream call."""
        seen = len(self.labels)
        for _ in range(int(limit / step)):
            self.rt.tick()
            self.timer.advance(step)
            if len(self.labels) > seen:
                return self.labels[-1][1]
        raise AssertionError(f"no upstream call within {limit} fake seconds")

    def fill(self) -> dict:
        assert self.next_call() == "expiries NIFTY"
        assert self.next_call() == CHAIN
        return self.oi()

    def oi(self) -> dict:
        r = self.client.get("/api/oi?symbol=NIFTY")
        assert r.status_code == 200, r.data
        return r.get_json()

    def call_times(self) -> list[float]:
        with self.fake.lock:
            return [t for t, _, _ in self.fake.calls]


@pytest.fixture
def live(fake_dhan, store, timer):
    return Live(fake_dhan, store, timer)


CHAIN_BODY = json.loads((FIXTURES / "optionchain_NIFTY.json").read_text())


def body(**data) -> dict:
    """The fixture's option-chain answer with `data` fields replaced (None removes one)."""
    answer = copy.deepcopy(CHAIN_BODY)
    for key, value in data.items():
        if value is None:
            answer["data"].pop(key, None)
        else:
            answer["data"][key] = value
    return answer


def err(name: str) -> tuple[int, object]:
    return ERRORS[name]["http_status"], ERRORS[name]["body"]


REFUSED = "refused"  # not a scripted answer: the source is pointed at a port nobody listens on
FAULTS = [
    pytest.param((SLEEP, 2.0), "network", "Dhan unreachable (timeout)", id="timeout"),
    pytest.param((DROP, None), "network", "Dhan unreachable (connection dropped)", id="connection-dropped"),
    pytest.param(REFUSED, "network", "Dhan unreachable (connection refused)", id="connection-refused"),
    pytest.param((500, b"<html>Internal Server Error</html>"), "upstream", "Dhan server error (HTTP 500)", id="500"),
    pytest.param((502, b"Bad Gateway"), "upstream", "Dhan server error (HTTP 502)", id="502"),
    pytest.param((503, {"status": "failure", "remarks": "down"}), "upstream", "Dhan server error (HTTP 503)", id="503"),
    pytest.param((429, b"Too Many Requests"), "rate_limit", "rate limited by Dhan", id="429"),
    pytest.param(err("rate_limit_805"), "rate_limit", "rate limited by Dhan", id="805"),
    pytest.param(err("rate_limit_DH904"), "rate_limit", "rate limited by Dhan", id="DH-904"),
    pytest.param((200, ERRORS["rate_limit_805"]["body"]), "rate_limit", "rate limited by Dhan", id="805-http-200"),
    pytest.param((200, b"{not json"), "upstream", "malformed response from Dhan", id="malformed-json"),
    pytest.param((200, b""), "upstream", "malformed response from Dhan", id="empty-body"),
    pytest.param((200, b"<html>ok</html>"), "upstream", "malformed response from Dhan", id="html-200"),
    pytest.param((200, b"[]"), "upstream", "malformed response from Dhan", id="json-list"),
    pytest.param((200, {"status": "success", "data": []}), "upstream", "malformed response from Dhan", id="no-data"),
    pytest.param((200, body(oc=None)), "upstream", "malformed response from Dhan", id="no-oc"),
    pytest.param((200, body(oc=[])), "upstream", "malformed response from Dhan", id="oc-not-object"),
    pytest.param((200, {"status": "failure", "data": ""}), "upstream", "Dhan reported a failure", id="status-failure"),
    pytest.param((200, body(oc={})), "upstream", "empty option chain from Dhan", id="empty-chain"),
]


@pytest.mark.parametrize(("fault", "kind", "reason"), FAULTS)
def test_fault_serves_last_good_data_marked_stale_and_recovers_next_call(live, fault, kind, reason):
    good = live.fill()
    assert good["stale"] is False and good["stale_reason"] is None
    repeats = 2  # a fault that lasts: the reason holds, and still nothing raises

    if fault == REFUSED:
        live.rt.source.http.base_url = closed_port_url() + "/v2"
    else:
        live.fake.script.extend([fault] * repeats)
    for _ in range(repeats):
        assert live.next_call() == f"{CHAIN}: {kind}"
        seen = live.oi()
        assert (seen["stale"], seen["stale_reason"]) == (True, reason)
        # the last good data, untouched
        assert {k: seen[k] for k in ("as_of", "spot", "atm", "max_pain", "strikes")} == {
            k: good[k] for k in ("as_of", "spot", "atm", "max_pain", "strikes")
        }
        assert live.client.get("/").status_code == 200
        health = live.client.get("/healthz")
        assert health.status_code in (200, 503) and health.get_json()["store"] == "ok"
    assert live.store.status()["error_kind"] == kind

    if fault == REFUSED:
        live.rt.source.http.base_url = live.fake.base_url
    # the fault has cleared: the very next call succeeds and the stale flag goes with it
    assert live.next_call() == CHAIN
    now = live.oi()
    assert (now["stale"], now["stale_reason"]) == (False, None)
    assert now["as_of"] > good["as_of"]
    assert live.store.status()["error"] is None

    times = live.call_times()
    assert min(b - a for a, b in itertools.pairwise(times)) >= INTERVAL


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(err("token_invalid_DH901"), id="DH-901"),
        pytest.param(err("auth_failed_808"), id="808"),
        pytest.param(
            (401, {"data": {"807": "Access token is expired"}, "status": "failed"}),  # 808's shape, Dhan's 807 text
            id="807",
        ),
        pytest.param((401, b"Unauthorized"), id="bare-401"),
    ],
)
def test_auth_error_stops_polling_and_keeps_serving(live, answer):
    good = live.fill()
    live.fake.script.append(answer)
    assert live.next_call() == f"{CHAIN}: auth"
    calls = len(live.fake.calls)
    for _ in range(int(60 / STEP)):  # a minute of ticks: polling has stopped
        live.rt.tick()
        live.timer.advance(STEP)
    assert len(live.fake.calls) == calls
    assert live.store.status()["auth_failed"] is True
    seen = live.oi()
    assert seen["stale"] is True and "token" in seen["stale_reason"]
    assert (seen["spot"], seen["atm"]) == (good["spot"], good["atm"])
    assert live.client.get("/").status_code == 200


def rate_limited_gaps(fake_dhan, store, timer, seed: int, limits: int, step: float = STEP) -> list[float]:
    """Gaps between the calls the fake saw: the last good one, `limits` rate-limited ones, then the recovery."""
    live = Live(fake_dhan, store, timer)
    live.rt.refresher.rng = random.Random(seed)
    live.fill()
    first = len(live.fake.calls) - 1
    live.fake.script.extend([err("rate_limit_805")] * limits)
    labels = [live.next_call(step) for _ in range(limits + 1)]
    assert labels == [f"{CHAIN}: rate_limit"] * limits + [CHAIN]
    assert live.oi()["stale"] is False
    times = live.call_times()[first:]
    return [b - a for a, b in itertools.pairwise(times)]


def test_rate_limit_backs_off_with_jitter_never_faster_than_the_pace(fake_dhan, store, timer):
    gaps = rate_limited_gaps(fake_dhan, store, timer, seed=1, limits=4)
    assert gaps[0] >= INTERVAL  # the rate-limited call itself came at the pace
    backoffs = gaps[1:]
    assert all(b > a for a, b in itertools.pairwise(backoffs))  # the gaps grow
    for level, gap in enumerate(backoffs, 1):
        # (issue #14) the refused slot plus one widened pace (×1.25 each time, oi/pace.py), plus up to 25% jitter,
        # checked on the next tick
        base = INTERVAL * WIDEN ** (level - 1) + INTERVAL * WIDEN**level
        assert base <= gap <= 1.25 * base + STEP


def test_rate_limit_jitter_differs_between_processes(fake_dhan, store, timer):
    # Two refreshers seeded differently (two restarts) do not retry in lockstep.
    a = rate_limited_gaps(fake_dhan, store, timer, seed=1, limits=2)
    fake_dhan.calls.clear()
    b = rate_limited_gaps(fake_dhan, Store(mongomock.MongoClient()["oi"], "mongomock"), timer, seed=2, limits=2)
    assert a[1:] != b[1:]


def test_rate_limit_backoff_is_capped(fake_dhan, store, timer):
    # (issue #14) a burst of rate limits never turns into a long silence: the wait stays at the pace's cap
    cap = 2 * INTERVAL * CAP_FACTOR  # the refused slot and the widened pace, each at most 4 × the minimum
    gaps = rate_limited_gaps(fake_dhan, store, timer, seed=3, limits=9, step=1.0)
    assert max(gaps) <= cap * 1.25 + 1.0
    assert gaps[-1] >= cap  # 3 × 1.25⁹ = 22 s per pace, capped at 12 s


@pytest.mark.parametrize("spot", [pytest.param(0, id="zero"), pytest.param(None, id="missing")])
def test_zero_spot_never_moves_atm_or_max_pain(live, spot):
    good = live.fill()
    assert good["atm"] == 23850 and good["spot"] > 0
    live.fake.script.append((200, body(last_price=spot)))
    assert live.next_call() == CHAIN
    seen = live.oi()
    assert seen["as_of"] > good["as_of"]  # a new chain was stored and is served…
    assert (seen["spot"], seen["atm"], seen["max_pain"]) == (good["spot"], good["atm"], good["max_pain"])
    assert [s["strike"] for s in seen["strikes"]] == [s["strike"] for s in good["strikes"]]  # …same window
    assert seen["stale"] is False
    assert live.store.latest("NIFTY", EXPIRY).spot == good["spot"]


def test_zero_spot_with_nothing_before_is_stored_as_is(live):
    assert live.next_call() == "expiries NIFTY"
    live.fake.script.append((200, body(last_price=0)))
    assert live.next_call() == CHAIN
    seen = live.oi()
    assert (seen["spot"], seen["atm"]) == (0, None)  # no ATM rather than a wrong one
    assert seen["max_pain"] == 23850  # max pain depends on OI only
    assert live.next_call() == CHAIN  # the next good chain sets it
    assert live.oi()["atm"] == 23850


def test_an_unexpected_error_in_the_source_is_contained(live, monkeypatch):
    good = live.fill()

    def broken(*args):
        raise KeyError("surprise")

    monkeypatch.setattr(live.rt.source, "chain", broken)
    assert live.next_call() == f"{CHAIN}: internal"
    seen = live.oi()
    assert (seen["stale"], seen["stale_reason"]) == (True, "internal error while refreshing")
    assert seen["spot"] == good["spot"]
    monkeypatch.undo()
    assert live.next_call() == CHAIN
    assert live.oi()["stale"] is False


def test_fault_bodies_are_not_reflected_to_viewers(live):
    live.fill()
    live.fake.script.append((503, b"<script>alert(1)</script>"))
    live.next_call()
    r = live.client.get("/api/oi?symbol=NIFTY")
    assert r.status_code == 200 and b"<script>" not in r.data
    assert json.loads(r.data)["stale_reason"] == "Dhan server error (HTTP 503)"
