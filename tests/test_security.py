"""Security headers on every response, the origin lock (ORIGIN_SECRET), its Cloudflare rule, and CSP in Chromium."""

from __future__ import annotations

import json
import logging

import pytest

from oi import security
from oi.cli import main as oi_main
from oi.config import ConfigError, from_env
from oi.dns import wait_healthy
from oi.refresher import PACE_SLACK_SECONDS
from oi.setup.rules import RULE_REF, TRANSFORM_PHASE
from oi.web import create_app
from tests.browser import serve
from tests.fakes.cloudflare import FakeCloudflare
from tests.helpers import make_config

SECRET = "origin-secret-5b1e0c9d7a"
REMOTE = {"REMOTE_ADDR": "203.0.113.9"}  # the test client's default peer is 127.0.0.1
CSP_ERROR = "Content Security Policy"


def fill(rt, timer, calls=2):
    for _ in range(calls):
        rt.tick()
        timer.advance(rt.config.dhan_min_interval_seconds + PACE_SLACK_SECONDS)


def directives(policy: str) -> dict[str, list[str]]:
    out = {}
    for part in policy.split(";"):
        name, *values = part.split()
        assert name not in out, f"{name} given twice"
        out[name] = values
    return out


def assert_secure_headers(resp) -> None:
    h = resp.headers
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["X-Frame-Options"] == "DENY"
    assert h["Referrer-Policy"] in {"strict-origin-when-cross-origin", "no-referrer"}
    csp = directives(h["Content-Security-Policy"])
    assert csp["default-src"] == ["'self'"]
    for name in ("script-src", "style-src"):  # when given, no inline code and no eval
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*"} & set(csp.get(name, []))
    assert csp.get("script-src", csp["default-src"]) == ["'self'"]
    assert set(csp["img-src"]) <= {"'self'", "data:"}
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]


# ------------------------------------------------------------------------------------------------ headers


def test_every_kind_of_response_carries_the_headers(client, rt, timer, monkeypatch):
    fill(rt, timer)
    cases = [
        ("GET", "/", 200),
        ("GET", "/api/symbols", 200),
        ("GET", "/api/oi?symbol=NIFTY", 200),
        ("GET", "/api/oi", 400),
        ("GET", "/api/oi?symbol=NIFTY&expiry=2030-01-01", 404),
        ("GET", "/api/nope", 404),
        ("GET", "/nope", 404),
        ("GET", "/static/app.js", 200),
        ("GET", "/static/style.css", 200),
        ("HEAD", "/static/app.js", 200),
        ("GET", "/healthz", 200),
        ("POST", "/api/oi?symbol=NIFTY", 405),
    ]
    for method, path, status in cases:
        resp = client.open(path, method=method)
        assert resp.status_code == status, (method, path)
        assert_secure_headers(resp)

    def boom(*args, **kwargs):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(rt.views, "get", boom)
    resp = client.get("/api/oi?symbol=NIFTY")
    assert resp.status_code == 500
    assert_secure_headers(resp)


