"""Cloudflare DNS for the day/night switch, and the gates that guard each flip.

By day DOMAIN_NAME is an A record to the EC2 instance; by night a CNAME to the S3 website endpoint. Cloudflare
refuses a CNAME beside any other address record at the same name, so the switch *updates the one record in
place* (PUT with the new type): there is never a moment with no record and never two. Records of other types at
the name (TXT, MX, CAA) are never touched. Every write is followed by a read-back of the end state, and a run
that finds the end state already in place writes nothing, so cron can re-run any step safely.

The CLI entry points live in :mod:`oi.cli_dns`; this module takes its collaborators (HTTP session, S3 client,
clock, calendar) as arguments so tests can inject fakes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import requests
from botocore.exceptions import ClientError
from requests.adapters import HTTPAdapter
from tenacity import RetryError, Retrying, retry_if_exception_type, retry_if_result, stop_before_delay, wait_fixed
from urllib3.util.retry import Retry

from oi.market.calendar import CLOSE, IST, MarketCalendar
from oi.s3 import SESSION_METADATA

log = logging.getLogger(__name__)

ADDRESS_TYPES = ("A", "AAAA", "CNAME")
SNAPSHOT_KEY = "index.html"
UNPROXIED_TTL = 60  # seconds: a record flipped twice a day should not be cached for long by resolvers
PROXIED_TTL = 1  # Cloudflare's "automatic"; the only TTL allowed on proxied records


class CloudflareError(RuntimeError):
    """Cloudflare answered with success=false (or not at all). Carries Cloudflare's own code and message."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class GateError(RuntimeError):
    """A precondition for a flip is not met (snapshot missing/stale, app unhealthy); nothing was changed."""


class FlipError(RuntimeError):
    """The records did not reach the wanted end state."""


# --------------------------------------------------------------------------------------------------- HTTP client


