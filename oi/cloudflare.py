"""A small Cloudflare API v4 client for one zone: a retrying session, the response envelope and its errors, DNS
records, and phase entry-point rulesets. What to do with them lives elsewhere: the day/night flip in :mod:`oi.dns`,
the one-time rules in :mod:`oi.setup.rules`, the token check in :mod:`oi.cli.doctor`.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

ADDRESS_TYPES = ("A", "AAAA", "CNAME")


class CloudflareError(RuntimeError):
    """Cloudflare answered with success=false (or not at all). Carries Cloudflare's own code and message."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


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

    def verify_token(self) -> dict:
        """``GET /user/tokens/verify``: the token's id and status ("active") if Cloudflare accepts it."""
        return self._call("GET", "user/tokens/verify")["result"] or {}

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
