"""Configuration: the only module that reads the environment.

Entry points call :func:`load_dotenv` (python-dotenv) and then :func:`from_env`; everything else receives a
:class:`Config`. Invalid values raise :class:`ConfigError` naming the variable, so a typo in `.env` stops the
service at start-up instead of surfacing as odd behaviour at 09:15.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

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


@dataclass(frozen=True)
class Config:
    # Market data source
    source: str = "demo"
    dhan_client_id: str = ""
    dhan_access_token: str = field(default="", repr=False)
    dhan_api_base: str = "https://api.dhan.co/v2"
    dhan_timeout_seconds: float = 10.0
    dhan_min_interval_seconds: float = 3.0
    # Token lifecycle (oi/tokens.py): alert lead time, optional renewal via /v2/RenewToken, where a renewed token lives
    dhan_token_alert_minutes: float = 60.0
    dhan_auto_renew: bool = False
    dhan_renew_before_hours: float = 20.0
    dhan_token_file: Path = Path("var/dhan_token.json")
    underlyings: dict[str, tuple[int, str]] = field(default_factory=lambda: dict(DEFAULT_UNDERLYINGS))
    lot_sizes: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LOT_SIZES))
    symbols: tuple[str, ...] = ("NIFTY", "BANKNIFTY")
    expiries_per_symbol: int = 1
    strikes_around_atm: int = 10
    demo_seed: int = 7
    # Store
    mongo_uri: str = field(default="", repr=False)
    mongo_db: str = "oi"
    data_dir: Path = Path("var")
    retention_days: int = 30  # history older than this many days is dropped (prune job; TTL index on MongoDB)
    # Clock and calendar
    market_always_open: bool = False
    now: datetime | None = None
    extra_holidays: frozenset[date] = frozenset()
    holidays_file: Path | None = None
    # Web
    host: str = "127.0.0.1"
    port: int = 5000
    start_refresher: bool = True
    log_level: str = "INFO"
    # Shared secret Cloudflare adds as X-Origin-Secret; when set, requests without it get 403 (oi/security.py).
    origin_secret: str = field(default="", repr=False)
    # Publishing (issue #3) and DNS (issue #4)
    aws_region: str = "ap-south-1"
    aws_access_key: str = field(default="", repr=False)
    aws_secret_key: str = field(default="", repr=False)
    s3_bucket: str = ""
    archive_bucket: str = ""
    s3_referer_secret: str = field(default="", repr=False)
    snapshot_max_lag_minutes: int = 30
    cloudflare_api_base: str = "https://api.cloudflare.com/client/v4"
    cloudflare_api_token: str = field(default="", repr=False)
    cloudflare_zone_id: str = ""
    cloudflare_proxied: bool = True
    domain_name: str = ""
    target_cname: str = ""
    telegram_api_base: str = "https://api.telegram.org"
    telegram_bot_token: str = field(default="", repr=False)
    telegram_chat_id: str = ""
    ec2_instance_id: str = ""
    ec2_public_ip: str = ""
    imds_base: str = "http://169.254.169.254"
    scheduler_role_arn: str = ""
    schedule_start: str = "08:50"
    schedule_stop: str = "15:45"
    schedule_timezone: str = "Asia/Kolkata"
    # Live market feed (oi/feed/, issue #13): "dhan", "demo" (simulated ticks) or "off"; resolved from OI_FEED
    feed: str = "off"
    dhan_feed_url: str = "wss://api-feed.dhan.co"
    feed_strikes: int = 20
    feed_connections: int = 1
    dhan_instruments_url: str = "https://images.dhan.co/api-data/api-scrip-master.csv"
    rest_period_with_feed_seconds: float = 30.0

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


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={env[name]!r} is not a boolean (use 1 or 0)")


def _number(env: Mapping[str, str], name: str, default: float, kind: type = float, minimum: float = 0) -> float:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _dates(env: Mapping[str, str], name: str) -> frozenset[date]:
    out = set()
    for part in env.get(name, "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.add(date.fromisoformat(part))
        except ValueError:
            raise ConfigError(f"{name}: {part!r} is not a date (YYYY-MM-DD)") from None
    return frozenset(out)


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().upper() or default
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return raw


def _hhmm(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    try:
        datetime.strptime(raw, "%H:%M")
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a time of day (HH:MM)") from None
    return raw


def _underlyings(env: Mapping[str, str]) -> dict[str, tuple[int, str]]:
    table = dict(DEFAULT_UNDERLYINGS)
    for part in env.get("OI_UNDERLYINGS", "").split(","):
        part = part.strip()
        if not part:
            continue
        bits = part.split(":")
        if len(bits) not in (2, 3) or not bits[1].strip().isdigit():
            raise ConfigError(f"OI_UNDERLYINGS: {part!r} is not SYMBOL:SECURITY_ID[:SEGMENT]")
        segment = bits[2].strip() if len(bits) == 3 else "IDX_I"
        table[bits[0].strip().upper()] = (int(bits[1]), segment)
    return table


def _lot_sizes(env: Mapping[str, str]) -> dict[str, int]:
    table = dict(DEFAULT_LOT_SIZES)
    for part in env.get("OI_LOT_SIZES", "").split(","):
        if not part.strip():
            continue
        name, _, size = part.partition(":")
        if not size.strip().isdigit() or int(size) < 1:
            raise ConfigError(f"OI_LOT_SIZES: {part.strip()!r} is not SYMBOL:SIZE with a positive size")
        table[name.strip().upper()] = int(size)
    return table


def _origin_secret(env: Mapping[str, str]) -> str:
    raw = env.get("ORIGIN_SECRET", "").strip()
    if not raw:
        return ""
    # Never echo the value: this message reaches the console and the logs.
    if len(raw) < 16 or not all("!" <= c <= "~" for c in raw):
        raise ConfigError("ORIGIN_SECRET must be at least 16 printable ASCII characters without spaces")
    if not _bool(env, "CLOUDFLARE_PROXIED", True):
        # Without the proxy visitors reach the instance directly, without the header: every request would be 403.
        raise ConfigError("ORIGIN_SECRET needs CLOUDFLARE_PROXIED=1 (only Cloudflare adds X-Origin-Secret)")
    return raw


def _renew_before(env: Mapping[str, str]) -> float:
    hours = _number(env, "DHAN_RENEW_BEFORE_HOURS", 20.0, minimum=0.1)
    if hours >= 24:
        # Tokens last 24 h: a threshold that long would renew on every pass of the watch.
        raise ConfigError(f"DHAN_RENEW_BEFORE_HOURS={hours:g} must be less than 24")
    return hours


def _feed(env: Mapping[str, str], source: str) -> dict:
    """OI_FEED=auto (default) | on | off and its settings. auto and on follow the source: Dhan's live feed with
    Dhan credentials, simulated ticks with the demo."""
    mode = env.get("OI_FEED", "").strip().lower() or "auto"
    if mode not in {"auto", "on", "off"}:
        raise ConfigError(f"OI_FEED={mode!r} must be auto, on or off")
    url = env.get("DHAN_FEED_URL", "").strip() or "wss://api-feed.dhan.co"
    if not url.startswith(("ws://", "wss://")):
        raise ConfigError(f"DHAN_FEED_URL={url!r} must be a ws(s):// URL")
    master = env.get("DHAN_INSTRUMENTS_URL", "").strip() or Config.dhan_instruments_url
    if not master.startswith(("http://", "https://")):
        raise ConfigError(f"DHAN_INSTRUMENTS_URL={master!r} must be an http(s) URL")
    connections = int(_number(env, "OI_FEED_CONNECTIONS", 1, int, minimum=1))
    if connections > 4:  # Dhan allows 5 per user; one is left for the operator's own tools
        raise ConfigError(f"OI_FEED_CONNECTIONS={connections} must be at most 4")
    return {
        "feed": "off" if mode == "off" else source,
        "dhan_feed_url": url,
        "feed_strikes": int(_number(env, "OI_FEED_STRIKES", 20, int, minimum=1)),
        "feed_connections": connections,
        "dhan_instruments_url": master,
        "rest_period_with_feed_seconds": _number(env, "OI_REST_PERIOD_WITH_FEED_SECONDS", 30.0, minimum=1),
    }


def parse_now(raw: str, name: str = "OI_NOW") -> datetime:
    """Parse an ISO-8601 timestamp that must carry its UTC offset (a naive time is ambiguous: IST or UTC?)."""
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an ISO-8601 timestamp") from None
    if value.tzinfo is None:
        raise ConfigError(f"{name}={raw!r} needs a UTC offset, e.g. 2026-11-23T10:00:00+05:30")
    return value


def from_env(env: Mapping[str, str] | None = None) -> Config:
    """Build a validated :class:`Config` from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    get = lambda name, default="": env.get(name, default).strip()  # noqa: E731

    client_id, token = get("DHAN_CLIENT_ID"), get("DHAN_ACCESS_TOKEN")
    source = get("OI_SOURCE").lower() or ("dhan" if client_id and token else "demo")
    if source not in {"dhan", "demo"}:
        raise ConfigError(f"OI_SOURCE={source!r} must be 'dhan' or 'demo'")
    if source == "dhan" and not (client_id and token):
        raise ConfigError("OI_SOURCE=dhan needs DHAN_CLIENT_ID and DHAN_ACCESS_TOKEN")

    underlyings = _underlyings(env)
    symbols = tuple(dict.fromkeys(s.strip().upper() for s in get("OI_SYMBOLS", "NIFTY,BANKNIFTY").split(",")))
    symbols = tuple(s for s in symbols if s)
    if not symbols:
        raise ConfigError("OI_SYMBOLS is empty")
    unknown = [s for s in symbols if s not in underlyings]
    if unknown:
        raise ConfigError(f"OI_SYMBOLS: unknown symbol(s) {', '.join(unknown)}; add them with OI_UNDERLYINGS")

    dhan_api_base = get("DHAN_API_BASE", "https://api.dhan.co/v2").rstrip("/")
    if not dhan_api_base.startswith(("http://", "https://")):
        raise ConfigError(f"DHAN_API_BASE={dhan_api_base!r} must be an http(s) URL")

    now_raw = get("OI_NOW")
    holidays_file = get("OI_HOLIDAYS_FILE")
    return Config(
        source=source,
        dhan_client_id=client_id,
        dhan_access_token=token,
        dhan_api_base=dhan_api_base,
        dhan_timeout_seconds=_number(env, "DHAN_TIMEOUT_SECONDS", 10.0, minimum=0.1),
        dhan_min_interval_seconds=_number(env, "DHAN_MIN_INTERVAL_SECONDS", 3.0, minimum=0.01),
        dhan_token_alert_minutes=_number(env, "DHAN_TOKEN_ALERT_MINUTES", 60.0),
        dhan_auto_renew=_bool(env, "DHAN_AUTO_RENEW", False),
        dhan_renew_before_hours=_renew_before(env),
        dhan_token_file=Path(get("DHAN_TOKEN_FILE") or Path(get("OI_DATA_DIR", "var") or "var") / "dhan_token.json"),
        underlyings=underlyings,
        lot_sizes=_lot_sizes(env),
        symbols=symbols,
        expiries_per_symbol=int(_number(env, "OI_EXPIRIES_PER_SYMBOL", 1, int, minimum=1)),
        strikes_around_atm=int(_number(env, "OI_STRIKES_AROUND_ATM", 10, int, minimum=1)),
        demo_seed=int(_number(env, "OI_DEMO_SEED", 7, int)),
        mongo_uri=get("MONGO_URI"),
        mongo_db=get("MONGO_DB", "oi") or "oi",
        data_dir=Path(get("OI_DATA_DIR", "var") or "var"),
        retention_days=int(_number(env, "OI_RETENTION_DAYS", 30, int, minimum=1)),
        market_always_open=_bool(env, "OI_MARKET_ALWAYS_OPEN", False),
        now=parse_now(now_raw) if now_raw else None,
        extra_holidays=_dates(env, "OI_HOLIDAYS"),
        holidays_file=Path(holidays_file) if holidays_file else None,
        host=get("HOST", "127.0.0.1") or "127.0.0.1",
        port=int(_number(env, "PORT", 5000, int, minimum=1)),
        start_refresher=_bool(env, "OI_REFRESHER", True),
        log_level=_choice(env, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        origin_secret=_origin_secret(env),
        aws_region=get("AWS_REGION", "ap-south-1") or "ap-south-1",
        aws_access_key=get("AWS_ACCESS_KEY"),
        aws_secret_key=get("AWS_SECRET_KEY"),
        s3_bucket=get("S3_BUCKET_NAME"),
        archive_bucket=get("ARCHIVE_BUCKET"),
        s3_referer_secret=get("S3_REFERER_SECRET"),
        snapshot_max_lag_minutes=int(_number(env, "OI_SNAPSHOT_MAX_LAG_MINUTES", 30, int)),
        cloudflare_api_base=get("CLOUDFLARE_API_BASE", "https://api.cloudflare.com/client/v4").rstrip("/"),
        cloudflare_api_token=get("CLOUDFLARE_API_TOKEN"),
        cloudflare_zone_id=get("CLOUDFLARE_ZONE_ID"),
        cloudflare_proxied=_bool(env, "CLOUDFLARE_PROXIED", True),
        domain_name=get("DOMAIN_NAME"),
        target_cname=get("TARGET_CNAME"),
        telegram_api_base=get("TELEGRAM_API_BASE", "https://api.telegram.org").rstrip("/"),
        telegram_bot_token=get("TELEGRAM_BOT_TOKEN"),
        telegram_chat_id=get("TELEGRAM_CHAT_ID"),
        ec2_instance_id=get("EC2_INSTANCE_ID"),
        ec2_public_ip=get("EC2_PUBLIC_IP"),
        imds_base=get("IMDS_BASE", "http://169.254.169.254").rstrip("/"),
        scheduler_role_arn=get("SCHEDULER_ROLE_ARN"),
        schedule_start=_hhmm(env, "SCHEDULE_START", "08:50"),
        schedule_stop=_hhmm(env, "SCHEDULE_STOP", "15:45"),
        schedule_timezone=get("SCHEDULE_TIMEZONE", "Asia/Kolkata") or "Asia/Kolkata",
        **_feed(env, source),
    )
