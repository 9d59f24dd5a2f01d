"""One-time (idempotent) set-up of the instance's life: EventBridge Scheduler starts and stops it.
``python -m oi setup schedules``.

Schedules use EventBridge Scheduler's universal targets (``aws-sdk:ec2:startInstances``/``stopInstances``), so no
Lambda is needed; they fire Mon-Fri in SCHEDULE_TIMEZONE (Asia/Kolkata). NSE holidays are handled on the
instance: ``python -m oi dns day --stop-on-holiday`` stops it again at 09:05.

Re-running is safe: each schedule is created, updated, or left alone when it already matches.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import ClientError

from oi.config import Config

log = logging.getLogger(__name__)

START_TARGET = "arn:aws:scheduler:::aws-sdk:ec2:startInstances"
STOP_TARGET = "arn:aws:scheduler:::aws-sdk:ec2:stopInstances"


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
