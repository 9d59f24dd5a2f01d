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

The token itself (expiry, the persisted copy) is :mod:`oi.dhan_token`; Dhan's account calls are
:mod:`oi.market.dhan_account`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from oi.dhan_token import (
    SavedToken,
    TokenState,
    choose_token,
    duration,
    fingerprint,
    ist,
    learn_secret,
    read_token_file,
    token_claims,
    token_expiry,
    write_token_file,
)
from oi.market.dhan_account import DhanAccount, Profile, RenewError
from oi.notify import Notifier
from oi.refresher import RefreshStatus

log = logging.getLogger(__name__)

WATCH_SECONDS = 5.0  # a pass costs one stat() and a few in-memory checks; store writes only when something is due
ALERT_RETRY_SECONDS = 300.0  # a claimed alert that could not be sent is tried again after this
RENEW_RETRY_SECONDS = 300.0  # a renewal that failed for a transient reason is tried again after this
ALERT_KEY, RENEW_KEY = "token-alert:", "token-renew"


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
