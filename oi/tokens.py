"""The Dhan access token's lifecycle: when it expires, whether Dhan accepts it, alerts, and optional renewal.

Dhan access tokens are JWTs that last 24 h; the expiry is the JWT ``exp`` claim, read here without verifying the
signature (Dhan verifies the token; we only need the date). :class:`TokenWatch` runs in every process, from the
scheduler every few seconds, and

* adopts a token another process renewed: it ``stat``\\ s ``DHAN_TOKEN_FILE`` each pass and reads it only when it
  changed, then swaps the newer token into the live SDK client (:meth:`DhanSource.set_token`) — no restart;
* alerts once via Telegram when fewer than ``DHAN_TOKEN_ALERT_MINUTES`` are left, and once when the token is dead
  (expired, or rejected by Dhan: the refresher's ``auth_failed``). "Once" holds across gunicorn workers and
  processes: the process that claims the store's ``meta`` document of that alert for that token (keyed by its
  ``exp``) sends it; a claim whose send failed may be taken again after :data:`ALERT_RETRY_SECONDS`;
* with ``DHAN_AUTO_RENEW=1``, and only in the process holding the refresher lease (the one that talks to Dhan),
  renews through ``GET /v2/RenewToken`` when fewer than ``DHAN_RENEW_BEFORE_HOURS`` are left (or right after an
  auth failure of a token that has not expired), persists the new token (mode 0600, atomic replace) for the other
  workers and the next start, hot-swaps it and lifts the refresher's auth-failure stop.

A token is never logged, rendered or sent: logs, alerts, ``/healthz`` and ``python -m oi token`` name it by its
expiry only, and a renewed token joins the log redaction filter (:func:`learn_secret`) the moment it exists.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from oi.market.calendar import IST
from oi.market.dhan import AUTH, classify
from oi.notify import Notifier
from oi.refresher import RefreshStatus

log = logging.getLogger(__name__)

WATCH_SECONDS = 5.0  # a pass costs one stat() and a few in-memory checks; store writes only when something is due
ALERT_RETRY_SECONDS = 300.0  # a claimed alert that could not be sent is tried again after this
RENEW_RETRY_SECONDS = 300.0  # a renewal that failed for a transient reason is tried again after this
RENEW_ATTEMPTS = 3  # tenacity attempts within one renewal (network errors, HTTP 5xx and 429 only)
# What a token may look like: base64url JWT segments. Anything else from a file or an API answer is refused, which
# also keeps CR/LF out of the access-token header.
TOKEN_RE = re.compile(r"^[A-Za-z0-9._~+/=-]{16,8192}$")
ALERT_KEY, RENEW_KEY = "token-alert:", "token-renew"


# --- the token itself -------------------------------------------------------------------------------------------
def token_claims(token: str) -> dict | None:
    """The JWT payload, decoded without verifying the signature; None when `token` is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are all ValueErrors
        return None
    return claims if isinstance(claims, dict) else None


