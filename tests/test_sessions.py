"""Every past session browsable (issue #15 item 3): day folders under sessions/, shared content-hashed assets, the
sessions index, the front page always the newest day, retention by an S3 lifecycle rule. The day picker in
Chromium is in tests/glass/test_day_picker.py."""

from __future__ import annotations

import json
import re
from datetime import date

import boto3
import pytest

from oi.cli import main as oi_main
from oi.cli import upload_main
from tests.fakes.moto import aws_env, moto_server
from tests.session import record_session

DAYS = (date(2026, 11, 23), date(2026, 11, 25), date(2026, 11, 26))  # the 24th is a holiday
CONFIG = re.compile(r'<script type="application/json" id="oi-config">(.*?)</script>', re.S)
REFS = re.compile(r'(?:src|href)="([^"#:]+)"')


def env_for(day: date, **extra: str) -> dict[str, str]:
    return {"OI_SYMBOLS": "NIFTY,BANKNIFTY", "OI_SOURCE": "demo", "OI_NOW": f"{day}T16:00:00+05:30", **extra}


@pytest.fixture(scope="module")
def recorded():
    import mongomock

    from oi.store import Store

    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    for day in DAYS:
        record_session(store, day=day, seed=day.day)
    return store


@pytest.fixture(scope="module")
def moto_url():
    with moto_server() as url:
        yield url


@pytest.fixture
def s3(monkeypatch, moto_url, request):
    aws_env(monkeypatch, moto_url)
    bucket = f"{request.node.name.replace('_', '-')[:40]}.example.com".lower()
    client = boto3.client("s3", region_name="ap-south-1")
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-south-1"})
    return client, bucket


def listing(client, bucket) -> dict[str, str]:
    """key → ETag and time written: any rewrite shows."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            out[o["Key"]] = o["ETag"] + str(o["LastModified"])
    return out


def get(client, bucket, key) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def page_refs(html: str, folder: str) -> set[str]:
    """Every bucket key a page loads (scripts, styles, data sets), resolved from the page's folder."""
    config = json.loads(CONFIG.search(html).group(1))
    refs = set(REFS.findall(html))
    for ds in config["snapshot"]["datasets"]:
        refs.update(r for r in (ds["src"], ds["detail"]) if r)
    keys = set()
    for ref in refs:
        parts = [p for p in (folder + ref).split("/") if p]
        stack: list[str] = []
        for p in parts:
            if p == "..":
                assert stack, f"{ref} climbs above the bucket root from {folder!r}"
                stack.pop()
            elif p != ".":
                stack.append(p)
        keys.add("/".join(stack))
    return keys


def publish(recorded, day: date, bucket: str, *argv: str) -> int:
    return upload_main(["--date", day.isoformat(), *argv], env_for(day, S3_BUCKET_NAME=bucket), store=recorded)


def test_three_sessions_publish_to_day_folders_sharing_the_assets(recorded, s3, capsys):
    client, bucket = s3
    added: list[set[str]] = []
    before: dict[str, str] = {}
    for day in DAYS:
        assert publish(recorded, day, bucket) == 0
        now = listing(client, bucket)
        added.append({k for k in now if before.get(k) != now[k]})
        before = now

    keys = set(before)
    for day in DAYS:
        assert f"sessions/{day}/index.html" in keys
    assert json.loads(get(client, bucket, "sessions/index.json")) == {
        "latest": "2026-11-26",
        "sessions": ["2026-11-26", "2026-11-25", "2026-11-23"],
    }
    script = get(client, bucket, "sessions/index.js").decode()
    assert (
        script.startswith("window.OI_SESSIONS = ") and json.loads(script[21:].rstrip(";\n"))["latest"] == "2026-11-26"
    )
    # One copy of each unchanged asset, whatever the number of days.
    for name in ("app", "snapshot", "style"):
        assert len([k for k in keys if re.fullmatch(rf"assets/{name}\.[0-9a-f]{{12}}\.(js|css)", k)]) == 1, name
    # The front page is the newest day; every day's page finds everything it loads (nothing of older days deleted).
    front = get(client, bucket, "index.html").decode()
    assert client.head_object(Bucket=bucket, Key="index.html")["Metadata"]["oi-session"] == "2026-11-26"
    assert json.loads(CONFIG.search(front).group(1))["snapshot"]["session"] == "2026-11-26"
    for day in DAYS:
        html = get(client, bucket, f"sessions/{day}/index.html").decode()
        assert json.loads(CONFIG.search(html).group(1))["snapshot"]["session"] == day.isoformat()
        missing = page_refs(html, f"sessions/{day}/") - keys
        assert not missing, f"{day}'s page loads keys the bucket lost: {sorted(missing)}"
    assert not page_refs(front, "") - keys
    # What a later day added: its data, its archive, its page, the index and the front page; no asset again.
    for day, new in zip(DAYS[1:], added[1:], strict=True):
        allowed = re.compile(
            rf"data/.*|archive/{day}/.*|sessions/{day}/index\.html|sessions/index\.js(on)?|index\.html|error\.html"
        )
        assert all(allowed.fullmatch(k) for k in new), sorted(k for k in new if not allowed.fullmatch(k))
        assert not any(k.startswith("assets/") for k in new)
        assert any(k.startswith("data/") for k in new)

    # Re-runs write nothing: the newest day, and an older one (which leaves the front page alone).
    capsys.readouterr()
    for day in (DAYS[2], DAYS[0]):
        assert publish(recorded, day, bucket) == 0
        assert listing(client, bucket) == before
        assert "0 to upload" in capsys.readouterr().out


