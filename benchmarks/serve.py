"""Serving cost of the live API against a static file from the same server.

Starts gunicorn exactly as `oi.service` does (its ExecStart options, bound to 127.0.0.1) with the demo source and
the market forced open, then holds CONNECTIONS keep-alive connections busy on `/api/oi?symbol=NIFTY` and on
`/static/style.css` in turn (ROUNDS rounds of DURATION seconds each, after a warm-up), and prints requests/s for
each, their ratio (goal >= 0.8), p50/p99 latency (goal p99 <= 25 ms) and how much CPU the server and this client
used, since both share the machine.

    python benchmarks/serve.py [--connections 64] [--duration 10] [--rounds 3] [--workers N] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    Connection,
    Service,
    cpu_seconds,
    machine_busy_seconds,
    percentile,
    raise_fd_limit,
    service,
    service_env,
    wait_for,
)

PATHS = {"/api/oi": "/api/oi?symbol=NIFTY", "static": "/static/style.css"}
RATIO_GOAL, P99_GOAL_MS = 0.8, 25.0


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    size: int = 0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    machine_cpu: float = 0.0

    def add(self, other: Run) -> None:
        self.latencies += other.latencies
        self.errors += other.errors
        self.seconds += other.seconds
        self.size = other.size or self.size
        self.server_cpu += other.server_cpu
        self.client_cpu += other.client_cpu
        self.machine_cpu += other.machine_cpu

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


async def hammer(url: str, path: str, connections: int, seconds: float) -> Run:
    """Closed loop: each connection sends its next request as soon as the previous answer is read."""
    run = Run()
    stop = time.monotonic() + seconds

    async def one() -> None:
        conn = Connection.to(url)
        try:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    status, body = await conn.get(path)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                    run.errors += 1
                    conn.close()
                    continue
                run.latencies.append(time.perf_counter() - t0)
                if status != 200:
                    run.errors += 1
                run.size = len(body)
        finally:
            conn.close()

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(connections)))
    run.seconds = time.monotonic() - t0
    return run


def measure(svc: Service, path: str, connections: int, seconds: float) -> Run:
    pids = svc.pids()
    server0, client0, machine0 = cpu_seconds(pids), time.process_time(), machine_busy_seconds()
    t0 = time.monotonic()
    run = asyncio.run(hammer(svc.url, path, connections, seconds))
    share = run.seconds / (time.monotonic() - t0)  # CPU figures below are per second of load, like req/s
    run.server_cpu = (cpu_seconds(pids) - server0) * share
    run.client_cpu = (time.process_time() - client0) * share
    run.machine_cpu = (machine_busy_seconds() - machine0) * share
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--duration", type=float, default=10, help="seconds per endpoint per round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds, to spread out a noisy neighbour")
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--workers", type=int, help="override oi.service's --workers")
    ap.add_argument("--threads", type=int, help="override oi.service's --threads")
    args = ap.parse_args()
    raise_fd_limit(args.connections * 4 + 256)

    with (
        tempfile.TemporaryDirectory() as tmp,
        service(service_env(Path(tmp) / "var"), args.workers, args.threads) as svc,
    ):
        wait_for(svc.url + PATHS["/api/oi"], proc=svc.proc)  # the first demo chain is in
        for path in PATHS.values():
            measure(svc, path, args.connections, args.warmup)
        totals = {name: Run() for name in PATHS}
        for _ in range(args.rounds):
            for name, path in PATHS.items():
                totals[name].add(measure(svc, path, args.connections, args.duration))

    cores = os.cpu_count() or 1
    command = " ".join(svc.argv[svc.argv.index("gunicorn") + 1 :])
    print(f"gunicorn {command}")
    print(f"{args.connections} keep-alive connections, {args.rounds} × {args.duration:g} s per endpoint, {cores} cores")
    print("CPU columns: cores busy on average (server = gunicorn master + workers, client = this process, others =")
    print("the rest of the machine: other people's jobs on a shared box)")
    print()
    columns = ["endpoint", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "body B"]
    columns += ["server CPU", "client CPU", "others' CPU"]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for name, run in totals.items():
        lat = sorted(x * 1000 for x in run.latencies)
        print(
            f"| {name} | {len(lat):,} | {run.errors} | {run.rate:,.0f} | {percentile(lat, 50):.1f} | "
            f"{percentile(lat, 90):.1f} | {percentile(lat, 99):.1f} | {lat[-1] if lat else float('nan'):.1f} | "
            f"{run.size:,} | {run.server_cpu / run.seconds:.2f} | {run.client_cpu / run.seconds:.2f} | "
            f"{max(0.0, run.machine_cpu - run.server_cpu - run.client_cpu) / run.seconds:.2f} |"
        )
    print()
    api, static = totals["/api/oi"], totals["static"]
    ratio = api.rate / static.rate if static.rate else float("nan")
    p99 = percentile(sorted(x * 1000 for x in api.latencies), 99)
    verdict = lambda ok: "met" if ok else "MISSED"  # noqa: E731
    print(f"ratio /api/oi ÷ static req/s: {ratio:.2f}  (goal >= {RATIO_GOAL}: {verdict(ratio >= RATIO_GOAL)})")
    print(f"/api/oi p99: {p99:.1f} ms  (goal <= {P99_GOAL_MS:g} ms: {verdict(p99 <= P99_GOAL_MS)})")
    # Closed loop: every connection always has one request outstanding, so mean latency = connections ÷ rate
    # (Little's law); a p99 goal at 64 connections is therefore also a throughput goal.
    print(
        f"(closed loop: mean latency ≈ {args.connections} ÷ req/s = {args.connections / api.rate * 1000:.1f} ms for "
        f"/api/oi; the client shares the {cores} cores with the server)"
    )


if __name__ == "__main__":
    main()
