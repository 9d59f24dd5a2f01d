"""The Dhan token's lifecycle at the wire: the real SDK and requests against FakeDhan, Telegram against its fake.

Tokens are unsigned JWTs built here with a chosen ``exp``; time moves only through the injected clock and timer.
"""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from oi.cli import main as cli
from oi.config import DEFAULT_UNDERLYINGS, ConfigError
from oi.dhan_token import SavedToken, choose_token, fingerprint, read_token_file, token_expiry, write_token_file
from oi.logs import RedactSecrets
from oi.market.dhan import AUTH, DhanError, DhanSource
from oi.market.dhan_account import DhanAccount, extract_token
from oi.refresher import PACE_SLACK_SECONDS
from oi.store import open_store
from oi.tokens import claim, finish
from oi.web import create_app
from tests.fakes import closed_port_url
from tests.fakes.dhan import CLIENT_ID, ERRORS, TOKEN, FakeDhan, dhan_jwt, unsigned_jwt
from tests.fakes.telegram import FakeTelegram
from tests.helpers import MONDAY_1100, make_config

HOUR = 3600.0
EXPIRY_HOLDERS = ("expiries NIFTY", "chain NIFTY 2026-11-24")


def at(hours: float) -> float:
    """A Unix time `hours` after the tests' fixed now (Monday 11:00 IST)."""
    return (MONDAY_1100 + timedelta(hours=hours)).timestamp()


class Clock:
    def __init__(self, now: datetime = MONDAY_1100) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def telegram():
    with FakeTelegram() as tg:
        yield tg


def start_fake(exp_hours: float) -> FakeDhan:
    return FakeDhan(token=dhan_jwt(at(exp_hours))).start()


@pytest.fixture
def fake_jwt(request):
    server = start_fake(getattr(request, "param", 20.0))
    yield server
    server.stop()


def env_for(fake: FakeDhan, tg: FakeTelegram, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "DHAN_CLIENT_ID": CLIENT_ID,
        "DHAN_ACCESS_TOKEN": fake.token,
        "DHAN_API_BASE": fake.base_url,
        "DHAN_TOKEN_FILE": str(tmp_path / "token.json"),
        "TELEGRAM_API_BASE": tg.url,
        "TELEGRAM_BOT_TOKEN": tg.token,
        "TELEGRAM_CHAT_ID": "42",
        "OI_FEED": "off",
        **extra,
    }


def runtime(env: dict[str, str], store, timer, clock: Clock | None = None):
    app = create_app(make_config(**env), store=store, timer=timer)
    rt = app.extensions["oi"]
    rt.clock = clock or Clock()
    rt.token_watch.account.sleep = lambda seconds: None  # tenacity's pauses: no real sleeping in tests
    return app, rt


def fill(rt, timer, calls: int = 2) -> list[str | None]:
    labels = []
    for _ in range(calls):
        labels.append(rt.refresher.run_once())
        rt.tick()  # syncs the views (and the shared status) like the scheduler does
        timer.advance(rt.config.dhan_min_interval_seconds + PACE_SLACK_SECONDS)
    return labels


def renew_calls(fake: FakeDhan) -> int:
    return sum(1 for path, _ in fake.account_calls if path.endswith("/RenewToken"))


# --- the expiry -------------------------------------------------------------------------------------------------
def test_expiry_is_the_jwt_exp_claim():
    assert token_expiry(dhan_jwt(1_800_000_000)) == datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
    assert token_expiry(unsigned_jwt({"exp": 1_800_000_000.5})) == datetime.fromtimestamp(1_800_000_000.5, UTC)


@pytest.mark.parametrize(
    "token",
    [
        TOKEN,  # the suite's plain token
        "a.b.c",
        "x.!!!!.y",
        "only.two",
        unsigned_jwt({"sub": "no exp"}),
        unsigned_jwt({"exp": "1800000000"}),
        unsigned_jwt({"exp": True}),
        unsigned_jwt({"exp": 1e30}),
        "e30." + "WzEsMl0" + ".e30",  # payload is a JSON list
    ],
)
def test_a_token_without_a_readable_exp_has_unknown_expiry(token):
    assert token_expiry(token) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=120).map(lambda b: "x." + b.hex() + ".y"))