def test_static_file_revalidation_keeps_the_headers(client):
    first = client.get("/static/app.js")
    again = client.get("/static/app.js", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert_secure_headers(again)


def test_meta_policy_is_the_header_policy_minus_header_only_directives():
    header, meta = directives(security.CSP), directives(security.META_CSP)
    assert "frame-ancestors" not in meta  # ignored (with a console warning) in a <meta> policy
    assert {k: v for k, v in header.items() if k != "frame-ancestors"} == meta


# ------------------------------------------------------------------------------------------------ origin lock


@pytest.fixture
def locked(dhan_env, store, timer):
    app = create_app(make_config(**dhan_env, ORIGIN_SECRET=SECRET), store=store, timer=timer)
    fill(app.extensions["oi"], timer)
    return app


@pytest.mark.parametrize("path", ["/", "/api/symbols", "/api/oi?symbol=NIFTY", "/api/nope", "/healthz"])
def test_without_the_header_remote_requests_get_403(locked, path):
    resp = locked.test_client().get(path, environ_base=REMOTE)
    assert resp.status_code == 403
    assert_secure_headers(resp)
    assert resp.headers["Cache-Control"] == "no-store"
    assert SECRET.encode() not in resp.data
    if path.startswith("/api/") or path == "/healthz":
        assert resp.get_json() == {"error": "forbidden"}
    else:
        assert resp.mimetype == "text/plain"


def test_static_files_and_unknown_pages_are_locked_too(locked):
    c = locked.test_client()
    for path in ("/static/app.js", "/static/style.css", "/nope"):
        assert c.get(path, environ_base=REMOTE).status_code == 403
    assert c.post("/api/oi", environ_base=REMOTE).status_code == 403


@pytest.mark.parametrize(
    "value",
    ["", SECRET[:-1], SECRET + "x", SECRET.upper(), " " + SECRET, SECRET + ", " + SECRET, "ü" + SECRET[1:], "\x00"],
)
def test_a_wrong_header_value_is_403(locked, value):
    c = locked.test_client()
    assert c.get("/api/symbols", headers={"X-Origin-Secret": value}, environ_base=REMOTE).status_code == 403


def test_the_right_header_opens_everything(locked):
    c = locked.test_client()
    for name in ("X-Origin-Secret", "x-origin-secret"):  # header names are case-insensitive
        headers = {name: SECRET}
        for path in ("/", "/api/symbols", "/api/oi?symbol=NIFTY", "/static/app.js", "/healthz"):
            resp = c.get(path, headers=headers, environ_base=REMOTE)
            assert resp.status_code == 200, path
            assert_secure_headers(resp)
    assert c.get("/api/nope", headers={"X-Origin-Secret": SECRET}, environ_base=REMOTE).status_code == 404


def test_the_header_is_compared_in_constant_time(locked, monkeypatch):
    calls = []
    real = security.hmac.compare_digest
    monkeypatch.setattr(security.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    locked.test_client().get("/api/symbols", headers={"X-Origin-Secret": "guess"}, environ_base=REMOTE)
    assert calls == [(b"guess", SECRET.encode())]


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1"])
def test_healthz_from_the_box_itself_needs_no_header(locked, peer):
    c = locked.test_client()
    resp = c.get("/healthz", environ_base={"REMOTE_ADDR": peer})
    assert resp.status_code == 200 and resp.get_json()["status"] == "ok"
    # ...but only /healthz: the page and the API stay locked even from loopback.
    assert c.get("/api/symbols", environ_base={"REMOTE_ADDR": peer}).status_code == 403
    assert c.get("/", environ_base={"REMOTE_ADDR": peer}).status_code == 403


def test_forwarded_for_is_not_trusted(locked):
    c = locked.test_client()
    spoof = {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1", "Forwarded": "for=127.0.0.1"}
    assert c.get("/healthz", headers=spoof, environ_base=REMOTE).status_code == 403


def test_cron_health_check_passes_the_lock_over_a_real_socket(locked):
    # The morning flip's gate (oi.dns.wait_healthy, as crontab runs it) against the locked app on 127.0.0.1.
    with serve(locked) as url:
        wait_healthy(url + "healthz", 0)


def test_no_secret_no_lock(client, rt, timer):
    fill(rt, timer)
    assert client.get("/api/symbols", environ_base=REMOTE).status_code == 200


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ORIGIN_SECRET": "short"}, "at least 16"),
        ({"ORIGIN_SECRET": "has a space in the middle"}, "without spaces"),
        ({"ORIGIN_SECRET": "ünïcode-secret-value-1"}, "printable ASCII"),
        ({"ORIGIN_SECRET": SECRET, "CLOUDFLARE_PROXIED": "0"}, "CLOUDFLARE_PROXIED"),
    ],
)
def test_bad_origin_secret_is_a_config_error_that_does_not_echo_it(env, message):
    with pytest.raises(ConfigError, match=message) as info:
        from_env(env)
    assert env["ORIGIN_SECRET"] not in str(info.value)


def test_origin_secret_is_a_redacted_secret():
    config = from_env({"ORIGIN_SECRET": SECRET})
    assert config.origin_secret == SECRET
    assert SECRET in config.secrets() and SECRET not in repr(config)


# ------------------------------------------------------------------------------------- Cloudflare transform rule

DOMAIN = "oi.example.com"
REFERER = "referer-secret-7f3a9c"


@pytest.fixture
def rule_env() -> dict[str, str]:
    """The rule command's whole environment."""
    return {}


@pytest.fixture
def cf(rule_env):
    with FakeCloudflare() as fake:
        rule_env.update(
            CLOUDFLARE_API_BASE=fake.base_url,
            CLOUDFLARE_API_TOKEN=fake.token,
            CLOUDFLARE_ZONE_ID=fake.zone_id,
            DOMAIN_NAME=DOMAIN,
            S3_REFERER_SECRET=REFERER,
            ORIGIN_SECRET=SECRET,
        )
        yield fake


@pytest.fixture
def main(rule_env):
    """``python -m oi setup cloudflare`` (what was ``python -m oi.lifecycle transform-rule``) in `rule_env`."""
    return lambda argv: oi_main(["setup", "cloudflare", *argv[1:]], rule_env)


def our_rule(cf) -> dict:
    rules = [r for r in cf.entrypoints[TRANSFORM_PHASE]["rules"] if r["ref"] == RULE_REF]
    assert len(rules) == 1
    return rules[0]


def test_transform_rule_sets_both_headers_and_is_idempotent(cf, rule_env, main, capsys, caplog):
    with caplog.at_level(logging.DEBUG):
        assert main(["transform-rule"]) == 0
        rule = our_rule(cf)
        assert rule["expression"] == f'(http.host eq "{DOMAIN}")'
        assert rule["action_parameters"]["headers"] == {
            "Referer": {"operation": "set", "value": REFERER},
            "X-Origin-Secret": {"operation": "set", "value": SECRET},
        }
        writes = cf.writes
        assert main(["transform-rule"]) == 0
        assert cf.writes == writes  # unchanged: no PUT

        rotated = "rotated-origin-secret-42"
        rule_env["ORIGIN_SECRET"] = rotated
        assert main(["transform-rule"]) == 0
        updated = our_rule(cf)
        assert updated["id"] == rule["id"]  # the same rule, updated in place
        assert updated["action_parameters"]["headers"]["X-Origin-Secret"]["value"] == rotated
        assert updated["action_parameters"]["headers"]["Referer"]["value"] == REFERER

    out = capsys.readouterr()
    for secret in (SECRET, rotated, REFERER, cf.token):
        assert secret not in out.out + out.err + caplog.text


def test_rule_header_is_what_the_lock_checks(cf, main, dhan_env, store, timer):
    assert main(["transform-rule"]) == 0
    headers = {name: h["value"] for name, h in our_rule(cf)["action_parameters"]["headers"].items()}
    app = create_app(make_config(**dhan_env, ORIGIN_SECRET=SECRET), store=store, timer=timer)
    fill(app.extensions["oi"], timer)
    # A request as Cloudflare forwards it, with the headers the rule sets, gets through; without them it does not.
    assert app.test_client().get("/api/symbols", headers=headers, environ_base=REMOTE).status_code == 200
    assert app.test_client().get("/api/symbols", environ_base=REMOTE).status_code == 403


def test_adding_the_origin_secret_updates_an_existing_referer_only_rule(cf, rule_env, main):
    del rule_env["ORIGIN_SECRET"]
    assert main(["transform-rule"]) == 0
    before = our_rule(cf)
    assert list(before["action_parameters"]["headers"]) == ["Referer"]
    assert "X-Origin-Secret" not in before["description"]

    rule_env["ORIGIN_SECRET"] = SECRET
    assert main(["transform-rule"]) == 0
    after = our_rule(cf)
    assert after["id"] == before["id"]
    assert set(after["action_parameters"]["headers"]) == {"Referer", "X-Origin-Secret"}


def test_origin_secret_alone_is_enough_and_neither_is_a_usage_error(cf, rule_env, main, capsys):
    del rule_env["S3_REFERER_SECRET"]
    assert main(["transform-rule"]) == 0
    assert list(our_rule(cf)["action_parameters"]["headers"]) == ["X-Origin-Secret"]
    del rule_env["ORIGIN_SECRET"]
    assert main(["transform-rule"]) == 2
    assert "S3_REFERER_SECRET" in capsys.readouterr().err


def test_dry_run_masks_both_secrets(cf, main, capsys):
    assert main(["transform-rule", "--dry-run"]) == 0
    out = capsys.readouterr().out
    printed = json.loads(out[: out.rindex("}") + 1])
    assert printed["action_parameters"]["headers"]["X-Origin-Secret"]["value"] == "***"
    assert SECRET not in out and REFERER not in out
    assert cf.writes == 0
