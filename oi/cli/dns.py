"""``dns day`` / ``dns night`` (``update_to_a_record.py`` / ``update_to_cname_record.py``): the day/night switch.

Exit codes: 0 done or nothing to do, 1 failure (gate not met, Cloudflare/AWS error; DNS left as it was), 2 usage or
configuration error. Each failure is one clear log line plus, when configured, a Telegram message.
"""

from __future__ import annotations

import logging

import click

from oi.cli.startup import FAILED, OK, Services, config_error, dry_run_option, services
from oi.cloudflare import CloudflareError, cloudflare_from_config
from oi.config import Config, ConfigError, require
from oi.dns import (
    FlipError,
    FlipResult,
    GateError,
    Wanted,
    check_snapshot,
    ensure_record,
    expected_snapshot_session,
    flip_lock,
    wait_healthy,
)
from oi.ec2 import Imds, ImdsError, stop_instance, validate_ipv4
from oi.market.calendar import IST, calendar_from_config, clock_from_config
from oi.notify import Notifier
from oi.s3 import make_client, website_endpoint

log = logging.getLogger(__name__)

CLOUDFLARE_FIELDS = (
    ("cloudflare_api_token", "CLOUDFLARE_API_TOKEN"),
    ("cloudflare_zone_id", "CLOUDFLARE_ZONE_ID"),
    ("domain_name", "DOMAIN_NAME"),
)


def _flip_summary(result: FlipResult) -> str:
    text = "; ".join(result.actions)
    if result.deduplicated:
        text += f" (found {len(result.before)} address records, fixed to exactly one)"
    return text


def _flip(svc: Services, wanted: Wanted, dry_run: bool) -> FlipResult:
    config = svc.config
    cf = cloudflare_from_config(config, svc.http)
    if dry_run:
        return ensure_record(cf, config.domain_name, wanted, dry_run=True)
    with flip_lock(config.data_dir):  # a day flip and a night flip on this box never interleave
        return ensure_record(cf, config.domain_name, wanted)


# --------------------------------------------------------------------------------------------- night: CNAME

NIGHT_HELP = (
    "Point DOMAIN_NAME at the S3 static snapshot (one CNAME record), once the snapshot of the latest completed "
    "session is in S3_BUCKET_NAME."
)


@click.command("night", help=NIGHT_HELP, short_help="DOMAIN_NAME -> the S3 snapshot (CNAME), once it is there")
@click.option("--target", metavar="HOST", help="CNAME target (default TARGET_CNAME, else the S3 website endpoint)")
@click.option("--force", is_flag=True, help="skip the snapshot check")
@dry_run_option
def night(target: str | None, force: bool, dry_run: bool) -> int:
    svc = services()
    config = svc.config
    try:
        require(config, *CLOUDFLARE_FIELDS)
        if not (target or config.target_cname) or not force:
            require(config, ("s3_bucket", "S3_BUCKET_NAME"))
    except ConfigError as exc:
        raise config_error(exc) from None
    domain = config.domain_name
    chosen = target or config.target_cname or website_endpoint(config.s3_bucket, config.aws_region)
    if not (target or config.target_cname) and config.s3_bucket.lower() != domain.lower():
        # S3 website endpoints pick the bucket from the Host header, i.e. from DOMAIN_NAME.
        log.warning(
            "S3_BUCKET_NAME=%s differs from DOMAIN_NAME=%s: S3 will not serve it via CNAME", config.s3_bucket, domain
        )
    notifier = Notifier.from_config(config, prefix=f"[{domain}] ")
    try:
        session = None
        if force:
            log.warning("gate: snapshot check skipped (--force)")
        else:
            now = clock_from_config(config)()
            expected = expected_snapshot_session(calendar_from_config(config), now)
            session = check_snapshot(svc.s3 or make_client(config, "s3"), config.s3_bucket, expected)
        result = _flip(svc, Wanted("CNAME", chosen, config.cloudflare_proxied), dry_run)
    except GateError as exc:
        log.error("no flip to the snapshot: %s", exc)
        notifier.send(f"Night flip NOT done: {exc}. DNS unchanged (still the instance?).")
        return FAILED
    except (CloudflareError, FlipError) as exc:
        log.error("flip to the snapshot failed: %s", exc)
        notifier.send(f"Night flip FAILED: {exc}")
        return FAILED
    except Exception as exc:  # cron needs one line and a message, not a traceback
        log.debug("unexpected error", exc_info=True)
        log.error("flip to the snapshot failed: %s: %s", type(exc).__name__, exc)
        notifier.send(f"Night flip FAILED: {type(exc).__name__}: {exc}")
        return FAILED
    if result.changed and not dry_run:
        what = f"snapshot of {session}" if session else "snapshot (unchecked, --force)"
        log.info("flipped %s to the S3 %s via CNAME %s", domain, what, chosen)
        notifier.send(f"Night: now serving the S3 {what}. {_flip_summary(result)}")
    return OK


