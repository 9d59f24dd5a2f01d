"""Reading a past session back: from the archive ``upload.py`` publishes, or from the demo's own market.

The archive holds every published session's frames as ``archive/YYYY-MM-DD/<SYMBOL>_<EXPIRY>.jsonl.gz`` (gzip JSON
Lines, oldest first; :func:`oi.snapshot.archive_bytes`), in ``ARCHIVE_BUCKET`` or the site's bucket. Day over day
(:mod:`oi.closes`) reads only a day's last frame, so the object is streamed and each line replaces the last: a
session's few MB never sit in memory at once. The live service reads it from a child process
(:class:`SpawnedArchive`); ``upload.py``, which has boto3 loaded anyway, directly (:class:`S3Archive`).
"""

from __future__ import annotations

import gzip
import json
import logging
import pickle
import subprocess
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from oi.closes import SessionClose, close_id
from oi.config import Config
from oi.market.calendar import MarketCalendar
from oi.market.model import OptionChain

log = logging.getLogger(__name__)

PREFIX = "archive/"
ROOT = Path(__file__).resolve().parent.parent  # where ``-m oi.archive`` finds the package


def archive_key(symbol: str, expiry: str, day: date) -> str:
    return f"{PREFIX}{day.isoformat()}/{symbol}_{expiry}.jsonl.gz"


Wanted = tuple[str, str, date]  # (symbol, expiry, session day)


class S3Archive:
    """The published archive in `bucket`, through a boto3 client (:func:`oi.s3.make_client`: its timeouts and
    retries are the ones every S3 call here has)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def closes(self, wanted: Sequence[Wanted]) -> dict[str, SessionClose | None]:
        """The closes of `wanted`, by close id; None for a day never published. Any other failure (no access, no
        network) is logged and ends the reading: what was read so far is kept, the rest is left out (unknown)."""
        from botocore.exceptions import BotoCoreError, ClientError

        from oi.s3 import is_not_found

        out = {}
        for symbol, expiry, day in wanted:
            key = archive_key(symbol, expiry, day)
            try:
                chain = self._last_frame(key)
            except ClientError as exc:
                if is_not_found(exc):
                    out[close_id(symbol, expiry, day)] = None  # not published that day (a holiday, the box was off)
                    continue
                log.warning("cannot read s3://%s/%s (%s): the rest waits for the next run", self.bucket, key, exc)
                break
            except (BotoCoreError, OSError, EOFError, ValueError) as exc:
                log.warning("cannot read s3://%s/%s (%s): the rest waits for the next run", self.bucket, key, exc)
                break
            out[close_id(symbol, expiry, day)] = SessionClose.from_chain(chain) if chain is not None else None
        return out

    def _last_frame(self, key: str) -> OptionChain | None:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        last = b""
        with body, gzip.GzipFile(fileobj=body) as lines:
            for line in lines:
                if line.strip():
                    last = line
        return OptionChain.from_doc(json.loads(last)) if last else None


class SpawnedArchive:
    """The published archive, read by a short-lived child process (``python -m oi.archive``): boto3 and botocore
    take ~30 MiB that a live worker would keep for good after a one-off read (a first run, a lost store); the
    child gives it all back. A plain subprocess, not multiprocessing: spawning re-imports the parent's main module,
    and ``python app.py``'s builds and starts a whole service."""

    def __init__(self, config: Config, bucket: str, timeout: float = 600.0) -> None:
        self.config = config
        self.bucket = bucket
        self.timeout = timeout

    def closes(self, wanted: Sequence[Wanted]) -> dict[str, SessionClose | None]:
        request = pickle.dumps((self.config, self.bucket, list(wanted)))  # our own process: pickle is safe here
        done = subprocess.run(
            [sys.executable, "-m", "oi.archive"],
            input=request,
            capture_output=True,
            timeout=self.timeout,
            cwd=ROOT,
            check=False,
        )
        for line in done.stderr.decode(errors="replace").splitlines():
            log.warning("archive reader: %s", line)
        if done.returncode != 0:
            raise RuntimeError(f"the archive reader exited with {done.returncode}")
        return pickle.loads(done.stdout)


def main() -> None:
    """``python -m oi.archive``: read (config, bucket, wanted) pickled on stdin, write the closes pickled on stdout;
    warnings go to stderr, which the parent logs."""
    from oi.s3 import make_client

    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    config, bucket, wanted = pickle.load(sys.stdin.buffer)
    sys.stdout.buffer.write(pickle.dumps(S3Archive(make_client(config), bucket).closes(wanted)))


class DemoArchive:
    """The demo market is a pure function of time, so its past sessions can be replayed rather than stored: the
    quick start's dashboard has earlier sessions to compare with on its first run."""

    def __init__(self, source: Any, calendar: MarketCalendar) -> None:
        self.source = source
        self.calendar = calendar

    def closes(self, wanted: Sequence[Wanted]) -> dict[str, SessionClose | None]:
        out: dict[str, SessionClose | None] = {}
        for symbol, expiry, day in wanted:
            _, close = self.calendar.session(day)
            last: datetime = close - timedelta(seconds=30)  # the last frame a 1-minute history keeps
            found = SessionClose.from_chain(self.source.chain(symbol, expiry, last))
            out[found.id] = found
        return out


if __name__ == "__main__":
    main()