def test_expiry_parsing_never_raises(token):
    result = token_expiry(token)
    assert result is None or result.tzinfo is not None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"accessToken": "eyJhbGciOi.eyJleHAiOjF9.sig"}, "eyJhbGciOi.eyJleHAiOjF9.sig"),
        ({"token": "eyJhbGciOi.eyJleHAiOjF9.sig"}, "eyJhbGciOi.eyJleHAiOjF9.sig"),
        ({"data": {"access_token": "eyJhbGciOi.eyJleHAiOjF9.sig"}}, "eyJhbGciOi.eyJleHAiOjF9.sig"),
        ({"token": "short"}, None),
        ({"token": "eyJhbGciOi.eyJleHAiOjF9.sig\r\nX-Evil: 1"}, None),
        (["eyJhbGciOi.eyJleHAiOjF9.sig"], None),
    ],
)
def test_renew_answer_field_names(body, expected):
    assert extract_token(body) == expected


# --- /healthz ---------------------------------------------------------------------------------------------------
def test_healthz_shows_the_expiry_never_the_token(fake_jwt, telegram, tmp_path, store, timer):
    app, rt = runtime(env_for(fake_jwt, telegram, tmp_path), store, timer)
    fill(rt, timer)
    r = app.test_client().get("/healthz")
    assert r.status_code == 200
    assert r.get_json()["token"] == {"expires_at": "2026-11-24T07:00:00+05:30", "seconds_left": 20 * 3600}
    assert fake_jwt.token.encode() not in r.data
    assert telegram.messages == []  # 20 h left: nothing to say


def test_healthz_without_a_jwt_has_no_token_block(dhan_env, store, timer):
    app = create_app(make_config(**dhan_env), store=store, timer=timer)
    assert "token" not in app.test_client().get("/healthz").get_json()


def test_demo_source_has_no_token_watch(tmp_path, timer):
    app = create_app(make_config(OI_SOURCE="demo", OI_DATA_DIR=str(tmp_path)), timer=timer)
    assert getattr(app.extensions["oi"], "token_watch", None) is None
    assert "token" not in app.test_client().get("/healthz").get_json()


@pytest.mark.parametrize("fake_jwt", [-0.5], indirect=True)
def test_an_expired_token_makes_health_503_and_alerts_once(fake_jwt, telegram, tmp_path, store, timer):
    app, rt = runtime(env_for(fake_jwt, telegram, tmp_path), store, timer)
    r = app.test_client().get("/healthz")
    assert r.status_code == 503
    assert r.get_json()["reason"].startswith("Dhan access token expired at 2026-11-23 10:30:00 IST")
    assert r.get_json()["token"]["seconds_left"] == -1800
    for _ in range(5):
        rt.token_watch.run()
    assert len(telegram.texts) == 1 and "expired at 2026-11-23 10:30:00 IST" in telegram.texts[0]


# --- alerts, once across processes ------------------------------------------------------------------------------
@pytest.mark.parametrize("fake_jwt", [2.0], indirect=True)
def test_expiry_alert_is_sent_once_by_two_runtimes_sharing_the_store(fake_jwt, telegram, tmp_path, store, timer):
    clock = Clock()
    env = env_for(fake_jwt, telegram, tmp_path)
    runtimes = [runtime(env, store, timer, clock)[1] for _ in range(2)]
    for _ in range(3):
        for rt in runtimes:
            rt.token_watch.run()
    assert telegram.messages == []  # 2 h left is more than the 60 min lead
    clock.advance(minutes=61)  # 59 min left
    for _ in range(5):
        for rt in runtimes:
            rt.token_watch.run()
    clock.advance(minutes=30)
    for rt in runtimes:
        rt.token_watch.run()
    assert len(telegram.texts) == 1
    text = telegram.texts[0]
    assert "expires at 2026-11-23 13:00:00 IST (in 59 min)" in text and CLIENT_ID in text
    assert fake_jwt.token not in text