def retrying_session(retries: int = 4, backoff: float = 0.5) -> requests.Session:
    """A session that retries 429/5xx and connection errors with backoff, honouring Retry-After.

    POST/PUT/PATCH/DELETE are retried too: every write here is an idempotent "make it so" (a duplicate created
    by a retried POST is removed by the next run's dedupe, and the end state is always read back).
    """
    retry = Retry(
        total=retries,
        connect=retries,
        read=2,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"}),
        respect_retry_after_header=True,
        retry_after_max=60,
        raise_on_status=False,  # hand the last response back so Cloudflare's own error can be shown
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class Cloudflare:
    """A small Cloudflare API v4 client for one zone."""

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        token: str,
        zone_id: str,
        timeout: float | tuple[float, float] = (5.0, 20.0),
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.zone_id = zone_id
        self.timeout = timeout

    def __repr__(self) -> str:  # never show the token
        return f"Cloudflare(base_url={self.base_url!r}, zone_id={self.zone_id!r})"

    def _call(self, method: str, path: str, params: dict | None = None, json: Any = None) -> dict:
        url = f"{self.base_url}/{path}"
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            resp = self.session.request(method, url, params=params, json=json, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise CloudflareError(f"Cloudflare API unreachable ({type(exc).__name__}: {exc})") from exc
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise CloudflareError(
                f"Cloudflare API {method} {path}: HTTP {resp.status_code}, not a JSON envelope", resp.status_code
            )
        if resp.status_code >= 400 or not payload.get("success", False):
            raise _error_from(payload, resp.status_code, f"{method} {path}")
        return payload

    # DNS records -------------------------------------------------------------------------------------------
    def list_records(self, name: str, rtype: str | None = None) -> list[dict]:
        """Every record named exactly `name` (optionally of one type), across all result pages."""
        out: list[dict] = []
        page = 1
        while True:
            params: dict[str, Any] = {"name": name, "per_page": 100, "page": page}
            if rtype:
                params["type"] = rtype
            payload = self._call("GET", f"zones/{self.zone_id}/dns_records", params=params)
            out.extend(payload.get("result") or [])
            info = payload.get("result_info") or {}
            if page >= int(info.get("total_pages") or 1):
                break
            page += 1
        # The name filter is exact on Cloudflare's side; filter again so a looser fake/filter cannot widen writes.
        return [r for r in out if r.get("name", "").lower().rstrip(".") == name.lower().rstrip(".")]

    def address_records(self, name: str) -> list[dict]:
        return [r for r in self.list_records(name) if r.get("type") in ADDRESS_TYPES]

    def create_record(self, record: dict) -> dict:
        return self._call("POST", f"zones/{self.zone_id}/dns_records", json=record)["result"]

    def update_record(self, record_id: str, record: dict) -> dict:
        """Overwrite a record (PUT): type, name, content, proxied and ttl all replaced, so the type can change."""
        return self._call("PUT", f"zones/{self.zone_id}/dns_records/{record_id}", json=record)["result"]

    def delete_record(self, record_id: str) -> None:
        try:
            self._call("DELETE", f"zones/{self.zone_id}/dns_records/{record_id}")
        except CloudflareError as exc:
            # A retried DELETE whose first attempt succeeded answers 404: the record is gone, which is the goal.
            if exc.status != 404 or exc.code == 7003:
                raise

    # Rulesets ----------------------------------------------------------------------------------------------
    def get_phase_entrypoint(self, phase: str) -> dict | None:
        """The zone's entry-point ruleset of `phase`, or None if the zone has none yet."""
        try:
            return self._call("GET", f"zones/{self.zone_id}/rulesets/phases/{phase}/entrypoint")["result"]
        except CloudflareError as exc:
            if exc.status == 404 and exc.code != 7003:
                return None
            raise

    def put_phase_entrypoint(self, phase: str, rules: list[dict], description: str = "") -> dict:
        body: dict[str, Any] = {"rules": rules}
        if description:
            body["description"] = description
        return self._call("PUT", f"zones/{self.zone_id}/rulesets/phases/{phase}/entrypoint", json=body)["result"]


def _error_from(payload: dict, status: int, what: str) -> CloudflareError:
    errors = payload.get("errors") or []
    parts, first_code = [], None
    for err in errors:
        if not isinstance(err, dict):
            parts.append(str(err))
            continue
        code = err.get("code")
        first_code = first_code if first_code is not None else code
        text = f"[{code}] {err.get('message', '')}".strip()
        chain = err.get("error_chain") or []
        if chain and isinstance(chain[0], dict):
            text += f" ({chain[0].get('message', '')})"
        parts.append(text)
    detail = "; ".join(parts) or "no error detail"
    return CloudflareError(f"Cloudflare API {what} failed: {detail} (HTTP {status})", status, first_code)


def cloudflare_from_config(config, session: requests.Session | None = None) -> Cloudflare:
    return Cloudflare(
        session or retrying_session(),
        config.cloudflare_api_base,
        config.cloudflare_api_token,
        config.cloudflare_zone_id,
    )


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


def _pick_keeper(records: list[dict], wanted: Wanted) -> dict | None:
    """The record to update in place: one already right, else one of the wanted type, else the first."""
    for pick in (wanted.matches, lambda r: r.get("type") == wanted.type, lambda r: True):
        for record in records:
            if pick(record):
                return record
    return None


def ensure_record(cf: Cloudflare, name: str, wanted: Wanted, dry_run: bool = False) -> FlipResult:
    """Make `wanted` the one and only address record at `name`; zero writes if it already is."""
    records = cf.address_records(name)
    result = FlipResult(changed=False, before=records, dry_run=dry_run)
    if len(records) == 1 and wanted.matches(records[0]):
        log.info("dns: already in place: %s", describe(records[0]))
        result.after = records[0]
        return result

    keeper = _pick_keeper(records, wanted)
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
            cf.update_record(keeper["id"], body)
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