def token_expiry(token: str) -> datetime | None:
    """When the token expires (its JWT ``exp``, UTC), or None when that cannot be told."""
    claims = token_claims(token) or {}
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def fingerprint(token: str) -> str:
    """A short one-way name for a token (which env token a saved one descends from); reveals nothing of it."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def ist(when: datetime) -> str:
    return when.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S IST")


def duration(seconds: float) -> str:
    minutes = int(abs(seconds) // 60)
    text = f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
    return text if seconds >= 0 else f"expired {text} ago"


@dataclass(frozen=True)
class TokenState:
    """What may be shown about a token: when it expires and how long is left. Never the token."""

    expires_at: datetime | None
    seconds_left: int | None

    @classmethod
    def of(cls, expires_at: datetime | None, now: datetime) -> TokenState:
        if expires_at is None:
            return cls(None, None)
        return cls(expires_at, int((expires_at - now).total_seconds()))

    def as_dict(self) -> dict:
        return {
            "expires_at": self.expires_at.astimezone(IST).isoformat() if self.expires_at else None,
            "seconds_left": self.seconds_left,
        }


def learn_secret(secret: str) -> None:
    """Teach the log redaction filters (set up at start-up from the config) a secret that appeared later."""
    from oi.logs import RedactSecrets  # late: oi.logs imports the config machinery, not needed by the CLI's --help

    for handler in logging.getLogger().handlers:
        for flt in handler.filters:
            if isinstance(flt, RedactSecrets) and len(secret) >= 4 and secret not in flt.secrets:
                flt.secrets = [*flt.secrets, secret]  # a new list: a filter running on another thread sees old or new


# --- the persisted token ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SavedToken:
    access_token: str = field(repr=False)
    client_id: str
    base: str  # fingerprint of the DHAN_ACCESS_TOKEN this token was renewed from
    saved_at: str = ""


def read_token_file(path: Path) -> SavedToken | None:
    """The token saved by a renewal, or None (absent, unreadable or malformed: logged, never echoed)."""
    try:
        with open(path, encoding="utf-8") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # the exception text could quote the file: log its type only
        log.warning("ignoring DHAN_TOKEN_FILE %s: unreadable (%s)", path, type(exc).__name__)
        return None
    if stat.S_IMODE(mode) & 0o077:
        log.warning("DHAN_TOKEN_FILE %s is accessible to other users: chmod 600 it", path)
    token = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        log.warning("ignoring DHAN_TOKEN_FILE %s: no well-formed access_token in it", path)
        return None
    return SavedToken(token, str(data.get("client_id", "")), str(data.get("base", "")), str(data.get("saved_at", "")))


def write_token_file(path: Path, saved: SavedToken) -> None:
    """Write `saved` to `path` with mode 0600 from the first byte (os.open, not chmod after), atomically."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    body = {
        "client_id": saved.client_id,
        "access_token": saved.access_token,
        "base": saved.base,
        "saved_at": saved.saved_at,
    }
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(body, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # readers see the old file or the new one, never half a token
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def choose_token(env_token: str, client_id: str, saved: SavedToken | None) -> tuple[str, str]:
    """(token, "env" | "file"): the saved token when it was renewed from this env token and expires later.

    Descent matters: after an operator pastes a fresh DHAN_ACCESS_TOKEN, an older chain of renewals (perhaps
    revoked by the new login) must not win just because its expiry is later.
    """
    if saved is None or saved.client_id != client_id or saved.base != fingerprint(env_token):
        return env_token, "env"
    env_exp, saved_exp = token_expiry(env_token), token_expiry(saved.access_token)
    if saved.access_token != env_token and saved_exp is not None and (env_exp is None or saved_exp > env_exp):
        return saved.access_token, "file"
    return env_token, "env"


# --- Dhan's account endpoints -----------------------------------------------------------------------------------
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
            return Profile(True, 200, str(body.get("tokenValidity") or ""))
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


# --- once-only claims in the store ------------------------------------------------------------------------------
def claim(store, key: str, exp: int, now: float, retry_after: float) -> bool:
    """True for exactly one caller per (key, token exp), across processes, unless that caller failed to finish
    (:func:`finish` not called) within `retry_after` seconds. A token with a later exp may always claim.

    One document per key (not per token), so ``meta`` stays a handful of documents: montydb scans it on every lease
    and pace check. Uses the store's atomic conditional upsert (thread lock, and flock on the embedded store).
    """
    condition = {"$or": [{"exp": {"$lt": exp}}, {"exp": exp, "done": False, "claimed_at": {"$lt": now - retry_after}}]}
    return store.claim(key, condition, {"exp": exp, "done": False, "claimed_at": now})


def finish(store, key: str, exp: int, now: float) -> None:
    store.claim(key, {"exp": exp}, {"done": True, "done_at": now})


# --- the watch --------------------------------------------------------------------------------------------------
class TokenWatch:
    """Per-process keeper of the Dhan token in force: reload, alerts, renewal. :meth:`run` is the scheduler job."""

    def __init__(
        self,
        config,
        store,
        source,
        clock: Callable[[], datetime],
        status: Callable[[], RefreshStatus] = RefreshStatus,
        is_leader: Callable[[], bool] = lambda: True,
        on_new_token: Callable[[], None] = lambda: None,
        notifier: Notifier | None = None,
        account: DhanAccount | None = None,
    ) -> None:
        self.config, self.store, self.source, self.clock = config, store, source, clock
        self.status = status  # the refresher's shared status (auth_failed), as the process last synced it
        self.is_leader = is_leader
        self.on_new_token = on_new_token  # lifts the refresher's auth-failure stop
        prefix = f"[{config.domain_name}] " if config.domain_name else "[oi] "
        self.notifier = notifier or Notifier.from_config(config, prefix=prefix)
        self.account = account or DhanAccount(config.dhan_api_base, config.dhan_client_id, config.dhan_timeout_seconds)
        self.path = Path(config.dhan_token_file)
        self._lock = threading.Lock()  # the watch job, start-up and tests never interleave a swap
        self._file_stamp: tuple | None = None
        self._failing = False
        env = config.dhan_access_token
        self._current: tuple[str, datetime | None, str] = (env, token_expiry(env), "env")

    def __repr__(self) -> str:  # never show the token
        return f"TokenWatch(origin={self.origin!r}, expires_at={self.expires_at!r})"

    @property
    def token(self) -> str:
        return self._current[0]

    @property
    def expires_at(self) -> datetime | None:
        return self._current[1]

    @property
    def origin(self) -> str:
        return self._current[2]

    def state(self, now: datetime) -> TokenState:
        return TokenState.of(self.expires_at, now)

    def problem(self, now: datetime, status: RefreshStatus) -> str | None:
        """Why the token stops the service, for /healthz; None while it is usable."""
        if status.auth_failed:
            why = f" ({status.error})" if status.error else ""
            return f"Dhan rejected the access token{why}: polling stopped until a valid token is in force"
        if self.expires_at is not None and self.expires_at <= now:
            return f"Dhan access token expired at {ist(self.expires_at)}: set a new DHAN_ACCESS_TOKEN"
        return None

    # --- passes -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """At start-up: adopt the persisted token when it descends from the env one and expires later."""
        learn_secret(self.token)
        try:
            with self._lock:
                self.reload()
        except Exception:  # a broken token file or store must not stop the service: the env token still works
            log.warning("could not check DHAN_TOKEN_FILE at start-up; using DHAN_ACCESS_TOKEN", exc_info=True)
        exp = f"expires {ist(self.expires_at)}" if self.expires_at else "expiry unknown (not a JWT)"
        where = "DHAN_TOKEN_FILE" if self.origin == "file" else "DHAN_ACCESS_TOKEN"
        log.info("Dhan access token from %s: %s", where, exp)

    def run(self) -> None:
        """One pass; never raises (it runs unattended in the scheduler)."""
        try:
            with self._lock:
                self._run()
        except Exception as exc:
            if not self._failing:  # once per run of failures (a store outage lasts many passes)
                log.warning("token watch pass failed: %s: %.200s", type(exc).__name__, exc, exc_info=True)
            self._failing = True
        else:
            self._failing = False

    def _run(self) -> None:
        now = self.clock()
        reloaded = self.reload()
        # A token adopted just now lifted the auth stop; the status this process holds predates that.
        auth_failed = self.status().auth_failed and not reloaded
        if self.config.dhan_auto_renew and self._renew_due(now, auth_failed) and self.is_leader():
            if self._renew(now, auth_failed):
                auth_failed = False
        self._alerts(now, auth_failed)

    def reload(self) -> bool:
        """Adopt a newer token from DHAN_TOKEN_FILE if the file changed since the last look. True if swapped."""
        try:
            st = os.stat(self.path)
        except OSError:
            self._file_stamp = None
            return False
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._file_stamp:
            return False
        self._file_stamp = stamp
        token, origin = choose_token(
            self.config.dhan_access_token, self.config.dhan_client_id, read_token_file(self.path)
        )
        exp = token_expiry(token)
        if token == self.token or (self.expires_at is not None and (exp is None or exp <= self.expires_at)):
            return False  # only ever move forward
        self._adopt(token, exp, origin)
        return True

    def _paused(self):
        paused = getattr(self.source, "paused", None)
        return paused() if paused is not None else contextlib.nullcontext()

    def _adopt(self, token: str, exp: datetime | None, origin: str) -> None:
        learn_secret(token)  # before anything could log it
        with self._paused():
            self.source.set_token(token)
        self._current = (token, exp, origin)
        log.info("new Dhan access token in force (%s): expires %s", origin, ist(exp) if exp else "unknown")
        self.on_new_token()

    # --- renewal ------------------------------------------------------------------------------------------------
    def _renew_due(self, now: datetime, auth_failed: bool) -> bool:
        if self.expires_at is None:
            return auth_failed  # unknown expiry: nothing to schedule by; try only once Dhan refuses it
        left = (self.expires_at - now).total_seconds()
        if left <= 0:
            return False  # Dhan renews active tokens only
        return auth_failed or left < self.config.dhan_renew_before_hours * 3600

    def _renew(self, now: datetime, auth_failed: bool) -> bool:
        old, key_exp, ts = self.token, self._key_exp(), now.timestamp()
        if not claim(self.store, RENEW_KEY, key_exp, ts, RENEW_RETRY_SECONDS):
            return False
        try:
            with self._paused():
                new = self.account.renew(old)
                learn_secret(new)  # before anything could log it
                self.source.set_token(new)  # before any call can go out with the old one
        except RenewError as exc:
            log.warning("Dhan token renewal failed: %s", exc)
            if not exc.retry:
                finish(self.store, RENEW_KEY, key_exp, ts)  # refused: asking again with this token is pointless
            if not exc.retry and not auth_failed:  # after an auth failure the "dead" alert says it already
                self._alert_once(
                    "renew-refused",
                    now,
                    f"Dhan refused to renew the access token ({exc}). Set a new DHAN_ACCESS_TOKEN.",
                )
            return False
        exp = token_expiry(new)
        saved = SavedToken(new, self.config.dhan_client_id, fingerprint(self.config.dhan_access_token), now.isoformat())
        try:
            write_token_file(self.path, saved)  # for the other workers and the next start
            self._file_stamp = None
        except OSError as exc:
            log.error(
                "renewed Dhan token could not be saved to %s (%s): other workers keep the old one", self.path, exc
            )
        finish(self.store, RENEW_KEY, key_exp, ts)
        self._adopt(new, exp, "renewed")
        self.notifier.send(
            f"Dhan access token for client {self.config.dhan_client_id} renewed: "
            f"valid until {ist(exp) if exp else 'an unknown time'}."
        )
        return True

    # --- alerts -------------------------------------------------------------------------------------------------
    def _key_exp(self) -> int:
        return int(self.expires_at.timestamp()) if self.expires_at else 0

    def _alerts(self, now: datetime, auth_failed: bool) -> None:
        exp, client = self.expires_at, self.config.dhan_client_id
        left = (exp - now).total_seconds() if exp else None
        if auth_failed or (left is not None and left <= 0):
            why = "Dhan rejects it" if auth_failed else f"it expired at {ist(exp)}"
            self._alert_once(
                "dead",
                now,
                f"Dhan access token for client {client} no longer works ({why}): live data has stopped. "
                "Generate a new token on web.dhan.co, set DHAN_ACCESS_TOKEN and restart the service.",
            )
        elif left is not None and left <= self.config.dhan_token_alert_minutes * 60:
            todo = (
                "Automatic renewal has not succeeded yet."
                if self.config.dhan_auto_renew
                else "Generate a new one on web.dhan.co and set DHAN_ACCESS_TOKEN (or enable DHAN_AUTO_RENEW)."
            )
            self._alert_once(
                "expiring",
                now,
                f"Dhan access token for client {client} expires at {ist(exp)} (in {duration(left)}). {todo}",
            )

    def _alert_once(self, kind: str, now: datetime, text: str) -> bool:
        key, key_exp, ts = ALERT_KEY + kind, self._key_exp(), now.timestamp()
        if not claim(self.store, key, key_exp, ts, ALERT_RETRY_SECONDS):
            return False
        log.warning("token alert: %s", text)
        if self.notifier.enabled and not self.notifier.send(text):
            return False  # left unfinished: some process tries again after ALERT_RETRY_SECONDS
        finish(self.store, key, key_exp, ts)
        return True


# --- python -m oi token -----------------------------------------------------------------------------------------
VALID, INVALID, USAGE, UNCONFIRMED = 0, 1, 2, 3


@dataclass
class TokenReport:
    client_id: str
    origin: str
    state: TokenState
    token_client_id: str | None  # the JWT's dhanClientId claim, when present
    profile: Profile | None
    auto_renew: bool
    problems: list[str] = field(default_factory=list)
    code: int = VALID

    def as_dict(self) -> dict:
        return {
            "client_id": self.client_id,
            "token_from": self.origin,
            **self.state.as_dict(),
            "profile": None
            if self.profile is None
            else {
                "accepted": self.profile.accepted,
                "http_status": self.profile.http_status,
                "detail": self.profile.detail,
            },
            "auto_renew": self.auto_renew,
            "valid": self.code == VALID,
            "problems": self.problems,
        }


def check_token(config, now: datetime, account: DhanAccount | None = None, online: bool = True) -> TokenReport:
    """Everything ``python -m oi token`` says about the token the service would use now (env or saved)."""
    saved = read_token_file(Path(config.dhan_token_file))
    token, origin = choose_token(config.dhan_access_token, config.dhan_client_id, saved)
    claims = token_claims(token) or {}
    owner = claims.get("dhanClientId")
    report = TokenReport(
        config.dhan_client_id,
        f"DHAN_TOKEN_FILE ({config.dhan_token_file})" if origin == "file" else "DHAN_ACCESS_TOKEN",
        TokenState.of(token_expiry(token), now),
        str(owner) if owner is not None else None,
        None,
        config.dhan_auto_renew,
    )
    invalid = unconfirmed = False
    if report.state.expires_at is None:
        report.problems.append("expiry unknown: the token is not a JWT with an exp claim")
        unconfirmed = True
    elif report.state.seconds_left <= 0:
        report.problems.append(f"expired at {ist(report.state.expires_at)}")
        invalid = True
    if report.token_client_id is not None and report.token_client_id != config.dhan_client_id:
        report.problems.append(f"the token belongs to client {report.token_client_id}, not DHAN_CLIENT_ID")
        invalid = True
    if online:
        account = account or DhanAccount(config.dhan_api_base, config.dhan_client_id, config.dhan_timeout_seconds)
        report.profile = account.profile(token)
        if report.profile.accepted is False:
            report.problems.append(f"/v2/profile rejected it: {report.profile.detail}")
            invalid = True
        elif report.profile.accepted is None:
            report.problems.append(f"/v2/profile did not confirm it: {report.profile.detail}")
            unconfirmed = True
        else:
            unconfirmed = False  # Dhan's word beats an expiry we could not decode
    report.code = INVALID if invalid else UNCONFIRMED if unconfirmed else VALID
    return report
