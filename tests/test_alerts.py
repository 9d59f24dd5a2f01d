"""OI alerts (issue #15): each rule kind fires exactly when the numbers say and once, across services sharing a store
and across a lease hand-over; Telegram (a loopback fake) gets one message per event; bad rules stop start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import mongomock
import pytest

from oi import config as config_mod
from oi.alerts import buildup, load_rules
from oi.store import Store, open_store
from tests.alerts_market import DAY, EXPIRY, START, Harness, rules_file
from tests.fakes.telegram import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent

OI_RULE = """
[[rule]]
name = "big oi"
kind = "oi_change"
interval = 5
threshold = 10
unit = "lots"
"""


@pytest.fixture
def telegram():
    with FakeTelegram() as tg:
        yield tg


def env(tg: FakeTelegram, path: Path, **extra: str) -> dict[str, str]:
    return {
        "OI_ALERTS_FILE": str(path),
        "TELEGRAM_API_BASE": tg.url,
        "TELEGRAM_BOT_TOKEN": tg.token,
        "TELEGRAM_CHAT_ID": "42",
        "DOMAIN_NAME": "oi.example.com",
        **extra,
    }


def shared_mongomock():
    db = mongomock.MongoClient()["oi"]
    return lambda: Store(db, "mongomock")


def run(h: Harness, minutes: int, edits: dict | None = None) -> dict[int, list[dict]]:
    """Step `minutes` minutes; `edits[i]` edits the market before minute i. Returns the events fired per minute."""
    out = {}
    for i in range(minutes):
        if edits and i in edits:
            edits[i](h.market)
        out[i] = h.minute()
    return out


def fired_at(events: dict[int, list[dict]]) -> dict[int, list[str]]:
    return {i: sorted(f"{e['strike']} {e['direction']} {e['label']}" for e in evs) for i, evs in events.items() if evs}


# --- rule kinds on a scripted session ---------------------------------------------------------------------------
def set_leg(side: str, strike: float, oi: float, ltp: float):
    def edit(m):
        getattr(m, side)[strike] = [oi, ltp]

    return edit


def both(*edits):
    def edit(m):
        for e in edits:
            e(m)

    return edit


def test_oi_change_fires_when_the_interval_change_reaches_the_threshold_once_per_cooldown(tmp_path, telegram):
    # 10 lots of NIFTY = 650 units over 5 minutes; cooldown 15 minutes by default.
    h = Harness(env(telegram, rules_file(tmp_path, OI_RULE)), shared_mongomock())
    _, client = h.service()
    events = run(
        h,
        24,
        {
            6: set_leg("ce", 24000.0, 100_600, 55.0),  # +600 < 650: nothing
            7: both(set_leg("ce", 24000.0, 100_650, 56.0), set_leg("pe", 23700.0, 99_300, 44.0)),  # +650, −700
            # the 5-minute window keeps seeing +650 for five minutes: the cooldown holds it to one event
            13: set_leg("ce", 24000.0, 100_000, 57.0),  # back down by 650 at a higher price: short covering
            # minute 22: 15 min after minute 7 (and the change vs minute 17 is 0 by then): still nothing
        },
    )
    assert fired_at(events) == {
        7: ["23700 pe- long unwinding", "24000 ce+ long build-up"],
        13: ["24000 ce- short covering"],
    }
    ev = next(e for e in events[7] if e["strike"] == 24000)
    assert ev["values"] == {"oi_change": 650, "oi_before": 100_000, "oi": 100_650, "ltp": 56.0, "ltp_change": 6.0}
    assert ev["interval"] == 5 and ev["at"] == (START + timedelta(minutes=8)).isoformat()
    assert ev["url"] == (
        "https://oi.example.com/?symbol=NIFTY&expiry=2026-11-26&interval=5&at=2026-11-23T10%3A08%3A00%2B05%3A30"
    )
    # exactly one Telegram message per event, with the numbers and the link
    assert len(telegram.texts) == 3
    msg = next(t for t in telegram.texts if "24000 CE: long build-up" in t)
    assert "OI +650 (+10.0 lots) in 5 min (100,000 → 100,650)" in msg and ev["url"] in msg and "big oi" in msg
    assert msg.startswith("[oi.example.com] NIFTY 2026-11-26")
    # the events strip: newest first, from memory
    body = client.get("/api/events?symbol=NIFTY").get_json()
    assert [e["direction"] for e in body["events"]] == ["ce-", "ce+", "pe-"]
    assert body["events"][0]["label"] == "short covering" and body["session"] == DAY.isoformat()
    h.close()


def test_oi_change_fires_again_after_the_cooldown(tmp_path, telegram):
    rules = OI_RULE + "cooldown = 3\nleg = 'ce'\n"
    h = Harness(env(telegram, rules_file(tmp_path, rules)), shared_mongomock())
    h.service()
    events = run(
        h,
        16,
        {
            6: both(set_leg("ce", 24000.0, 101_000, 50.0), set_leg("pe", 24000.0, 110_000, 50.0)),  # pe not watched
            # +1000 vs 5 min ago from minute 6 to 10; the cooldown of 3 lets minute 9 fire again
            11: set_leg("ce", 24000.0, 102_000, 49.0),  # +1000 again: short build-up (price fell), in cooldown
        },
    )
    assert fired_at(events) == {
        6: ["24000 ce+ build-up"],
        9: ["24000 ce+ build-up"],
        12: ["24000 ce+ short build-up"],
        15: ["24000 ce+ short build-up"],
    }
    assert [e["seq"] for i in (6, 9, 12, 15) for e in events[i]] == [1, 2, 3, 4]
    h.close()


def test_pcr_crossing_fires_on_the_crossing_in_the_rule_direction(tmp_path, telegram):
    rules = """
