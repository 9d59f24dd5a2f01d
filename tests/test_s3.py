"""oi.s3 against moto in server mode: real boto3 clients over HTTP (AWS_ENDPOINT_URL), one server per module.

Call order and write counts are recorded with botocore's own event hooks on the real client, not with mocks.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from oi import s3
from oi.cli import main as oi_main
from oi.config import Config
from oi.setup.bucket import setup_bucket
from tests.fakes.moto import REGION, aws_env, moto_server

REPO = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-referer-0123456789abcdef"
SESSION = "2026-11-23"
OLD_APP, NEW_APP = "assets/app.abc123.js", "assets/app.fff999.js"
DATA = "data/NIFTY_2026-11-24.def456.js"
ARCHIVE = "archive/2026-11-23/NIFTY_2026-11-24.jsonl.gz"
SITE_KEYS = {"index.html", "error.html", OLD_APP, DATA, ARCHIVE}
READ_OPS = ("Get", "Head", "List")

_names = itertools.count()


def unique_bucket() -> str:
    # moto wants DNS-valid names; the shared server keeps state across tests, hence unique ones.
    return f"t{next(_names)}-{uuid.uuid4().hex[:8]}.example.com"


def make_site(root: Path, app: str = OLD_APP, extra: dict[str, bytes] | None = None) -> Path:
    files: dict[str, bytes] = {
        "index.html": f'<!doctype html><title>OI</title><script src="{app}"></script>'.encode(),
        "error.html": b"<!doctype html><h1>Not found</h1>",
        app: f"console.log({app!r})".encode(),
        DATA: b"window.OI_DATA = {};",
        # mtime=0: gzip otherwise stamps the time, and identical sites would differ byte for byte.
        ARCHIVE: gzip.compress(b'{"strike": 24000, "ce_oi": 1}\n', mtime=0),
        **(extra or {}),
    }
    for key, body in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return root


class Calls:
    """Every S3 operation the client makes, in order, as (operation, key or keys), via botocore's event system."""

    def __init__(self, client) -> None:
        self.calls: list[tuple[str, object]] = []
        client.meta.events.register("before-parameter-build.s3", self._record)

    def _record(self, params, event_name, **kwargs) -> None:
        op = event_name.rsplit(".", 1)[-1]
        if op == "DeleteObjects":
            self.calls.append((op, [o["Key"] for o in params["Delete"]["Objects"]]))
        else:
            self.calls.append((op, params.get("Key")))

    def writes(self) -> list[tuple[str, object]]:
        return [c for c in self.calls if not c[0].startswith(READ_OPS)]

    def puts(self) -> list[str]:
        return [key for op, key in self.calls if op == "PutObject"]


# ------------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def moto_url():
    with moto_server() as url:
        yield url


@pytest.fixture
def aws(monkeypatch, moto_url) -> str:
    aws_env(monkeypatch, moto_url)
    return moto_url


@pytest.fixture
def client(aws):
    return s3.make_client(Config(aws_region=REGION))


@pytest.fixture
def bucket(client) -> str:
    name = unique_bucket()
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def keys_in(client, bucket: str) -> set[str]:
    return {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}


