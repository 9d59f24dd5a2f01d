"""Dhan's account endpoints: ``GET /v2/profile`` (is this token accepted, what data plan) and
``GET /v2/RenewToken``. Plain requests with a timeout on every call; the token lifecycle that uses them is
:mod:`oi.tokens`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from oi.market.dhan import AUTH, classify

RENEW_ATTEMPTS = 3  # tenacity attempts within one renewal (network errors, HTTP 5xx and 429 only)
# What a token may look like: base64url JWT segments. Anything else from a file or an API answer is refused, which
# also keeps CR/LF out of the access-token header.
TOKEN_RE = re.compile(r"^[A-Za-z0-9._~+/=-]{16,8192}$")


class RenewError(Exception):
    """A renewal failed. `retry` False: Dhan refused this token outright; asking again will not help."""

    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class _TransientError(Exception):
    pass


@dataclass(frozen=True)
class Profile:
    """``GET /v2/profile``'s verdict: accepted True/False, or None when Dhan could not be asked."""

    accepted: bool | None
    http_status: int | None
    detail: str  # tokenValidity when accepted, else why not
    data_plan: str = ""  # dataPlan ("Active" when the account may call the market data APIs), when accepted
    data_validity: str = ""


def extract_token(body: object) -> str | None:
    """The new token in a RenewToken answer. Field names differ between Dhan's docs and observed answers."""
    for obj in (body, body.get("data") if isinstance(body, dict) else None):
        if isinstance(obj, dict):
            for key in ("accessToken", "token", "access_token"):
                value = obj.get(key)
                if isinstance(value, str) and TOKEN_RE.match(value):
                    return value
    return None


def _json(resp: requests.Response) -> object:
    try:
        return resp.json()
    except ValueError:
        return None


class DhanAccount:
    """``GET /v2/profile`` and ``GET /v2/RenewToken`` over requests, with a timeout on every call.

    Not the SDK's ``DhanLogin``: it sends no timeout and logs the whole response body, which holds the new token.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        attempts: int = RENEW_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.timeout = timeout
        self.session = session or requests.Session()
        self.attempts = attempts
        self.sleep = sleep  # tenacity's pause between attempts; tests pass a no-op

    def _get(self, path: str, token: str) -> requests.Response:
        headers = {"access-token": token, "dhanClientId": self.client_id, "Accept": "application/json"}
        return self.session.get(f"{self.base_url}{path}", headers=headers, timeout=self.timeout)

    def profile(self, token: str) -> Profile:
        try:
            resp = self._get("/profile", token)
        except requests.RequestException as exc:
            return Profile(None, None, f"Dhan unreachable ({type(exc).__name__})")
        body = _json(resp)
        if resp.status_code == 200 and isinstance(body, dict) and body.get("status") not in ("failure", "failed"):
            plan, until = str(body.get("dataPlan") or ""), str(body.get("dataValidity") or "")
            return Profile(True, 200, str(body.get("tokenValidity") or ""), plan, until)
        err = classify(resp.status_code, resp.content, None)
        return Profile(False if err.kind == AUTH else None, resp.status_code, str(err))

    def renew(self, token: str) -> str:
        """A new token for `token` (which must still be active), or :class:`RenewError`."""

        def attempt() -> requests.Response:
            resp = self._get("/RenewToken", token)
            if resp.status_code >= 500 or resp.status_code == 429:
                raise _TransientError(f"HTTP {resp.status_code}")
            return resp

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=1, min=1, max=8),
            retry=retry_if_exception_type((requests.ConnectionError, requests.Timeout, _TransientError)),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            resp = retrying(attempt)
        except (requests.RequestException, _TransientError) as exc:
            raise RenewError(f"RenewToken failed after {self.attempts} attempts ({type(exc).__name__})", True) from None
        if resp.status_code != 200:
            err = classify(resp.status_code, resp.content, None)
            raise RenewError(f"RenewToken refused: {err}", err.kind != AUTH)
        new = extract_token(_json(resp))
        if new is None:
            raise RenewError("RenewToken answered HTTP 200 without a token", True)
        return new
