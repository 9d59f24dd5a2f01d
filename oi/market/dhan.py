"""DhanHQ adapter: the official SDK, normalized into :class:`OptionChain`, with errors classified.

The SDK (dhanhq 2.3.0) never raises for HTTP errors and drops both the HTTP status and Dhan's data-API error code
(``{"data": {"805": "..."}, "status": "failed"}`` comes back with ``remarks`` None). We wrap it at the narrowest
point, a :class:`DhanHTTP` subclass that remembers the last response's status and body, and classify from those.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime

import requests
from dhanhq import DhanContext, DhanHTTP, dhanhq

from oi.market.calendar import IST
from oi.market.model import Leg, OptionChain, Strike

log = logging.getLogger(__name__)

RATE_LIMIT, AUTH, INVALID_EXPIRY, INVALID_SECURITY, NETWORK, UPSTREAM = (
    "rate_limit",
    "auth",
    "invalid_expiry",
    "invalid_security",
    "network",
    "upstream",
)
_CODES = {
    "805": RATE_LIMIT,
    "DH-904": RATE_LIMIT,
    "806": AUTH,  # data APIs not subscribed: polling cannot succeed until someone acts
    "807": AUTH,
    "808": AUTH,
    "809": AUTH,
    "DH-901": AUTH,
    "811": INVALID_EXPIRY,
    "813": INVALID_SECURITY,
}
# What viewers are told (the API's stale_reason) when a call of this kind failed: plain words, no Dhan internals.
_REASONS = {
    RATE_LIMIT: "rate limited by Dhan",
    AUTH: "Dhan rejected the access token",
    INVALID_EXPIRY: "Dhan rejected the expiry date",
    INVALID_SECURITY: "Dhan does not know the underlying's security id",
    NETWORK: "Dhan unreachable",
}
MALFORMED = "malformed response from Dhan"
FAILED = ("failure", "failed")


class DhanError(Exception):
    """An upstream failure, classified so the refresher can react (back off, stop, refetch expiries, skip)."""

    def __init__(
        self, kind: str, message: str, http_status: int | None = None, code: str | None = None, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.kind, self.http_status, self.code = kind, http_status, code
        if not reason and kind == UPSTREAM and http_status and http_status >= 500:
            reason = f"Dhan server error (HTTP {http_status})"
        self.reason = reason or _REASONS.get(kind, "unexpected answer from Dhan")

    def __str__(self) -> str:
        where = f"HTTP {self.http_status}" if self.http_status else "no response"
        return f"{self.kind}: {self.args[0]} ({where}{', code ' + self.code if self.code else ''})"


class _RecordingSession(requests.Session):
    """Keeps the exception of a failed request: the SDK swallows it and keeps only its text."""

    def __init__(self, last: threading.local) -> None:
        super().__init__()
        self._last = last

    def request(self, *args, **kwargs):
        try:
            return super().request(*args, **kwargs)
        except Exception as exc:
            self._last.error = exc
            raise


class RecordingDhanHTTP(DhanHTTP):
    """DhanHTTP that keeps the HTTP status and raw body of the last response, or its network error (per thread)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._last = threading.local()
        self.session = _RecordingSession(self._last)

    def _send_request(self, method, endpoint, payload=None):
        self._last.status, self._last.body, self._last.error = None, b"", None
        return super()._send_request(method, endpoint, payload)

    def _parse_response(self, response):
        self._last.status, self._last.body = response.status_code, response.content
        return super()._parse_response(response)

    def last(self) -> tuple[int | None, bytes]:
        return getattr(self._last, "status", None), getattr(self._last, "body", b"")

    def last_error(self) -> BaseException | None:
        return getattr(self._last, "error", None)


def network_cause(error: BaseException | None) -> str:
    """A failed request's cause in plain words: timeout, connection refused, connection dropped or connection error."""
    if isinstance(error, requests.Timeout):
        return "timeout"
    seen, stack = set(), [error]
    while stack:  # requests wraps urllib3 wraps the socket error: walk causes, contexts and wrapped reasons
        exc = stack.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused"
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
            return "connection dropped"
        stack += [exc.__cause__, exc.__context__, getattr(exc, "reason", None)]
        stack += [a for a in exc.args if isinstance(a, BaseException)]
    return "connection error"


def classify(status: int | None, body: bytes, remarks: object, error: BaseException | None = None) -> DhanError:
    """Turn a failed call's HTTP status and body (or, with no response, its network error) into a DhanError."""
    if status is None:
        cause = network_cause(error) if error is not None else str(remarks or "") or "no response"
        return DhanError(NETWORK, cause, reason=f"Dhan unreachable ({cause})" if error is not None else "")
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    code = message = None
    if isinstance(payload, dict):
        if payload.get("errorCode"):
            code, message = str(payload["errorCode"]), payload.get("errorMessage")
        elif isinstance(payload.get("data"), dict) and payload["data"]:
            code, message = next(iter(payload["data"].items()))
            code = str(code)
    kind = _CODES.get(code or "")
    if kind is None:
        kind = {429: RATE_LIMIT, 401: AUTH, 403: AUTH}.get(status, UPSTREAM)
    reason = ""
    failed = isinstance(payload, dict) and payload.get("status") in FAILED
    if not isinstance(payload, dict) and 200 <= status < 300:
        message, reason = "malformed JSON from Dhan", MALFORMED
    elif kind == UPSTREAM and code is None and status < 500 and failed:
        message, reason = f"status {payload['status']}", "Dhan reported a failure"
    return DhanError(kind, str(message or f"HTTP {status}"), status, code, reason)


