"""Many viewers at once: errors and latency, and the upstream Dhan calls they (do not) cause.

Starts the fake Dhan server and gunicorn exactly as `oi.service` does (Dhan source pointed at the fake, market
forced open), reads the page's refresh period (refresh_ms), then runs 1 viewer and VIEWERS viewers for DURATION
seconds each. A viewer does what the page does: loads `/`, style.css and app.js, then every refresh_ms fetches
`/api/symbols` and `/api/oi` for its symbol, on its own keep-alive connection. Prints requests served, errors
(goal 0), latency percentiles, and upstream calls/min with VIEWERS viewers against the 1-viewer baseline (goal:
unchanged).

    python benchmarks/load.py [--viewers 500] [--duration 60] [--workers N] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from pathlib import Path

from common import (
    Service,
    Tally,
    calls,
    cpu_seconds,
    fake_dhan,
    page_config,
    percentile,
    raise_fd_limit,
    service,
    service_env,
    viewer,
)


async def crowd(url: str, cfg: dict, count: int, seconds: float) -> Tally:
    tally = Tally()
    stop = time.monotonic() + seconds
    start_within = min(cfg["refresh_ms"] / 1000, seconds / 4)
    await asyncio.gather(*(viewer(url, cfg, i, stop, tally, start_within) for i in range(count)))
    return tally


def run(svc: Service, base: str, cfg: dict, count: int, seconds: float) -> tuple[Tally, int, float, float]:
    """(tally, upstream calls made meanwhile, server CPU cores used on average, seconds it took)."""
    pids = svc.pids()
    before, cpu0, t0 = len(calls(base)), cpu_seconds(pids), time.monotonic()
    tally = asyncio.run(crowd(svc.url, cfg, count, seconds))
    wall = time.monotonic() - t0
    return tally, len(calls(base)) - before, (cpu_seconds(pids) - cpu0) / wall, wall


def ms(values: list[float], p: float) -> str:
    return f"{percentile(values, p) * 1000:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viewers", type=int, default=500)
    ap.add_argument("--duration", type=float, default=60, help="seconds for each run (1 viewer, then VIEWERS)")
    ap.add_argument("--interval", type=float, help="seconds between refreshes (default: the page's refresh_ms)")
    ap.add_argument("--settle", type=float, default=10, help="seconds to let the refresher reach its pace first")
    ap.add_argument("--workers", type=int, help="override oi.service's --workers")
    ap.add_argument("--threads", type=int, help="override oi.service's --threads")
    args = ap.parse_args()
    limit = raise_fd_limit(args.viewers * 2 + 256)
    if limit < args.viewers + 64:
        raise SystemExit(f"open-files limit {limit} is too low for {args.viewers} connections")

    with (
        tempfile.TemporaryDirectory() as tmp,
        fake_dhan(Path(tmp)) as base,
        service(service_env(Path(tmp) / "var", base), args.workers, args.threads) as svc,
    ):
        cfg = page_config(svc.url)
        if args.interval:
            cfg["refresh_ms"] = int(args.interval * 1000)
        time.sleep(args.settle)  # start-up lists expiries first; measure the steady state only
        results = {n: run(svc, base, cfg, n, args.duration) for n in (1, args.viewers)}
        times = sorted(calls(base))

    command = " ".join(svc.argv[svc.argv.index("gunicorn") + 1 :])
    interval = cfg["refresh_ms"] / 1000
    print(f"gunicorn {command}")
    print(f"Dhan source → fake Dhan on loopback; {len(cfg['symbols'])} symbols; refresh every {interval:g} s (page's")
    print(f"refresh_ms); {args.duration:g} s per run; each viewer: page load, then /api/symbols + /api/oi per refresh")
    print()
    columns = ["viewers", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "stale"]
    columns += ["upstream/min", "server CPU"]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for n, (tally, made, cpu, wall) in results.items():
        polled = sorted(tally.latencies.get("symbols", []) + tally.latencies.get("oi", []))
        print(
            f"| {n} | {tally.requests:,} | {sum(tally.errors.values())} | {tally.requests / wall:,.1f} | "
            f"{ms(polled, 50)} | {ms(polled, 90)} | {ms(polled, 99)} | {ms(polled, 100)} | {tally.stale} | "
            f"{made * 60 / wall:.1f} | {cpu:.2f} cores |"
        )
    print()
    crowd_tally, crowd_calls, _, crowd_wall = results[args.viewers]
    base_calls, base_wall = results[1][1], results[1][3]
    errors = sum(crowd_tally.errors.values())
    page = sorted(crowd_tally.latencies.get("page", []))
    print(f"{args.viewers} viewers: errors {errors} (goal 0){': ' + str(crowd_tally.errors) if errors else ''}")
    print(f"  page loads (/, style.css, app.js): {len(page):,} requests, p50 {ms(page, 50)} ms, p99 {ms(page, 99)} ms")
    print(
        f"  connections opened: {crowd_tally.connects:,} (gunicorn closes keep-alive connections idle for longer "
        f"than --keep-alive, 2 s by default)"
    )
    print(f"  requests resent because the server had just closed the connection: {crowd_tally.resent}")
    per_poll = crowd_tally.bytes_polled / crowd_tally.polls if crowd_tally.polls else 0
    print(f"  response bytes per refresh (symbols + oi, uncompressed): {per_poll:,.0f}")
    ratio = (crowd_calls / crowd_wall) / (base_calls / base_wall) if base_calls else float("nan")
    print(f"upstream calls/min, {args.viewers} viewers ÷ 1 viewer: {ratio:.2f}  (goal 1.00, i.e. unchanged)")
    gap = min((b - a for a, b in itertools.pairwise(times)), default=float("nan"))
    print(f"smallest gap between upstream calls: {gap:.3f} s; total upstream calls: {len(times)}")


if __name__ == "__main__":
    main()
