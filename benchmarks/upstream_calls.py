"""Upstream Dhan calls do not grow with viewers or workers.

Runs `gunicorn -w 4 app:app` (market forced open) against the fake Dhan server, then 1 and 200 concurrent viewers
for DURATION seconds each, and prints upstream calls/min for each, their ratio (goal 1.00) and the smallest gap
between upstream calls (goal >= DHAN_MIN_INTERVAL_SECONDS).

    python benchmarks/upstream_calls.py [--duration 60] [--viewers 200] [--workers 4]
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from tests.fakes.dhan import CLIENT_ID, TOKEN  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {url}")


def calls(fake: str) -> list[float]:
    return [t for t, _ in requests.get(fake.rsplit("/v2", 1)[0] + "/_calls", timeout=5).json()]


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

    with tempfile.TemporaryDirectory() as tmp:
        portfile = Path(tmp) / "fake-dhan"
        fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.dhan", str(portfile)], cwd=ROOT)
        while not portfile.exists() or not portfile.read_text():
            time.sleep(0.1)
        base = portfile.read_text()
        port = free_port()
        env = dict(
            os.environ,
            DHAN_CLIENT_ID=CLIENT_ID,
            DHAN_ACCESS_TOKEN=TOKEN,
            DHAN_API_BASE=base,
            OI_MARKET_ALWAYS_OPEN="1",
            OI_DATA_DIR=str(Path(tmp) / "var"),
            OI_SYMBOLS="NIFTY,BANKNIFTY",
            LOG_LEVEL="WARNING",
        )
        env.pop("MONGO_URI", None)
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b", f"127.0.0.1:{port}", "app:app"],
            cwd=ROOT,
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(url + "/healthz")
            interval = 3.0
            results = {}
            for n in (1, args.viewers):
                before = len(calls(base))
                reqs, errs = viewers(url, n, args.duration)
                made = len(calls(base)) - before
                results[n] = made * 60 / args.duration
                print(f"{n:>4} viewer(s): {reqs} requests, {errs} errors, {made} upstream calls = {results[n]:.1f}/min")
            times = sorted(calls(base))
            gap = min(b - a for a, b in itertools.pairwise(times))
            ratio = results[args.viewers] / results[1]
            print(f"ratio upstream calls/min ({args.viewers} viewers ÷ 1 viewer): {ratio:.2f}  (goal 1.00)")
            print(f"smallest gap between upstream calls: {gap:.3f} s  (goal >= {interval} s)")
            print(f"workers: {args.workers}; total upstream calls: {len(times)}")
        finally:
            gunicorn.send_signal(signal.SIGTERM)
            gunicorn.wait(30)
            fake.terminate()
            fake.wait(10)


if __name__ == "__main__":
    main()