@pytest.mark.parametrize("fake_jwt", [0.5], indirect=True)
def test_an_alert_telegram_failed_to_take_is_sent_later(fake_jwt, telegram, tmp_path, store, timer):
    clock = Clock()
    _, rt = runtime(env_for(fake_jwt, telegram, tmp_path), store, timer, clock)
    telegram.fail = True
    rt.token_watch.run()
    telegram.fail = False
    rt.token_watch.run()
    assert telegram.messages == []  # the failed claim is held for a while, so a flapping Telegram is not hammered
    clock.advance(minutes=5, seconds=1)
    for _ in range(3):
        rt.token_watch.run()
    assert len(telegram.texts) == 1 and "expires at" in telegram.texts[0]


def test_auth_error_makes_health_503_and_alerts_once(fake_jwt, telegram, tmp_path, store, timer):
    env = env_for(fake_jwt, telegram, tmp_path)
    app, leader = runtime(env, store, timer)
    _, follower = runtime(env, store, timer)
    assert fill(leader, timer) == list(EXPIRY_HOLDERS)
    fake_jwt.token = dhan_jwt(at(24), n=2)  # Dhan no longer accepts ours (say, a new login elsewhere)
    assert fill(leader, timer, 1) == ["chain NIFTY 2026-11-24: auth"]
    follower.tick()
    r = app.test_client().get("/healthz")
    assert r.status_code == 503
    reason = r.get_json()["reason"]
    assert reason.startswith("Dhan rejected the access token") and "DH-901" in reason
    for _ in range(4):
        leader.token_watch.run()
        follower.token_watch.run()
    assert len(telegram.texts) == 1
    assert "no longer works (Dhan rejects it)" in telegram.texts[0]
    assert env["DHAN_ACCESS_TOKEN"].encode() not in r.data


# --- auto-renew -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fake_jwt", [2.0], indirect=True)
def test_auto_renew_hot_swaps_the_token_persists_it_0600_and_never_logs_it(
    fake_jwt, telegram, tmp_path, store, timer, caplog
):
    caplog.set_level(logging.DEBUG)
    old_umask = os.umask(0)  # the file's mode must not depend on the process umask
    try:
        env = env_for(fake_jwt, telegram, tmp_path, DHAN_AUTO_RENEW="1")
        app, rt = runtime(env, store, timer)
        old = fake_jwt.token
        assert fill(rt, timer) == list(EXPIRY_HOLDERS)
        rt.token_watch.run()
    finally:
        os.umask(old_umask)
    new = fake_jwt.token
    assert new != old and renew_calls(fake_jwt) == 1
    # The live SDK client sends the new token: the next chain call succeeds although the fake rejects the old one.
    assert fill(rt, timer, 1) == ["chain NIFTY 2026-11-24"]
    stale = DhanSource.create(CLIENT_ID, old, fake_jwt.base_url, 2.0, DEFAULT_UNDERLYINGS)
    with pytest.raises(DhanError) as err:
        stale.chain("NIFTY", "2026-11-24", MONDAY_1100)
    assert err.value.kind == AUTH
    # Persisted with mode 0600, for the other workers and the next start.
    path = tmp_path / "token.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["access_token"] == new
    assert [p.name for p in tmp_path.iterdir()] == ["token.json"]  # no temporary file left behind
    # /healthz shows the new expiry (24 h after the old one), and neither token.
    r = app.test_client().get("/healthz")
    assert r.status_code == 200 and r.get_json()["token"]["expires_at"] == "2026-11-24T13:00:00+05:30"
    assert old.encode() not in r.data and new.encode() not in r.data
    assert len(telegram.texts) == 1 and "renewed: valid until 2026-11-24 13:00:00 IST" in telegram.texts[0]
    # Never logged, not even by the SDK, requests or urllib3 at DEBUG.
    assert "renewed" in caplog.text
    assert old not in caplog.text and new not in caplog.text
    assert not any(old in t or new in t for t in telegram.texts)
    # Renewed once: the new token has 26 h left, above the 20 h threshold.
    for _ in range(3):
        rt.token_watch.run()
    assert renew_calls(fake_jwt) == 1


