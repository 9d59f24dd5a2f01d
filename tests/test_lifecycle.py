"""Lifecycle setup: EventBridge Scheduler start/stop schedules (moto) and the Cloudflare Referer transform rule."""

from __future__ import annotations

import json
import logging

import boto3
import pytest

from oi.cli import main as oi_main
from oi.setup.rules import TRANSFORM_PHASE
from oi.setup.schedules import START_TARGET, STOP_TARGET, cron_expression
from tests.fakes.cloudflare import FakeCloudflare
from tests.fakes.moto import REGION, aws_env, moto_server, reset

INSTANCE = "i-0123456789abcdef0"
ROLE = "arn:aws:iam::123456789012:role/oi-scheduler"
DOMAIN = "oi.example.com"
SECRET = "referer-secret-7f3a9c"


@pytest.fixture(scope="module")
def moto():
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def env(monkeypatch, moto) -> dict[str, str]:
    """The commands' whole environment."""
    reset(moto)
    aws_env(monkeypatch, moto)  # where boto3 finds moto
    return {"EC2_INSTANCE_ID": INSTANCE, "SCHEDULER_ROLE_ARN": ROLE}


@pytest.fixture
def main(env):
    """``python -m oi setup …`` in `env`: ``schedules`` and ``transform-rule`` (``setup cloudflare``)."""
    commands = {"schedules": ["setup", "schedules"], "transform-rule": ["setup", "cloudflare"]}
    return lambda argv: oi_main([*commands[argv[0]], *argv[1:]], env)


@pytest.fixture
def cf(env):
    with FakeCloudflare() as fake:
        env.update(
            CLOUDFLARE_API_BASE=fake.base_url,
            CLOUDFLARE_API_TOKEN=fake.token,
            CLOUDFLARE_ZONE_ID=fake.zone_id,
            DOMAIN_NAME=DOMAIN,
            S3_REFERER_SECRET=SECRET,
        )
        yield fake


def scheduler():
    return boto3.client("scheduler", region_name=REGION)


def test_cron_expression():
    assert cron_expression("08:50") == "cron(50 8 ? * MON-FRI *)"
    assert cron_expression("15:45") == "cron(45 15 ? * MON-FRI *)"


def test_schedules_are_created_then_left_alone_then_updated(env, capsys, main):
    assert main(["schedules"]) == 0
    assert capsys.readouterr().out.count(": created") == 2

    start = scheduler().get_schedule(Name="oi-start-instance")
    stop = scheduler().get_schedule(Name="oi-stop-instance")
    assert start["ScheduleExpression"] == "cron(50 8 ? * MON-FRI *)"
    assert stop["ScheduleExpression"] == "cron(45 15 ? * MON-FRI *)"
    assert start["ScheduleExpressionTimezone"] == stop["ScheduleExpressionTimezone"] == "Asia/Kolkata"
    assert (start["Target"]["Arn"], stop["Target"]["Arn"]) == (START_TARGET, STOP_TARGET)
    assert start["Target"]["RoleArn"] == ROLE
    assert json.loads(start["Target"]["Input"]) == {"InstanceIds": [INSTANCE]}
    assert start["State"] == "ENABLED"

    # Second run: nothing to change.
    assert main(["schedules"]) == 0
    assert capsys.readouterr().out.count(": unchanged") == 2
    assert scheduler().get_schedule(Name="oi-start-instance")["LastModificationDate"] == start["LastModificationDate"]

    # A new start time: only that schedule is updated, in place.
    env["SCHEDULE_START"] = "09:00"
    assert main(["schedules"]) == 0
    out = capsys.readouterr().out
    assert "oi-start-instance: updated" in out and "oi-stop-instance: unchanged" in out
    assert scheduler().get_schedule(Name="oi-start-instance")["ScheduleExpression"] == "cron(0 9 ? * MON-FRI *)"
    assert len(scheduler().list_schedules()["Schedules"]) == 2


def test_a_changed_schedule_is_put_back(env, capsys, main):
    assert main(["schedules"]) == 0
    spec = scheduler().get_schedule(Name="oi-stop-instance")
    scheduler().update_schedule(
        Name="oi-stop-instance",
        ScheduleExpression="cron(0 18 ? * MON-FRI *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={k: spec["Target"][k] for k in ("Arn", "RoleArn", "Input")},
        State="DISABLED",
    )
    assert main(["schedules"]) == 0
    assert "oi-stop-instance: updated" in capsys.readouterr().out
    fixed = scheduler().get_schedule(Name="oi-stop-instance")
    assert (fixed["ScheduleExpression"], fixed["State"]) == ("cron(45 15 ? * MON-FRI *)", "ENABLED")


