"""Secrets never leak: every secret is set to a unique sentinel, everything runs (the app against the fake Dhan,
with auth and network failures; upload.py rendering and publishing to moto; the DNS flips and the Cloudflare rule
against the fakes, with failures), and every output is grepped.

Outputs: log records at DEBUG from every logger, both as the production handler writes them (oi.logs redaction in
place) and raw from our own ``oi.*`` loggers (our code must not lean on the filter); stdout and stderr; response
bodies and headers; Telegram messages; every file of the rendered snapshot (gzip unpacked) and every object
published to S3, with its metadata.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import boto3
import mongomock
import pytest

from oi.cli import day_main as main_a
from oi.cli import main as oi_main
from oi.cli import night_main as main_cname
from oi.cli import upload_main
from oi.config import SECRET_VARIABLES, from_env
from oi.logs import RedactSecrets, setup_logging
from oi.refresher import PACE_SLACK_SECONDS
from oi.store import Store
from oi.web import create_app
from tests.fakes import HealthServer, closed_port_url
from tests.fakes.cloudflare import FakeCloudflare
from tests.fakes.dhan import FakeDhan
from tests.fakes.imds import FakeImds
from tests.fakes.moto import REGION, aws_env, moto_server, reset
from tests.fakes.telegram import FakeTelegram
from tests.helpers import MONDAY_1100, FakeTimer
from tests.session import record_session

DOMAIN = "oi.example.com"
REMOTE = {"REMOTE_ADDR": "198.51.100.23"}


def sentinel(name: str) -> str:
    return f"SENTINEL{name.replace('_', '')}{uuid.uuid4().hex[:12]}"


def jwt(exp: float, client_id: str, signature: str) -> str:
    """A Dhan-shaped token (a JWT) whose signature is the sentinel: any leak of the token includes it."""
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    claims = {"iss": "dhan", "tokenConsumerType": "SELF", "dhanClientId": client_id, "exp": int(exp)}
    return f"{part({'alg': 'HS512', 'typ': 'JWT'})}.{part(claims)}.{signature}"


# Channels the public can read. The operator's channels (logs, console, Telegram) may name the Dhan client id (an
# account number, not a credential: token alerts say which account); the public ones may not.
PUBLIC = ("response", "snapshot", "s3")


@dataclass
class Secrets:
    values: dict[str, str] = field(default_factory=dict)  # never in any output
    identifiers: dict[str, str] = field(default_factory=dict)  # never in a public output

    def add(self, name: str, value: str) -> str:
        self.values[name] = value
        return value

    def found_in(self, text: str, public: bool) -> list[str]:
        names = {**self.values, **self.identifiers} if public else self.values
        return [name for name, value in names.items() if value in text]


@dataclass
class Outputs:
    """Everything a run produced, by channel, for grepping."""

    channels: dict[str, list[str]] = field(default_factory=dict)

    def add(self, channel: str, text: str | bytes) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self.channels.setdefault(channel, []).append(text)

    def add_response(self, what: str, resp) -> None:
        self.add(f"response body {what}", resp.get_data())
        self.add(f"response headers {what}", "\n".join(f"{k}: {v}" for k, v in resp.headers.items()))

    def add_tree(self, channel: str, root: Path) -> int:
        files = [p for p in sorted(root.rglob("*")) if p.is_file()]
        for path in files:
            data = path.read_bytes()
            self.add(f"{channel} {path.relative_to(root)}", gzip.decompress(data) if path.suffix == ".gz" else data)
        return len(files)

    def leaks(self, secrets: Secrets) -> list[tuple[str, str]]:
        return [
            (channel, name)
            for channel, texts in self.channels.items()
            for name in secrets.found_in("\n".join(texts), public=channel.startswith(PUBLIC))
        ]


class RawRecords(logging.Handler):
    """Keeps each record's message (and traceback) as logged, before any redaction filter rewrites it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []
        self.levels: list[tuple[str, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append((record.name, text))
        self.levels.append((record.name, record.levelno))


@pytest.fixture(scope="module")
def moto():
    with moto_server() as url:
        yield url


@pytest.fixture
def world(monkeypatch, moto, tmp_path, capfd):
    """Every secret set to a sentinel in the environment; fakes for Dhan, Cloudflare, Telegram, IMDS and S3;
    production logging (oi.logs) at DEBUG for every logger, writing to the captured stderr."""
    reset(moto)
    aws_env(monkeypatch, moto)  # boto3's own view of the process: where moto is

    secrets = Secrets()
    client_id = secrets.identifiers["DHAN_CLIENT_ID"] = "90817263540"
    token_signature = secrets.add("DHAN_ACCESS_TOKEN", sentinel("DHAN_ACCESS_TOKEN"))
    # Expires 30 minutes after the pinned "now": inside the alert window, so the token alert path runs.
    token = jwt((MONDAY_1100 + timedelta(minutes=30)).timestamp(), client_id, token_signature)
    cf_token = secrets.add("CLOUDFLARE_API_TOKEN", sentinel("CLOUDFLARE_API_TOKEN"))
    tg_token = secrets.add("TELEGRAM_BOT_TOKEN", "4242:" + sentinel("TELEGRAM_BOT_TOKEN"))
    env = {
        "DHAN_CLIENT_ID": client_id,
        "DHAN_ACCESS_TOKEN": token,
        "AWS_ACCESS_KEY": secrets.add("AWS_ACCESS_KEY", "AKIA" + uuid.uuid4().hex[:16].upper()),
        "AWS_SECRET_KEY": secrets.add("AWS_SECRET_KEY", sentinel("AWS_SECRET_KEY")),
        "S3_REFERER_SECRET": secrets.add("S3_REFERER_SECRET", sentinel("S3_REFERER_SECRET")),
        "ORIGIN_SECRET": secrets.add("ORIGIN_SECRET", sentinel("ORIGIN_SECRET")),
        "CLOUDFLARE_API_TOKEN": cf_token,
        "TELEGRAM_BOT_TOKEN": tg_token,
        "TELEGRAM_CHAT_ID": "4242",
        "DOMAIN_NAME": DOMAIN,
        "S3_BUCKET_NAME": DOMAIN,
        "OI_SYMBOLS": "NIFTY",
        "OI_NOW": MONDAY_1100.isoformat(),
        "OI_REFRESHER": "0",
        "OI_FEED": "off",  # the feed's own no-leak test is in tests/test_feed_app.py
        "OI_DATA_DIR": str(tmp_path / "var"),
        "DHAN_TOKEN_FILE": str(tmp_path / "private" / "dhan_token.json"),
        "LOG_LEVEL": "DEBUG",
    }
    assert set(SECRET_VARIABLES) - {"AWS_SECRET_ACCESS_KEY"} <= set(secrets.values)  # every named secret is set

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_levels = {name: logging.getLogger(name).level for name in list(logging.root.manager.loggerDict)}
    with (
        FakeCloudflare(token=cf_token) as cf,
        FakeTelegram(token=tg_token) as tg,
        FakeImds() as imds,
        HealthServer() as health,
    ):
        dhan = FakeDhan(client_id=client_id, token=token).start()
        env.update(
            DHAN_API_BASE=dhan.base_url,
            CLOUDFLARE_API_BASE=cf.base_url,
            CLOUDFLARE_ZONE_ID=cf.zone_id,
            TELEGRAM_API_BASE=tg.url,
            IMDS_BASE=imds.url,
        )
        setup_logging(from_env(env))  # the production handler and its redaction filter...
        log_stream = io.StringIO()
        root.handlers[0].setStream(log_stream)  # ...writing where the test can read it (stderr is pytest's)
        raw = RawRecords()
        root.handlers.insert(0, raw)  # first: sees each record before the redaction filter rewrites it
        for name in saved_levels:
            logging.getLogger(name).setLevel(logging.DEBUG)
        try:
            yield World(secrets, Outputs(), raw, log_stream, capfd, dhan, cf, tg, imds, health, env, tmp_path)
        finally:
            dhan.stop()
            root.handlers[:] = saved_handlers
            root.setLevel(saved_level)
            for name, level in saved_levels.items():
                logging.getLogger(name).setLevel(level)


@dataclass
class World:
    secrets: Secrets
    out: Outputs
    raw: RawRecords
    log_stream: io.StringIO
    capfd: pytest.CaptureFixture
    dhan: FakeDhan
    cf: FakeCloudflare
    tg: FakeTelegram
    imds: FakeImds
    health: HealthServer
    env: dict[str, str]  # the environment every command and app of the test gets
    tmp_path: Path

    def collect(self) -> None:
        captured = self.capfd.readouterr()
        self.out.add("stdout", captured.out)
        self.out.add("stderr", captured.err)
        self.out.add("log (production handler)", self.log_stream.getvalue())
        for name, text in self.raw.lines:
            if name == "oi" or name.startswith(("oi.", "tests")):
                self.out.add(f"raw log record of {name}", text)
        self.out.add("telegram messages", "\n".join(self.tg.texts))

    def assert_clean(self) -> None:
        self.collect()
        leaks = self.out.leaks(self.secrets)
        if leaks:
            channel, name = leaks[0]
            text = "\n".join(self.out.channels[channel])
            at = text.index({**self.secrets.values, **self.secrets.identifiers}[name])
            print(f"{name} found in {channel}: ...{text[max(0, at - 300) : at + 100]}...")
        assert leaks == []


# ------------------------------------------------------------------------------------------------------- the app


def test_the_app_leaks_no_secret(world):
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    timer = FakeTimer()
    app = create_app(from_env(world.env), store=store, timer=timer)
    app.config.update(TESTING=False, PROPAGATE_EXCEPTIONS=False)  # as in production: a 500, not a re-raise
    rt = app.extensions["oi"]
    watch = getattr(rt, "token_watch", None)

    def tick(n: int = 2) -> None:
        for _ in range(n):
            rt.tick()
            if watch is not None:
                watch.run()
            timer.advance(rt.config.dhan_min_interval_seconds + PACE_SLACK_SECONDS)

    c = app.test_client()
    origin = {"X-Origin-Secret": world.secrets.values["ORIGIN_SECRET"]}

    def hit(label: str) -> None:
        requests_ = [
            "/",
            "/api/symbols",
            "/api/oi?symbol=NIFTY",
            "/api/oi?symbol=NIFTY&strikes=all&interval=5",
            "/api/oi?symbol=NIFTY&at=2026-11-23T10:00:00%2B05:30",
            "/api/oi?symbol=NIFTY&expiry=all",
            "/api/history?symbol=NIFTY",
            "/api/oi",
            "/api/oi?symbol=<script>",
            "/api/oi?symbol=NIFTY&expiry=2030-01-01",
            "/api/nope",
            "/nope",
            "/static/app.js",
            "/healthz",
        ]
        for path in requests_:
            for who, kwargs in (
                ("via Cloudflare", {"headers": origin, "environ_base": REMOTE}),
                ("direct", {"environ_base": REMOTE}),
                ("wrong secret", {"headers": {"X-Origin-Secret": "x" * 20}, "environ_base": REMOTE}),
            ):
                resp = c.get(path, **kwargs)
                assert resp.status_code < 500 or path == "/healthz", (label, path, who)
                world.out.add_response(f"{label} {who} GET {path}", resp)
        world.out.add_response(f"{label} local /healthz", c.get("/healthz"))
        world.out.add_response(f"{label} POST", c.post("/api/oi", headers=origin, environ_base=REMOTE))

    tick()
    assert c.get("/api/oi?symbol=NIFTY", headers=origin, environ_base=REMOTE).status_code == 200
    hit("healthy")

    # Dhan rejects the token (DH-901): the refresher stops, logs why, /healthz says why, the token watch alerts.
    world.dhan.token = "rotated-elsewhere-0000000"
    tick(3)
    assert c.get("/healthz").status_code == 503
    hit("auth failure")

    # An unexpected exception in a view: logged with its traceback, answered with a bare 500.
    original = rt.views.get
    rt.views.get = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("view exploded"))
    resp = c.get("/api/oi?symbol=NIFTY", headers=origin, environ_base=REMOTE)
    assert resp.status_code == 500
    world.out.add_response("500", resp)
    rt.views.get = original

    # Dhan unreachable: connection refused, logged.
    world.dhan.stop()
    tick(2)
    hit("dhan down")
    rt.close()

    world.assert_clean()
    # The run did go down the paths that could leak: errors with tracebacks were logged, alerts were sent.
    errors = {name for name, level in world.raw.levels if level >= logging.ERROR}
    assert {"oi.web", "oi.refresher"} <= errors, errors
    assert world.tg.texts, "no token alert reached Telegram"


def test_auto_renewal_leaks_neither_token(world):
    """With DHAN_AUTO_RENEW=1 the token is renewed via /v2/RenewToken and hot-swapped: the new one is a secret."""
    world.env["DHAN_AUTO_RENEW"] = "1"
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    timer = FakeTimer()
    app = create_app(from_env(world.env), store=store, timer=timer)
    rt = app.extensions["oi"]
    watch = getattr(rt, "token_watch", None)
    if watch is None:
        pytest.skip("no token watch in this build")
    for _ in range(4):
        rt.tick()
        watch.run()
        timer.advance(rt.config.dhan_min_interval_seconds + PACE_SLACK_SECONDS)
    renewed = world.dhan.token
    assert renewed != from_env(world.env).dhan_access_token, "the token was not renewed: this test covers nothing"
    world.secrets.add("renewed DHAN token", renewed)
    c = app.test_client()
    origin = {"X-Origin-Secret": world.secrets.values["ORIGIN_SECRET"]}
    for path in ("/", "/api/oi?symbol=NIFTY", "/healthz"):
        world.out.add_response(f"after renewal {path}", c.get(path, headers=origin, environ_base=REMOTE))
    rt.close()
    world.assert_clean()


# -------------------------------------------------------------------------------------------------- upload.py


def test_snapshot_render_and_publish_leak_no_secret(world):
    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    record_session(store, symbols=("NIFTY",))
    world.env["OI_NOW"] = "2026-11-23T16:00:00+05:30"  # after Monday's close
    s3 = boto3.client("s3", region_name=REGION)

    site = world.tmp_path / "site"
    assert upload_main(["--out", str(site)], world.env, store=store) == 0
    assert world.out.add_tree("snapshot file", site) > 3

    # Publishing into a bucket that does not exist: an AWS error on stderr.
    assert upload_main([], world.env, store=store) == 1
    s3.create_bucket(Bucket=DOMAIN, CreateBucketConfiguration={"LocationConstraint": REGION})
    assert upload_main(["--dry-run"], world.env, store=store) == 0
    assert upload_main([], world.env, store=store) == 0
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=DOMAIN).get("Contents", [])]
    assert "index.html" in keys
    for key in keys:
        obj = s3.get_object(Bucket=DOMAIN, Key=key)
        body = obj["Body"].read()
        world.out.add(f"s3 object {key}", gzip.decompress(body) if key.endswith(".gz") else body)
        world.out.add(f"s3 metadata {key}", json.dumps([obj["Metadata"], obj.get("ContentType")]))
    world.assert_clean()


