"""``setup s3|schedules|cloudflare``: the one-time (idempotent) set-up of a deployment; re-run any of them safely.

Exit codes: 0 done (or nothing to change), 1 AWS/Cloudflare refused or failed (one line, secrets masked), 2 usage
or configuration error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click
from botocore.exceptions import BotoCoreError, ClientError

from oi.cli.startup import OK, USAGE, Failure, config_error, dry_run_option, services
from oi.cloudflare import CloudflareError, cloudflare_from_config
from oi.config import ConfigError, require
from oi.s3 import make_client
from oi.setup import bucket, rules, schedules

log = logging.getLogger(__name__)
MASK = "***"


def _masked(text: str, *secrets: str) -> str:
    for secret in secrets:  # in case an API echoes a policy or rule back
        if secret:
            text = text.replace(secret, MASK)
    return text


def _client_error_line(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "?"), error.get("Message", "")
    line = f"AWS error in {exc.operation_name}: {code}" + (f": {message}" if message else "")
    if exc.operation_name == "PutBucketPolicy" and code == "AccessDenied":
        line += " (is S3 Block Public Access on at the account level? It overrides the bucket's setting)"
    return line


@click.command(
    "s3",
    short_help="create/configure the snapshot bucket (website, locked policy)",
    help="Create (if missing) and configure S3_BUCKET_NAME: website hosting, public access block, Referer-locked "
    "bucket policy. Safe to re-run.",
)
@click.option("--dry-run", is_flag=True, help="print what would be done (secret masked); no AWS call")
@click.option(
    "--lock",
    type=click.Choice(["referer", "cloudflare-ips"]),
    default="referer",
    show_default=True,
    help="what the bucket policy requires: the Referer secret Cloudflare adds, or a source address in --ips-file",
)
@click.option(
    "--ips-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Cloudflare's IPv4 and IPv6 ranges, one CIDR a line (cloudflare.com/ips-v4 and /ips-v6)",
)
def s3(dry_run: bool, lock: str, ips_file: Path | None) -> int:
    svc = services()
    config = svc.config
    if not config.s3_bucket:
        raise config_error("S3_BUCKET_NAME is not set (name it exactly like DOMAIN_NAME)")
    if (lock == "cloudflare-ips") != (ips_file is not None):
        raise Failure("--lock cloudflare-ips and --ips-file go together", USAGE)
    secret = config.s3_referer_secret
    try:
        ranges = bucket.read_ranges(ips_file) if ips_file is not None else None
    except (OSError, ValueError) as exc:
        raise Failure(f"--ips-file: {exc}", USAGE) from None
    try:
        client = svc.s3 or make_client(config)
        lines = bucket.setup_bucket(
            client,
            config.s3_bucket,
            config.aws_region,
            secret,
            config.domain_name,
            dry_run,
            ranges,
            config.snapshot_keep_days,
        )
    except ValueError as exc:  # ConfigError included: missing/short secret, half-set keys
        raise config_error(exc) from None
    except (ClientError, BotoCoreError) as exc:  # AWS said no, no credentials, endpoint unreachable
        text = _client_error_line(exc) if isinstance(exc, ClientError) else f"{type(exc).__name__}: {exc}"
        raise Failure(f"setup failed: {_masked(text, secret)}") from None
    for line in lines:
        click.echo(line)
    return OK


@click.command(
    "schedules",
    help="Create/update the EventBridge start/stop schedules of EC2_INSTANCE_ID.",
    short_help="EventBridge start/stop schedules of the instance",
)
@click.option("--dry-run", is_flag=True, help="print the schedules; call nothing")
@click.option("--prefix", default="oi", show_default=True, help="schedule name prefix (oi-start-instance, ...)")
def schedules_command(dry_run: bool, prefix: str) -> int:
    svc = services()
    config = svc.config
    try:
        require(config, ("ec2_instance_id", "EC2_INSTANCE_ID"), ("scheduler_role_arn", "SCHEDULER_ROLE_ARN"))
    except ConfigError as exc:
        raise config_error(exc) from None
    specs = schedules.schedule_specs(config, prefix)
    if dry_run:
        click.echo(json.dumps(specs, indent=2))
        return OK
    try:
        scheduler = svc.scheduler or make_client(config, "scheduler")
        for spec in specs:
            click.echo(f"schedule {spec['Name']}: {schedules.ensure_schedule(scheduler, spec)}")
    except Exception as exc:  # AWS errors, no credentials...: one line, not a traceback
        log.debug("unexpected error", exc_info=True)
        text = str(exc) if isinstance(exc, ClientError) else f"{type(exc).__name__}: {exc}"
        raise Failure(f"failed: {text}") from None
    return OK


@click.command(
    "cloudflare",
    short_help="the zone's transform rule and /api/* cache rule",
    help="Create/update the zone's rules: the transform rule that sets Referer (for S3) and X-Origin-Secret (with "
    "ORIGIN_SECRET) on requests to DOMAIN_NAME, and the cache rule that lets the edge cache /api/* as the app's "
    "Cache-Control says.",
)
@dry_run_option
def cloudflare(dry_run: bool) -> int:
    svc = services()
    config = svc.config
    try:
        require(
            config,
            ("cloudflare_api_token", "CLOUDFLARE_API_TOKEN"),
            ("cloudflare_zone_id", "CLOUDFLARE_ZONE_ID"),
            ("domain_name", "DOMAIN_NAME"),
        )
        if not (config.s3_referer_secret or config.origin_secret):
            raise ConfigError("missing configuration: S3_REFERER_SECRET (and/or ORIGIN_SECRET)")
    except ConfigError as exc:
        raise config_error(exc) from None
    secrets = (config.s3_referer_secret, config.origin_secret)
    try:
        cf = cloudflare_from_config(config, svc.http)
        domain = config.domain_name
        if dry_run:
            transform = rules.transform_rule(domain, config.s3_referer_secret, config.origin_secret)
            click.echo(json.dumps(rules.masked(transform), indent=2))
        outcome = rules.ensure_transform_rule(cf, domain, config.s3_referer_secret, dry_run, config.origin_secret)
        click.echo(f"transform rule {rules.RULE_REF}: {outcome}")
        outcome = rules.ensure_cache_rule(cf, domain, dry_run)
        plan = f" ({rules.describe_cache_rule(rules.cache_rule(domain))})" if dry_run else ""
        click.echo(f"cache rule {rules.CACHE_RULE_REF}: {outcome}{plan}")
    except Exception as exc:  # Cloudflare errors, network...: one line, not a traceback
        log.debug("unexpected error", exc_info=True)
        text = str(exc) if isinstance(exc, CloudflareError) else f"{type(exc).__name__}: {exc}"
        raise Failure(f"failed: {_masked(text, *secrets)}") from None
    return OK


@click.group(
    "setup",
    help="One-time, idempotent set-up: the S3 bucket, the instance schedules, Cloudflare rules.",
    short_help="one-time set-up: s3, schedules, cloudflare",
)
def setup() -> None:
    pass


setup.add_command(s3)
setup.add_command(schedules_command)
setup.add_command(cloudflare)
