"""S3 side of the night-time static snapshot: publishing a rendered site directory (the bucket itself is set up
once by :mod:`oi.setup.bucket`).

Publishing is ordered so that visitors never see a half-updated site: every other object goes up first,
``index.html`` (which references the content-hashed assets and carries the ``oi-session`` metadata the DNS gate
reads) goes up last, and objects that left the site are deleted only once the new ``index.html`` is in place.
A failed upload stops the run before ``index.html``, so yesterday's page stays whole. ``archive/`` keys are never
deleted: the site directory holds today's archive only, the bucket holds every day's.

Clients are passed in everywhere so tests can point real boto3 at moto's server through ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from oi.config import Config, ConfigError

log = logging.getLogger(__name__)

INDEX_KEY = "index.html"
ERROR_KEY = "error.html"
ARCHIVE_PREFIX = "archive/"
SESSIONS_PREFIX = "sessions/"  # sessions/YYYY-MM-DD/index.html: every published day (oi.snapshot)
SHARED_PREFIXES = ("assets/", "data/")  # content-hashed, referenced by every day's page: shared once sessions exist
SESSION_PAGE = re.compile(r"sessions/(\d{4}-\d{2}-\d{2})/index\.html")
SESSION_METADATA = "oi-session"  # contract with oi.dns.check_snapshot (x-amz-meta-oi-session=YYYY-MM-DD)
SHA256_METADATA = "sha256"

CACHE_HTML = "public, max-age=60, must-revalidate"
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_ARCHIVE = "public, max-age=86400"
CACHE_OTHER = "public, max-age=300"
IMMUTABLE_PREFIXES = ("assets/", "data/")  # the renderer puts a content hash in every name under these

# An explicit table rather than the mimetypes module: that one reads /etc/mime.types, so the same site would get
# different headers on a laptop and on the EC2 instance, and every difference would count as a change.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    # Archives are downloads (JSON Lines, gzipped); Content-Encoding stays unset so clients keep the .gz as is.
    ".gz": "application/gzip",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".xml": "application/xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}
LICENCE_NAMES = frozenset({"license", "licence", "copying", "notice", "authors"})
DEFAULT_CONTENT_TYPE = "application/octet-stream"

# Regions whose website endpoint still uses the old dash form (s3-website-REGION); all others use a dot.
DASH_WEBSITE_REGIONS = frozenset(
    {
        "us-east-1",
        "us-west-1",
        "us-west-2",
        "eu-west-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-northeast-1",
        "sa-east-1",
    }
)

DELETE_BATCH = 1000  # the DeleteObjects maximum


class PublishError(RuntimeError):
    """Publishing stopped. ``index_published`` tells whether the new index.html is live (then only cleanup failed)."""

    def __init__(self, message: str, index_published: bool = False) -> None:
        super().__init__(message)
        self.index_published = index_published


# ------------------------------------------------------------------------------------------------------- client


def make_client(config: Config, service: str = "s3") -> Any:
    """A boto3 client in ``config.aws_region``; explicit keys only when configured (on EC2 the instance role is
    the better credential). boto3 still honours AWS_ENDPOINT_URL(_S3), which is how tests reach moto."""
    if bool(config.aws_access_key) != bool(config.aws_secret_key):
        missing = "AWS_SECRET_KEY" if config.aws_access_key else "AWS_ACCESS_KEY"
        raise ConfigError(f"{missing} is not set: set both AWS_ACCESS_KEY and AWS_SECRET_KEY, or neither")
    credentials = {}
    if config.aws_access_key:
        credentials = {"aws_access_key_id": config.aws_access_key, "aws_secret_access_key": config.aws_secret_key}
    boto_config = BotoConfig(
        connect_timeout=10,
        read_timeout=60,  # archive files are a few MB; a stalled upload must still end the nightly run
        retries={"mode": "standard", "max_attempts": 5},
    )
    return boto3.client(service, region_name=config.aws_region, config=boto_config, **credentials)


def website_endpoint(bucket: str, region: str) -> str:
    """The S3 static-website hostname of `bucket` (the night-time CNAME target; HTTP only)."""
    sep = "-" if region in DASH_WEBSITE_REGIONS else "."
    return f"{bucket}.s3-website{sep}{region}.amazonaws.com"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _error_code(exc) in {"404", "NoSuchKey", "NotFound", "NoSuchBucket"} or status == 404


# ------------------------------------------------------------------------------------------------------ objects


def content_type(key: str) -> str:
    name = PurePosixPath(key).name
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    if name.lower() in LICENCE_NAMES:
        return CONTENT_TYPES[".txt"]
    return DEFAULT_CONTENT_TYPE


def cache_control(key: str) -> str:
    if key.startswith(IMMUTABLE_PREFIXES):
        return CACHE_IMMUTABLE
    if key.startswith(ARCHIVE_PREFIX):
        return CACHE_ARCHIVE
    if key.endswith((".html", ".htm")):
        # HTML names carry no hash: browsers and Cloudflare must come back for a new day's page quickly.
        return CACHE_HTML
    return CACHE_OTHER


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@dataclass(frozen=True)
class _Object:
    key: str
    path: Path
    sha256: str
    size: int
    content_type: str
    cache_control: str
    metadata: dict[str, str]  # besides sha256

    @classmethod
    def from_file(cls, key: str, path: Path, metadata: dict[str, str] | None = None) -> _Object:
        sha, size = _sha256(path)
        return cls(key, path, sha, size, content_type(key), cache_control(key), dict(metadata or {}))

    def is_current(self, head: dict[str, Any]) -> bool:
        """Whether the object S3 has (from head_object) already is this one: bytes, headers and metadata."""
        remote = head.get("Metadata") or {}
        wanted = {SHA256_METADATA: self.sha256, **self.metadata}
        return (
            all(remote.get(k) == v for k, v in wanted.items())
            and head.get("ContentLength", self.size) == self.size
            and head.get("ContentType") == self.content_type
            and head.get("CacheControl") == self.cache_control
        )


@dataclass
class Plan:
    """What a publish does (or did): keys to upload (index.html last), unchanged keys, keys to delete."""

    bucket: str
    upload: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    dry_run: bool = False
    objects: dict[str, _Object] = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        text = (
            f"s3://{self.bucket}: {len(self.upload)} to upload, {len(self.unchanged)} unchanged, "
            f"{len(self.delete)} to delete"
        )
        return text + (" (dry run: nothing written)" if self.dry_run else "")


def session_days(client: Any, bucket: str) -> list[str]:
    """The days (YYYY-MM-DD) whose page is in the bucket under ``sessions/``, oldest first."""
    return sorted(m.group(1) for k in _list_keys(client, bucket, SESSIONS_PREFIX) if (m := SESSION_PAGE.fullmatch(k)))


def _site_objects(site_dir: Path, session: str | None, front: bool = True) -> dict[str, _Object]:
    site_dir = Path(site_dir)
    if not site_dir.is_dir():
        raise ValueError(f"site directory {site_dir} does not exist")
    objects: dict[str, _Object] = {}
    # os.walk does not follow directory symlinks, so a stray link cannot pull half the disk into the bucket.
    for root, dirs, files in os.walk(site_dir):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            key = path.relative_to(site_dir).as_posix()
            if not front and key in (INDEX_KEY, ERROR_KEY):
                continue  # an older day than the bucket's newest: the front page stays the latest session
            metadata = {SESSION_METADATA: session} if key == INDEX_KEY and session else {}
            objects[key] = _Object.from_file(key, path, metadata)
    if front and INDEX_KEY not in objects:
        # Without it the ordering guarantee (and the DNS gate) has nothing to hang on: refuse rather than publish.
        raise ValueError(f"site directory {site_dir} has no {INDEX_KEY}")
    return objects


def _list_keys(client: Any, bucket: str, prefix: str = "") -> dict[str, int]:
    """Every key in the bucket (under `prefix`) with its size."""
    keys: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            keys[item["Key"]] = item["Size"]
    return keys


def _head(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def _upload_order(keys: list[str]) -> list[str]:
    # Immutable (hashed) files first, then the rest, index.html strictly last.
    return sorted(keys, key=lambda k: (k == INDEX_KEY, not k.startswith(IMMUTABLE_PREFIXES), k))


def _check_session(session: str) -> None:
    try:
        date.fromisoformat(session)
    except (TypeError, ValueError):
        raise ValueError(f"session {session!r} is not a date (YYYY-MM-DD)") from None


def _is_unchanged(client: Any, bucket: str, obj: _Object, remote_size: int | None) -> bool:
    if remote_size is None or remote_size != obj.size:
        return False  # missing, or the listing already shows different bytes: no need to ask
    head = _head(client, bucket, obj.key)
    return head is not None and obj.is_current(head)


def plan_publish(client: Any, bucket: str, site_dir: Path, session: str | None = None, front: bool = True) -> Plan:
    """Compare `site_dir` with the bucket; read-only.

    With `session`, index.html is planned with its ``oi-session`` metadata, so a new session alone re-uploads it
    (this is what :func:`publish` uses). Without it, index.html is compared on bytes and headers only. With
    `front` false (publishing an older day than the bucket's newest) the site's index.html and error.html are left
    out, and nothing is deleted.
    """
    if session is not None:
        _check_session(session)
    objects = _site_objects(Path(site_dir), session, front)
    remote = _list_keys(client, bucket)
    plan = Plan(bucket=bucket, objects=objects)
    changed = []
    for key, obj in objects.items():
        if _is_unchanged(client, bucket, obj, remote.get(key)):
            plan.unchanged.append(key)
        else:
            changed.append(key)
    plan.upload = _upload_order(changed)
    plan.delete = sorted(k for k in remote if k not in objects and _stale(k, objects, remote, session)) if front else []
    return plan


def _stale(key: str, objects: dict[str, _Object], remote: dict[str, int], session: str | None) -> bool:
    """Whether a bucket key the new site does not have may go. Older days' archives and pages live only in the
    bucket, and once day folders exist the shared assets and data are theirs too: those are never stale here (the
    bucket's lifecycle rule expires old days, :mod:`oi.setup.bucket`)."""
    if key.startswith(ARCHIVE_PREFIX):
        return False
    if key.startswith(SESSIONS_PREFIX):
        return session is not None and key.startswith(f"{SESSIONS_PREFIX}{session}/")  # this day's own leftovers
    days = any(k.startswith(SESSIONS_PREFIX) for k in objects) or any(k.startswith(SESSIONS_PREFIX) for k in remote)
    return not (days and key.startswith(SHARED_PREFIXES))


def _put(client: Any, bucket: str, obj: _Object) -> None:
    body = obj.path.read_bytes()
    # Hash what is actually sent: if the renderer touched the file since planning, the metadata still matches S3.
    metadata = {SHA256_METADATA: hashlib.sha256(body).hexdigest(), **obj.metadata}
    client.put_object(
        Bucket=bucket,
        Key=obj.key,
        Body=body,
        ContentType=obj.content_type,
        CacheControl=obj.cache_control,
        Metadata=metadata,
    )
    log.info("s3: uploaded s3://%s/%s (%d bytes, %s)", bucket, obj.key, len(body), obj.content_type)


def _upload_all(client: Any, plan: Plan, keys: list[str]) -> None:
    for key in keys:
        try:
            _put(client, plan.bucket, plan.objects[key])
        except (ClientError, BotoCoreError, OSError) as exc:
            detail = f"{_error_code(exc)}: {exc}" if isinstance(exc, ClientError) else f"{type(exc).__name__}: {exc}"
            log.error("s3: upload of %s failed (%s); index.html and old objects left as they were", key, detail)
            raise PublishError(f"upload of {key} failed ({detail}); the previous site is intact") from exc


def _delete(client: Any, bucket: str, keys: list[str]) -> list[str]:
    """Delete `keys`; returns the ones S3 refused (DeleteObjects reports per-key errors instead of raising)."""
    failed: list[str] = []
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start : start + DELETE_BATCH]
        resp = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        errors = {e["Key"]: f"{e.get('Code')}: {e.get('Message')}" for e in resp.get("Errors", [])}
        for key in batch:
            if key in errors:
                log.error("s3: could not delete s3://%s/%s (%s)", bucket, key, errors[key])
                failed.append(key)
            else:
                log.info("s3: deleted s3://%s/%s", bucket, key)
    return failed


def publish(client: Any, bucket: str, site_dir: Path, session: str, dry_run: bool = False, front: bool = True) -> Plan:
    """Publish `site_dir` to `bucket`; returns the plan it carried out.

    Raises :class:`PublishError` when an upload fails (nothing after it happens: index.html and the old objects
    stay) or when stale objects could not be deleted (``index_published=True``: the new site is live).
    """
    _check_session(session)
    plan = plan_publish(client, bucket, site_dir, session=session, front=front)
    if dry_run:
        plan.dry_run = True
        return plan
    others = [k for k in plan.upload if k != INDEX_KEY]
    _upload_all(client, plan, others)
    if INDEX_KEY in plan.upload:
        _upload_all(client, plan, [INDEX_KEY])
    if plan.delete:
        try:
            failed = _delete(client, bucket, plan.delete)
        except (ClientError, BotoCoreError) as exc:
            raise PublishError(f"index.html is published, but deleting stale objects failed: {exc}", True) from exc
        if failed:
            raise PublishError(f"index.html is published, but {len(failed)} stale object(s) remain", True)
    log.info("s3: %s", plan.summary())
    return plan


def upload_archive(client: Any, bucket: str, files: dict[str, Path], dry_run: bool = False) -> Plan:
    """Upload archive files (key ``archive/YYYY-MM-DD/<SYMBOL>_<EXPIRY>.jsonl.gz`` -> local path) to `bucket`,
    for when ARCHIVE_BUCKET is not the site bucket. Unchanged objects are skipped; nothing is ever deleted."""
    bad = [k for k in files if not k.startswith(ARCHIVE_PREFIX) or k.endswith("/")]
    if bad:
        raise ValueError(f"archive keys must look like archive/YYYY-MM-DD/NAME.jsonl.gz, got {bad[0]!r}")
    objects = {key: _Object.from_file(key, Path(path)) for key, path in files.items()}
    plan = Plan(bucket=bucket, objects=objects, dry_run=dry_run)
    for key in sorted(objects):
        head = _head(client, bucket, key)
        (plan.unchanged if head is not None and objects[key].is_current(head) else plan.upload).append(key)
    if not dry_run:
        _upload_all(client, plan, plan.upload)
        log.info("s3: %s", plan.summary())
    return plan
