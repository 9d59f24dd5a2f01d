"""One-time (idempotent) setup of the instance's life: EventBridge Scheduler start/stop, Cloudflare header rule.

Usage (from the install dir, with .env loaded)::

    python -m oi.lifecycle schedules [--dry-run] [--with-transform-rule]
    python -m oi.lifecycle transform-rule [--dry-run]

Schedules use EventBridge Scheduler's universal targets (``aws-sdk:ec2:startInstances``/``stopInstances``), so no
Lambda is needed; they fire Mon-Fri in SCHEDULE_TIMEZONE (Asia/Kolkata). NSE holidays are handled on the
instance: update_to_a_record.py --stop-on-holiday stops it again at 09:05.

Re-running is safe: each schedule is created, updated, or left alone when it already matches.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from typing import Any

from botocore.exceptions import ClientError

from oi.config import Config, ConfigError, from_env, require
from oi.dns import CloudflareError, cloudflare_from_config
from oi.s3 import make_client
from oi.security import ORIGIN_HEADER

log = logging.getLogger(__name__)

START_TARGET = "arn:aws:scheduler:::aws-sdk:ec2:startInstances"
STOP_TARGET = "arn:aws:scheduler:::aws-sdk:ec2:stopInstances"
TRANSFORM_PHASE = "http_request_late_transform"
RULE_REF = "oi_s3_referer"  # stable handle to find our rule among the operator's other transform rules
MASK = "***"


def cron_expression(hhmm: str, days: str = "MON-FRI") -> str:
    """EventBridge Scheduler cron for HH:MM on `days`: cron(minutes hours day-of-month month day-of-week year)."""
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return f"cron({minutes} {hours} ? * {days} *)"


def schedule_specs(config: Config, prefix: str = "oi") -> list[dict[str, Any]]:
    """The two schedules as create_schedule/update_schedule keyword arguments."""
    specs = []
    for action, hhmm, arn in (
        ("start", config.schedule_start, START_TARGET),
        ("stop", config.schedule_stop, STOP_TARGET),
    ):
        specs.append(
            {
                "Name": f"{prefix}-{action}-instance",
                "Description": f"OI: {action} {config.ec2_instance_id} Mon-Fri {hhmm} {config.schedule_timezone}",
                "ScheduleExpression": cron_expression(hhmm),
                "ScheduleExpressionTimezone": config.schedule_timezone,
                "FlexibleTimeWindow": {"Mode": "OFF"},  # on the minute: cron at 09:05 expects the box up
                "State": "ENABLED",
                "Target": {
                    "Arn": arn,
                    "RoleArn": config.scheduler_role_arn,
                    "Input": json.dumps({"InstanceIds": [config.ec2_instance_id]}),
                },
            }
        )
    return specs


def _same_schedule(current: dict, spec: dict) -> bool:
    target = current.get("Target") or {}
    try:
        same_input = json.loads(target.get("Input") or "null") == json.loads(spec["Target"]["Input"])
    except ValueError:
        same_input = False
    return (
        same_input
        and current.get("ScheduleExpression") == spec["ScheduleExpression"]
        and current.get("ScheduleExpressionTimezone") == spec["ScheduleExpressionTimezone"]
        and current.get("State") == spec["State"]
        and (current.get("Description") or "") == spec["Description"]
        and (current.get("FlexibleTimeWindow") or {}).get("Mode") == spec["FlexibleTimeWindow"]["Mode"]
        and target.get("Arn") == spec["Target"]["Arn"]
        and target.get("RoleArn") == spec["Target"]["RoleArn"]
    )


def ensure_schedule(scheduler, spec: dict) -> str:
    """Create or update one schedule; returns "created", "updated" or "unchanged"."""
    try:
        current = scheduler.get_schedule(Name=spec["Name"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        current = None
    if current is None:
        try:
            scheduler.create_schedule(**spec)
            outcome = "created"
        except ClientError as exc:  # created meanwhile by a concurrent run: update it instead
            if exc.response.get("Error", {}).get("Code") != "ConflictException":
                raise
            scheduler.update_schedule(**spec)
            outcome = "updated"
    elif _same_schedule(current, spec):
        outcome = "unchanged"
    else:
        scheduler.update_schedule(**spec)  # update_schedule replaces every field, so pass the whole spec
        outcome = "updated"
    log.info("schedule %s: %s (%s %s)", spec["Name"], outcome, spec["ScheduleExpression"], spec["Target"]["Arn"])
    return outcome


# ------------------------------------------------------------------------------------------- transform rule


def transform_rule(domain: str, secret: str, origin_secret: str = "") -> dict[str, Any]:
    """Set Referer to the shared secret on requests to `domain`, so the S3 bucket policy lets Cloudflare in; with
    `origin_secret` also X-Origin-Secret, which the instance's origin lock (oi/security.py) demands."""
    headers, purposes = {}, []
    if secret:
        headers["Referer"] = {"operation": "set", "value": secret}
        purposes.append("Referer for the S3 snapshot")
    if origin_secret:
        headers[ORIGIN_HEADER] = {"operation": "set", "value": origin_secret}
        purposes.append(f"{ORIGIN_HEADER} for the instance")
    return {
        "ref": RULE_REF,
        "description": f"OI: set {' and '.join(purposes)} of {domain}",
        "expression": f'(http.host eq "{domain}")',
        "action": "rewrite",
        "action_parameters": {"headers": headers},
        "enabled": True,
    }


