"""Command-line entry points of the day/night DNS switch (update_to_a_record.py, update_to_cname_record.py).

Exit codes: 0 done or nothing to do, 1 failure (gate not met, Cloudflare/AWS error; DNS left as it was), 2 usage or
configuration error. Each failure is one clear log line plus, when configured, a Telegram message.
"""

from __future__ import annotations

import argparse
import logging
import sys

from oi.config import Config, ConfigError, from_env, require
from oi.dns import (
    CloudflareError,
    FlipError,
    FlipResult,
    GateError,
    Wanted,
    check_snapshot,
    cloudflare_from_config,
    ensure_record,
    expected_snapshot_session,
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


# --------------------------------------------------------------------------------------------- night: CNAME


def cname_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="update_to_cname_record.py",
        description="Point DOMAIN_NAME at the S3 static snapshot (one CNAME record), once the snapshot of the "
        "latest completed session is in S3_BUCKET_NAME.",
    )
    p.add_argument("--target", metavar="HOST", help="CNAME target (default TARGET_CNAME, else the S3 website endpoint)")
    p.add_argument("--force", action="store_true", help="skip the snapshot check")
    p.add_argument("--dry-run", action="store_true", help="check and print what would change; write nothing")
    return p


def main_cname(argv: list[str] | None = None) -> int:
    args = cname_parser().parse_args(argv)
    try:
        config = from_env()
        require(config, *CLOUDFLARE_FIELDS)
        if not (args.target or config.target_cname):
            require(config, ("s3_bucket", "S3_BUCKET_NAME"))
        if not args.force:
            require(config, ("s3_bucket", "S3_BUCKET_NAME"))
    except ConfigError as exc:
        print(f"update_to_cname_record: configuration error: {exc}", file=sys.stderr)
        return 2
    domain = config.domain_name
    target = args.target or config.target_cname or website_endpoint(config.s3_bucket, config.aws_region)
    if not (args.target or config.target_cname) and config.s3_bucket.lower() != domain.lower():
        # S3 website endpoints pick the bucket from the Host header, i.e. from DOMAIN_NAME.
        log.warning(
            "S3_BUCKET_NAME=%s differs from DOMAIN_NAME=%s: S3 will not serve it via CNAME", config.s3_bucket, domain
        )
    notifier = Notifier.from_config(config, prefix=f"[{domain}] ")
    try:
        session = None
        if args.force:
            log.warning("gate: snapshot check skipped (--force)")
        else:
            now = clock_from_config(config)()
            expected = expected_snapshot_session(calendar_from_config(config), now)
            session = check_snapshot(make_client(config, "s3"), config.s3_bucket, expected)
        result = ensure_record(
            cloudflare_from_config(config), domain, Wanted("CNAME", target, config.cloudflare_proxied), args.dry_run
        )
    except GateError as exc:
        log.error("no flip to the snapshot: %s", exc)
        notifier.send(f"Night flip NOT done: {exc}. DNS unchanged (still the instance?).")
        return 1
    except (CloudflareError, FlipError) as exc:
        log.error("flip to the snapshot failed: %s", exc)
        notifier.send(f"Night flip FAILED: {exc}")
        return 1
    except Exception as exc:  # cron needs one line and a message, not a traceback
        log.debug("unexpected error", exc_info=True)
        log.error("flip to the snapshot failed: %s: %s", type(exc).__name__, exc)
        notifier.send(f"Night flip FAILED: {type(exc).__name__}: {exc}")
        return 1
    if result.changed and not args.dry_run:
        what = f"snapshot of {session}" if session else "snapshot (unchecked, --force)"
        log.info("flipped %s to the S3 %s via CNAME %s", domain, what, target)
        notifier.send(f"Night: now serving the S3 {what}. {_flip_summary(result)}")
    return 0


# -------------------------------------------------------------------------------------------------- day: A


