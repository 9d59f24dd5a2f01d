"""Reading a past session back: from the archive ``upload.py`` publishes, or from the demo's own market.

The archive holds every published session's frames as ``archive/YYYY-MM-DD/<SYMBOL>_<EXPIRY>.jsonl.gz`` (gzip JSON
Lines, oldest first; :func:`oi.snapshot.archive_bytes`), in ``ARCHIVE_BUCKET`` or the site's bucket. Day over day
(:mod:`oi.closes`) reads only a day's last frame, so the object is streamed and each line replaces the last: a
session's few MB never sit in memory at once.
"""

from __future__ import annotations

import gzip
import json
import logging
from datetime import date, datetime, timedelta
from typing import Any

from oi.market.calendar import MarketCalendar
from oi.market.model import OptionChain

log = logging.getLogger(__name__)

PREFIX = "archive/"


def archive_key(symbol: str, expiry: str, day: date) -> str:
    return f"{PREFIX}{day.isoformat()}/{symbol}_{expiry}.jsonl.gz"


class S3Archive:
    """The published archive in `bucket`, through a boto3 client (:func:`oi.s3.make_client`: its timeouts and
    retries are the ones every S3 call here has)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def close(self, symbol: str, expiry: str, day: date) -> OptionChain | None:
        # Imported here, as the client is made by the caller only when needed: the live service does not load
        # boto3 (~25 MB) unless a day has to come from the archive.
        from botocore.exceptions import ClientError

        from oi.s3 import is_not_found

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=archive_key(symbol, expiry, day))["Body"]
        except ClientError as exc:
            if is_not_found(exc):
                return None  # not published that day (a holiday, a day the box did not run)
            raise
        last = b""
        with body, gzip.GzipFile(fileobj=body) as lines:
            for line in lines:
                if line.strip():
                    last = line
        return OptionChain.from_doc(json.loads(last)) if last else None


class DemoArchive:
    """The demo market is a pure function of time, so its past sessions can be replayed rather than stored: the
    quick start's dashboard has earlier sessions to compare with on its first run."""

    def __init__(self, source: Any, calendar: MarketCalendar) -> None:
        self.source = source
        self.calendar = calendar

    def close(self, symbol: str, expiry: str, day: date) -> OptionChain | None:
        _, close = self.calendar.session(day)
        last: datetime = close - timedelta(seconds=30)  # the last frame a 1-minute history keeps
        return self.source.chain(symbol, expiry, last)