def test_a_day_missing_from_the_bucket_is_absent_from_the_picker(recorded, s3):
    client, bucket = s3
    for day in DAYS:
        assert publish(recorded, day, bucket) == 0
    client.delete_object(Bucket=bucket, Key=f"sessions/{DAYS[1]}/index.html")  # as the lifecycle rule would
    assert publish(recorded, DAYS[2], bucket) == 0
    assert json.loads(get(client, bucket, "sessions/index.json"))["sessions"] == ["2026-11-26", "2026-11-23"]
    # Sessions older than OI_SNAPSHOT_KEEP_DAYS are left out of the index even before S3 expires them.
    env = env_for(DAYS[2], S3_BUCKET_NAME=bucket, OI_SNAPSHOT_KEEP_DAYS="2")
    assert upload_main(["--date", DAYS[2].isoformat()], env, store=recorded) == 0
    assert json.loads(get(client, bucket, "sessions/index.json"))["sessions"] == ["2026-11-26"]
    assert f"sessions/{DAYS[0]}/index.html" in listing(client, bucket)  # never deleted from the publish path


def test_setup_s3_writes_the_retention_lifecycle_rule_idempotently(s3, capsys):
    client, bucket = s3
    # An operator's own rule must survive.
    other = {"ID": "tmp-cleanup", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 3}}
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [other]})
    env = {
        "S3_BUCKET_NAME": bucket,
        "DOMAIN_NAME": bucket,
        "S3_REFERER_SECRET": "s" * 32,
        "OI_SNAPSHOT_KEEP_DAYS": "90",
    }

    assert oi_main(["setup", "s3", "--dry-run"], env) == 0
    out = capsys.readouterr().out
    assert '"Days": 90' in out and '"Prefix": "sessions/"' in out
    assert client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == [other]  # dry run: no call

    assert oi_main(["setup", "s3"], env) == 0
    assert "lifecycle: sessions kept 90 days" in capsys.readouterr().out
    rules = {r["ID"]: r for r in client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["tmp-cleanup"]["Filter"] == {"Prefix": "tmp/"}
    assert rules["oi-keep-sessions"]["Filter"] == {"Prefix": "sessions/"}
    assert rules["oi-keep-sessions"]["Expiration"] == {"Days": 90}
    assert rules["oi-keep-data"]["Expiration"] == {"Days": 90}
    assert not any(r["Filter"].get("Prefix", "").startswith(("assets/", "archive/")) for r in rules.values())

    assert oi_main(["setup", "s3"], env) == 0
    assert "already set" in capsys.readouterr().out
    env["OI_SNAPSHOT_KEEP_DAYS"] = "30"
    assert oi_main(["setup", "s3"], env) == 0
    rules = {r["ID"]: r for r in client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["oi-keep-sessions"]["Expiration"] == {"Days": 30} and len(rules) == 3
