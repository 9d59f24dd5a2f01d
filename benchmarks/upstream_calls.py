"""Upstream Dhan calls do not grow with viewers or workers.

Runs `gunicorn -w 4 app:app` (market forced open) against the fake Dhan server, then 1 and 200 concurrent viewers
for DURATION seconds each, and prints upstream calls/min for each, their ratio (goal 1.00) and the smallest gap
between upstream calls (goal >= DHAN_MIN_INTERVAL_SECONDS).

Then (issue #14) a run against a limiter stricter than Dhan's documentation: the fake refuses (HTTP 429 + 805) any
call closer than --limiter-gap seconds to the previous one. Prints 805s per minute after the first minute (goal 0:
the adaptive pace has settled) and good upstream calls per minute (goal >= 90% of 60 / gap).

    python benchmarks/upstream_calls.py [--duration 60] [--viewers 200] [--workers 4]
                                        [--limiter-gap 3.6] [--limiter-duration 180] [--skip-viewers]
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
from common import calls, fake_dhan, limited_calls, service, service_env


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
    ap.add_argument("--limiter-gap", type=float, default=3.6)
    ap.add_argument("--limiter-duration", type=float, default=180)
    ap.add_argument("--skip-viewers", action="store_true", help="only the strict-limiter run")
    args = ap.parse_args()

    gunicorn = [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b", "127.0.0.1:{port}", "app:app"]
    if not args.skip_viewers:
        viewer_runs(args, gunicorn)
    if args.limiter_gap:
        limiter_run(args, gunicorn)


def limiter_run(args: argparse.Namespace, gunicorn: list[str]) -> None:
    gap, duration = args.limiter_gap, args.limiter_duration
    with (
        tempfile.TemporaryDirectory() as tmp,
        fake_dhan(Path(tmp), min_gap=gap) as base,
        service(service_env(Path(tmp) / "var", base, symbols="NIFTY"), argv=gunicorn) as svc,
    ):
        start = calls(base)[0]
        time.sleep(max(0.0, duration - (time.monotonic() - start)))
        pace = requests.get(svc.url + "/healthz", timeout=10).json().get("pace_seconds")
        every, refused = calls(base), limited_calls(base)
    settled = start + 60
    late_minutes = (every[-1] - settled) / 60
    late_refused = [t for t in refused if t >= settled]
    good_late = [t for t in every if t >= settled and t not in set(refused)]
    print(f"strict limiter: calls closer than {gap} s refused (805); {args.workers} workers, {duration:.0f} s")
    print(f"  805s in the first minute: {len(refused) - len(late_refused)}")
    print(f"  805s per minute after the first minute: {len(late_refused) / late_minutes:.2f}  (goal 0)")
    goal = 0.9 * 60 / gap
    print(f"  good upstream calls per minute after the first minute: {len(good_late) / late_minutes:.1f}", end="")
    print(f"  (goal >= {goal:.1f} = 90% of 60 / {gap} s)")
    print(f"  pace in force (/healthz pace_seconds): {pace} s")


def viewer_runs(args: argparse.Namespace, gunicorn: list[str]) -> None:
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
