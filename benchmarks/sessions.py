"""S3 bytes added per session (issue #15): 5 symbols × full sessions on three days, each published with upload.py's
code path to a moto server; per day, the bytes of the objects written, by kind. Goal: after the first day only that
day's data files, archive, pages and the sessions index; no asset again.

    python benchmarks/sessions.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import defaultdict
from datetime import date, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from oi.cli import upload_main  # noqa: E402
from oi.store import open_store  # noqa: E402
from tests.fakes.moto import moto_env, moto_server  # noqa: E402
from tests.session import record_session  # noqa: E402

SYMBOLS = ("NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "SENSEX")
DAYS = (date(2026, 11, 23), date(2026, 11, 25), date(2026, 11, 26))
BUCKET = "oi.example.com"


def kind(key: str) -> str:
    if key.startswith(("assets/", "archive/", "data/")):
        return key.split("/", 1)[0]
    if key.startswith("sessions/index."):
        return "sessions index"
    return "pages" if key.endswith(".html") else "other"


def listing(client) -> dict[str, tuple[str, int]]:
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for o in page.get("Contents", []):
            out[o["Key"]] = (o["ETag"] + str(o["LastModified"]), o["Size"])
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, moto_server() as url:
        os.environ.update(moto_env(url))
        store = open_store("", "oi", Path(tmp) / "var")
        for day in DAYS:
            record_session(store, symbols=SYMBOLS, day=day, start=time(9, 15), end=time(15, 29), seed=day.day)
        client = boto3.client("s3", region_name="ap-south-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-south-1"})
        env = {"OI_SYMBOLS": ",".join(SYMBOLS), "OI_SOURCE": "demo", "S3_BUCKET_NAME": BUCKET}
        before: dict[str, tuple[str, int]] = {}
        for day in (*DAYS, DAYS[-1]):  # the last one twice: a re-run
            code = upload_main(["--date", day.isoformat()], {**env, "OI_NOW": f"{day}T16:00:00+05:30"}, store=store)
            assert code == 0, f"publish of {day} failed"
            now = listing(client)
            written = defaultdict(int)
            count = 0
            for key, (stamp, size) in now.items():
                if before.get(key, ("", 0))[0] != stamp:
                    written[kind(key)] += size
                    count += 1
            total = sum(written.values())
            parts = ", ".join(f"{k} {v / 1024:.1f} KB" for k, v in sorted(written.items()))
            print(f"{day}: {count} objects, {total / 1024:.1f} KB written ({parts or 'nothing'})")
            before = now
        print(f"bucket: {len(before)} objects, {sum(s for _, s in before.values()) / 1024:.1f} KB")


if __name__ == "__main__":
    main()
