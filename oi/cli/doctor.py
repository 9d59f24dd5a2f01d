"""``doctor``: check a deployment before its first session, one line per check with what to do about a ✘.

A check whose settings are absent (no S3 bucket, no Cloudflare zone, the demo feed) prints a neutral "skipped"
line, not ✘. Exit codes: 0 every check passed or was skipped, 1 any ✘, 2 the configuration itself is invalid.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

import click
import requests

from oi.cli.dns import CLOUDFLARE_FIELDS
from oi.cli.startup import FAILED, OK, USAGE, Failure, Services, services
from oi.cloudflare import CloudflareError, cloudflare_from_config
from oi.config import Config
from oi.dns import describe
from oi.market.calendar import IST, calendar_from_config, clock_from_config
from oi.market.dhan_account import DhanAccount
from oi.store import open_store
from oi.tokens import VALID, check_token

MAX_SKEW_SECONDS = 5.0  # the lease, the pace and the token's expiry all lean on this clock
PASS, FAIL, SKIP = "✔", "✘", "–"


@dataclass(frozen=True)
class Check:
    name: str
    mark: str
    detail: str
    todo: str = ""

    def line(self) -> str:
        return f"{self.mark} {self.name}: {self.detail}" + (f" → {self.todo}" if self.todo else "")


def ok(name: str, detail: str) -> Check:
    return Check(name, PASS, detail)


def bad(name: str, detail: str, todo: str) -> Check:
    return Check(name, FAIL, detail, todo)


def skipped(name: str, why: str) -> Check:
    return Check(name, SKIP, f"skipped: {why}")


def check_store(config: Config, svc: Services) -> Check:
    name = "store"
    where = "MongoDB (MONGO_URI)" if config.mongo_uri else f"embedded store in {config.data_dir}"
    probe = {"_id": f"doctor-{uuid.uuid4().hex}", "at": time.time()}
    try:
        store = svc.store or open_store(config.mongo_uri, config.mongo_db, config.data_dir)
        collection = store.db["doctor"]
        collection.insert_one(dict(probe))
        found = collection.find_one({"_id": probe["_id"]})
        collection.delete_one({"_id": probe["_id"]})
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return bad(name, f"{where} not writable ({type(exc).__name__}: {exc})", "check MONGO_URI / OI_DATA_DIR")
    if not found or found.get("at") != probe["at"]:
        return bad(name, f"{where}: a written probe did not read back", "check the store's health")
    return ok(name, f"{where}: write, read and delete work")


def check_dhan(config: Config, svc: Services) -> Check:
    name = "Dhan token"
    if not (config.dhan_client_id and config.dhan_access_token):
        return skipped(name, "DHAN_CLIENT_ID/DHAN_ACCESS_TOKEN not set (demo feed)")
    account = svc.account or DhanAccount(config.dhan_api_base, config.dhan_client_id, config.dhan_timeout_seconds)
    report = check_token(config, clock_from_config(config)(), account)
    todo = "generate a new token on web.dhan.co and set DHAN_ACCESS_TOKEN (see python -m oi token)"
    if report.code != VALID:
        return bad(name, "; ".join(report.problems) or "not valid", todo)
    plan = report.profile.data_plan if report.profile else ""
    if plan and plan.lower() != "active":
        return bad(name, f"valid, but the data plan is {plan!r}", "subscribe to Dhan's Data APIs for this client")
    left = report.state.seconds_left
    hours = f", {left // 3600} h left" if left is not None else ""
    return ok(name, f"accepted by /v2/profile{hours}; data plan {plan or 'not reported'}")


def check_s3(config: Config, svc: Services) -> Check:
    name = "S3 bucket"
    if not config.s3_bucket:
        return skipped(name, "S3_BUCKET_NAME not set")
    from botocore.exceptions import BotoCoreError, ClientError

    from oi.s3 import is_not_found, make_client

    bucket, todo = config.s3_bucket, "run python -m oi setup s3"
    try:
        client = svc.s3 or make_client(config)
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if is_not_found(exc):
            return bad(name, f"{bucket} does not exist", todo)
        return bad(name, f"{bucket}: {exc}", "check the instance role's S3 permissions")
    except (BotoCoreError, ValueError) as exc:
        return bad(name, f"{type(exc).__name__}: {exc}", "check AWS credentials and AWS_REGION")
    missing = []
    for what, call in (("website hosting", client.get_bucket_website), ("bucket policy", client.get_bucket_policy)):
        try:
            call(Bucket=bucket)
        except ClientError:
            missing.append(what)
    if missing:
        return bad(name, f"{bucket} has no {' and no '.join(missing)}", todo)
    return ok(name, f"{bucket} exists, website hosting on, bucket policy present")


def check_cloudflare(config: Config, svc: Services) -> Check:
    name = "Cloudflare"
    unset = [variable for attr, variable in CLOUDFLARE_FIELDS if not getattr(config, attr)]
    if unset:
        return skipped(name, f"{', '.join(unset)} not set")
    cf = cloudflare_from_config(config, svc.http)
    try:
        status = cf.verify_token().get("status")
    except CloudflareError as exc:
        return bad(name, f"token refused: {exc}", "create an API token with Zone·DNS·Edit (docs/operations.md)")
    if status != "active":
        return bad(name, f"token status {status!r}", "create a new API token (docs/operations.md)")
    try:
        records = cf.address_records(config.domain_name)
    except CloudflareError as exc:
        return bad(name, f"token active but cannot read the zone's DNS: {exc}", "give the token Zone·DNS·Edit")
    if not records:
        return bad(name, f"no A/AAAA/CNAME record at {config.domain_name}", "run python -m oi dns night (or day)")
    return ok(name, f"token active; {'; '.join(describe(r) for r in records)}")


def check_holidays(config: Config, svc: Services) -> Check:
    name = "holiday list"
    year = clock_from_config(config)().astimezone(IST).year
    if calendar_from_config(config).covers(year):
        return ok(name, f"covers {year}")
    return bad(name, f"no NSE holidays known for {year}", f"add {year}'s holidays with OI_HOLIDAYS or OI_HOLIDAYS_FILE")


def check_clock(config: Config, svc: Services, wall: Callable[[], float] = time.time) -> Check:
    name = "clock"
    url = config.clock_check_url or config.dhan_api_base
    session = svc.http or requests.Session()
    before = wall()
    try:
        resp = session.head(url, timeout=config.dhan_timeout_seconds, allow_redirects=False)
        stamp = parsedate_to_datetime(resp.headers["Date"]).astimezone(UTC)
    except (requests.RequestException, KeyError, TypeError, ValueError) as exc:
        return bad(name, f"no HTTP Date from {url} ({type(exc).__name__})", "set OI_CLOCK_CHECK_URL to a reachable URL")
    after = wall()
    # The server stamped its Date somewhere between our send and receive (to the second): compare with the middle.
    skew = (before + after) / 2 - stamp.timestamp()
    if abs(skew) > MAX_SKEW_SECONDS + 1:
        return bad(name, f"{skew:+.0f} s off {url}'s Date", "enable time sync (chrony / systemd-timesyncd)")
    return ok(name, f"within {MAX_SKEW_SECONDS:g} s of {url}'s Date ({skew:+.1f} s)")


CHECKS = (check_store, check_dhan, check_s3, check_cloudflare, check_holidays, check_clock)


def run_checks(config: Config, svc: Services) -> Iterator[Check]:
    for check in CHECKS:
        try:
            yield check(config, svc)
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            yield bad(check.__name__.removeprefix("check_"), f"{type(exc).__name__}: {exc}", "see the logs")


@click.command(
    "doctor",
    short_help="check this deployment: one ✔/✘ line per check",
    help="Check this deployment before its first session: each check ✔, ✘ (with what to do) "
    "or skipped. Exit 0 when nothing is ✘.",
)
def doctor() -> int:
    svc = services()
    try:
        config = svc.config
    except Failure as exc:
        click.echo(bad("configuration", exc.message.removeprefix("configuration error: "), "fix .env").line())
        return USAGE
    click.echo(ok("configuration", f"valid (source {config.source}, symbols {', '.join(config.symbols)})").line())
    failed = False
    for check in run_checks(config, svc):
        click.echo(check.line())
        failed |= check.mark == FAIL
    return FAILED if failed else OK