def masked(rule: dict) -> dict:
    out = copy.deepcopy(rule)
    for header in (out.get("action_parameters") or {}).get("headers", {}).values():
        if isinstance(header, dict) and "value" in header:
            header["value"] = MASK
    return out


def _names(rule: dict) -> str:
    return ", ".join(rule["action_parameters"]["headers"])


_RULE_KEYS = ("expression", "action", "action_parameters", "enabled", "description")
_READ_ONLY = ("version", "last_updated", "categories")


def ensure_transform_rule(cf, domain: str, secret: str, dry_run: bool = False, origin_secret: str = "") -> str:
    """Create/update our rule in the zone's late-transform entry point, keeping other rules as they are."""
    wanted = transform_rule(domain, secret, origin_secret)
    current = cf.get_phase_entrypoint(TRANSFORM_PHASE)
    rules = [{k: v for k, v in r.items() if k not in _READ_ONLY} for r in (current or {}).get("rules", [])]
    mine = [r for r in rules if r.get("ref") == RULE_REF]
    if len(mine) == 1 and all(mine[0].get(k) == wanted[k] for k in _RULE_KEYS):
        log.info("transform rule %s: unchanged (%s = %s)", RULE_REF, _names(wanted), MASK)
        return "unchanged"
    outcome = "updated" if mine else "created"
    if mine:  # keep our rule where the operator put it; drop accidental duplicates
        index = rules.index(mine[0])
        rules = [r for r in rules if r.get("ref") != RULE_REF]
        rules.insert(index, {**wanted, **({"id": mine[0]["id"]} if mine[0].get("id") else {})})
    else:
        rules.append(wanted)
    if dry_run:
        log.info("transform rule %s: would be %s (dry run)", RULE_REF, outcome)
        return f"would be {outcome}"
    cf.put_phase_entrypoint(TRANSFORM_PHASE, rules, description="Request header transform rules")
    log.info("transform rule %s: %s (%s = %s for %s)", RULE_REF, outcome, _names(wanted), MASK, domain)
    return outcome


# ---------------------------------------------------------------------------------------------------- CLI


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m oi.lifecycle", description="Idempotent AWS/Cloudflare setup.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("schedules", help="create/update the EventBridge start/stop schedules of EC2_INSTANCE_ID")
    s.add_argument("--dry-run", action="store_true", help="print the schedules; call nothing")
    s.add_argument("--with-transform-rule", action="store_true", help="also set up the Cloudflare Referer rule")
    s.add_argument("--prefix", default="oi", help="schedule name prefix (default oi: oi-start-instance, ...)")
    t = sub.add_parser(
        "transform-rule",
        help="create/update the Cloudflare rule that sets Referer (for S3) and X-Origin-Secret (with ORIGIN_SECRET)",
    )
    t.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    do_schedules = args.command == "schedules"
    do_rule = args.command == "transform-rule" or getattr(args, "with_transform_rule", False)
    try:
        config = from_env()
        if do_schedules:
            require(config, ("ec2_instance_id", "EC2_INSTANCE_ID"), ("scheduler_role_arn", "SCHEDULER_ROLE_ARN"))
        if do_rule:
            require(
                config,
                ("cloudflare_api_token", "CLOUDFLARE_API_TOKEN"),
                ("cloudflare_zone_id", "CLOUDFLARE_ZONE_ID"),
                ("domain_name", "DOMAIN_NAME"),
            )
            if not (config.s3_referer_secret or config.origin_secret):
                raise ConfigError("missing configuration: S3_REFERER_SECRET (and/or ORIGIN_SECRET)")
    except ConfigError as exc:
        print(f"oi.lifecycle: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        if do_schedules:
            specs = schedule_specs(config, args.prefix)
            if args.dry_run:
                print(json.dumps(specs, indent=2))
            else:
                scheduler = make_client(config, "scheduler")
                for spec in specs:
                    print(f"schedule {spec['Name']}: {ensure_schedule(scheduler, spec)}")
        if do_rule:
            cf = cloudflare_from_config(config)
            if args.dry_run:
                rule = transform_rule(config.domain_name, config.s3_referer_secret, config.origin_secret)
                print(json.dumps(masked(rule), indent=2))
            outcome = ensure_transform_rule(
                cf, config.domain_name, config.s3_referer_secret, args.dry_run, config.origin_secret
            )
            print(f"transform rule {RULE_REF}: {outcome}")
    except Exception as exc:  # AWS/Cloudflare errors, no credentials...: one line, not a traceback
        log.debug("unexpected error", exc_info=True)
        text = str(exc) if isinstance(exc, (ClientError, CloudflareError)) else f"{type(exc).__name__}: {exc}"
        for secret in (config.s3_referer_secret, config.origin_secret):  # in case an API echoes the rule back
            if secret:
                text = text.replace(secret, MASK)
        print(f"oi.lifecycle: failed: {text}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from dotenv import load_dotenv

    from oi.logs import setup_script_logging

    load_dotenv()
    setup_script_logging()
    sys.exit(main())