# -------------------------------------------------------------------------------------------------- day: A

DAY_HELP = (
    "Point DOMAIN_NAME at this instance (one A record) once the app answers healthy. "
    "On weekends and NSE holidays it changes nothing (and can stop the instance)."
)


def _holiday_stop(svc: Services, config: Config, notifier: Notifier, reason: str, dry_run: bool) -> int:
    try:
        instance_id = config.ec2_instance_id or Imds(config.imds_base).instance_id()
        stop_instance(svc.ec2 or make_client(config, "ec2"), instance_id, dry_run=dry_run)
    except Exception as exc:  # noqa: BLE001 - report any AWS/IMDS failure as one line
        log.error("%s, but the instance could not be stopped: %s: %s", reason, type(exc).__name__, exc)
        notifier.send(f"{reason}: could NOT stop the instance: {type(exc).__name__}: {exc}")
        return FAILED
    if not dry_run:
        notifier.send(f"{reason}: no market today; instance {instance_id} stopped, the site stays on the snapshot.")
    return OK


def _non_negative(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value < 0:
        raise click.BadParameter("--wait must be >= 0")
    return value


@click.command("day", help=DAY_HELP, short_help="DOMAIN_NAME -> this instance (A), once it is healthy")
@click.option("--ip", metavar="ADDR", help="public IPv4 (default EC2_PUBLIC_IP, else IMDSv2)")
@click.option("--health-url", metavar="URL", help="health URL (default http://127.0.0.1:$PORT/healthz)")
@click.option(
    "--wait",
    type=float,
    default=180.0,
    metavar="SECONDS",
    callback=_non_negative,
    help="how long to wait for health (180)",
)
@click.option("--force", is_flag=True, help="skip the holiday and health checks")
@dry_run_option
@click.option("--stop-on-holiday", is_flag=True, help="on a weekend/NSE holiday, stop this instance")
def day(ip: str | None, health_url: str | None, wait: float, force: bool, dry_run: bool, stop_on_holiday: bool) -> int:
    svc = services()
    config = svc.config
    try:
        require(config, *CLOUDFLARE_FIELDS)
        address = validate_ipv4(ip or config.ec2_public_ip) if (ip or config.ec2_public_ip) else None
    except (ConfigError, ValueError) as exc:
        raise config_error(exc) from None
    domain = config.domain_name
    notifier = Notifier.from_config(config, prefix=f"[{domain}] ")

    today = clock_from_config(config)().astimezone(IST).date()
    calendar = calendar_from_config(config)
    if not calendar.is_trading_day(today):
        reason = f"{today} is {'a weekend day' if today.weekday() >= 5 else 'an NSE holiday'}"
        if force:
            log.warning("%s; flipping anyway (--force)", reason)
        else:
            log.info("%s: DNS left unchanged", reason)
            return _holiday_stop(svc, config, notifier, reason, dry_run) if stop_on_holiday else OK

    health_url = health_url or f"http://127.0.0.1:{config.port}/healthz"
    try:
        if address is None:
            address = Imds(config.imds_base).public_ipv4()
            log.info("imds: public IPv4 is %s", address)
        if force:
            log.warning("gate: health check skipped (--force)")
        else:
            wait_healthy(health_url, wait)
        result = _flip(svc, Wanted("A", address, config.cloudflare_proxied), dry_run)
    except GateError as exc:
        log.error("no flip to the instance: %s", exc)
        notifier.send(f"Day flip NOT done: {exc}. DNS unchanged (still the snapshot?).")
        return FAILED
    except (CloudflareError, FlipError, ImdsError) as exc:
        log.error("flip to the instance failed: %s", exc)
        notifier.send(f"Day flip FAILED: {exc}")
        return FAILED
    except Exception as exc:
        log.debug("unexpected error", exc_info=True)
        log.error("flip to the instance failed: %s: %s", type(exc).__name__, exc)
        notifier.send(f"Day flip FAILED: {type(exc).__name__}: {exc}")
        return FAILED
    if result.changed and not dry_run:
        log.info("flipped %s to the instance at %s", domain, address)
        notifier.send(f"Day: now serving live from the instance {address}. {_flip_summary(result)}")
    return OK


@click.group(
    "dns",
    help="Flip DOMAIN_NAME between this instance (day) and the S3 snapshot (night).",
    short_help="flip DOMAIN_NAME: day (instance) or night (S3)",
)
def dns() -> None:
    pass


dns.add_command(day)
dns.add_command(night)