@pytest.mark.parametrize("fake_jwt", [2.0], indirect=True)
def test_no_upstream_call_overlaps_a_renewal(fake_jwt, telegram, tmp_path, store, timer):
    """Dhan may drop the old token the moment it issues a new one: a chain call in flight with the old token would
    come back 401 and stop polling although a good token is in force. Calls and the renewal exclude each other."""
    _, rt = runtime(env_for(fake_jwt, telegram, tmp_path, DHAN_AUTO_RENEW="1"), store, timer)
    fill(rt, timer)
    held_during_renewal = []

    class Spy(requests.Session):
        def get(self, url, **kwargs):
            held_during_renewal.append(rt.source.paused().locked())
            return super().get(url, **kwargs)

    rt.token_watch.account.session = Spy()
    rt.token_watch.run()
    assert held_during_renewal == [True] and renew_calls(fake_jwt) == 1
    results = []
    with rt.source.paused():  # a swap in progress: a call waits for it, then carries the new token
        caller = threading.Thread(target=lambda: results.append(rt.source.chain("NIFTY", "2026-11-24", MONDAY_1100)))
        caller.start()
        caller.join(0.2)
        assert caller.is_alive() and results == []
    caller.join(10)
    assert len(results) == 1 and results[0].spot == 23847.35


@pytest.mark.parametrize("fake_jwt", [21.0], indirect=True)
def test_no_renewal_while_enough_time_is_left_or_when_auto_renew_is_off(fake_jwt, telegram, tmp_path, store, timer):
    _, on = runtime(env_for(fake_jwt, telegram, tmp_path, DHAN_AUTO_RENEW="1"), store, timer)
    fill(on, timer)
    on.token_watch.run()
    assert renew_calls(fake_jwt) == 0  # 21 h left, threshold 20 h
    on.clock.advance(hours=2)
    _, off = runtime(env_for(fake_jwt, telegram, tmp_path / "off"), store, timer, on.clock)
    off.token_watch.is_leader = lambda: True
    off.token_watch.run()
    assert renew_calls(fake_jwt) == 0  # 19 h left but DHAN_AUTO_RENEW is off
    on.token_watch.run()
    assert renew_calls(fake_jwt) == 1


@pytest.mark.parametrize("fake_jwt", [2.0], indirect=True)
def test_only_the_lease_holder_renews_and_other_workers_follow_through_the_file(
    fake_jwt, telegram, tmp_path, store, timer
):
    env = env_for(fake_jwt, telegram, tmp_path, DHAN_AUTO_RENEW="1")
    _, leader = runtime(env, store, timer)
    _, follower = runtime(env, store, timer)
    fill(leader, timer)
    follower.token_watch.run()
    assert renew_calls(fake_jwt) == 0  # the follower does not talk to Dhan
    leader.token_watch.run()
    new = fake_jwt.token
    assert renew_calls(fake_jwt) == 1
    assert follower.source.http.header["access-token"] != new
    follower.token_watch.run()  # notices the token file changed
    assert follower.source.http.header["access-token"] == new
    assert follower.token_watch.origin == "file"
    leader.close()  # the lease moves: the follower's calls carry the renewed token
    timer.advance(10)
    assert follower.refresher.run_once() == "chain NIFTY 2026-11-24"
    assert renew_calls(fake_jwt) == 1


def test_a_renewal_after_an_auth_failure_resumes_polling(fake_jwt, telegram, tmp_path, store, timer):
    app, rt = runtime(env_for(fake_jwt, telegram, tmp_path, DHAN_AUTO_RENEW="1"), store, timer)
    fill(rt, timer)
    fake_jwt.script.append((401, ERRORS["token_invalid_DH901"]["body"]))  # a hiccup: the token itself still works
    assert fill(rt, timer, 1) == ["chain NIFTY 2026-11-24: auth"]
    assert fill(rt, timer, 1) == [None]  # stopped
    assert app.test_client().get("/healthz").status_code == 503
    rt.token_watch.run()  # 20 h left is not due by time, but the auth failure makes a renewal worth one try
    assert renew_calls(fake_jwt) == 1
    assert store.status()["auth_failed"] is False
    assert fill(rt, timer, 1) == ["chain NIFTY 2026-11-24"]
    assert app.test_client().get("/healthz").status_code == 200
    assert [t for t in telegram.texts if "no longer works" in t] == []
    assert len(telegram.texts) == 1 and "renewed" in telegram.texts[0]


