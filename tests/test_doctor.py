"""python -m oi doctor against the fakes: Dhan (profile), moto (S3), Cloudflare, a loopback Date header."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import boto3
import pytest

from oi.cli import main
from oi.cli.doctor import check_clock
from oi.cli.startup import Services
from oi.config import from_env
from oi.setup.bucket import setup_bucket
from tests.fakes.cloudflare import FakeCloudflare
from tests.fakes.dhan import CLIENT_ID, FakeDhan, dhan_jwt
from tests.fakes.moto import REGION, aws_env, moto_server, reset
from tests.helpers import MONDAY_1100

DOMAIN = "oi.example.com"
SECRET = "referer-secret-7f3a9c0b"


@pytest.fixture(scope="module")
def moto():
    with moto_server() as url:
        yield url


@pytest.fixture
def deployment(monkeypatch, moto, tmp_path):
    """A deployment where everything is right; tests break one piece of `env`."""
    reset(moto)
    aws_env(monkeypatch, moto)  # where boto3 finds moto
    s3 = boto3.client("s3", region_name=REGION)
    setup_bucket(s3, DOMAIN, REGION, SECRET, DOMAIN)
    token = dhan_jwt((MONDAY_1100 + timedelta(hours=20)).timestamp())
    dhan = FakeDhan(token=token).start()
    with FakeCloudflare() as cf:
        cf.add("A", DOMAIN, "203.0.113.10", proxied=True)
        env = {
            "DHAN_CLIENT_ID": CLIENT_ID,
            "DHAN_ACCESS_TOKEN": token,
            "DHAN_API_BASE": dhan.base_url,
            "OI_NOW": MONDAY_1100.isoformat(),
            "OI_DATA_DIR": str(tmp_path / "var"),
            "S3_BUCKET_NAME": DOMAIN,
            "CLOUDFLARE_API_BASE": cf.base_url,
            "CLOUDFLARE_API_TOKEN": cf.token,
            "CLOUDFLARE_ZONE_ID": cf.zone_id,
            "DOMAIN_NAME": DOMAIN,
        }
        try:
            yield env
        finally:
            dhan.stop()


def doctor(env: dict[str, str], capsys) -> tuple[int, dict[str, str]]:
    code = main(["doctor"], env)
    out = capsys.readouterr().out
    lines = {line.split(":", 1)[0][2:]: line for line in out.splitlines()}
    return code, lines


def test_every_check_passes_on_a_good_deployment(deployment, capsys):
    code, lines = doctor(deployment, capsys)
    assert set(lines) == {"configuration", "store", "Dhan token", "S3 bucket", "Cloudflare", "holiday list", "clock"}
    assert all(line.startswith("✔") for line in lines.values()), lines
    assert code == 0
    assert "data plan Active" in lines["Dhan token"]
    assert "A oi.example.com -> 203.0.113.10" in lines["Cloudflare"]
    assert "covers 2026" in lines["holiday list"]


@pytest.mark.parametrize(
    ("broken", "line", "says"),
    [
        ({"CLOUDFLARE_API_TOKEN": "not-the-token"}, "Cloudflare", "Invalid access token"),
        ({"S3_BUCKET_NAME": "no-such-bucket.example.com"}, "S3 bucket", "does not exist"),
        ({"DHAN_ACCESS_TOKEN": dhan_jwt((MONDAY_1100 - timedelta(hours=1)).timestamp())}, "Dhan token", "expired"),
        ({"DOMAIN_NAME": "other.example.com"}, "Cloudflare", "no A/AAAA/CNAME record"),
        # (in 2031 this token has long expired: leave Dhan out of that case)
        (
            {"OI_NOW": "2031-03-03T10:00:00+05:30", "DHAN_CLIENT_ID": "", "DHAN_ACCESS_TOKEN": ""},
            "holiday list",
            "no NSE holidays known for 2031",
        ),
    ],
)
def test_a_broken_piece_turns_its_line_red_and_the_exit_non_zero(deployment, capsys, broken, line, says):
    deployment.update(broken)
    code, lines = doctor(deployment, capsys)
    assert lines[line].startswith("✘") and says in lines[line] and "→" in lines[line], lines[line]
    others = {name: text for name, text in lines.items() if name != line}
    assert all(not text.startswith("✘") for text in others.values()), others
    assert code == 1


def test_a_bucket_without_website_or_policy_is_red(deployment, capsys):
    boto3.client("s3", region_name=REGION).delete_bucket_policy(Bucket=DOMAIN)
    code, lines = doctor(deployment, capsys)
    assert lines["S3 bucket"].startswith("✘") and "no bucket policy" in lines["S3 bucket"]
    assert "python -m oi setup s3" in lines["S3 bucket"] and code == 1


def test_a_data_plan_that_is_not_active_is_red(deployment, capsys, monkeypatch):
    from oi.market.dhan_account import DhanAccount, Profile

    class Lapsed(DhanAccount):
        def profile(self, token: str) -> Profile:
            return Profile(True, 200, "24/11/2026 07:00", "Inactive", "")

    code = main(["doctor"], deployment, account=Lapsed(deployment["DHAN_API_BASE"], CLIENT_ID))
    line = next(x for x in capsys.readouterr().out.splitlines() if "Dhan token" in x)
    assert line.startswith("✘") and "'Inactive'" in line and code == 1


def test_unconfigured_pieces_are_skipped_not_failed(tmp_path, capsys):
    env = {"OI_NOW": MONDAY_1100.isoformat(), "OI_DATA_DIR": str(tmp_path), "OI_CLOCK_CHECK_URL": "http://127.0.0.1:9"}
    code, lines = doctor(env, capsys)
    assert "skipped: S3_BUCKET_NAME not set" in lines["S3 bucket"]
    assert "skipped: CLOUDFLARE_API_TOKEN, CLOUDFLARE_ZONE_ID, DOMAIN_NAME not set" in lines["Cloudflare"]
    assert "skipped" in lines["Dhan token"] and lines["store"].startswith("✔")
    assert lines["clock"].startswith("✘")  # nothing answers there: the one red line
    assert code == 1


def test_an_invalid_configuration_is_one_red_line_and_exit_2(capsys):
    code, lines = doctor({"DHAN_TIMEOUT_SECONDS": "inf"}, capsys)
    assert list(lines) == ["configuration"]
    assert lines["configuration"].startswith("✘") and "DHAN_TIMEOUT_SECONDS" in lines["configuration"]
    assert code == 2


def test_clock_skew_against_the_date_header(deployment):
    config = from_env(deployment)  # the fake Dhan server stamps every answer with the real Date
    svc = Services(env=deployment)
    assert check_clock(config, svc).mark == "✔"
    assert check_clock(config, svc, wall=lambda: time.time() + 3600).mark == "✘"
    detail = check_clock(config, svc, wall=lambda: time.time() + 3600).detail
    assert re.match(r"\+360[01] s off", detail), detail  # the Date header is to the second
    assert check_clock(config, svc, wall=lambda: time.time() - 2).mark == "✔"


def test_doctor_is_listed_by_help(capsys):
    assert main(["--help"], {}) == 0
    listed = capsys.readouterr().out
    for command in ("serve", "render", "publish", "dns", "token", "setup", "doctor"):
        assert f"\n  {command} " in listed, command
