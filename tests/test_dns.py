"""The day/night DNS switch, end to end: CLI mains against fake Cloudflare/Telegram/IMDS/health and moto (S3, EC2)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime

import boto3
import pytest

from oi.cli import day_main, night_main
from oi.dns import GateError, expected_snapshot_session, wait_healthy
from oi.market.calendar import IST, MarketCalendar
from tests.fakes import HealthServer, closed_port_url
from tests.fakes.cloudflare import FakeCloudflare
from tests.fakes.imds import FakeImds
from tests.fakes.moto import REGION, aws_env, moto_server, reset
from tests.fakes.telegram import FakeTelegram

DOMAIN = "oi.example.com"
WEBSITE = f"{DOMAIN}.s3-website.{REGION}.amazonaws.com"  # ap-south-1 uses the dot form
MONDAY_CLOSE = "2026-11-23T15:40:00+05:30"  # Monday after the close: the snapshot must be from 2026-11-23
MONDAY_MORNING = "2026-11-23T09:05:00+05:30"
HOLIDAY_MORNING = "2026-11-24T09:05:00+05:30"  # Guru Nanak Jayanti, an NSE holiday (a Tuesday)
SATURDAY_MORNING = "2026-11-21T09:05:00+05:30"
TXT = "v=spf1 -all"


@pytest.fixture(scope="module")
def moto():
    with moto_server() as endpoint:
        yield endpoint


@dataclass
class World:
    cf: FakeCloudflare
    tg: FakeTelegram
    imds: FakeImds
    health: HealthServer
    s3: object
    env: dict[str, str]  # the flips' whole environment

    @property
    def health_args(self) -> list[str]:
        return ["--health-url", f"{self.health.url}/healthz", "--wait", "1"]

    def snapshot(self, session: str | None = "2026-11-23") -> None:
        metadata = {"oi-session": session} if session else {}
        self.s3.put_object(Bucket=DOMAIN, Key="index.html", Body=b"<html></html>", Metadata=metadata)

    def at(self) -> list[dict]:
        return self.cf.at(DOMAIN)

    def txt(self) -> list[dict]:
        return self.cf.at(DOMAIN, types={"TXT"})

    def setenv(self, **values: str) -> None:
        self.env.update(values)

    def day(self, argv: list[str]) -> int:
        return day_main(argv, self.env)

    def night(self, argv: list[str]) -> int:
        return night_main(argv, self.env)


@pytest.fixture
def world(monkeypatch, moto, tmp_path):
    reset(moto)
    aws_env(monkeypatch, moto)  # where boto3 finds moto
    with FakeCloudflare() as cf, FakeTelegram() as tg, FakeImds() as imds, HealthServer() as health:
        env = {
            "CLOUDFLARE_API_BASE": cf.base_url,
            "CLOUDFLARE_API_TOKEN": cf.token,
            "CLOUDFLARE_ZONE_ID": cf.zone_id,
            "DOMAIN_NAME": DOMAIN,
            "S3_BUCKET_NAME": DOMAIN,
            "TELEGRAM_API_BASE": tg.url,
            "TELEGRAM_BOT_TOKEN": tg.token,
            "TELEGRAM_CHAT_ID": "4242",
            "IMDS_BASE": imds.url,
            "OI_NOW": MONDAY_CLOSE,
            "OI_DATA_DIR": str(tmp_path / "var"),
        }
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=DOMAIN, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield World(cf, tg, imds, health, s3, env)


def only(records: list[dict]) -> dict:
    assert len(records) == 1, records
    return records[0]


# ---------------------------------------------------------------------------------------------- A -> CNAME


def test_night_flip_updates_the_a_record_in_place_and_keeps_txt(world):
    day = world.cf.add("A", DOMAIN, "203.0.113.10", proxied=True)
    world.cf.add("TXT", DOMAIN, TXT)
    world.snapshot("2026-11-23")

    assert world.night([]) == 0

    record = only(world.at())
    assert (record["type"], record["content"], record["proxied"]) == ("CNAME", WEBSITE, True)
    assert record["id"] == day["id"]  # updated in place, never deleted and re-created
    assert [r["content"] for r in world.txt()] == [TXT]
    assert world.cf.writes == 1
    assert len(world.tg.texts) == 1 and "2026-11-23" in world.tg.texts[0] and DOMAIN in world.tg.texts[0]


def test_day_flip_updates_the_cname_in_place_with_the_imds_address(world):
    night = world.cf.add("CNAME", DOMAIN, WEBSITE, proxied=True)
    world.cf.add("TXT", DOMAIN, TXT)
    world.setenv(OI_NOW=MONDAY_MORNING)

    assert world.day(world.health_args) == 0

    record = only(world.at())
    assert (record["type"], record["content"], record["proxied"]) == ("A", "203.0.113.10", True)
    assert record["id"] == night["id"]
    assert [r["content"] for r in world.txt()] == [TXT]
    assert world.cf.writes == 1
    assert ("PUT", "/latest/api/token") in world.imds.requests  # IMDSv2, token first
    assert world.health.hits >= 1
    assert len(world.tg.texts) == 1 and "203.0.113.10" in world.tg.texts[0]


def test_day_flip_uses_ip_flag_and_unproxied_ttl(world):
    world.cf.add("CNAME", DOMAIN, WEBSITE, proxied=True)
    world.setenv(OI_NOW=MONDAY_MORNING, CLOUDFLARE_PROXIED="0")

    assert world.day(["--ip", "198.51.100.7", *world.health_args]) == 0

    record = only(world.at())
    assert (record["type"], record["content"], record["proxied"], record["ttl"]) == ("A", "198.51.100.7", False, 60)
    assert world.imds.requests == []  # an explicit address means no metadata lookups


def test_cname_target_flag_and_creation_when_no_record_exists(world):
    world.snapshot()
    assert world.night(["--target", "Elsewhere.Example.NET"]) == 0
    record = only(world.at())
    assert (record["type"], record["content"]) == ("CNAME", "Elsewhere.Example.NET")
    assert world.cf.writes == 1


# --------------------------------------------------------------------------------------- idempotence


def test_already_in_state_writes_nothing_and_sends_nothing(world):
    world.cf.add("CNAME", DOMAIN, WEBSITE.upper() + ".", proxied=True)  # same host, other spelling
    world.snapshot()

    assert world.night([]) == 0
    assert world.cf.writes == 0
    assert world.tg.texts == []
    assert not any(method != "GET" for method, _ in world.cf.log)


def test_running_twice_writes_only_once(world):
    world.cf.add("CNAME", DOMAIN, WEBSITE, proxied=True)
    world.setenv(OI_NOW=MONDAY_MORNING)

    assert world.day(world.health_args) == 0
    assert world.cf.writes == 1
    assert world.day(world.health_args) == 0
    assert world.cf.writes == 1
    assert len(world.tg.texts) == 1


def test_proxied_change_alone_is_a_write(world):
    world.cf.add("CNAME", DOMAIN, WEBSITE, proxied=False)
    world.snapshot()
    assert world.night([]) == 0
    assert only(world.at())["proxied"] is True
    assert world.cf.writes == 1


# ----------------------------------------------------------------------------------------- duplicates


def test_several_address_records_are_fixed_to_exactly_one(world, caplog):
    world.cf.add("A", DOMAIN, "203.0.113.10", proxied=True)
    world.cf.add("A", DOMAIN, "203.0.113.11", proxied=True)
    world.cf.add("AAAA", DOMAIN, "2001:db8::1", proxied=True)
    world.cf.add("TXT", DOMAIN, TXT)
    world.cf.add("A", "other.example.com", "192.0.2.1")  # another name: untouched
    world.snapshot()

    with caplog.at_level(logging.INFO):
        assert world.night([]) == 0

    record = only(world.at())
    assert (record["type"], record["content"]) == ("CNAME", WEBSITE)
    assert len(world.txt()) == 1 and len(world.cf.at("other.example.com")) == 1
    assert "fixing to exactly one" in caplog.text
    assert "fixed to exactly one" in world.tg.texts[0]


def test_duplicate_a_records_keep_the_right_one(world):
    right = world.cf.add("A", DOMAIN, "203.0.113.10", proxied=True)
    world.cf.add("A", DOMAIN, "192.0.2.99", proxied=True)
    world.setenv(OI_NOW=MONDAY_MORNING)

    assert world.day(world.health_args) == 0
    assert only(world.at())["id"] == right["id"]
    assert world.cf.writes == 1  # one delete, no update


# ---------------------------------------------------------------------------------------------- failures


def test_bad_token_fails_with_cloudflares_message(world, caplog):
    before = world.cf.add("A", DOMAIN, "203.0.113.10", proxied=True)
    world.snapshot()
    world.setenv(CLOUDFLARE_API_TOKEN="not-the-token")

    assert world.night([]) == 1

    assert "Invalid access token" in caplog.text and "9109" in caplog.text
    assert only(world.at()) == before
    assert len(world.tg.texts) == 1 and "Invalid access token" in world.tg.texts[0]


def test_unknown_zone_fails_with_cloudflares_message(world, caplog):
    world.setenv(CLOUDFLARE_ZONE_ID="nosuchzone", OI_NOW=MONDAY_MORNING)
    assert world.day(world.health_args) == 1
    assert "7003" in caplog.text
    assert world.cf.writes == 0


def test_rate_limits_and_server_errors_are_retried(world):
    world.cf.add("A", DOMAIN, "203.0.113.10", proxied=True)
    world.snapshot()
    world.cf.fail_next = [429, 503]

    assert world.night([]) == 0
    assert only(world.at())["type"] == "CNAME"
    assert world.cf.fail_next == []


def test_unhealthy_app_means_no_flip(world, caplog):
    night = world.cf.add("CNAME", DOMAIN, WEBSITE, proxied=True)
    world.health.healthy = False
    world.setenv(OI_NOW=MONDAY_MORNING)

    started = time.monotonic()
    assert world.day(world.health_args) == 1
    assert time.monotonic() - started < 5

    assert only(world.at()) == night
    assert world.cf.writes == 0
    assert world.health.hits >= 2  # polled more than once within --wait
    assert "not healthy" in caplog.text and "HTTP 503" in caplog.text
    assert len(world.tg.texts) == 1 and "NOT done" in world.tg.texts[0]


def test_health_that_turns_ok_within_the_wait_lets_the_flip_happen(world):
    world.cf.add("CNAME", DOMAIN, WEBSITE, proxied=True)
    world.health.healthy = False
    world.setenv(OI_NOW=MONDAY_MORNING)
    timer = threading.Timer(0.3, lambda: setattr(world.health, "healthy", True))
    timer.start()

    assert world.day(["--health-url", f"{world.health.url}/healthz", "--wait", "5"]) == 0
    assert only(world.at())["type"] == "A"


def test_health_url_that_is_down_means_no_flip(world):
    world.cf.add("CNAME", DOMAIN, WEBSITE, proxied=True)
    world.setenv(OI_NOW=MONDAY_MORNING)
    assert world.day(["--health-url", f"{closed_port_url()}/healthz", "--wait", "0"]) == 1
    assert world.cf.writes == 0


def test_missing_snapshot_means_no_flip(world, caplog):
    day = world.cf.add("A", DOMAIN, "203.0.113.10", proxied=True)
    assert world.night([]) == 1
    assert only(world.at()) == day
    assert world.cf.writes == 0
    assert "no snapshot" in caplog.text
    assert "NOT done" in world.tg.texts[0]


def test_stale_snapshot_means_no_flip(world, caplog):
    day = world.cf.add("A", DOMAIN, "203.0.113.10", proxied=True)
    world.snapshot("2026-11-20")  # Friday's, but Monday's session has closed
    assert world.night([]) == 1
    assert only(world.at()) == day
    assert "stale snapshot" in caplog.text and "2026-11-20" in caplog.text


def test_snapshot_without_session_metadata_means_no_flip(world, caplog):
    world.cf.add("A", DOMAIN, "203.0.113.10", proxied=True)
    world.snapshot(None)
    assert world.night([]) == 1
    assert world.cf.writes == 0
    assert "oi-session" in caplog.text


def test_force_skips_the_snapshot_gate(world):
    world.cf.add("A", DOMAIN, "203.0.113.10", proxied=True)
    assert world.night(["--force"]) == 0
    assert only(world.at())["type"] == "CNAME"


def test_missing_configuration_is_a_usage_error(world, capsys):
    del world.env["CLOUDFLARE_ZONE_ID"]
    assert world.night([]) == 2
    assert "CLOUDFLARE_ZONE_ID" in capsys.readouterr().err
    assert world.day(["--ip", "not-an-ip"]) == 2


# --------------------------------------------------------------------------------------- holidays


@pytest.mark.parametrize("now, word", [(HOLIDAY_MORNING, "NSE holiday"), (SATURDAY_MORNING, "weekend")])
def test_no_market_day_changes_nothing(world, caplog, now, word):
    world.cf.add("CNAME", DOMAIN, WEBSITE, proxied=True)
    world.setenv(OI_NOW=now)

    with caplog.at_level(logging.INFO):
        assert world.day(world.health_args) == 0

    assert world.cf.writes == 0 and world.cf.log == []
    assert world.health.hits == 0 and world.imds.requests == []
    assert word in caplog.text
    assert world.tg.texts == []


def test_operator_holiday_from_env(world):
    world.cf.add("CNAME", DOMAIN, WEBSITE, proxied=True)
    world.setenv(OI_NOW=MONDAY_MORNING, OI_HOLIDAYS="2026-11-23")
    assert world.day(world.health_args) == 0
    assert world.cf.writes == 0


def test_stop_on_holiday_stops_this_instance(world):
    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    world.imds.instance_id = instance_id  # found through IMDS, as on the box (no EC2_INSTANCE_ID set)
    world.setenv(OI_NOW=HOLIDAY_MORNING)

    assert world.day(["--stop-on-holiday", *world.health_args]) == 0

    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in {"stopping", "stopped"}
    assert world.cf.writes == 0
    assert instance_id in world.tg.texts[0]


def test_stop_on_holiday_is_not_triggered_on_a_trading_day(world):
    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    world.imds.instance_id = instance_id
    world.setenv(OI_NOW=MONDAY_MORNING)

    assert world.day(["--stop-on-holiday", *world.health_args]) == 0
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state == "running"


def test_force_flips_on_a_holiday(world):
    world.cf.add("CNAME", DOMAIN, WEBSITE, proxied=True)
    world.setenv(OI_NOW=HOLIDAY_MORNING)
    assert world.day(["--force", "--ip", "198.51.100.7"]) == 0
    assert only(world.at())["content"] == "198.51.100.7"


# ------------------------------------------------------------------------------ telegram, dry run, secrets


@pytest.mark.parametrize("mode", ["down", "500"])
def test_telegram_failure_does_not_fail_the_flip(world, caplog, mode):
    world.cf.add("A", DOMAIN, "203.0.113.10", proxied=True)
    world.snapshot()
    if mode == "down":
        world.setenv(TELEGRAM_API_BASE=closed_port_url())
    else:
        world.tg.fail = True

    assert world.night([]) == 0

    assert only(world.at())["type"] == "CNAME"
    assert "telegram: not sent" in caplog.text
    assert world.tg.token not in caplog.text


def test_dry_run_writes_nothing(world, caplog):
    day = world.cf.add("A", DOMAIN, "203.0.113.10", proxied=True)
    world.cf.add("A", DOMAIN, "203.0.113.11", proxied=True)
    world.snapshot()

    with caplog.at_level(logging.INFO):
        assert world.night(["--dry-run"]) == 0

    assert world.cf.writes == 0 and len(world.at()) == 2 and day in world.at()
    assert "would update" in caplog.text and "would delete" in caplog.text
    assert world.tg.texts == []

    world.setenv(OI_NOW=MONDAY_MORNING)
    assert world.day(["--dry-run", *world.health_args]) == 0
    assert world.cf.writes == 0


def test_no_secret_reaches_logs_or_output(world, caplog, capsys):
    world.cf.add("A", DOMAIN, "203.0.113.10", proxied=True)
    world.snapshot()
    world.setenv(TELEGRAM_API_BASE=closed_port_url())
    with caplog.at_level(logging.DEBUG):
        world.night([])
        world.setenv(CLOUDFLARE_ZONE_ID="nosuchzone")
        world.day(["--force", "--ip", "198.51.100.7"])
    out = capsys.readouterr()
    for secret in (world.cf.token, world.tg.token):
        assert secret not in caplog.text and secret not in out.out and secret not in out.err


# ------------------------------------------------------------------------------------------------ units


@pytest.mark.parametrize(
    "now, expected",
    [
        ("2026-11-23T15:40", date(2026, 11, 23)),  # after Monday's close: Monday
        ("2026-11-23T15:29", date(2026, 11, 20)),  # Monday's session still running: Friday
        ("2026-11-23T08:00", date(2026, 11, 20)),  # before Monday's open: Friday
        ("2026-11-24T15:40", date(2026, 11, 23)),  # holiday: the trading day before
        ("2026-11-22T12:00", date(2026, 11, 20)),  # Sunday: Friday
        ("2026-11-25T01:00", date(2026, 11, 23)),  # after a holiday, before the open
    ],
)
def test_expected_snapshot_session(now, expected):
    at = datetime.fromisoformat(now).replace(tzinfo=IST)
    assert expected_snapshot_session(MarketCalendar(), at) == expected


def test_wait_healthy_rejects_a_wrong_body():
    class NotOk(HealthServer):
        def handle(self, request):
            return 200, {}, {"status": "starting"}

    with NotOk() as server, pytest.raises(GateError, match="starting"):
        wait_healthy(f"{server.url}/healthz", 0)


# ------------------------------------------------------------------------------------------ concurrent flips


def _two_address_records(world) -> None:
    world.cf.records.clear()
    world.cf.add("A", DOMAIN, "192.0.2.50", proxied=True)  # the older record
    world.cf.add("A", DOMAIN, "203.0.113.10", proxied=True)  # already what the day flip wants


def test_day_and_night_flips_from_two_boxes_never_leave_the_name_without_a_record(world):
    """No lock between two machines: both flips must pick the same record to keep, so neither deletes the other's."""
    from oi.cloudflare import CloudflareError, cloudflare_from_config
    from oi.config import from_env
    from oi.dns import FlipError, Wanted, ensure_record

    config = from_env(world.env)
    for _ in range(15):
        _two_address_records(world)
        barrier = threading.Barrier(2)
        errors: list[Exception] = []

        def flip(wanted: Wanted, barrier=barrier, errors=errors) -> None:
            barrier.wait()
            try:
                ensure_record(cloudflare_from_config(config), DOMAIN, wanted)
            except (CloudflareError, FlipError) as exc:  # a flip may lose the race; the name must not go empty
                errors.append(exc)

        threads = [
            threading.Thread(target=flip, args=(Wanted("A", "203.0.113.10", True),)),
            threading.Thread(target=flip, args=(Wanted("CNAME", WEBSITE, True),)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(world.at()) == 1, (world.at(), errors)


def test_concurrent_day_and_night_commands_on_one_box_are_serialised(world):
    world.setenv(OI_NOW=MONDAY_MORNING)
    world.snapshot()
    for _ in range(8):
        _two_address_records(world)
        barrier = threading.Barrier(2)
        codes: dict[str, int] = {}

        def run(name: str, command, argv: list[str], barrier=barrier, codes=codes) -> None:
            barrier.wait()
            codes[name] = command(argv)

        threads = [
            threading.Thread(target=run, args=("day", world.day, ["--force", "--ip", "203.0.113.10"])),
            threading.Thread(target=run, args=("night", world.night, ["--force"])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert codes == {"day": 0, "night": 0}  # one after the other: each reaches its end state cleanly
        assert len(world.at()) == 1