def body(client, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def exists(client, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in {"404", "NoSuchKey"}
        return False
    return True


# ------------------------------------------------------------------------------------------------------ publish


def test_first_publish_uploads_every_file_with_its_headers(client, bucket, tmp_path):
    site = make_site(tmp_path / "site")

    plan = s3.publish(client, bucket, site, SESSION)

    assert set(plan.upload) == SITE_KEYS and plan.unchanged == [] and plan.delete == []
    assert keys_in(client, bucket) == SITE_KEYS
    expected = {
        "index.html": ("text/html; charset=utf-8", "public, max-age=60, must-revalidate"),
        "error.html": ("text/html; charset=utf-8", "public, max-age=60, must-revalidate"),
        OLD_APP: ("text/javascript; charset=utf-8", "public, max-age=31536000, immutable"),
        DATA: ("text/javascript; charset=utf-8", "public, max-age=31536000, immutable"),
        ARCHIVE: ("application/gzip", "public, max-age=86400"),
    }
    for key, (ctype, cache) in expected.items():
        head = client.head_object(Bucket=bucket, Key=key)
        assert (head["ContentType"], head["CacheControl"]) == (ctype, cache), key
        assert head["Metadata"]["sha256"] == hashlib.sha256((site / key).read_bytes()).hexdigest()
        assert "ContentEncoding" not in head  # the archive is a .gz download, not transparently decoded
    assert client.head_object(Bucket=bucket, Key="index.html")["Metadata"]["oi-session"] == SESSION
    assert "oi-session" not in client.head_object(Bucket=bucket, Key="error.html")["Metadata"]
    assert body(client, bucket, "index.html") == (site / "index.html").read_bytes()
    assert plan.summary() == f"s3://{bucket}: 5 to upload, 0 unchanged, 0 to delete"


def test_index_html_is_the_last_put(client, bucket, tmp_path):
    calls = Calls(client)

    s3.publish(client, bucket, make_site(tmp_path / "site"), SESSION)

    puts = calls.puts()
    assert sorted(puts) == sorted(SITE_KEYS)
    assert puts[-1] == "index.html"
    assert set(puts[:2]) == {OLD_APP, DATA}  # the content-hashed files the page needs come first


def test_second_publish_of_the_same_site_writes_nothing(client, bucket, tmp_path):
    site = make_site(tmp_path / "site")
    s3.publish(client, bucket, site, SESSION)
    calls = Calls(client)

    plan = s3.publish(client, bucket, site, SESSION)

    assert calls.writes() == []
    assert plan.upload == [] and plan.delete == [] and set(plan.unchanged) == SITE_KEYS


def test_new_session_with_the_same_bytes_reuploads_only_index(client, bucket, tmp_path):
    site = make_site(tmp_path / "site")
    s3.publish(client, bucket, site, SESSION)
    calls = Calls(client)

    plan = s3.publish(client, bucket, site, "2026-11-24")

    assert calls.writes() == [("PutObject", "index.html")]
    assert plan.upload == ["index.html"]
    assert client.head_object(Bucket=bucket, Key="index.html")["Metadata"]["oi-session"] == "2026-11-24"


def test_changed_asset_uploads_it_then_index_then_deletes_the_old_one(client, bucket, tmp_path, caplog):
    s3.publish(client, bucket, make_site(tmp_path / "v1"), SESSION)
    calls = Calls(client)
    caplog.set_level("INFO", logger="oi.s3")

    plan = s3.publish(client, bucket, make_site(tmp_path / "v2", app=NEW_APP), "2026-11-24")

    assert calls.writes() == [("PutObject", NEW_APP), ("PutObject", "index.html"), ("DeleteObjects", [OLD_APP])]
    assert plan.upload == [NEW_APP, "index.html"] and plan.delete == [OLD_APP]
    assert keys_in(client, bucket) == SITE_KEYS - {OLD_APP} | {NEW_APP}
    messages = [r.getMessage() for r in caplog.records if r.name == "oi.s3"]
    assert f"s3: deleted s3://{bucket}/{OLD_APP}" in messages
    assert sum(m.startswith("s3: uploaded ") for m in messages) == 2


def test_older_archives_are_never_deleted_but_other_stale_objects_are(client, bucket, tmp_path):
    old_archive = "archive/2026-11-20/NIFTY_2026-11-20.jsonl.gz"
    client.put_object(Bucket=bucket, Key=old_archive, Body=b"old day")
    client.put_object(Bucket=bucket, Key="stale.html", Body=b"gone from the site")

    plan = s3.publish(client, bucket, make_site(tmp_path / "site"), SESSION)

    assert plan.delete == ["stale.html"]
    assert body(client, bucket, old_archive) == b"old day"
    assert not exists(client, bucket, "stale.html")


def test_a_failed_upload_leaves_index_and_old_objects_alone(client, bucket, tmp_path):
    s3.publish(client, bucket, make_site(tmp_path / "v1"), SESSION)
    v1_index = body(client, bucket, "index.html")
    new_data = "data/BANKNIFTY_2026-11-25.aaa111.js"
    v2 = make_site(tmp_path / "v2", app=NEW_APP, extra={new_data: b"window.B = {};"})

    def fail(params, **kwargs):
        if params.get("Key") == new_data:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}}, "PutObject")

    client.meta.events.register("before-parameter-build.s3.PutObject", fail)
    calls = Calls(client)

    with pytest.raises(s3.PublishError, match=re.escape(new_data)) as info:
        s3.publish(client, bucket, v2, "2026-11-24")

    assert info.value.index_published is False
    assert "index.html" not in calls.puts()
    assert not any(op.startswith("Delete") for op, _ in calls.calls)
    assert body(client, bucket, "index.html") == v1_index
    assert client.head_object(Bucket=bucket, Key="index.html")["Metadata"]["oi-session"] == SESSION
    assert exists(client, bucket, OLD_APP)