def test_dry_run_prints_and_creates_nothing(env, capsys, main):
    assert main(["schedules", "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [s["Name"] for s in printed] == ["oi-start-instance", "oi-stop-instance"]
    assert printed[0]["ScheduleExpression"] == "cron(50 8 ? * MON-FRI *)"
    assert scheduler().list_schedules()["Schedules"] == []


def test_missing_instance_or_role_is_a_usage_error(env, capsys, main):
    del env["SCHEDULER_ROLE_ARN"]
    assert main(["schedules"]) == 2
    assert "SCHEDULER_ROLE_ARN" in capsys.readouterr().err


# --------------------------------------------------------------------------------------- transform rule


def test_transform_rule_created_with_schedules_and_idempotent(cf, env, capsys, caplog, main):
    other = {"ref": "operator_rule", "expression": "true", "action": "rewrite", "description": "keep me"}
    cf.entrypoints[TRANSFORM_PHASE] = {"id": "rs1", "version": "3", "rules": [{"id": "r0", "version": "3", **other}]}

    with caplog.at_level(logging.DEBUG):
        assert main(["schedules"]) == 0 and main(["transform-rule"]) == 0
        rules = cf.entrypoints[TRANSFORM_PHASE]["rules"]
        assert [r["ref"] for r in rules] == ["operator_rule", "oi_s3_referer"]
        assert rules[0]["id"] == "r0" and rules[0]["description"] == "keep me"
        mine = rules[1]
        assert mine["expression"] == f'(http.host eq "{DOMAIN}")'
        assert mine["action_parameters"]["headers"]["Referer"] == {"operation": "set", "value": SECRET}
        writes = cf.writes

        assert main(["transform-rule"]) == 0
        assert cf.writes == writes  # unchanged: no PUT

        rotated = "rotated-secret-1234"
        env["S3_REFERER_SECRET"] = rotated
        assert main(["transform-rule"]) == 0
        rules = cf.entrypoints[TRANSFORM_PHASE]["rules"]
        assert len(rules) == 2 and rules[1]["id"] == mine["id"]
        assert rules[1]["action_parameters"]["headers"]["Referer"]["value"] == rotated

    out = capsys.readouterr()
    for secret in (SECRET, rotated, cf.token):
        assert secret not in out.out + out.err + caplog.text


def test_transform_rule_dry_run_masks_the_secret_and_writes_nothing(cf, capsys, main):
    assert main(["transform-rule", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "***" in out and SECRET not in out and "would be created" in out
    assert cf.writes == 0 and TRANSFORM_PHASE not in cf.entrypoints


def test_transform_rule_bad_token(cf, env, capsys, main):
    env["CLOUDFLARE_API_TOKEN"] = "wrong"
    assert main(["transform-rule"]) == 1
    assert "Invalid access token" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ cache rule


def test_cache_rule_for_the_api_is_merged_idempotent_and_updated(cf, env, capsys):
    from oi.setup.rules import CACHE_PHASE, CACHE_RULE_REF

    other = {"ref": "operator_cache", "expression": "true", "action": "set_cache_settings", "description": "mine"}
    cf.entrypoints[CACHE_PHASE] = {"id": "rs2", "version": "1", "rules": [{"id": "c0", "version": "1", **other}]}

    assert oi_main(["setup", "cloudflare"], env) == 0
    assert f"cache rule {CACHE_RULE_REF}: created" in capsys.readouterr().out
    rules = cf.entrypoints[CACHE_PHASE]["rules"]
    assert [r["ref"] for r in rules] == ["operator_cache", CACHE_RULE_REF]
    assert rules[0]["id"] == "c0" and rules[0]["description"] == "mine"
    mine = rules[1]
    assert mine["expression"] == f'(http.host eq "{DOMAIN}" and http.request.uri.path wildcard "/api/*")'
    assert mine["action"] == "set_cache_settings"
    assert mine["action_parameters"] == {"cache": True, "edge_ttl": {"mode": "respect_origin"}}
    assert mine["enabled"] is True

    writes = cf.writes
    assert oi_main(["setup", "cloudflare"], env) == 0
    assert f"cache rule {CACHE_RULE_REF}: unchanged" in capsys.readouterr().out
    assert cf.writes == writes  # nothing differs: no PUT at all

    env["DOMAIN_NAME"] = "oi.example.net"
    assert oi_main(["setup", "cloudflare"], env) == 0
    rules = cf.entrypoints[CACHE_PHASE]["rules"]
    assert len(rules) == 2 and rules[1]["id"] == mine["id"]  # updated in place, not added
    assert '"oi.example.net"' in rules[1]["expression"]


def test_cache_rule_dry_run_prints_the_plan_and_writes_nothing(cf, env, capsys):
    from oi.setup.rules import CACHE_PHASE

    assert oi_main(["setup", "cloudflare", "--dry-run"], env) == 0
    out = capsys.readouterr().out
    assert "cache rule oi_api_cache: would be created" in out
    assert 'wildcard "/api/*"' in out and "edge TTL respect_origin" in out
    assert cf.writes == 0 and CACHE_PHASE not in cf.entrypoints
