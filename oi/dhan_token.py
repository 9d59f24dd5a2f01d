"""The Dhan access token itself: its expiry (the JWT ``exp`` claim, read without verifying the signature: Dhan
verifies the token, we only need the date), how it may be shown (expiry and time left, never the token), and the
renewed copy persisted in DHAN_TOKEN_FILE (mode 0600, atomic replace) for the other workers and the next start.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import stat
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from oi.market.calendar import IST
from oi.market.dhan_account import TOKEN_RE

log = logging.getLogger(__name__)


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
