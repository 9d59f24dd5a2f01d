"""Day over day (issue #15 item 4): what keeping, serving and restoring session closes costs.

1. Size: a close of Dhan's real NIFTY chain (246 strikes, ../shared/fixtures/dhan/real), stored; /api/closes with
   OI_COMPARE_SESSIONS=20 of them, raw and gzipped; the snapshot's share (the strikes its page can show).
2. Recording: 5 symbols × 3 full sessions (375 frames each) in the embedded store, published with upload.py's code to
   a moto S3 server; closes cut from the store, then — the store's history and closes dropped — read back from the
   archive: time per close, bytes of archive streamed per close, and Python's peak allocation while streaming.
3. What the live service pays to read the archive: RSS of a process with the app imported, before and after
   reading the closes through a spawned child as the service does, then after importing boto3 in-process.

    python benchmarks/closes.py
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time as clock
import tracemalloc
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from oi import closes, session  # noqa: E402
from oi.archive import S3Archive  # noqa: E402
from oi.cli import upload_main  # noqa: E402
from oi.closes import SessionClose  # noqa: E402
from oi.market.calendar import IST  # noqa: E402
from oi.market.dhan import normalize  # noqa: E402
from oi.store import history_collection, open_store  # noqa: E402
from tests.fakes.moto import moto_env, moto_server  # noqa: E402
from tests.session import record_session  # noqa: E402

REAL = ROOT.parent / "shared/fixtures/dhan/real/optionchain_NIFTY_2025-01-30_recorded_2025-01-25.json"
SYMBOLS = ("NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "SENSEX")
DAYS = (date(2026, 11, 23), date(2026, 11, 25), date(2026, 11, 26))
BUCKET = "closes.example.com"
SESSIONS = 20


def sizes() -> None:
    data = json.loads(REAL.read_text())["data"]
    chain = normalize("NIFTY", "2025-01-30", data, datetime(2025, 1, 24, 15, 29, 30, tzinfo=IST))
    close = SessionClose.from_chain(chain)
    doc = json.dumps(close.to_doc()).encode()
    # Sessions differ strike by strike (a copy of one close would gzip to nothing): OI moves ±20 % a day, in lots.
    rng = random.Random(7)

    def moved(oi: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(round(v * rng.uniform(0.8, 1.2) / 75) * 75 for v in oi)

    many = [
        replace(close, day=close.day - timedelta(days=i), ce_oi=moved(close.ce_oi), pe_oi=moved(close.pe_oi))
        for i in range(SESSIONS)
    ]
    body = json.dumps({"sessions": [c.as_json() for c in many]}, separators=(",", ":")).encode()
    atm = min(chain.strikes, key=lambda s: abs(s.strike - chain.spot)).strike
    shown = {s.strike for s in chain.strikes if abs(s.strike - atm) <= 15 * 50 + 5 * 50}  # ATM ± (10 + 5 spare) + drift
    snap = json.dumps([c.as_json(shown) for c in many], separators=(",", ":")).encode()
    print(f"real NIFTY chain: {len(chain.strikes)} strikes → a stored close is {len(doc) / 1024:.1f} KB")
    print(
        f"/api/closes with {SESSIONS} sessions: {len(body) / 1024:.1f} KB raw, "
        f"{len(gzip.compress(body, 6)) / 1024:.1f} KB gzipped (fetched once per expiry, and every 10 min live)"
    )
    print(
        f"snapshot dataset share ({len(shown)} strikes): {len(snap) / 1024:.1f} KB raw, "
        f"{len(gzip.compress(snap, 9)) / 1024:.1f} KB gzipped"
    )


def recording() -> None:
    with tempfile.TemporaryDirectory() as tmp, moto_server() as url:
        os.environ.update(moto_env(url))
        store = open_store("", "oi", Path(tmp) / "var")
        pairs = set()
        for day in DAYS:
            demo = record_session(
                store, symbols=SYMBOLS, day=day, start=time(9, 15), end=time(15, 29), seed=day.day, expiries=2
            )
            pairs.update((s, e) for s in SYMBOLS for e in demo.expiries(s, day)[:2])
        # Only the pairs every day has (the 23rd's NIFTY expiry is the 23rd itself).
        held = {(s, d): set(store.history_expiries(s, d)) for s in SYMBOLS for d in DAYS}
        pairs = sorted(p for p in pairs if all(p[1] in held[(p[0], d)] for d in DAYS))
        client = boto3.client("s3", region_name="ap-south-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-south-1"})
        env = {
            "OI_SYMBOLS": ",".join(SYMBOLS),
            "OI_SOURCE": "demo",
            "S3_BUCKET_NAME": BUCKET,
            "OI_COMPARE_SESSIONS": "0",
            "OI_EXPIRIES_PER_SYMBOL": "2",
        }
        for day in DAYS:
            assert upload_main(["--date", f"{day}"], {**env, "OI_NOW": f"{day}T16:00:00+05:30"}, store=store) == 0

        t0 = clock.perf_counter()
        from_store = closes.record(store, pairs, DAYS)
        t_store = clock.perf_counter() - t0
        n = len(from_store.from_store)
        print(
            f"from the embedded store's history: {n} closes ({len(pairs)} expiries × {len(DAYS)} days, one pass a day) "
            f"in {t_store:.2f} s ({1000 * t_store / n:.0f} ms each)"
        )
        line = session.frames(*pairs[0], DAYS[-1], store.history(*pairs[0], DAYS[-1]))
        series = {pairs[0]: line}
        t0 = clock.perf_counter()
        runs = 20
        for _ in range(runs):
            closes.record_today(store, series, {})  # an empty memory: written every time
        t_today = (clock.perf_counter() - t0) / runs
        print(f"today's close from the in-memory session: {1000 * t_today:.1f} ms per expiry (a write, no read)")

        for day in DAYS:
            store.db.drop_collection(history_collection(day))
        store.db.drop_collection("closes")
        streamed = sum(
            client.head_object(Bucket=BUCKET, Key=f"archive/{d}/{s}_{e}.jsonl.gz")["ContentLength"]
            for s, e in pairs
            for d in DAYS
        )
        tracemalloc.start()
        t0 = clock.perf_counter()
        from_s3 = closes.record(store, pairs, DAYS, S3Archive(client, BUCKET))
        t_s3 = clock.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        n = len(from_s3.from_archive)
        print(
            f"from the S3 archive (moto on loopback): {n} closes in {t_s3:.2f} s ({1000 * t_s3 / n:.0f} ms each), "
            f"{streamed / n / 1024:.0f} KB of archive streamed per close, Python peak {peak / 2**20:.1f} MiB"
        )
        assert n == len(pairs) * len(DAYS), from_s3
        service_cost(pairs)


def service_cost(pairs: list[tuple[str, str]]) -> None:
    """RSS of a process that has imported the live app, before and after reading closes from the archive the way the
    service does (a spawned child), and what importing boto3 in-process would have cost instead."""
    code = (
        "import sys\n"
        "from datetime import date\n"
        "def rss():\n"
        "    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1])\n"
        "import oi.service, oi.web\n"
        "from oi.archive import SpawnedArchive\n"
        "from oi.config import from_env\n"
        f"pairs, days, bucket = {pairs!r}, {[d.isoformat() for d in DAYS]!r}, {BUCKET!r}\n"
        "config = from_env({'S3_BUCKET_NAME': bucket})\n"
        "a = rss()\n"
        "got = SpawnedArchive(config, bucket).closes([(s, e, date.fromisoformat(d)) for s, e in pairs for d in days])\n"
        "b = rss()\n"
        "from oi.s3 import make_client\n"
        "make_client(config)\n"
        "print(len(got), a, b, rss())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    n, before, after, with_boto3 = (int(x) for x in out.stdout.split())
    print(
        f"live service process: RSS {before / 1024:.1f} MiB with the app imported, {after / 1024:.1f} MiB after "
        f"reading {n} closes through a spawned child (+{(after - before) / 1024:.1f} MiB); importing boto3 and "
        f"making a client in-process instead: {with_boto3 / 1024:.1f} MiB (+{(with_boto3 - after) / 1024:.1f} MiB, "
        "kept for good)"
    )


if __name__ == "__main__":
    sizes()
    recording()
