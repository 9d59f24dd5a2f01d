"""upload.py end to end: render from the store, publish to moto's S3 server through AWS_ENDPOINT_URL, guarded."""

from datetime import time

import boto3
import mongomock
import pytest

from oi.cli import upload_main
from oi.store import Store
from tests.fakes.dhan import CLIENT_ID, TOKEN
from tests.fakes.moto import aws_env, moto_server
from tests.session import record_session

SESSION_EVENING = "2026-11-23T16:00:00+05:30"


@pytest.fixture(scope="module")
def moto_url():
    with moto_server() as url:
        yield url


@pytest.fixture
def env() -> dict[str, str]:
    """The command's whole environment (nothing from the developer's shell)."""
    # OI_NOW: the evening of the recorded session (tests.session.DAY), so it is the last session (#14: the demo
    # source no longer skips that check).
    return {"OI_SYMBOLS": "NIFTY,BANKNIFTY", "OI_SOURCE": "demo", "OI_NOW": SESSION_EVENING}


@pytest.fixture
def s3(monkeypatch, moto_url, request, env):
    aws_env(monkeypatch, moto_url)  # where boto3 finds moto
    bucket = f"{request.node.name.replace('_', '-')[:40]}.example.com".lower()
    env["S3_BUCKET_NAME"] = bucket
    client = boto3.client("s3", region_name="ap-south-1")
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-south-1"})
    return client, bucket


@pytest.fixture
def run(env):
    """upload.py with `env` as its environment."""
    return lambda argv, **services: upload_main(argv, env, **services)


def objects(client, bucket) -> dict[str, str]:
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: o["ETag"] + str(o["LastModified"]) for o in listed}


def test_publish_then_noop_republish(s3, store, capsys, run):
    client, bucket = s3
    record_session(store)
    assert run([], store=store) == 0
    first = objects(client, bucket)
    assert "index.html" in first and "archive/2026-11-23/NIFTY_2026-11-23.jsonl.gz" in first
    head = client.head_object(Bucket=bucket, Key="index.html")
    assert head["Metadata"]["oi-session"] == "2026-11-23"
    assert head["ContentType"] == "text/html; charset=utf-8"
    capsys.readouterr()
    assert run([], store=store) == 0
    assert "0 to upload" in capsys.readouterr().out
    assert objects(client, bucket) == first  # nothing rewritten


def test_refused_publish_over_an_empty_store_leaves_the_bucket(s3, store, capsys, run):
    client, bucket = s3
    record_session(store)
    assert run([], store=store) == 0
    before = objects(client, bucket)
    empty = Store(mongomock.MongoClient()["oi"], "mongomock")
    assert run([], store=empty) == 1
    assert "no session data" in capsys.readouterr().err
    assert objects(client, bucket) == before


def test_guard_names_the_symbol_and_why(s3, store, capsys, run):
    client, bucket = s3
    record_session(store, symbols=("NIFTY",), end=time(14, 55))
    assert run([], store=store) == 1
    err = capsys.readouterr().err
    assert "BANKNIFTY: no data for the session of 2026-11-23" in err
    assert "NIFTY: newest data is 14:55 IST" in err
    assert objects(client, bucket) == {}


def test_allow_stale_publishes_late_data_but_never_missing_symbols(s3, store, env, run):
    client, bucket = s3
    record_session(store, end=time(14, 55))
    assert run([], store=store) == 1
    assert objects(client, bucket) == {}
    assert run(["--allow-stale"], store=store) == 0
    assert "index.html" in objects(client, bucket)
    env["OI_SYMBOLS"] = "NIFTY,BANKNIFTY,FINNIFTY"
    assert run(["--allow-stale"], store=store) == 1


def test_dry_run_writes_nothing(s3, store, capsys, run):
    client, bucket = s3
    record_session(store)
    assert run(["--dry-run"], store=store) == 0
    out = capsys.readouterr().out
    assert "would upload index.html" in out and "dry run" in out
    assert objects(client, bucket) == {}


def test_live_source_must_have_the_last_session(s3, store, env, run, capsys):
    client, bucket = s3
    record_session(store)
    env.update(DHAN_CLIENT_ID=CLIENT_ID, DHAN_ACCESS_TOKEN=TOKEN, OI_SOURCE="dhan")
    env["OI_NOW"] = "2026-11-25T16:00:00+05:30"  # Wednesday's session exists, the store stops Monday
    assert run([], store=store) == 1
    assert "the last session was 2026-11-25" in capsys.readouterr().err
    assert objects(client, bucket) == {}
    env["OI_NOW"] = "2026-11-24T16:00:00+05:30"  # the 24th is a holiday: Monday is the last session
    assert run([], store=store) == 0


def test_out_renders_without_aws(store, tmp_path, monkeypatch, run):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # any AWS call would fail loudly
    record_session(store)
    assert run(["--out", str(tmp_path / "site")], store=store) == 0
    assert (tmp_path / "site" / "index.html").exists()


def test_missing_bucket_is_a_usage_error(store, capsys, run):
    assert run([], store=store) == 2
    assert "S3_BUCKET_NAME" in capsys.readouterr().err


def test_demo_source_must_have_the_last_session_too(s3, store, env, capsys, run):
    # red team #14: with OI_SOURCE=demo the guard skipped its "newest data is the last session" check
    client, bucket = s3
    record_session(store)
    env["OI_NOW"] = "2026-11-25T16:00:00+05:30"
    assert run([], store=store) == 1
    assert "the last session was 2026-11-25" in capsys.readouterr().err
    assert objects(client, bucket) == {}
