"""``render`` and ``publish`` (``upload.py``): the session in the store as a static site, locally or on S3, guarded.

Exit codes: 0 published/rendered (or nothing to do), 1 refused or failed (one line saying why), 2 bad usage or
configuration.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

import click

from oi import alerts, closes, snapshot
from oi.analytics import COMBINED
from oi.breadth import build_master
from oi.breadth import resolve as resolve_symbols
from oi.cli.startup import OK, USAGE, Failure, Services, dry_run_option, services
from oi.market.calendar import calendar_from_config, clock_from_config
from oi.store import open_store, store_errors
from oi.store_monitor import describe_store

log = logging.getLogger(__name__)

DESCRIPTION = """\
Render the latest session in the store (or --date) into a self-contained static dashboard, and publish it to
S3_BUCKET_NAME in AWS_REGION: content-hashed assets first, index.html last, stale objects removed afterwards, the
day's archive under archive/YYYY-MM-DD/. Every session keeps its page under sessions/YYYY-MM-DD/ (assets and data
shared, never deleted here; OI_SNAPSHOT_KEEP_DAYS is a lifecycle rule set by `setup s3`), listed in
sessions/index.json for the page's day picker; the front page is always the newest session.
Refuses to publish when a configured symbol has no data for the session or its newest data is older than the close
by more than OI_SNAPSHOT_MAX_LAG_MINUTES (default 30).
Credentials: boto3's default chain (the instance role on EC2), or AWS_ACCESS_KEY / AWS_SECRET_KEY."""

date_option = click.option(
    "--date",
    "day",
    type=date.fromisoformat,
    metavar="YYYY-MM-DD",
    help="session to publish (YYYY-MM-DD); default: the latest",
)
allow_stale_option = click.option(
    "--allow-stale", is_flag=True, help="publish even if data ends early before the close"
)


def run_upload(svc: Services, day: date | None, out: Path | None, dry_run: bool, allow_stale: bool) -> int:
    # The symbols, lot sizes and kinds the live service had: stocks resolved from the instrument master on disk
    # (never downloaded here); a symbol it left out has no data and must not block the publication.
    breadth = resolve_symbols(svc.config, build_master(svc.config, clock_from_config(svc.config)), download=False)
    config, kinds = breadth.apply(svc.config), breadth.kinds
    publishing = out is None
    if publishing and not config.s3_bucket:
        raise Failure("S3_BUCKET_NAME is not set (use --out DIR to render locally)", USAGE)
    explicit = day is not None
    try:
        store = svc.store or open_store(config.mongo_uri, config.mongo_db, config.data_dir)
        days = store.history_days()
        day = day or (days[-1] if days else None)
        if day is None:
            raise Failure("refusing: the store holds no session data at all")
        datasets = snapshot.collect(store, config.symbols, config.expiries_per_symbol, day)
        events = alerts.session_events(store, day)  # the day's fired alerts, for the page's events strip
    except store_errors() as exc:
        raise Failure(f"store unreachable: {describe_store(config.mongo_uri)} ({type(exc).__name__})") from None
    missing, late = snapshot.check(datasets, config.symbols, day, config.snapshot_max_lag_minutes)
    if not explicit:
        # A failed day must not pass for a good one: the store's newest session has to be the last real session
        # (whatever the source: the demo feed is no excuse to publish an old day as today's, red team #14).
        expected = calendar_from_config(config).last_session_day(clock_from_config(config)())
        if day < expected:
            late.insert(0, f"the newest data is from {day}, but the last session was {expected}")
    blocking = missing + ([] if allow_stale else late)
    if publishing and blocking:
        raise Failure(f"refusing to publish: {'; '.join(blocking)}")
    if not datasets:
        raise Failure(f"nothing to render: no data for the session of {day}")
    for problem in missing + late:
        log.warning("%s", problem)
    archive = _archive(svc, config, publishing)
    _add_closes(store, datasets, day, config, archive)

    archive_separate = bool(config.archive_bucket) and config.archive_bucket != config.s3_bucket
    archive_base = (
        f"https://{config.archive_bucket}.s3.{config.aws_region}.amazonaws.com/archive"
        if archive_separate
        else "archive"
    )
    if not publishing:
        return render_into(out, datasets, day, config, archive_base, events, kinds)

    from botocore.exceptions import BotoCoreError, ClientError

    from oi import s3

    try:
        client = svc.s3 or s3.make_client(config)
    except ValueError as exc:  # half-set AWS keys
        raise Failure(f"configuration error: {exc}", USAGE) from None
    with tempfile.TemporaryDirectory(prefix="oi-site-") as tmp:
        site = Path(tmp) / "site"
        try:
            # The day picker lists what the bucket holds (a day the lifecycle rule expired, or never published, is
            # simply not there); the front page moves only to a newer day than the bucket's newest.
            stored = s3.session_days(client, config.s3_bucket)
            days = _kept(stored, day, config.snapshot_keep_days)
            front = not stored or day.isoformat() >= stored[-1]
            snapshot.render_site(
                datasets,
                site,
                day,
                config.symbols,
                config.strikes_around_atm,
                archive_base,
                config.lot_sizes,
                events,
                days,
                kinds=kinds,
            )
            if archive_separate:
                archive_dir = site / "archive"
                files = {p.relative_to(site).as_posix(): p for p in archive_dir.rglob("*") if p.is_file()}
                if not dry_run:
                    s3.upload_archive(client, config.archive_bucket, files)
                shutil.rmtree(archive_dir)  # published separately: keep it out of the site bucket
            plan = s3.publish(client, config.s3_bucket, site, day.isoformat(), dry_run=dry_run, front=front)
            if not front:
                click.echo(f"{day} is older than the newest published session ({stored[-1]}): front page unchanged")
        except s3.PublishError as exc:
            state = "the new page is live but" if exc.index_published else "the previous page is untouched;"
            raise Failure(f"publish failed ({state} re-run to finish): {exc}") from None
        except (ClientError, BotoCoreError, OSError) as exc:
            raise Failure(f"publish failed, the previous page is untouched: {exc}") from None
    if dry_run:
        for key in plan.upload:
            click.echo(f"would upload {key}")
        for key in plan.delete:
            click.echo(f"would delete {key}")
    click.echo(plan.summary())
    log.info("session %s %s s3://%s", day, "checked against" if dry_run else "published to", config.s3_bucket)
    return OK


