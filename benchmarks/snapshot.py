"""Snapshot cost: 5 symbols × one full session in the embedded store → render + upload (moto server) time, and
the page weight gzipped (goals: ≤ 2 s, ≤ 150 KB for the page with its data).

    python benchmarks/snapshot.py
"""

from __future__ import annotations

import gzip
import os
import sys
import tempfile
import time as clock
from datetime import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from oi import s3, snapshot  # noqa: E402
from oi.store import open_store  # noqa: E402
from tests.fakes.moto import moto_env, moto_server  # noqa: E402
from tests.session import DAY, record_session  # noqa: E402

SYMBOLS = ("NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "SENSEX")


def gz(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), 9))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, moto_server() as url:
        os.environ.update(moto_env(url))
        store = open_store("", "oi", Path(tmp) / "var")
        t0 = clock.perf_counter()
        record_session(store, symbols=SYMBOLS, start=time(9, 15), end=time(15, 29))
        print(f"recorded {len(SYMBOLS)} symbols × 375 minutes in {clock.perf_counter() - t0:.1f} s")

        client = boto3.client("s3", region_name="ap-south-1")
        bucket = "oi.example.com"
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-south-1"})
        site = Path(tmp) / "site"
        t0 = clock.perf_counter()
        datasets = snapshot.collect(store, SYMBOLS, 1, DAY)
        t1 = clock.perf_counter()
        manifest = snapshot.render_site(datasets, site, DAY, SYMBOLS, 10)
        t2 = clock.perf_counter()
        plan = s3.publish(client, bucket, site, DAY.isoformat())
        t3 = clock.perf_counter()
        again = s3.publish(client, bucket, site, DAY.isoformat())
        t4 = clock.perf_counter()

        files = manifest["files"]
        page = ["index.html"] + [f for f in files if f.startswith("assets/") and f.endswith((".js", ".css"))]
        first = next(f for f in files if f.startswith("data/NIFTY_") and ".detail." not in f)
        data = [f for f in files if f.startswith("data/") and ".detail." not in f]
        detail = [f for f in files if f.startswith("data/") and ".detail." in f]
        archive = [f for f in files if f.startswith("archive/")]
        page_gz = sum(gz(site / f) for f in page)
        first_gz = gz(site / first)
        print(
            f"read from store {t1 - t0:.2f} s, render {t2 - t1:.2f} s, "
            f"upload {t3 - t2:.2f} s ({len(plan.upload)} objects)"
        )
        print(
            f"total render + upload: {t3 - t0:.2f} s  (goal <= 2 s); no-op re-publish {t4 - t3:.2f} s, "
            f"{len(again.upload)} uploads"
        )
        print(
            f"page on open (html, js, css, first symbol's replay), gzipped: {(page_gz + first_gz) / 1024:.1f} KB"
            f"  (goal <= 150 KB): shell {page_gz / 1024:.1f} KB + NIFTY data {first_gz / 1024:.1f} KB"
        )
        all_gz = page_gz + sum(gz(site / f) for f in data)
        print(
            f"all {len(data)} replay datasets with the page, gzipped: {all_gz / 1024:.1f} KB "
            "(other symbols load on demand)"
        )
        print(
            f"Greeks and bid/ask, loaded only when turned on: {sum(gz(site / f) for f in detail) / 1024:.1f} KB "
            f"gzipped for all {len(detail)} datasets"
        )
        print(f"archive: {sum((site / f).stat().st_size for f in archive) / 1024:.0f} KB in {len(archive)} files")


if __name__ == "__main__":
    main()