def test_a_failed_index_upload_deletes_nothing(client, bucket, tmp_path):
    s3.publish(client, bucket, make_site(tmp_path / "v1"), SESSION)

    def fail(params, **kwargs):
        if params.get("Key") == "index.html":
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "injected"}}, "PutObject")

    client.meta.events.register("before-parameter-build.s3.PutObject", fail)
    calls = Calls(client)

    with pytest.raises(s3.PublishError, match=r"upload of index\.html failed"):
        s3.publish(client, bucket, make_site(tmp_path / "v2", app=NEW_APP), "2026-11-24")

    assert calls.puts() == [NEW_APP]  # the failing hook runs before the recorder, so index.html is not listed
    assert not any(op.startswith("Delete") for op, _ in calls.calls)
    assert exists(client, bucket, OLD_APP)
    assert client.head_object(Bucket=bucket, Key="index.html")["Metadata"]["oi-session"] == SESSION


def test_a_file_that_vanishes_mid_publish_stops_before_index(client, bucket, tmp_path):
    site = make_site(tmp_path / "site")

    def remove_error_page(params, **kwargs):
        (site / "error.html").unlink(missing_ok=True)  # the renderer racing us, say

    client.meta.events.register("before-parameter-build.s3.PutObject", remove_error_page)
    calls = Calls(client)

    with pytest.raises(s3.PublishError, match=r"upload of error\.html failed"):
        s3.publish(client, bucket, site, SESSION)

    assert "index.html" not in calls.puts()
    assert not exists(client, bucket, "index.html")


def test_stale_objects_s3_refuses_to_delete_are_reported_after_index(client, bucket, tmp_path):
    client.put_object(Bucket=bucket, Key="stale.html", Body=b"x")

    def refuse(parsed, **kwargs):
        # What S3 does per key (HTTP 200, an Errors list), injected into the real response.
        parsed.setdefault("Errors", []).append({"Key": "stale.html", "Code": "AccessDenied", "Message": "no"})

    client.meta.events.register("after-call.s3.DeleteObjects", refuse)

    with pytest.raises(s3.PublishError, match="1 stale") as info:
        s3.publish(client, bucket, make_site(tmp_path / "site"), SESSION)

    assert info.value.index_published is True
    assert client.head_object(Bucket=bucket, Key="index.html")["Metadata"]["oi-session"] == SESSION


def test_dry_run_plans_without_writing(client, bucket, tmp_path):
    client.put_object(Bucket=bucket, Key="stale.html", Body=b"x")
    calls = Calls(client)

    plan = s3.publish(client, bucket, make_site(tmp_path / "site"), SESSION, dry_run=True)

    assert calls.writes() == []
    assert set(plan.upload) == SITE_KEYS and plan.upload[-1] == "index.html"
    assert plan.delete == ["stale.html"]
    assert "dry run" in plan.summary()
    assert keys_in(client, bucket) == {"stale.html"}


