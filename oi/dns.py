"""The day/night switch of DOMAIN_NAME's address record, and the gates that guard each flip.

By day DOMAIN_NAME is an A record to the EC2 instance; by night a CNAME to the S3 website endpoint. Cloudflare
refuses a CNAME beside any other address record at the same name, so the switch *updates the one record in
place* (PUT with the new type): there is never a moment with no record and never two. Records of other types at
the name (TXT, MX, CAA) are never touched. Every write is followed by a read-back of the end state, and a run
that finds the end state already in place writes nothing, so cron can re-run any step safely.

Two flips can overlap (a late night flip and an early day flip, or an operator by hand): on the box they are
serialised with a lock file (:func:`flip_lock`), and across boxes both pick the same record to keep (the oldest),
so together they can never delete every record; a flip that finds the name empty creates the record.

The Cloudflare client is :mod:`oi.cloudflare`; the commands are ``python -m oi dns day|night`` (:mod:`oi.cli.dns`).
This module takes its collaborators (Cloudflare client, S3 client, clock, calendar) as arguments.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import requests
from botocore.exceptions import ClientError
from tenacity import RetryError, Retrying, retry_if_exception_type, retry_if_result, stop_before_delay, wait_fixed

from oi.cloudflare import Cloudflare, CloudflareError
from oi.market.calendar import CLOSE, IST, MarketCalendar
from oi.s3 import SESSION_METADATA

log = logging.getLogger(__name__)

SNAPSHOT_KEY = "index.html"
UNPROXIED_TTL = 60  # seconds: a record flipped twice a day should not be cached for long by resolvers
PROXIED_TTL = 1  # Cloudflare's "automatic"; the only TTL allowed on proxied records


class GateError(RuntimeError):
    """A precondition for a flip is not met (snapshot missing/stale, app unhealthy); nothing was changed."""


class FlipError(RuntimeError):
    """The records did not reach the wanted end state."""


# ------------------------------------------------------------------------------------------------ the end state


@dataclass(frozen=True)
class Wanted:
    """The one address record DOMAIN_NAME should have."""

    type: str
    content: str
    proxied: bool

    def matches(self, record: dict) -> bool:
        return (
            record.get("type") == self.type
            and _norm(record.get("content", ""), self.type) == _norm(self.content, self.type)
            and bool(record.get("proxied")) == self.proxied
        )

    def body(self, name: str, keep_from: dict | None = None) -> dict:
        body: dict[str, Any] = {
            "type": self.type,
            "name": name,
            "content": self.content,
            "proxied": self.proxied,
            "ttl": PROXIED_TTL if self.proxied else UNPROXIED_TTL,
        }
        # PUT replaces the whole record: carry the operator's comment and tags over instead of wiping them.
        for key in ("comment", "tags"):
            if keep_from and keep_from.get(key):
                body[key] = keep_from[key]
        return body


@dataclass
class FlipResult:
    changed: bool
    actions: list[str] = field(default_factory=list)
    before: list[dict] = field(default_factory=list)
    after: dict | None = None
    dry_run: bool = False

    @property
    def deduplicated(self) -> bool:
        return len(self.before) > 1


def _norm(content: str, rtype: str) -> str:
    # Hostnames compare case-insensitively and with or without the trailing root dot.
    return content.strip().lower().rstrip(".") if rtype == "CNAME" else content.strip()


def describe(record: dict) -> str:
    proxied = " (proxied)" if record.get("proxied") else ""
    return f"{record.get('type')} {record.get('name')} -> {record.get('content')}{proxied}"


def _pick_keeper(records: list[dict]) -> dict | None:
    """The record to update in place: the oldest (created_on, then id).

    Not "the one already right": a day flip and a night flip running at once would each keep a different record
    and delete the other's, leaving the name with none. The oldest is the same answer for every flip.
    """
    return min(records, key=lambda r: (str(r.get("created_on") or ""), str(r.get("id") or "")), default=None)


@contextlib.contextmanager
def flip_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory/dns-flip.lock`` (flock: released by the kernel if the process dies)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "dns-flip.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def ensure_record(cf: Cloudflare, name: str, wanted: Wanted, dry_run: bool = False) -> FlipResult:
    """Make `wanted` the one and only address record at `name`; zero writes if it already is."""
    records = cf.address_records(name)
    result = FlipResult(changed=False, before=records, dry_run=dry_run)
    if len(records) == 1 and wanted.matches(records[0]):
        log.info("dns: already in place: %s", describe(records[0]))
        result.after = records[0]
        return result

    keeper = _pick_keeper(records)
    extras = [r for r in records if r is not keeper]
    verb = "would " if dry_run else ""
    if extras:
        log.warning("dns: %d address records at %s; fixing to exactly one", len(records), name)
    # Delete extras first: Cloudflare refuses a CNAME beside any other address record, and the keeper keeps
    # answering meanwhile, so the name is never without a record.
    for record in extras:
        if not dry_run:
            cf.delete_record(record["id"])
        result.actions.append(f"{verb}delete extra record {describe(record)}")
        log.info("dns: %s", result.actions[-1])
    if keeper is None:
        body = wanted.body(name)
        if not dry_run:
            cf.create_record(body)
        result.actions.append(f"{verb}create {describe(body)}")
        log.info("dns: %s", result.actions[-1])
    elif not wanted.matches(keeper):
        body = wanted.body(name, keep_from=keeper)
        if not dry_run:
            try:
                cf.update_record(keeper["id"], body)
            except CloudflareError as exc:
                if exc.status != 404 or exc.code == 7003:
                    raise
                # Deleted meanwhile by a flip elsewhere: the name may be empty now, which must not last.
                log.warning("dns: %s vanished while updating it; creating the record", describe(keeper))
                if not cf.address_records(name):
                    cf.create_record(wanted.body(name))
        result.actions.append(f"{verb}update {describe(keeper)} => {body['type']} {body['content']}")
        log.info("dns: %s", result.actions[-1])
    result.changed = bool(result.actions)
    if dry_run:
        return result

    after = cf.address_records(name)
    if len(after) != 1 or not wanted.matches(after[0]):
        found = ", ".join(describe(r) for r in after) or "no address record"
        raise FlipError(f"read-back of {name} does not match: wanted {wanted.type} {wanted.content}, found {found}")
    result.after = after[0]
    log.info("dns: verified %s", describe(after[0]))
    return result


# ------------------------------------------------------------------------------------------------------- gates


def expected_snapshot_session(calendar: MarketCalendar, now: datetime) -> date:
    """The session the night snapshot must come from: the latest *completed* session at `now`.

    After the close (15:30 IST) of a trading day that is today; before the close - including during the session,
    when today's data is still incomplete - it is the previous trading day. Holidays and weekends fall back to
    the last trading day before them.
    """
    local = now.astimezone(IST)
    if calendar.is_trading_day(local.date()) and local.time() < CLOSE:
        # last_session_day at midnight is the trading day before today.
        return calendar.last_session_day(datetime.combine(local.date(), time(0, 0), IST))
    return calendar.last_session_day(local)


def check_snapshot(s3, bucket: str, expected: date, key: str = SNAPSHOT_KEY) -> date:
    """Raise GateError unless s3://bucket/key exists and carries a session on or after `expected`."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in {"404", "NoSuchKey", "NoSuchBucket", "NotFound"} or status == 404:
            raise GateError(f"no snapshot: s3://{bucket}/{key} does not exist") from None
        raise GateError(f"cannot read s3://{bucket}/{key}: {code or status}") from None
    raw = (head.get("Metadata") or {}).get(SESSION_METADATA, "")
    if not raw:
        raise GateError(f"s3://{bucket}/{key} has no {SESSION_METADATA} metadata (was it written by upload.py?)")
    try:
        session = date.fromisoformat(raw.strip())
    except ValueError:
        raise GateError(f"s3://{bucket}/{key}: {SESSION_METADATA}={raw!r} is not a date") from None
    # A newer session is fine (e.g. a mid-day upload of today); an older one would show stale data as current.
    if session < expected:
        raise GateError(f"stale snapshot: s3://{bucket}/{key} is from {session}, expected {expected}")
    log.info("gate: snapshot s3://%s/%s is from session %s (expected %s)", bucket, key, session, expected)
    return session