def a_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="update_to_a_record.py",
        description="Point DOMAIN_NAME at this instance (one A record) once the app answers healthy. "
        "On weekends and NSE holidays it changes nothing (and can stop the instance).",
    )
    p.add_argument("--ip", metavar="ADDR", help="public IPv4 (default EC2_PUBLIC_IP, else IMDSv2)")
    p.add_argument("--health-url", metavar="URL", help="health URL (default http://127.0.0.1:$PORT/healthz)")
    p.add_argument("--wait", type=float, default=180.0, metavar="SECONDS", help="how long to wait for health (180)")
    p.add_argument("--force", action="store_true", help="skip the holiday and health checks")
    p.add_argument("--dry-run", action="store_true", help="check and print what would change; write nothing")
    p.add_argument("--stop-on-holiday", action="store_true", help="on a weekend/NSE holiday, stop this instance")
    return p


def _holiday_stop(config: Config, notifier: Notifier, reason: str, dry_run: bool) -> int:
    try:
        instance_id = config.ec2_instance_id or Imds(config.imds_base).instance_id()
        stop_instance(make_client(config, "ec2"), instance_id, dry_run=dry_run)
    except Exception as exc:  # noqa: BLE001 - report any AWS/IMDS failure as one line
        log.error("%s, but the instance could not be stopped: %s: %s", reason, type(exc).__name__, exc)
        notifier.send(f"{reason}: could NOT stop the instance: {type(exc).__name__}: {exc}")
        return 1
    if not dry_run:
        notifier.send(f"{reason}: no market today; instance {instance_id} stopped, the site stays on the snapshot.")
    return 0


def main_a(argv: list[str] | None = None) -> int:
    parser = a_parser()
    args = parser.parse_args(argv)
    if args.wait < 0:
        parser.error("--wait must be >= 0")
    try:
        config = from_env()
        require(config, *CLOUDFLARE_FIELDS)
        ip = validate_ipv4(args.ip or config.ec2_public_ip) if (args.ip or config.ec2_public_ip) else None
    except (ConfigError, ValueError) as exc:
        print(f"update_to_a_record: configuration error: {exc}", file=sys.stderr)
        return 2
    domain = config.domain_name
    notifier = Notifier.from_config(config, prefix=f"[{domain}] ")

    today = clock_from_config(config)().astimezone(IST).date()
    calendar = calendar_from_config(config)
    if not calendar.is_trading_day(today):
        reason = f"{today} is {'a weekend day' if today.weekday() >= 5 else 'an NSE holiday'}"
        if args.force:
            log.warning("%s; flipping anyway (--force)", reason)
        else:
            log.info("%s: DNS left unchanged", reason)
            return _holiday_stop(config, notifier, reason, args.dry_run) if args.stop_on_holiday else 0

    health_url = args.health_url or f"http://127.0.0.1:{config.port}/healthz"
    try:
        if ip is None:
            ip = Imds(config.imds_base).public_ipv4()
            log.info("imds: public IPv4 is %s", ip)
        if args.force:
            log.warning("gate: health check skipped (--force)")
        else:
            wait_healthy(health_url, args.wait)
        result = ensure_record(
            cloudflare_from_config(config), domain, Wanted("A", ip, config.cloudflare_proxied), args.dry_run
        )
    except GateError as exc:
        log.error("no flip to the instance: %s", exc)
        notifier.send(f"Day flip NOT done: {exc}. DNS unchanged (still the snapshot?).")
        return 1
    except (CloudflareError, FlipError, ImdsError) as exc:
        log.error("flip to the instance failed: %s", exc)
        notifier.send(f"Day flip FAILED: {exc}")
        return 1
    except Exception as exc:
        log.debug("unexpected error", exc_info=True)
        log.error("flip to the instance failed: %s: %s", type(exc).__name__, exc)
        notifier.send(f"Day flip FAILED: {type(exc).__name__}: {exc}")
        return 1
    if result.changed and not args.dry_run:
        log.info("flipped %s to the instance at %s", domain, ip)
        notifier.send(f"Day: now serving live from the instance {ip}. {_flip_summary(result)}")
    return 0