[[rule]]
name = "pcr up"
kind = "pcr_cross"
level = 1.05
direction = "up"
cooldown = 0
"""
    h = Harness(env(telegram, rules_file(tmp_path, rules)), shared_mongomock())
    h.service()
    events = run(
        h,
        8,
        {
            2: set_leg("pe", 23800.0, 135_000, 50.0),  # PCR 735/700 = 1.05: crosses (reaching the level counts)
            3: set_leg("pe", 23800.0, 140_000, 50.0),  # still above: nothing
            4: set_leg("pe", 23800.0, 100_000, 50.0),  # down through it: not watched
            6: set_leg("pe", 23800.0, 150_000, 50.0),  # up again
        },
    )
    assert fired_at(events) == {2: ["None up PCR crossed above 1.05"], 6: ["None up PCR crossed above 1.05"]}
    assert events[2][0]["values"] == {"pcr": 1.05, "pcr_before": 1.0, "level": 1.05}
    assert "interval=" not in events[2][0]["url"]
    h.close()


def test_max_pain_shift_counts_strikes_from_the_last_firing(tmp_path, telegram):
    rules = """
[[rule]]
name = "pain"
kind = "max_pain_shift"
strikes = 2
cooldown = 0
"""

    def pin(strike):
        def edit(m):
            for k in m.ce:
                m.ce[k][0] = m.pe[k][0] = 1_000
            m.ce[strike][0] = m.pe[strike][0] = 1_000_000

        return edit

    h = Harness(env(telegram, rules_file(tmp_path, rules)), shared_mongomock())
    h.service()
    # The session's first minute pins max pain at 23850.
    events = run(
        h, 7, {0: pin(23850.0), 2: pin(23900.0), 3: pin(23950.0), 4: pin(24000.0), 5: pin(23950.0), 6: pin(23850.0)}
    )
    # 23900 is 1 strike from 23850; 23950 is 2 (fires, the anchor moves there); 24000 is 1 from it; 23950 is 0;
    # 23850 is 2 down.
    assert fired_at(events) == {
        3: ["None up max pain moved up 2 strikes"],
        6: ["None down max pain moved down 2 strikes"],
    }
    assert events[3][0]["values"] == {"max_pain": 23950, "max_pain_before": 23850, "strikes": 2}
    h.close()


def test_spot_crossing_support_and_resistance(tmp_path, telegram):
    rules = """