def _archive(svc: Services, config, publishing: bool) -> closes.Archive | None:
    """Where the closes of sessions the store no longer has come from: the published archive when publishing (boto3
    is loaded anyway), the demo's own market for a demo store."""
    if publishing:
        from oi.archive import S3Archive
        from oi.s3 import make_client

        try:
            client = svc.s3 or make_client(config)
        except ValueError:  # half-set AWS keys: the publish step below says so
            return None
        return S3Archive(client, config.archive_bucket or config.s3_bucket)
    if config.source == "demo":
        from oi.archive import DemoArchive
        from oi.service import build_source

        calendar = calendar_from_config(config)
        return DemoArchive(build_source(config, calendar), calendar)
    return None


def _add_closes(store, datasets: list, day: date, config, archive: closes.Archive | None) -> None:
    """Day over day in the snapshot: record the earlier sessions' closes it needs, then give them to the datasets.
    A failure here costs the page its comparisons, never the night's publication."""
    if not config.compare_sessions:
        return
    pairs = [(ds.symbol, ds.expiry) for ds in datasets if ds.expiry != COMBINED]
    days = closes.earlier_sessions(calendar_from_config(config), day, config.compare_sessions)
    try:
        closes.record(store, pairs, days, archive)
        snapshot.attach_closes(store, datasets, day, config.compare_sessions)
    except store_errors():
        log.warning("could not read the earlier sessions' closes: the snapshot has no day over day", exc_info=True)


def _kept(days: list[str], day: date, keep_days: int) -> list[str]:
    """The stored days still within OI_SNAPSHOT_KEEP_DAYS of `day` (the lifecycle rule removes the rest soon)."""
    oldest = (day - timedelta(days=keep_days)).isoformat()
    return [d for d in days if d >= oldest]


def render_into(
    out: Path, datasets: list, day: date, config, archive_base: str, events: list[dict], kinds: dict[str, str]
) -> int:
    """Render locally. Sessions already rendered into `out` stay (render day after day into one folder to browse
    them offline); the front page moves only to a newer day."""
    out = Path(out)
    stored = sorted(p.parent.name for p in out.glob(f"{snapshot.SESSIONS}/*/index.html") if _is_day(p.parent.name))
    with tempfile.TemporaryDirectory(prefix="oi-site-") as tmp:
        site = Path(tmp) / "site"
        manifest = snapshot.render_site(
            datasets,
            site,
            day,
            config.symbols,
            config.strikes_around_atm,
            archive_base,
            config.lot_sizes,
            events,
            _kept(stored, day, config.snapshot_keep_days),
            kinds=kinds,
        )
        if stored and day.isoformat() < stored[-1]:
            for name in ("index.html", "error.html"):
                (site / name).unlink()
        shutil.copytree(site, out, dirs_exist_ok=True)
    click.echo(f"rendered the session of {day} into {out}: {len(manifest['files'])} files")
    return OK


def _is_day(name: str) -> bool:
    try:
        date.fromisoformat(name)
    except ValueError:
        return False
    return len(name) == 10


@click.command("upload", help=DESCRIPTION, short_help="render and publish the session to S3 (upload.py)")
@date_option
@click.option(
    "--out", type=click.Path(path_type=Path), help="render into DIR only: no AWS calls (the guard only warns)"
)
@click.option("--dry-run", is_flag=True, help="render and print what would be uploaded or deleted")
@allow_stale_option
def upload(day: date | None, out: Path | None, dry_run: bool, allow_stale: bool) -> int:
    return run_upload(services(), day, out, dry_run, allow_stale)


@click.command("publish", help=DESCRIPTION, short_help="render the session and publish it to S3, guarded")
@date_option
@dry_run_option
@allow_stale_option
def publish(day: date | None, dry_run: bool, allow_stale: bool) -> int:
    return run_upload(services(), day, None, dry_run, allow_stale)


@click.command(
    "render",
    help="Render the latest session in the store (or --date) into DIR: no AWS calls.",
    short_help="render the session into a static site in DIR",
)
@date_option
@click.option("--out", type=click.Path(path_type=Path), required=True, metavar="DIR", help="directory to render into")
def render(day: date | None, out: Path) -> int:
    return run_upload(services(), day, out, False, True)