def probe_health(session: requests.Session, url: str, timeout: float = 5.0) -> str | None:
    """None if `url` answers 200 with JSON status "ok", else a short reason."""
    try:
        resp = session.get(url, timeout=timeout)
    except requests.RequestException as exc:
        return f"{type(exc).__name__}"
    if resp.status_code != 200:
        return f"HTTP {resp.status_code}"
    try:
        status = resp.json().get("status")
    except (ValueError, AttributeError):
        return "not JSON"
    return None if status == "ok" else f"status {status!r}"


def wait_healthy(
    url: str, wait_seconds: float, session: requests.Session | None = None, poll_seconds: float | None = None
) -> None:
    """Poll `url` until healthy or `wait_seconds` pass; GateError with the last reason if it never is.

    Polls every 3 s by default (a tenth of a short wait, so a small --wait still gets several tries).
    """
    if session is None:
        session = requests.Session()
        session.trust_env = False  # a local health URL must not go through an HTTP(S)_PROXY from the environment
    reasons: list[str | None] = []

    def attempt() -> str | None:
        reasons.append(probe_health(session, url, timeout=min(5.0, max(wait_seconds, 1.0))))
        if reasons[-1]:
            log.info("gate: %s not healthy yet (%s)", url, reasons[-1])
        return reasons[-1]

    poll = poll_seconds if poll_seconds is not None else min(3.0, max(0.2, wait_seconds / 10))
    retrying = Retrying(
        stop=stop_before_delay(wait_seconds),
        wait=wait_fixed(poll),
        retry=retry_if_result(lambda reason: reason is not None) | retry_if_exception_type(requests.RequestException),
    )
    try:
        reason = retrying(attempt)
    except RetryError:
        reason = reasons[-1] if reasons else "no answer"
    if reason is not None:
        raise GateError(f"app not healthy at {url} after {wait_seconds:g}s ({reason})")
    log.info("gate: %s is healthy", url)