[[rule]]
name = "levels"
kind = "level_cross"
"""

    def spot(value):
        def edit(m):
            m.spot = value

        return edit

    h = Harness(env(telegram, rules_file(tmp_path, rules)), shared_mongomock())
    h.service()
    walls = both(set_leg("ce", 23950.0, 300_000, 20.0), set_leg("pe", 23750.0, 300_000, 20.0))
    events = run(
        h,
        7,
        {0: both(walls, spot(23850.0)), 2: spot(23949.0), 3: spot(23950.0), 4: spot(23960.0), 5: spot(23700.0)},
    )
    # 23700 is below both: one event per level crossed
    assert fired_at(events) == {
        3: ["23950 up spot crossed above resistance 23950"],
        5: ["23750 down spot crossed below support 23750", "23950 down spot crossed below resistance 23950"],
    }
    h.close()


def test_a_wall_fires_when_it_appears(tmp_path, telegram):
    rules = """
[[rule]]
name = "wall"
kind = "wall"
share = 25
leg = "pe"
cooldown = 0
"""
    h = Harness(env(telegram, rules_file(tmp_path, rules)), shared_mongomock())
    h.service()
    events = run(
        h,
        6,
        {
            1: set_leg("pe", 23800.0, 190_000, 50.0),  # 190/790 = 24.1 %: not yet
            2: set_leg("pe", 23800.0, 200_000, 50.0),  # 200/800 = 25 %: a wall
            3: set_leg("ce", 23800.0, 900_000, 50.0),  # a CE wall: not watched; the PE wall stands: no new event
        },
    )
    assert fired_at(events) == {2: ["23800 pe PE wall"]}
    assert events[2][0]["values"] == {"share": 25.0, "oi": 200_000, "total": 800_000}
    h.close()


def test_buildup_labels():
    assert buildup(+1, +0.5) == "long build-up"
    assert buildup(+1, -0.5) == "short build-up"
    assert buildup(-1, +0.5) == "short covering"
    assert buildup(-1, -0.5) == "long unwinding"


# --- once across services and processes -------------------------------------------------------------------------
def test_two_services_on_one_store_send_one_message_per_event(tmp_path, telegram):
    data = tmp_path / "data"
    h = Harness(env(telegram, rules_file(tmp_path, OI_RULE)), lambda: open_store("", "oi", data))
    a, client_a = h.service()
    b, client_b = h.service()
    run(h, 9, {6: set_leg("ce", 24000.0, 101_000, 55.0)})
    assert a.refresher.is_leader() != b.refresher.is_leader()
    follower = b if a.refresher.is_leader() else a
    assert not follower.alerts._seen  # only the lease holder evaluates
    assert len(telegram.texts) == 1 and "24000 CE: long build-up" in telegram.texts[0]
    # both serve the same strip, from memory
    assert client_a.get("/api/events?symbol=NIFTY").data == client_b.get("/api/events?symbol=NIFTY").data
    assert len(client_b.get("/api/events?symbol=NIFTY").get_json()["events"]) == 1
    h.close()


def test_two_evaluators_racing_on_the_same_view_store_and_send_it_once(tmp_path, telegram):
    # Two processes that both believe they lead (a lease lapsing mid-tick) evaluate the same new chain: the
    # deterministic event id lets only one insert win, and only the winner sends.
    h = Harness(env(telegram, rules_file(tmp_path, OI_RULE)), shared_mongomock())
    a, _ = h.service()
    b, _ = h.service()
    run(h, 6)
    h.market.ce[24000.0] = [101_000, 55.0]
    h.clock.now += timedelta(minutes=1)
    h.timer.advance(2)
    a.refresher.run_once()
    for rt in (a, b):
        rt.views.sync(DAY)
    fired = a.alerts.evaluate(a.views) + b.alerts.evaluate(b.views)
    for rt in (a, b):
        rt.alerts.drain()
    assert len(fired) == 1 and len(telegram.texts) == 1
    assert len(a.store.events(DAY)) == 1
    h.close()


def test_a_lease_hand_over_does_not_fire_again(tmp_path, telegram):
    h = Harness(env(telegram, rules_file(tmp_path, OI_RULE)), shared_mongomock())
    a, _ = h.service()
    b, _ = h.service()
    events = run(h, 8, {6: set_leg("ce", 24000.0, 101_000, 55.0)})
    assert fired_at(events) == {6: ["24000 ce+ long build-up"]}
    leader, follower = (a, b) if a.refresher.is_leader() else (b, a)
    leader.close()  # hands the lease over at once
    more = run(h, 4)  # the change over 5 min still reads +1000 for 3 more minutes: within the cooldown
    assert follower.refresher.is_leader()
    assert fired_at(more) == {}
    assert len(telegram.texts) == 1
    h.close()


def test_a_new_process_loads_the_days_events_before_evaluating(tmp_path, telegram):
    data = tmp_path / "data"
    h = Harness(env(telegram, rules_file(tmp_path, OI_RULE)), lambda: open_store("", "oi", data))
    a, _ = h.service()
    run(h, 8, {6: set_leg("ce", 24000.0, 101_000, 55.0)})
    a.close()
    h.services.remove(a)
    _, client = h.service()  # a restart: a new process on the same store
    assert len(client.get("/api/events?symbol=NIFTY").get_json()["events"]) == 1  # served before any tick
    assert fired_at(run(h, 3)) == {}
    assert len(telegram.texts) == 1
    h.close()


def test_a_failing_telegram_never_fails_the_tick(tmp_path):
    with FakeTelegram(fail=True) as tg:
        h = Harness(env(tg, rules_file(tmp_path, OI_RULE)), shared_mongomock())
        rt, client = h.service()
        events = run(h, 8, {6: set_leg("ce", 24000.0, 101_000, 55.0)})
        assert fired_at(events) == {6: ["24000 ce+ long build-up"]}
        assert tg.messages == []  # it answered 500
        run(h, 1)
        assert rt.views.get("NIFTY", None).chain.as_of == h.clock.now  # the views kept moving
        assert len(client.get("/api/events?symbol=NIFTY").get_json()["events"]) == 1
        h.close()


def test_no_domain_no_link(tmp_path, telegram):
    e = env(telegram, rules_file(tmp_path, OI_RULE))
    del e["DOMAIN_NAME"]
    h = Harness(e, shared_mongomock())
    h.service()
    events = run(h, 8, {6: set_leg("ce", 24000.0, 101_000, 55.0)})
    assert events[6][0]["url"] is None
    assert "https://" not in telegram.texts[0]
    h.close()


# --- /api/events ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "",
        "?symbol=",
        "?symbol=NOPE",
        "?symbol=NIFTY&symbol=NIFTY",
        "?symbol=NIFTY&expiry=26-11-2026",
        "?symbol=NIFTY&expiry=%24gt",
    ],
)
def test_events_endpoint_refuses_bad_input_with_json(tmp_path, telegram, query):
    h = Harness(env(telegram, rules_file(tmp_path, OI_RULE)), shared_mongomock())
    _, client = h.service()
    resp = client.get(f"/api/events{query}")
    assert resp.status_code == 400 and "error" in resp.get_json()


def test_events_endpoint_filters_by_expiry_and_never_reads_the_store(tmp_path, telegram, monkeypatch):
    h = Harness(env(telegram, rules_file(tmp_path, OI_RULE)), shared_mongomock())
    rt, client = h.service()
    run(h, 8, {6: set_leg("ce", 24000.0, 101_000, 55.0)})
    monkeypatch.setattr(rt.store, "events", lambda day: pytest.fail("a request queried the store"))
    monkeypatch.setattr(rt.store, "events_stamp", lambda: pytest.fail("a request queried the store"))
    assert len(client.get(f"/api/events?symbol=NIFTY&expiry={EXPIRY}").get_json()["events"]) == 1
    assert client.get("/api/events?symbol=NIFTY&expiry=2026-12-03").get_json()["events"] == []


# --- the rules file ---------------------------------------------------------------------------------------------
BAD_RULES = [
    ('[[rule]]\nname = "x"\nkind = "oi_change"\ninterval = 7\nthreshold = 1\n', "rule 'x': interval must be one of"),
    ('[[rule]]\nname = "y"\nkind = "oi_change"\ninterval = 5\n', "rule 'y': kind oi_change needs threshold"),
    ('[[rule]]\nname = "z"\nkind = "oi_chang"\n', "rule 'z': kind must be one of"),
    ('[[rule]]\nname = "w"\nkind = "wall"\nshare = 120\n', "rule 'w': share must be a number above 0 and at most 100"),
    ('[[rule]]\nname = "p"\nkind = "pcr_cross"\nlevel = 1\ndirecton = "up"\n', "rule 'p': unknown key(s)"),
    ('[[rule]]\nname = "s"\nkind = "pcr_cross"\nlevel = 1\nsymbols = ["SENSEX"]\n', "rule 's': symbol(s) SENSEX"),
    ('[[rule]]\nname = "m"\nkind = "max_pain_shift"\nstrikes = 1.5\n', "rule 'm': strikes must be a whole number"),
    ('[[rule]]\nname = "c"\nkind = "wall"\nshare = 5\ncooldown = -1\n', "rule 'c': cooldown must be"),
    (
        '[[rule]]\nname = "d"\nkind = "wall"\nshare = 5\n[[rule]]\nname = "d"\nkind = "wall"\nshare = 6\n',
        "rule 'd' is defined twice",
    ),
    ('[[rule]]\nkind = "wall"\nshare = 5\n', "rule #1: name must be"),
    ("[[rule]\nname = 1", "is not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD_RULES)
def test_a_bad_rule_stops_start_up_naming_it(tmp_path, text, message):
    path = rules_file(tmp_path, text)
    with pytest.raises(config_mod.ConfigError) as err:
        config_mod.from_env({"OI_SYMBOLS": "NIFTY", "OI_ALERTS_FILE": str(path)})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_rules_file_is_a_configuration_error(tmp_path):
    with pytest.raises(config_mod.ConfigError, match="OI_ALERTS_FILE: cannot read"):
        config_mod.from_env({"OI_ALERTS_FILE": str(tmp_path / "nope.toml")})


def test_the_shipped_example_is_valid():
    rules = load_rules(ROOT / "examples" / "alerts.toml", ("NIFTY", "BANKNIFTY"), config_mod.DEFAULT_LOT_SIZES)
    assert {r.kind for r in rules} == {"oi_change", "pcr_cross", "max_pain_shift", "level_cross", "wall"}


@pytest.mark.parametrize("command", [["app.py"], ["-m", "oi", "token"], ["upload.py", "--out", "x"]])
def test_commands_exit_2_on_a_bad_rule(tmp_path, command):
    path = rules_file(tmp_path, '[[rule]]\nname = "oops"\nkind = "wall"\nshare = 0\n')
    proc = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "OI_ALERTS_FILE": str(path), "OI_DATA_DIR": str(tmp_path / "var")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "configuration error: OI_ALERTS_FILE: rule 'oops': share must be a number above 0" in proc.stderr


# --- the snapshot -----------------------------------------------------------------------------------------------
def test_the_snapshot_carries_the_sessions_events_newest_first(tmp_path, telegram):
    import json
    import re

    from oi.cli import upload_main

    h = Harness(env(telegram, rules_file(tmp_path, OI_RULE)), shared_mongomock())
    rt, client = h.service()
    run(h, 14, {6: set_leg("ce", 24000.0, 101_000, 55.0), 12: set_leg("pe", 23700.0, 90_000, 40.0)})
    live = client.get("/api/events?symbol=NIFTY").get_json()["events"]
    assert len(live) == 2
    upload_env = {"OI_SYMBOLS": "NIFTY", "OI_DATA_DIR": str(tmp_path / "var")}
    assert upload_main(["--out", str(tmp_path / "site"), "--date", DAY.isoformat()], upload_env, store=rt.store) == 0
    html = (tmp_path / "site" / "index.html").read_text()
    page = json.loads(re.search(r'<script type="application/json" id="oi-config">(.*?)</script>', html, re.S)[1])
    assert page["events"] == live  # the same strip, newest first
    assert page["events"][0]["label"] == "long unwinding"
    h.close()


def test_a_new_session_does_not_compare_with_yesterdays_close(tmp_path, telegram):
    rules = '[[rule]]\nname = "pcr"\nkind = "pcr_cross"\nlevel = 1.05\ncooldown = 0\n'
    h = Harness(env(telegram, rules_file(tmp_path, rules)), shared_mongomock())
    rt, _ = h.service()
    run(h, 3, {1: set_leg("pe", 23800.0, 150_000, 50.0)})  # up through 1.05 on the 23rd
    assert len(rt.store.events(DAY)) == 1
    h.market.pe[23800.0] = [100_000, 50.0]  # the next session opens at PCR 1.0: no crossing seen in this session
    next_day = START.replace(day=25, hour=9, minute=15)
    assert h.minute(next_day) == [] and h.minute() == []
    assert rt.views.get("NIFTY", None).chain.as_of.date() == next_day.date()
    assert rt.store.events(next_day.date()) == []
    h.close()


# --- two real processes -----------------------------------------------------------------------------------------
def _script(minute: int):
    """The market at `minute`: +1,000 CE OI at 24000 from minute 6, −2,000 PE OI at 23700 from minute 14."""
    from tests.alerts_market import Market

    m = Market()
    if minute >= 6:
        m.ce[24000.0] = [101_000, 55.0]
    if minute >= 14:
        m.pe[23700.0] = [98_000, 45.0]
    return m


def _process(env_: dict, data_dir, timer, minute, barrier, rounds, stop_at, first, out):
    """One process's service on the shared embedded store, ticked in lockstep with the other on a shared clock."""
    from oi.store import open_store
    from oi.web import create_app
    from tests.alerts_market import ScriptedSource
    from tests.helpers import make_config

    class Source(ScriptedSource):
        def chain(self, symbol, expiry, now):
            return _script(minute.value).chain(now)

    rt = create_app(
        make_config(**env_),
        store=open_store("", "oi", data_dir),
        source=Source(None),
        clock=lambda: START + timedelta(minutes=minute.value),
        timer=lambda: timer.value,
    ).extensions["oi"]
    led = set()
    for i in range(rounds):
        barrier.wait()  # the driver moved the clocks
        if not rt.closed and (first or i > 0):  # the first process ticks alone first: it takes the lease
            if stop_at is not None and minute.value >= stop_at:
                rt.close()  # a restart or a crash: the lease goes to the other process
            else:
                rt.tick()
                if rt.refresher.is_leader():
                    led.add(minute.value)
        barrier.wait()  # every process is done with this round
    rt.alerts.drain()
    out.put((first, sorted(led), rt.alerts.log.events))
    rt.close()