# ----------------------------------------------------------------------------------------- DNS flips and the rule


def test_dns_flips_and_transform_rule_leak_no_secret(world):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=DOMAIN, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=DOMAIN, Key="index.html", Body=b"<html></html>", Metadata={"oi-session": "2026-11-23"})
    health = ["--health-url", f"{world.health.url}/healthz", "--wait", "0"]
    world.cf.add("A", DOMAIN, "203.0.113.10", proxied=True)

    # Night flip, then the day flip, as cron runs them (successes, with Telegram messages).
    world.env["OI_NOW"] = "2026-11-23T15:40:00+05:30"
    assert main_cname([], world.env) == 0
    world.env["OI_NOW"] = "2026-11-23T09:05:00+05:30"
    assert main_a(health, world.env) == 0
    # Failures: the app unhealthy; Cloudflare refusing the token; Telegram down (its URL holds the bot token).
    world.health.healthy = False
    assert main_a(health, world.env) == 1
    world.health.healthy = True
    world.env["TELEGRAM_API_BASE"] = closed_port_url()
    world.env["CLOUDFLARE_API_TOKEN"] = world.secrets.add("wrong Cloudflare token", sentinel("CFWRONG"))
    assert main_a(health, world.env) == 1
    world.env["OI_NOW"] = "2026-11-23T15:40:00+05:30"
    assert main_cname([], world.env) == 1
    world.tg.fail = True
    world.env["TELEGRAM_API_BASE"] = world.tg.url
    assert main_cname(["--force"], world.env) == 1

    # The Cloudflare rule carrying both the Referer and the origin secret: dry run, for real, and refused.
    world.env["CLOUDFLARE_API_TOKEN"] = world.cf.token
    assert oi_main(["setup", "cloudflare", "--dry-run"], world.env) == 0
    assert oi_main(["setup", "cloudflare"], world.env) == 0
    world.env["CLOUDFLARE_API_TOKEN"] = world.secrets.values["wrong Cloudflare token"]
    assert oi_main(["setup", "cloudflare"], world.env) == 1

    world.assert_clean()
    assert world.tg.texts, "no Telegram message was sent: the alert paths did not run"


# ------------------------------------------------------------------------------------------------ the log filter


def test_every_secret_variable_is_redacted_by_the_production_log_filter():
    # boto3 reads AWS_SECRET_ACCESS_KEY itself; oi.config does not, so config.secrets() cannot know it.
    names = [name for name in SECRET_VARIABLES if name != "AWS_SECRET_ACCESS_KEY"] + ["AWS_ACCESS_KEY"]
    env = {name: sentinel(name) for name in names}
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets(from_env(env).secrets()))
    logger = logging.getLogger("tests.secrets.filter")
    logger.addHandler(handler)
    try:
        for name, value in env.items():
            logger.error("%s is %s", name, value)
            try:
                raise ValueError(f"failed with {value}")
            except ValueError:
                logger.exception("traceback")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert text.count("***") == 2 * len(env)
    assert [name for name, value in env.items() if value in text] == []
