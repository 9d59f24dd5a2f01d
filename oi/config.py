"""Configuration: the only module that reads the environment.

Entry points build the environment mapping (the process environment over `.env`, see :mod:`oi.cli.startup`) and
call :func:`from_env`; everything else receives a :class:`Config`. Each setting is written once, as a dataclass
field whose metadata names its variable and its parser; :func:`from_env` is one loop over the fields plus the
checks that span several settings. Invalid values raise :class:`ConfigError` naming the variable, so a typo in
`.env` stops the service at start-up instead of surfacing as odd behaviour at 09:15.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any

from oi.market.calendar import read_holidays_file

# Dhan's security ids of the index underlyings (segment IDX_I). NIFTY is from Dhan's docs; the others come from
# third-party code, so operators can override or extend them with OI_UNDERLYINGS="SYMBOL:ID[:SEGMENT],...".
DEFAULT_UNDERLYINGS: dict[str, tuple[int, str]] = {
    "NIFTY": (13, "IDX_I"),
    "BANKNIFTY": (25, "IDX_I"),
    "FINNIFTY": (27, "IDX_I"),
    "MIDCPNIFTY": (442, "IDX_I"),
    "SENSEX": (51, "IDX_I"),
}

# Contract sizes for the "lots" view. NSE revises them about twice a year (these are from the January 2026
# revision), so operators can override them with OI_LOT_SIZES="SYMBOL:SIZE,...".
DEFAULT_LOT_SIZES: dict[str, int] = {"NIFTY": 65, "BANKNIFTY": 30, "FINNIFTY": 60, "MIDCPNIFTY": 120, "SENSEX": 20}

# What an NSE trading symbol looks like (RELIANCE, M&M, BAJAJ-AUTO): an unknown OI_SYMBOLS entry must, to be looked up.
TRADING_SYMBOL = re.compile(r"[A-Z][A-Z0-9&-]{0,19}")

# Names that must never be printed, logged or rendered. Used by the log filter and by tests that grep outputs.
SECRET_VARIABLES = (
    "DHAN_ACCESS_TOKEN",
    "AWS_SECRET_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "CLOUDFLARE_API_TOKEN",
    "TELEGRAM_BOT_TOKEN",
    "S3_REFERER_SECRET",
    "ORIGIN_SECRET",
)


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


Parser = Callable[[Mapping[str, str], str, Any], Any]


def _raw(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def text(env: Mapping[str, str], name: str, default: str) -> str:
    return _raw(env, name) or default


def base_url(env: Mapping[str, str], name: str, default: str) -> str:
    return (_raw(env, name) or default).rstrip("/")


def http_url(env: Mapping[str, str], name: str, default: str) -> str:
    value = base_url(env, name, default)
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name}={value!r} must be an http(s) URL")
    return value


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _raw(env, name).lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={env[name]!r} is not a boolean (use 1 or 0)")


def number(low: float, high: float, kind: type = float) -> Parser:
    """A parser for a finite number in [low, high]; the error names the variable and the range."""

    def parse(env: Mapping[str, str], name: str, default: float) -> float:
        raw = _raw(env, name)
        if raw == "":
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
        # float() accepts "inf" and "nan"; a pace of inf seconds or a NaN timeout would hang or spin silently.
        if not math.isfinite(value) or not low <= value <= high:
            raise ConfigError(f"{name}={raw!r} must be a number from {low:g} to {high:g}")
        return value

    return parse


def choice(*choices: str) -> Parser:
    def parse(env: Mapping[str, str], name: str, default: str) -> str:
        raw = _raw(env, name).upper() or default
        if raw not in choices:
            raise ConfigError(f"{name}={raw!r} must be one of {', '.join(choices)}")
        return raw

    return parse


def ws_url(env: Mapping[str, str], name: str, default: str) -> str:
    value = _raw(env, name) or default
    if not value.startswith(("ws://", "wss://")):
        raise ConfigError(f"{name}={value!r} must be a ws(s):// URL")
    return value


def feed_mode(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _raw(env, name).lower() or default
    if raw not in {"auto", "on", "off"}:
        raise ConfigError(f"{name}={raw!r} must be auto, on or off")
    return raw


def hhmm(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _raw(env, name) or default
    try:
        datetime.strptime(raw, "%H:%M")
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a time of day (HH:MM)") from None
    return raw


def dates(env: Mapping[str, str], name: str, default: frozenset[date]) -> frozenset[date]:
    out = set(default)
    for part in env.get(name, "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.add(date.fromisoformat(part))
        except ValueError:
            raise ConfigError(f"{name}: {part!r} is not a date (YYYY-MM-DD)") from None
    return frozenset(out)


def optional_path(env: Mapping[str, str], name: str, default: Path | None) -> Path | None:
    raw = _raw(env, name)
    return Path(raw) if raw else default


def path(env: Mapping[str, str], name: str, default: Path) -> Path:
    return optional_path(env, name, None) or default


def timestamp(env: Mapping[str, str], name: str, default: datetime | None) -> datetime | None:
    raw = _raw(env, name)
    return parse_now(raw, name) if raw else default


def underlyings(env: Mapping[str, str], name: str, default: dict) -> dict[str, tuple[int, str]]:
    table = dict(default)
    for part in env.get(name, "").split(","):
        part = part.strip()
        if not part:
            continue
        bits = part.split(":")
        if len(bits) not in (2, 3) or not bits[1].strip().isdigit():
            raise ConfigError(f"{name}: {part!r} is not SYMBOL:SECURITY_ID[:SEGMENT]")
        segment = bits[2].strip() if len(bits) == 3 else "IDX_I"
        table[bits[0].strip().upper()] = (int(bits[1]), segment)
    return table


class LotSizes(dict):
    """Lot sizes, remembering which the operator set (OI_LOT_SIZES beats the instrument master; defaults do not)."""

    explicit: frozenset[str] = frozenset()


def lot_sizes(env: Mapping[str, str], name: str, default: dict) -> dict[str, int]:
    table = LotSizes(default)
    for part in env.get(name, "").split(","):
        if not part.strip():
            continue
        symbol, _, size = part.partition(":")
        if not size.strip().isdigit() or int(size) < 1:
            raise ConfigError(f"{name}: {part.strip()!r} is not SYMBOL:SIZE with a positive size")
        table[symbol.strip().upper()] = int(size)
    table.explicit = frozenset(p.partition(":")[0].strip().upper() for p in env.get(name, "").split(",") if p.strip())
    return table


def symbol_list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = _raw(env, name) or ",".join(default)
    symbols = tuple(s for s in dict.fromkeys(s.strip().upper() for s in raw.split(",")) if s)
    if not symbols:
        raise ConfigError(f"{name} is empty")
    return symbols


def origin_secret(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _raw(env, name)
    if not raw:
        return default
    # Never echo the value: this message reaches the console and the logs.
    if len(raw) < 16 or not all("!" <= c <= "~" for c in raw):
        raise ConfigError(f"{name} must be at least 16 printable ASCII characters without spaces")
    return raw


def renew_before(env: Mapping[str, str], name: str, default: float) -> float:
    hours = number(0.1, 1e9)(env, name, default)
    if hours >= 24:
        # Tokens last 24 h: a threshold that long would renew on every pass of the watch.
        raise ConfigError(f"{name}={hours:g} must be less than 24")
    return hours


def setting(variable: str, default: Any = "", parse: Parser = text, secret: bool = False, factory=None) -> Any:
    """A :class:`Config` field read from `variable` with `parse(env, variable, default)`."""
    metadata = {"env": variable, "parse": parse}
    if factory is not None:
        return field(default_factory=factory, repr=not secret, metadata=metadata)
    return field(default=default, repr=not secret, metadata=metadata)


def source_name(env: Mapping[str, str], name: str, default: str) -> str:
    credentials = _raw(env, "DHAN_CLIENT_ID") and _raw(env, "DHAN_ACCESS_TOKEN")
    source = _raw(env, name).lower() or ("dhan" if credentials else default)
    if source not in {"dhan", "demo"}:
        raise ConfigError(f"{name}={source!r} must be 'dhan' or 'demo'")
    if source == "dhan" and not credentials:
        raise ConfigError(f"{name}=dhan needs DHAN_CLIENT_ID and DHAN_ACCESS_TOKEN")
    return source


def token_file(env: Mapping[str, str], name: str, default: Path) -> Path:
    data_dir = _raw(env, "OI_DATA_DIR")
    return path(env, name, Path(data_dir) / default.name if data_dir else default)


def data_dir(env: Mapping[str, str], name: str, default: Path) -> Path:
    value = path(env, name, default)
    # Caught here, at start-up, as one line naming the variable: not as a traceback from the store's first write.
    probe = value
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{name}={str(value)!r} is not a directory ({probe} is a file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{name}={str(value)!r} is not writable by this user ({probe})")
    return value


def holidays_file(env: Mapping[str, str], name: str, default: Path | None) -> Path | None:
    value = optional_path(env, name, default)
    if value is not None:
        try:
            read_holidays_file(value)
        except OSError as exc:
            raise ConfigError(f"{name}={str(value)!r} cannot be read ({exc.strerror or type(exc).__name__})") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{name}: {exc}") from None
    return value


@dataclass(frozen=True)
class Config:
    # Market data source
    source: str = setting("OI_SOURCE", "demo", source_name)
    dhan_client_id: str = setting("DHAN_CLIENT_ID")
    dhan_access_token: str = setting("DHAN_ACCESS_TOKEN", secret=True)
    dhan_api_base: str = setting("DHAN_API_BASE", "https://api.dhan.co/v2", http_url)
    dhan_timeout_seconds: float = setting("DHAN_TIMEOUT_SECONDS", 10.0, number(0.1, 120))
    dhan_min_interval_seconds: float = setting("DHAN_MIN_INTERVAL_SECONDS", 3.0, number(0.01, 600))
    # Token lifecycle (oi/tokens.py): alert lead time, optional renewal via /v2/RenewToken, where a renewed token lives
    dhan_token_alert_minutes: float = setting("DHAN_TOKEN_ALERT_MINUTES", 60.0, number(0, 1440))
    dhan_auto_renew: bool = setting("DHAN_AUTO_RENEW", False, flag)
    dhan_renew_before_hours: float = setting("DHAN_RENEW_BEFORE_HOURS", 20.0, renew_before)
    dhan_token_file: Path = setting("DHAN_TOKEN_FILE", Path("var/dhan_token.json"), token_file)  # noqa: RUF009
    underlyings: dict[str, tuple[int, str]] = setting(  # noqa: RUF009
        "OI_UNDERLYINGS", parse=underlyings, factory=lambda: dict(DEFAULT_UNDERLYINGS)
    )
    lot_sizes: dict[str, int] = setting(  # noqa: RUF009
        "OI_LOT_SIZES", parse=lot_sizes, factory=lambda: dict(DEFAULT_LOT_SIZES)
    )
    symbols: tuple[str, ...] = setting("OI_SYMBOLS", ("NIFTY", "BANKNIFTY"), symbol_list)
    expiries_per_symbol: int = setting("OI_EXPIRIES_PER_SYMBOL", 1, number(1, 10, int))
    strikes_around_atm: int = setting("OI_STRIKES_AROUND_ATM", 10, number(1, 500, int))
    demo_seed: int = setting("OI_DEMO_SEED", 7, number(0, 2**31 - 1, int))
    # Store
    mongo_uri: str = setting("MONGO_URI", secret=True)
    mongo_db: str = setting("MONGO_DB", "oi")
    data_dir: Path = setting("OI_DATA_DIR", Path("var"), data_dir)  # noqa: RUF009
    # history older than this many days is dropped (prune job; TTL index on MongoDB)
    retention_days: int = setting("OI_RETENTION_DAYS", 30, number(1, 3650, int))
    # Day over day (oi/closes.py): how many earlier sessions' closing OI the page can compare with
    compare_sessions: int = setting("OI_COMPARE_SESSIONS", 20, number(0, 250, int))
    # OI alert rules, TOML (oi/alerts/); every rule is checked by from_env, so a bad one stops start-up
    alerts_file: Path | None = setting("OI_ALERTS_FILE", None, optional_path)  # noqa: RUF009
    # Clock and calendar
    market_always_open: bool = setting("OI_MARKET_ALWAYS_OPEN", False, flag)
    now: datetime | None = setting("OI_NOW", None, timestamp)  # noqa: RUF009
    extra_holidays: frozenset[date] = setting("OI_HOLIDAYS", frozenset(), dates)
    holidays_file: Path | None = setting("OI_HOLIDAYS_FILE", None, holidays_file)  # noqa: RUF009
    # Web
    host: str = setting("HOST", "127.0.0.1")
    port: int = setting("PORT", 5000, number(1, 65535, int))
    start_refresher: bool = setting("OI_REFRESHER", True, flag)
    log_level: str = setting("LOG_LEVEL", "INFO", choice("DEBUG", "INFO", "WARNING", "ERROR"))
    # Shared secret Cloudflare adds as X-Origin-Secret; when set, requests without it get 403 (oi/security.py).
    origin_secret: str = setting("ORIGIN_SECRET", parse=origin_secret, secret=True)
    # Publishing (issue #3) and DNS (issue #4)
    aws_region: str = setting("AWS_REGION", "ap-south-1")
    aws_access_key: str = setting("AWS_ACCESS_KEY", secret=True)
    aws_secret_key: str = setting("AWS_SECRET_KEY", secret=True)
    s3_bucket: str = setting("S3_BUCKET_NAME")
    archive_bucket: str = setting("ARCHIVE_BUCKET")
    s3_referer_secret: str = setting("S3_REFERER_SECRET", secret=True)
    snapshot_max_lag_minutes: int = setting("OI_SNAPSHOT_MAX_LAG_MINUTES", 30, number(0, 1440, int))
    # Every session's folder (sessions/YYYY-MM-DD/) is kept this long: an S3 lifecycle rule, set by `setup s3`.
    snapshot_keep_days: int = setting("OI_SNAPSHOT_KEEP_DAYS", 365, number(1, 36500, int))
    cloudflare_api_base: str = setting("CLOUDFLARE_API_BASE", "https://api.cloudflare.com/client/v4", base_url)
    cloudflare_api_token: str = setting("CLOUDFLARE_API_TOKEN", secret=True)
    cloudflare_zone_id: str = setting("CLOUDFLARE_ZONE_ID")
    cloudflare_proxied: bool = setting("CLOUDFLARE_PROXIED", True, flag)
    domain_name: str = setting("DOMAIN_NAME")
    target_cname: str = setting("TARGET_CNAME")
    telegram_api_base: str = setting("TELEGRAM_API_BASE", "https://api.telegram.org", base_url)
    telegram_bot_token: str = setting("TELEGRAM_BOT_TOKEN", secret=True)
    telegram_chat_id: str = setting("TELEGRAM_CHAT_ID")
    ec2_instance_id: str = setting("EC2_INSTANCE_ID")
    ec2_public_ip: str = setting("EC2_PUBLIC_IP")
    imds_base: str = setting("IMDS_BASE", "http://169.254.169.254", base_url)
    scheduler_role_arn: str = setting("SCHEDULER_ROLE_ARN")
    schedule_start: str = setting("SCHEDULE_START", "08:50", hhmm)
    schedule_stop: str = setting("SCHEDULE_STOP", "15:45", hhmm)
    schedule_timezone: str = setting("SCHEDULE_TIMEZONE", "Asia/Kolkata")
    # Live market feed (oi/feed/, issue #13). OI_FEED=auto (default) | on | off; from_env resolves it to what runs:
    # "dhan" (Dhan's feed, with Dhan credentials), "demo" (simulated ticks) or "off".
    feed: str = setting("OI_FEED", "auto", feed_mode)
    dhan_feed_url: str = setting("DHAN_FEED_URL", "wss://api-feed.dhan.co", ws_url)
    feed_strikes: int = setting("OI_FEED_STRIKES", 20, number(1, 200, int))
    # Dhan allows 5 connections per user; one is left for the operator's own tools.
    feed_connections: int = setting("OI_FEED_CONNECTIONS", 1, number(1, 4, int))
    dhan_instruments_url: str = setting(
        "DHAN_INSTRUMENTS_URL", "https://images.dhan.co/api-data/api-scrip-master.csv", http_url
    )
    rest_period_with_feed_seconds: float = setting("OI_REST_PERIOD_WITH_FEED_SECONDS", 30.0, number(1, 600))
    # python -m oi doctor: a URL whose HTTP Date header the clock is compared with (default: DHAN_API_BASE)
    clock_check_url: str = setting("OI_CLOCK_CHECK_URL", "", base_url)

    @property
    def refresh_period_seconds(self) -> float:
        """How long one full round over every (symbol, expiry) takes at the global pace."""
        return self.dhan_min_interval_seconds * max(1, len(self.symbols) * self.expiries_per_symbol)

    def secrets(self) -> list[str]:
        """Secret values in force, for redaction."""
        values = [
            self.dhan_access_token,
            self.aws_access_key,  # not a secret by itself, but botocore's DEBUG log writes it in Authorization
            self.aws_secret_key,
            self.cloudflare_api_token,
            self.telegram_bot_token,
            self.s3_referer_secret,
            self.origin_secret,
        ]
        return [v for v in values if v and len(v) >= 4]


def require(config: Config, *fields: tuple[str, str]) -> None:
    """Raise :class:`ConfigError` naming every variable, given as (attribute, VARIABLE) pairs, that is empty."""
    missing = [env for attr, env in fields if not getattr(config, attr)]
    if missing:
        raise ConfigError(f"missing configuration: {', '.join(missing)}")


def parse_now(raw: str, name: str = "OI_NOW") -> datetime:
    """Parse an ISO-8601 timestamp that must carry its UTC offset (a naive time is ambiguous: IST or UTC?)."""
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an ISO-8601 timestamp") from None
    if value.tzinfo is None:
        raise ConfigError(f"{name}={raw!r} needs a UTC offset, e.g. 2026-11-23T10:00:00+05:30")
    return value


def process_env(env_file: Path | None = None) -> dict[str, str]:
    """The environment of this process over the values in `env_file` (default: ``.env`` of the install directory),
    as a new mapping: ``os.environ`` is never changed, so nothing a command does leaks into another's environment."""
    from dotenv import dotenv_values  # late: only entry points need it

    env_file = env_file or Path(__file__).resolve().parent.parent / ".env"
    values = dotenv_values(env_file) if env_file.is_file() else {}
    return {**{k: v for k, v in values.items() if v is not None}, **os.environ}