def test_plan_publish_is_read_only_and_matches_publish(client, bucket, tmp_path):
    site = make_site(tmp_path / "site")
    s3.publish(client, bucket, site, SESSION)
    (site / DATA).write_bytes(b"window.OI_DATA = {changed: 1};")
    calls = Calls(client)

    plan = s3.plan_publish(client, bucket, site, session=SESSION)

    assert calls.writes() == []
    assert plan.upload == [DATA] and DATA not in plan.unchanged


def test_site_without_index_or_bad_session_is_refused_before_any_write(client, bucket, tmp_path):
    site = make_site(tmp_path / "site")
    calls = Calls(client)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        s3.publish(client, bucket, site, "23/11/2026")
    (site / "index.html").unlink()
    with pytest.raises(ValueError, match=r"no index\.html"):
        s3.publish(client, bucket, site, SESSION)
    assert calls.writes() == []


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("assets/app.abc.css", "text/css; charset=utf-8"),
        ("data/x.json", "application/json"),
        ("img/logo.PNG", "image/png"),
        ("img/logo.svg", "image/svg+xml"),
        ("assets/app.js.LICENSE.txt", "text/plain; charset=utf-8"),
        ("LICENSE", "text/plain; charset=utf-8"),
        ("blob.bin", "application/octet-stream"),
    ],
)
def test_content_type(key, expected):
    assert s3.content_type(key) == expected


def test_upload_archive_uploads_once_with_archive_headers(client, bucket, tmp_path):
    path = tmp_path / "NIFTY_2026-11-24.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n', mtime=0))
    files = {ARCHIVE: path}

    first = s3.upload_archive(client, bucket, files)
    calls = Calls(client)
    second = s3.upload_archive(client, bucket, files)

    assert first.upload == [ARCHIVE] and second.upload == [] and second.unchanged == [ARCHIVE]
    assert calls.writes() == []
    head = client.head_object(Bucket=bucket, Key=ARCHIVE)
    assert (head["ContentType"], head["CacheControl"]) == ("application/gzip", "public, max-age=86400")
    with pytest.raises(ValueError, match="archive/"):
        s3.upload_archive(client, bucket, {"NIFTY.jsonl.gz": path})


# -------------------------------------------------------------------------------------------------------- setup


def test_setup_bucket_makes_a_referer_locked_website(client, caplog):
    name = unique_bucket()
    calls = Calls(client)
    caplog.set_level("INFO", logger="oi.setup.bucket")

    lines = setup_bucket(client, name, REGION, SECRET, domain_name=name)

    assert client.get_bucket_location(Bucket=name)["LocationConstraint"] == REGION
    website = client.get_bucket_website(Bucket=name)
    assert website["IndexDocument"] == {"Suffix": "index.html"}
    assert website["ErrorDocument"] == {"Key": "error.html"}
    statement = json.loads(client.get_bucket_policy(Bucket=name)["Policy"])["Statement"]
    assert len(statement) == 1
    assert statement[0]["Effect"] == "Allow" and statement[0]["Principal"] == "*"
    assert statement[0]["Action"] in ("s3:GetObject", ["s3:GetObject"])
    assert statement[0]["Resource"] in (f"arn:aws:s3:::{name}/*", [f"arn:aws:s3:::{name}/*"])
    assert statement[0]["Condition"] == {"StringEquals": {"aws:Referer": SECRET}}
    block = client.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False,
    }
    ops = [op for op, _ in calls.writes()]
    assert ops.index("PutPublicAccessBlock") < ops.index("PutBucketPolicy")  # else AWS refuses the policy
    assert f"website endpoint (CNAME target, HTTP only): {name}.s3-website.ap-south-1.amazonaws.com" in lines
    assert not any(line.startswith("WARNING") for line in lines)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert SECRET not in "\n".join(lines) and SECRET not in caplog.text

    again = setup_bucket(client, name, REGION, SECRET, domain_name=name)  # idempotent
    assert f"bucket {name}: exists" in again