@pytest.mark.parametrize("fake_jwt", [2.0], indirect=True)
def test_renewal_retries_transient_errors_a_bounded_number_of_times(fake_jwt, telegram, tmp_path, store, timer):
    _, rt = runtime(env_for(fake_jwt, telegram, tmp_path, DHAN_AUTO_RENEW="1"), store, timer)
    pauses: list[float] = []
    rt.token_watch.account.sleep = pauses.append
    fill(rt, timer)
    old = fake_jwt.token
    fake_jwt.renew_script.extend([(500, {}), (503, {}), (502, {})])
    rt.token_watch.run()
    assert renew_calls(fake_jwt) == 3 and pauses == [1, 2]  # three attempts, exponential pauses
    assert fake_jwt.token == old and not (tmp_path / "token.json").exists()
    rt.token_watch.run()
    assert renew_calls(fake_jwt) == 3  # the next try waits for the retry period
    rt.clock.advance(minutes=5, seconds=1)
    fake_jwt.renew_script.append((500, {}))
    rt.token_watch.run()
    assert renew_calls(fake_jwt) == 5 and fake_jwt.token != old  # one more failure, then renewed
    assert rt.source.http.header["access-token"] == fake_jwt.token


@pytest.mark.parametrize("fake_jwt", [2.0], indirect=True)
def test_a_refused_renewal_is_not_retried_and_alerts_once(fake_jwt, telegram, tmp_path, store, timer):
    _, rt = runtime(env_for(fake_jwt, telegram, tmp_path, DHAN_AUTO_RENEW="1"), store, timer)
    fill(rt, timer)
    fake_jwt.renew_script.append((401, ERRORS["token_invalid_DH901"]["body"]))
    rt.token_watch.run()
    rt.clock.advance(minutes=10)
    rt.token_watch.run()
    assert renew_calls(fake_jwt) == 1
    assert len(telegram.texts) == 1 and "refused to renew" in telegram.texts[0] and "DH-901" in telegram.texts[0]


@pytest.mark.parametrize("fake_jwt", [2.0], indirect=True)
def test_the_redaction_filter_learns_a_renewed_token(fake_jwt, telegram, tmp_path, store, timer):
    config = make_config(**env_for(fake_jwt, telegram, tmp_path, DHAN_AUTO_RENEW="1"))
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactSecrets(config.secrets()))  # what setup_logging installs at start-up
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        _, rt = runtime(env_for(fake_jwt, telegram, tmp_path, DHAN_AUTO_RENEW="1"), store, timer)
        fill(rt, timer)
        rt.token_watch.run()
        new = fake_jwt.token
        logging.getLogger("tests.leak").warning("careless %s and %s", new, config.dhan_access_token)
    finally:
        root.removeHandler(handler)
    assert "careless *** and ***" in out.getvalue()
    assert new not in out.getvalue()


# --- the token file and the start-up choice ---------------------------------------------------------------------
def test_token_file_is_written_0600_atomically_over_a_lax_file(tmp_path):
    path = tmp_path / "dir" / "token.json"
    path.parent.mkdir()
    path.write_text("{}")
    path.chmod(0o644)
    token = dhan_jwt(at(30))
    old_umask = os.umask(0)
    try:
        write_token_file(path, SavedToken(token, CLIENT_ID, "base", "now"))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_token_file(path) == SavedToken(token, CLIENT_ID, "base", "now")
    assert token not in repr(read_token_file(path))


@pytest.mark.parametrize("content", ["not json", '{"access_token": 5}', '{"access_token": "a\\nb"}', "[]"])
def test_a_malformed_token_file_is_ignored_without_echoing_it(tmp_path, caplog, content):
    path = tmp_path / "token.json"
    path.write_text(content)
    path.chmod(0o600)
    assert read_token_file(path) is None
    assert "ignoring DHAN_TOKEN_FILE" in caplog.text and content not in caplog.text