def variables() -> dict[str, str]:
    """VARIABLE -> Config attribute, for every setting."""
    return {f.metadata["env"]: f.name for f in fields(Config) if "env" in f.metadata}


def from_env(env: Mapping[str, str] | None = None) -> Config:
    """Build a validated :class:`Config` from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(Config):
        default = f.default if f.default_factory is MISSING else f.default_factory()
        values[f.name] = f.metadata["parse"](env, f.metadata["env"], default)
    # Checks that span settings.
    unknown = [s for s in values["symbols"] if s not in values["underlyings"]]
    if values["source"] == "dhan":
        # F&O stocks: resolved by the service at start-up from Dhan's instrument master (oi/breadth.py), so only
        # names that cannot be a trading symbol are refused here, without the network.
        unknown = [s for s in unknown if not TRADING_SYMBOL.fullmatch(s)]
    if unknown:
        raise ConfigError(f"OI_SYMBOLS: unknown symbol(s) {', '.join(unknown)}; add them with OI_UNDERLYINGS")
    if values["origin_secret"] and not values["cloudflare_proxied"]:
        # Without the proxy visitors reach the instance directly, without the header: every request would be 403.
        raise ConfigError("ORIGIN_SECRET needs CLOUDFLARE_PROXIED=1 (only Cloudflare adds X-Origin-Secret)")
    values["feed"] = "off" if values["feed"] == "off" else values["source"]
    if values["alerts_file"] is not None:
        from oi.alerts import load_rules  # late: oi.alerts imports ConfigError from here

        load_rules(values["alerts_file"], values["symbols"], values["lot_sizes"])  # a bad rule names itself
    return Config(**values)