def test_two_processes_on_one_store_send_each_event_once_across_a_hand_over(tmp_path, telegram):
    import multiprocessing

    env_ = env(telegram, rules_file(tmp_path, OI_RULE), DHAN_MIN_INTERVAL_SECONDS="1")
    ctx = multiprocessing.get_context("spawn")
    timer, minute = ctx.Value("d", 1_000_000.0), ctx.Value("i", 0)
    barrier, out = ctx.Barrier(3, timeout=120), ctx.Queue()
    minutes, per_minute = 20, 3
    procs = [
        ctx.Process(
            target=_process,
            args=(env_, tmp_path / "data", timer, minute, barrier, minutes * per_minute, stop, first, out),
        )
        for first, stop in ((True, 8), (False, None))  # the first leads, then stops at minute 8, inside the cooldown
    ]
    for p in procs:
        p.start()
    for m in range(minutes):
        minute.value = m
        for _ in range(per_minute):  # the expiry list, the chain, and a round to sync what was stored
            timer.value += 1.05
            barrier.wait()
            barrier.wait()
    results = {first: (led, events) for first, led, events in (out.get(timeout=60) for _ in procs)}
    for p in procs:
        p.join(60)
    led_first, _ = results[True]
    led_second, events = results[False]
    assert led_first and max(led_first) < 8 and min(led_second) >= 8  # the lease changed hands at minute 8
    # minute 6 fired once (the first process); minutes 8-10 still see +1,000 over 5 minutes: the second process,
    # now leading, knows it fired and stays quiet; minute 14 is a new event, fired by the second process
    assert sorted((e["at"][11:16], e["direction"]) for e in events) == [("10:06", "ce+"), ("10:14", "pe-")]
    assert len(telegram.texts) == 2
    assert "24000 CE: long build-up" in telegram.texts[0] and "23700 PE: long unwinding" in telegram.texts[1]