def test_a_token_file_others_can_read_is_flagged(tmp_path, caplog):
    path = tmp_path / "token.json"
    write_token_file(path, SavedToken(dhan_jwt(at(30)), CLIENT_ID, "base"))
    path.chmod(0o644)
    assert read_token_file(path) is not None
    assert "chmod 600" in caplog.text


ENV_TOKEN = dhan_jwt(at(10))


@pytest.mark.parametrize(
    ("saved", "expected"),
    [
        (None, "env"),
        (SavedToken(dhan_jwt(at(30)), CLIENT_ID, fingerprint(ENV_TOKEN)), "file"),  # renewed from ours, later
        (SavedToken(dhan_jwt(at(5)), CLIENT_ID, fingerprint(ENV_TOKEN)), "env"),  # expires sooner
        (SavedToken(dhan_jwt(at(30)), CLIENT_ID, fingerprint("an older env token")), "env"),  # operator pasted anew
        (SavedToken(dhan_jwt(at(30)), "2000000002", fingerprint(ENV_TOKEN)), "env"),  # another client's
        (SavedToken("not-a-jwt-but-long-enough", CLIENT_ID, fingerprint(ENV_TOKEN)), "env"),  # expiry unknown
    ],
)
def test_choose_token(saved, expected):
    token, origin = choose_token(ENV_TOKEN, CLIENT_ID, saved)
    assert origin == expected
    assert token == (saved.access_token if expected == "file" else ENV_TOKEN)


def test_start_up_uses_a_newer_saved_token(fake_jwt, telegram, tmp_path, store, timer):
    env = env_for(fake_jwt, telegram, tmp_path)
    renewed = dhan_jwt(at(44), n=1)
    write_token_file(tmp_path / "token.json", SavedToken(renewed, CLIENT_ID, fingerprint(env["DHAN_ACCESS_TOKEN"])))
    fake_jwt.token = renewed  # Dhan accepts only the renewed one now
    app, rt = runtime(env, store, timer)
    assert rt.token_watch.origin == "file"
    assert fill(rt, timer) == list(EXPIRY_HOLDERS)
    assert app.test_client().get("/healthz").get_json()["token"]["seconds_left"] == 44 * 3600


# --- config -----------------------------------------------------------------------------------------------------
def test_token_config_defaults_and_validation(tmp_path):
    config = make_config(OI_DATA_DIR=str(tmp_path))
    assert (config.dhan_auto_renew, config.dhan_renew_before_hours, config.dhan_token_alert_minutes) == (
        False,
        20.0,
        60.0,
    )
    assert config.dhan_token_file == tmp_path / "dhan_token.json"
    with pytest.raises(ConfigError, match="DHAN_RENEW_BEFORE_HOURS"):
        make_config(DHAN_RENEW_BEFORE_HOURS="24")
    with pytest.raises(ConfigError, match="DHAN_AUTO_RENEW"):
        make_config(DHAN_AUTO_RENEW="maybe")


# --- python -m oi token -----------------------------------------------------------------------------------------
def cli_env(fake: FakeDhan, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "DHAN_CLIENT_ID": CLIENT_ID,
        "DHAN_ACCESS_TOKEN": fake.token,
        "DHAN_API_BASE": fake.base_url,
        "DHAN_TOKEN_FILE": str(tmp_path / "token.json"),
        "OI_NOW": MONDAY_1100.isoformat(),
        **extra,
    }


def test_cli_valid_token(fake_jwt, tmp_path, capsys):
    assert cli(["token"], cli_env(fake_jwt, tmp_path)) == 0
    out = capsys.readouterr().out
    assert CLIENT_ID in out
    assert "2026-11-24 07:00:00 IST" in out and "20 h 00 min" in out
    assert "accepted (tokenValidity 24/11/2026 07:00)" in out
    assert "result       valid" in out
    assert fake_jwt.token not in out
    assert fake_jwt.account_calls == [("/v2/profile", True)]


@pytest.mark.parametrize("fake_jwt", [-1.0], indirect=True)
def test_cli_expired_token(fake_jwt, tmp_path, capsys):
    assert cli(["token", "--offline"], cli_env(fake_jwt, tmp_path)) == 1
    out = capsys.readouterr().out
    assert "expired 1 h 00 min ago" in out and "INVALID" in out and "expired at 2026-11-23 10:00:00 IST" in out
    assert fake_jwt.account_calls == []  # --offline asks nobody