def _num(d: dict, key: str, kind: type = float):
    try:
        return kind(d.get(key) or 0)
    except (TypeError, ValueError):
        return kind(0)


def _leg(raw: dict | None) -> Leg:
    if not isinstance(raw, dict):
        return Leg()
    greeks = raw.get("greeks") if isinstance(raw.get("greeks"), dict) else {}
    return Leg(
        oi=_num(raw, "oi", int),
        previous_oi=_num(raw, "previous_oi", int),
        ltp=_num(raw, "last_price"),
        previous_close=_num(raw, "previous_close_price"),
        volume=_num(raw, "volume", int),
        iv=round(_num(raw, "implied_volatility"), 4),
        delta=_num(greeks, "delta"),
        gamma=_num(greeks, "gamma"),
        theta=_num(greeks, "theta"),
        vega=_num(greeks, "vega"),
        bid=_num(raw, "top_bid_price"),
        bid_qty=_num(raw, "top_bid_quantity", int),
        ask=_num(raw, "top_ask_price"),
        ask_qty=_num(raw, "top_ask_quantity", int),
    )


def normalize(symbol: str, expiry: str, data: dict, as_of: datetime, source: str = "dhan") -> OptionChain:
    """Dhan's ``data`` object (``{"last_price", "oc": {"23850.000000": {"ce", "pe"}}}``) → :class:`OptionChain`."""
    oc = data.get("oc")
    if not isinstance(oc, dict):
        raise DhanError(UPSTREAM, "option chain response has no 'oc' object", reason=MALFORMED)
    strikes = []
    ids: dict[tuple[float, str], int] = {}
    for key, row in oc.items():
        try:
            strike = float(key)
        except ValueError:
            continue
        row = row if isinstance(row, dict) else {}
        strikes.append(Strike(strike, _leg(row.get("ce")), _leg(row.get("pe"))))
        for side in ("ce", "pe"):
            sid = _num(row.get(side) or {}, "security_id", int) if isinstance(row.get(side), dict) else 0
            if sid > 0:
                ids[(strike, side.upper())] = sid
    strikes.sort(key=lambda s: s.strike)
    spot = _num(data, "last_price")
    return OptionChain(symbol, expiry, spot, as_of.astimezone(IST), tuple(strikes), source, security_ids=ids or None)


@dataclass
class DhanSource:
    """Fetches expiry lists and option chains through the official SDK."""

    client: dhanhq
    http: RecordingDhanHTTP
    underlyings: dict[str, tuple[int, str]]
    name: str = "dhan"
    # Held for each upstream call, and by a token swap: a call never straddles a renewal with the old token.
    _calls: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def create(cls, client_id: str, access_token: str, base_url: str, timeout: float, underlyings: dict) -> DhanSource:
        ctx = DhanContext(client_id, access_token)
        http = RecordingDhanHTTP(client_id, access_token)
        http.base_url, http.timeout = base_url, timeout
        ctx.dhan_http = http  # every SDK mixin reads ctx.get_dhan_http() at construction
        return cls(dhanhq(ctx), http, underlyings)

    def set_token(self, access_token: str) -> None:
        """Hot-swap the access token (renewed or reloaded) without a restart.

        Every SDK mixin shares this one DhanHTTP, which sends ``self.header`` with each request; the dict is
        replaced, not mutated, so a request in flight on another thread sends the old headers or the new ones.
        """
        self.http.access_token = access_token
        self.http.header = {**self.http.header, "access-token": access_token}

    def paused(self) -> threading.Lock:
        """Hold this (``with source.paused():``) to keep upstream calls out while the token is renewed and swapped:
        Dhan may reject the old token as soon as it issued the new one, and a call in flight with the old token
        would then read as a dead token."""
        return self._calls

    def _call(self, fn, *args) -> object:
        with self._calls:
            resp = fn(*args)
            status, body = self.http.last()
        if resp.get("status") != "success":
            raise classify(status, body, resp.get("remarks"), self.http.last_error())
        data = resp.get("data")
        # Dhan wraps data-API payloads as {"data": ..., "status": "success"}; a "failed" body with HTTP 200 exists too.
        if not isinstance(data, dict) or data.get("status") not in (None, "success"):
            raise classify(status, body, None)
        return data.get("data")

    def expiries(self, symbol: str, today: date | None = None) -> list[str]:
        security_id, segment = self.underlyings[symbol]
        data = self._call(self.client.expiry_list, security_id, segment)
        if not isinstance(data, list):
            raise DhanError(UPSTREAM, "expiry list response is not a list", reason=MALFORMED)
        return sorted(str(d) for d in data)

    def chain(self, symbol: str, expiry: str, now: datetime) -> OptionChain:
        security_id, segment = self.underlyings[symbol]
        data = self._call(self.client.option_chain, security_id, segment, expiry)
        if not isinstance(data, dict):
            raise DhanError(UPSTREAM, "option chain response has no data object", reason=MALFORMED)
        return normalize(symbol, expiry, data, now)