def test_setup_bucket_warns_loudly_when_bucket_is_not_the_domain(client, caplog):
    name = unique_bucket()

    lines = setup_bucket(client, name, REGION, SECRET, domain_name="oi.example.org")

    warnings = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "oi.setup.bucket"]
    assert len(warnings) == 1 and "oi.example.org" in warnings[0].getMessage()
    assert lines[0].startswith("WARNING") and "NoSuchBucket" in lines[0]


def test_setup_bucket_in_us_east_1_sends_no_location_constraint(aws):
    east = s3.make_client(Config(aws_region="us-east-1"))
    name = unique_bucket()

    lines = setup_bucket(east, name, "us-east-1", SECRET, domain_name=name)

    assert east.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    assert lines[-1].endswith(f"{name}.s3-website-us-east-1.amazonaws.com")


def test_setup_bucket_dry_run_makes_no_call_and_masks_the_secret(client):
    name = unique_bucket()
    calls = Calls(client)

    lines = setup_bucket(client, name, REGION, SECRET, domain_name=name, dry_run=True)

    assert calls.calls == []
    text = "\n".join(lines)
    assert SECRET not in text
    policy = json.loads(next(line for line in lines if line.startswith("{")))
    assert policy["Statement"][0]["Condition"] == {"StringEquals": {"aws:Referer": "***"}}
    with pytest.raises(ClientError):
        client.head_bucket(Bucket=name)


@pytest.mark.parametrize("secret", ["", "fifteen-chars!!"])
def test_setup_bucket_refuses_an_empty_or_short_secret(client, secret):
    calls = Calls(client)
    with pytest.raises(ValueError, match="S3_REFERER_SECRET"):
        setup_bucket(client, unique_bucket(), REGION, secret, domain_name="oi.example.com")
    assert calls.calls == []


def test_a_sixteen_character_secret_is_enough():
    lines = setup_bucket(None, "oi.example.com", REGION, "x" * 16, "oi.example.com", dry_run=True)
    assert lines[-1].endswith("oi.example.com.s3-website.ap-south-1.amazonaws.com")


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("ap-south-1", "oi.example.com.s3-website.ap-south-1.amazonaws.com"),
        ("eu-west-2", "oi.example.com.s3-website.eu-west-2.amazonaws.com"),
        ("us-east-1", "oi.example.com.s3-website-us-east-1.amazonaws.com"),
        ("ap-southeast-1", "oi.example.com.s3-website-ap-southeast-1.amazonaws.com"),
        ("sa-east-1", "oi.example.com.s3-website-sa-east-1.amazonaws.com"),
    ],
)
def test_website_endpoint(region, endpoint):
    assert s3.website_endpoint("oi.example.com", region) == endpoint


def test_make_client_refuses_half_configured_keys():
    with pytest.raises(ValueError, match="AWS_SECRET_KEY"):
        s3.make_client(Config(aws_access_key="AKIAEXAMPLE"))


# ---------------------------------------------------------------------------------------------------------- CLI

CONFIG_VARIABLES = ("S3_BUCKET_NAME", "S3_REFERER_SECRET", "DOMAIN_NAME", "ARCHIVE_BUCKET", "LOG_LEVEL", "OI_SOURCE")


@pytest.fixture
def cli_env(aws) -> dict[str, str]:
    """The command's whole environment: a developer's shell or .env must not decide these tests."""
    return {}


def setup_s3(env: dict[str, str]) -> int:
    return oi_main(["setup", "s3"], env)


