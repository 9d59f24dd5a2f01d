"""``python upload.py``: render the session into a static site and publish it to S3, guarded.

Exit codes: 0 published (or nothing to do), 1 refused or failed (one line saying why), 2 bad usage/configuration.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

from oi import alerts, snapshot
from oi import config as config_mod
from oi.market.calendar import calendar_from_config, clock_from_config
from oi.store import open_store

log = logging.getLogger(__name__)

DESCRIPTION = """\
Render the latest session in the store (or --date) into a self-contained static dashboard, and publish it to
S3_BUCKET_NAME in AWS_REGION: content-hashed assets first, index.html last, stale objects removed afterwards, the
day's archive under archive/YYYY-MM-DD/. Refuses to publish when a configured symbol has no data for the session
or its newest data is older than the close by more than OI_SNAPSHOT_MAX_LAG_MINUTES (default 30).
Credentials: boto3's default chain (the instance role on EC2), or AWS_ACCESS_KEY / AWS_SECRET_KEY."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="upload.py", description=DESCRIPTION)
    ap.add_argument("--date", type=date.fromisoformat, help="session to publish (YYYY-MM-DD); default: the latest")
    ap.add_argument("--out", type=Path, help="render into DIR only: no AWS calls (the guard only warns)")
    ap.add_argument("--dry-run", action="store_true", help="render and print what would be uploaded or deleted")
    ap.add_argument("--allow-stale", action="store_true", help="publish even if data ends early before the close")
    return ap.parse_args(argv)


def run(argv: list[str] | None = None, store=None, s3_client=None) -> int:
    args = parse_args(argv)
    try:
        config = config_mod.from_env()
    except config_mod.ConfigError as exc:
        print(f"upload.py: configuration error: {exc}", file=sys.stderr)
        return 2
    publishing = args.out is None
    if publishing and not config.s3_bucket:
        print("upload.py: S3_BUCKET_NAME is not set (use --out DIR to render locally)", file=sys.stderr)
        return 2
    store = store or open_store(config.mongo_uri, config.mongo_db, config.data_dir)
    days = store.history_days()
    day = args.date or (days[-1] if days else None)
    if day is None:
        print("upload.py: refusing: the store holds no session data at all", file=sys.stderr)
        return 1
    datasets = snapshot.collect(store, config.symbols, config.expiries_per_symbol, day)
    missing, late = snapshot.check(datasets, config.symbols, day, config.snapshot_max_lag_minutes)
    if config.source != "demo" and args.date is None:
        # A failed day must not pass for a good one: the store's newest session has to be the last real session.
        expected = calendar_from_config(config).last_session_day(clock_from_config(config)())
        if day < expected:
            late.insert(0, f"the newest data is from {day}, but the last session was {expected}")
    blocking = missing + ([] if args.allow_stale else late)
    if publishing and blocking:
        print(f"upload.py: refusing to publish: {'; '.join(blocking)}", file=sys.stderr)
        return 1
    if not datasets:
        print(f"upload.py: nothing to render: no data for the session of {day}", file=sys.stderr)
        return 1
    for problem in missing + late:
        log.warning("%s", problem)
    events = alerts.session_events(store, day)  # the day's fired alerts, for the page's events strip

    archive_separate = bool(config.archive_bucket) and config.archive_bucket != config.s3_bucket
    archive_base = (
        f"https://{config.archive_bucket}.s3.{config.aws_region}.amazonaws.com/archive"
        if archive_separate
        else "archive"
    )
    if not publishing:
        manifest = snapshot.render_site(
            datasets, args.out, day, config.symbols, config.strikes_around_atm, archive_base, config.lot_sizes, events
        )
        print(f"rendered the session of {day} into {args.out}: {len(manifest['files'])} files")
        return 0

    from botocore.exceptions import BotoCoreError, ClientError

    from oi import s3

    with tempfile.TemporaryDirectory(prefix="oi-site-") as tmp:
        site = Path(tmp) / "site"
        snapshot.render_site(
            datasets, site, day, config.symbols, config.strikes_around_atm, archive_base, config.lot_sizes, events
        )
        client = s3_client or s3.make_client(config)
        try:
            if archive_separate:
                archive_dir = site / "archive"
                files = {p.relative_to(site).as_posix(): p for p in archive_dir.rglob("*") if p.is_file()}
                if not args.dry_run:
                    s3.upload_archive(client, config.archive_bucket, files)
                shutil.rmtree(archive_dir)  # published separately: keep it out of the site bucket
            plan = s3.publish(client, config.s3_bucket, site, day.isoformat(), dry_run=args.dry_run)
        except s3.PublishError as exc:
            state = "the new page is live but" if exc.index_published else "the previous page is untouched;"
            print(f"upload.py: publish failed ({state} re-run to finish): {exc}", file=sys.stderr)
            return 1
        except (ClientError, BotoCoreError, OSError) as exc:
            print(f"upload.py: publish failed, the previous page is untouched: {exc}", file=sys.stderr)
            return 1
    if args.dry_run:
        for key in plan.upload:
            print(f"would upload {key}")
        for key in plan.delete:
            print(f"would delete {key}")
    print(plan.summary())
    log.info("session %s %s s3://%s", day, "checked against" if args.dry_run else "published to", config.s3_bucket)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(argv)
