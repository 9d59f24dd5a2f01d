"""Upstream Dhan calls do not grow with viewers or workers.

Runs `gunicorn -w 4 app:app` (market forced open) against the fake Dhan server, then 1 and 200 concurrent viewers
for DURATION seconds each, and prints upstream calls/min for each, their ratio (goal 1.00) and the smallest gap
between upstream calls (goal >= DHAN_MIN_INTERVAL_SECONDS).

    python benchmarks/upstream_calls.py [--duration 60] [--viewers 200] [--workers 4]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from common import calls, fake_dhan, service, service_env


def viewers(url: str, count: int, seconds: float) -> tuple[int, int]:
    """`count` threads, each a viewer polling /api/oi as fast as it can. Returns (requests, errors)."""
    stop = time.monotonic() + seconds
    done, errors = [0] * count, [0] * count

    def run(i: int) -> None:
        session = requests.Session()
        while time.monotonic() < stop:
            try:
                r = session.get(url + "/api/oi?symbol=NIFTY", timeout=10)
                errors[i] += r.status_code != 200
            except requests.RequestException:
                errors[i] += 1
            done[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done), sum(errors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--viewers", type=int, default=200)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()

    gunicorn = [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b", "127.0.0.1:{port}", "app:app"]
    with (
        tempfile.TemporaryDirectory() as tmp,
        fake_dhan(Path(tmp)) as base,
        service(service_env(Path(tmp) / "var", base), argv=gunicorn) as svc,
    ):
        interval = 3.0
        results = {}
        for n in (1, args.viewers):
            before = len(calls(base))
            reqs, errs = viewers(svc.url, n, args.duration)
            made = len(calls(base)) - before
            results[n] = made * 60 / args.duration
            print(f"{n:>4} viewer(s): {reqs} requests, {errs} errors, {made} upstream calls = {results[n]:.1f}/min")
        times = sorted(calls(base))
        gap = min(b - a for a, b in itertools.pairwise(times))
        ratio = results[args.viewers] / results[1]
        print(f"ratio upstream calls/min ({args.viewers} viewers ÷ 1 viewer): {ratio:.2f}  (goal 1.00)")
        print(f"smallest gap between upstream calls: {gap:.3f} s  (goal >= {interval} s)")
        print(f"workers: {args.workers}; total upstream calls: {len(times)}")


if __name__ == "__main__":
    main()