def test_main_setup_exit_0(cli_env, client, capsys):
    name = unique_bucket()
    cli_env.update(S3_BUCKET_NAME=name, DOMAIN_NAME=name, S3_REFERER_SECRET=SECRET)

    assert setup_s3(cli_env) == 0

    out, err = capsys.readouterr()
    assert f"{name}.s3-website.ap-south-1.amazonaws.com" in out
    assert SECRET not in out + err
    assert SECRET in client.get_bucket_policy(Bucket=name)["Policy"]


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"S3_REFERER_SECRET": SECRET}, "S3_BUCKET_NAME"),
        ({"S3_BUCKET_NAME": "oi.example.com", "S3_REFERER_SECRET": "short"}, "S3_REFERER_SECRET"),
        ({"S3_BUCKET_NAME": "oi.example.com", "S3_REFERER_SECRET": SECRET, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_main_configuration_errors_exit_2(cli_env, capsys, env, needle):
    cli_env.update(env)

    assert setup_s3(cli_env) == 2

    out, err = capsys.readouterr()
    assert needle in err and "configuration error" in err and out == ""


def test_main_aws_error_exits_1_with_one_line(cli_env, capsys):
    # "ab" is too short for S3: CreateBucket answers InvalidBucketName
    cli_env.update(S3_BUCKET_NAME="ab", DOMAIN_NAME="ab", S3_REFERER_SECRET=SECRET)

    assert setup_s3(cli_env) == 1

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "InvalidBucketName" in err and "CreateBucket" in err


def test_python_m_oi_setup_s3_runs_end_to_end(aws, client, tmp_path):
    name = unique_bucket()
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    env.update(S3_BUCKET_NAME=name, DOMAIN_NAME=name, S3_REFERER_SECRET=SECRET, PYTHONPATH=str(REPO))

    result = subprocess.run(
        [sys.executable, "-m", "oi", "setup", "s3"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert f"{name}.s3-website.ap-south-1.amazonaws.com" in result.stdout
    assert SECRET not in result.stdout + result.stderr
    assert client.get_bucket_website(Bucket=name)["IndexDocument"] == {"Suffix": "index.html"}


# ------------------------------------------------------------------------------------- lock by source address

CLOUDFLARE_RANGES = "# ips-v4\n173.245.48.0/20\n103.21.244.0/22\n\n# ips-v6\n2400:cb00::/32\n2606:4700::/32\n"


def test_setup_locks_the_bucket_to_cloudflare_addresses(cli_env, client, tmp_path, capsys):
    name = unique_bucket()
    ips = tmp_path / "cloudflare-ips.txt"
    ips.write_text(CLOUDFLARE_RANGES)
    cli_env.update(S3_BUCKET_NAME=name, DOMAIN_NAME=name)  # no Referer secret needed for this lock

    assert oi_main(["setup", "s3", "--lock", "cloudflare-ips", "--ips-file", str(ips), "--dry-run"], cli_env) == 0
    printed = capsys.readouterr().out
    assert '"aws:SourceIp"' in printed and "2606:4700::/32" in printed
    with pytest.raises(ClientError):
        client.head_bucket(Bucket=name)  # a dry run calls nothing

    assert oi_main(["setup", "s3", "--lock", "cloudflare-ips", "--ips-file", str(ips)], cli_env) == 0
    policy = json.loads(client.get_bucket_policy(Bucket=name)["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Action"] == "s3:GetObject" and "aws:Referer" not in json.dumps(statement)
    assert sorted(statement["Condition"]["IpAddress"]["aws:SourceIp"]) == sorted(
        ["173.245.48.0/20", "103.21.244.0/22", "2400:cb00::/32", "2606:4700::/32"]
    )
    assert "address ranges" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "needle"),
    [("173.245.48.0/20\nnot-a-network\n", ":2:"), ("0.0.0.0/0\n", "every address"), ("# empty\n", "no address")],
)
def test_a_bad_ranges_file_is_a_usage_error(cli_env, tmp_path, capsys, content, needle):
    ips = tmp_path / "ips.txt"
    ips.write_text(content)
    cli_env.update(S3_BUCKET_NAME="oi.example.com", DOMAIN_NAME="oi.example.com")
    assert oi_main(["setup", "s3", "--lock", "cloudflare-ips", "--ips-file", str(ips)], cli_env) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert oi_main(["setup", "s3", "--lock", "cloudflare-ips"], cli_env) == 2  # the lock needs the file