def test_cli_rejected_token(fake_jwt, tmp_path, capsys):
    env = cli_env(fake_jwt, tmp_path)
    fake_jwt.token = dhan_jwt(at(24), n=9)
    assert cli(["token", "--json"], env) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["profile"]["accepted"] is False
    assert report["profile"]["http_status"] == 401 and "DH-901" in report["profile"]["detail"]
    assert report["seconds_left"] == 20 * 3600 and env["DHAN_ACCESS_TOKEN"] not in json.dumps(report)


def test_cli_token_of_another_client(tmp_path, capsys):
    fake = FakeDhan(token=dhan_jwt(at(20), client_id="2000000002")).start()
    try:
        assert cli(["token"], cli_env(fake, tmp_path)) == 1
    finally:
        fake.stop()
    assert "belongs to client 2000000002" in capsys.readouterr().out


def test_cli_unconfirmed_when_dhan_does_not_answer(fake_jwt, tmp_path, capsys):
    assert cli(["token"], cli_env(fake_jwt, tmp_path, DHAN_API_BASE=closed_port_url() + "/v2")) == 3
    assert "no answer: Dhan unreachable (ConnectionError)" in capsys.readouterr().out


def test_cli_plain_token(fake_dhan, tmp_path, capsys):
    env = cli_env(fake_dhan, tmp_path)
    assert cli(["token", "--offline"], env) == 3  # expiry unknown and nobody asked
    assert cli(["token"], env) == 0  # Dhan accepts it: that settles it
    assert "unknown (not a JWT)" in capsys.readouterr().out


def test_cli_reports_a_saved_token(fake_jwt, tmp_path, capsys):
    env = cli_env(fake_jwt, tmp_path)
    renewed = dhan_jwt(at(44), n=1)
    write_token_file(tmp_path / "token.json", SavedToken(renewed, CLIENT_ID, fingerprint(env["DHAN_ACCESS_TOKEN"])))
    fake_jwt.token = renewed
    assert cli(["token"], env) == 0
    out = capsys.readouterr().out
    assert f"DHAN_TOKEN_FILE ({tmp_path / 'token.json'})" in out and "44 h 00 min" in out and renewed not in out


def test_cli_without_credentials_is_a_usage_error(capsys):
    assert cli(["token"], {"OI_SOURCE": "demo"}) == 2
    assert "DHAN_CLIENT_ID" in capsys.readouterr().err
    assert cli(["token"], {"DHAN_AUTO_RENEW": "maybe"}) == 2


def test_python_dash_m_oi_token(fake_jwt, tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.update(cli_env(fake_jwt, tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "oi", "token"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "2026-11-24 07:00:00 IST" in done.stdout
    assert fake_jwt.token not in done.stdout + done.stderr
    usage = subprocess.run([sys.executable, "-m", "oi"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and "token" in usage.stderr


def test_profile_of_a_dead_token_is_rejected_at_the_wire(fake_jwt):
    account = DhanAccount(fake_jwt.base_url, CLIENT_ID, timeout=2.0)
    assert account.profile(fake_jwt.token).accepted is True
    assert account.profile(dhan_jwt(at(5), n=3)).accepted is False


def test_once_claims_on_the_embedded_store(tmp_path):
    a, b = open_store("", "oi", tmp_path), open_store("", "oi", tmp_path)  # two processes' views of one store
    assert claim(a, "token-alert:x", 100, now=1000.0, retry_after=300) is True
    assert claim(b, "token-alert:x", 100, now=1001.0, retry_after=300) is False  # held
    assert claim(b, "token-alert:x", 100, now=1301.0, retry_after=300) is True  # unfinished for too long: retaken
    finish(b, "token-alert:x", 100, now=1302.0)
    assert claim(a, "token-alert:x", 100, now=9999.0, retry_after=300) is False  # done for this token
    assert claim(a, "token-alert:x", 200, now=9999.0, retry_after=300) is True  # a newer token may alert again
    assert claim(b, "token-alert:x", 100, now=99999.0, retry_after=300) is False  # an older one never again
