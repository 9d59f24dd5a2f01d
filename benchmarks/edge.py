"""Viewers at zero marginal cost: what the origin serves with and without an edge cache in front (issue #12).

Starts the service as `oi.service` runs it (gunicorn, demo source, market forced open) and the Varnish of the tests
(tests/varnish.py, configured like Cloudflare with the project's Cache Rule) in front of it. A viewer behaves like
the page: it loads `/` and the assets it names, then polls `/api/symbols` and `/api/oi` on the data's cadence (the
next version is due at `as_of` + the refresh period; a poll that finds no new version retries a second later) and
`/api/history?since=<last point>` every 20 s, sending `Accept-Encoding: gzip, br` and `If-None-Match` like a browser,
and like a browser reusing an answer without asking while its `max-age` (less its `Age`) lasts.
Every viewer watches the page's default symbol (the first), as a new viewer does.

1. Through the cache, 1 viewer then VIEWERS viewers for DURATION s each: origin requests/min and bytes/min (from
   Varnish's backend counters; goal: VIEWERS ÷ 1 ≤ 1.1) and the viewers' latency through the cache.
2. Without the cache, VIEWERS viewers straight at the origin for DURATION s: bytes per viewer per minute as received
   (headers included), extrapolated to a 6.25 h session (goal ≤ 3 MB), and the server's CPU per 100 viewers
   (a t4g.nano's baseline is 0.1 core).

    python benchmarks/edge.py [--viewers 500] [--duration 60]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import random
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import brotli
from common import (
    ROOT,
    Connection,
    StaleConnectionError,
    cpu_seconds,
    page_config,
    percentile,
    raise_fd_limit,
    service,
    service_env,
)

from tests import varnish

SESSION_MINUTES = 6.25 * 60
HISTORY_EVERY = 20.0  # seconds: how often the page refreshes its intraday chart
RETRY = 1.0  # seconds: a poll that found no new version tries again this much later
ACCEPT = "gzip, br"


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    not_modified: int = 0
    browser_cached: int = 0  # answered from the (emulated) browser cache, no request
    load_bytes: int = 0  # the page load: HTML, assets, first symbols/oi/history
    poll_bytes: int = 0  # everything after, as received (status line, headers, body)
    versions: int = 0  # new /api/oi versions seen, summed over viewers
    by_path: dict[str, int] = field(default_factory=dict)  # polling bytes by path (no query)

    def error(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1


def decode(body: bytes, coding: str | None) -> bytes:
    if coding == "br":
        return brotli.decompress(body)
    if coding == "gzip":
        return gzip.decompress(body)
    return body


async def viewer(url: str, period: float, index: int, stop: float, tally: Tally, start_within: float) -> None:
    conn = Connection.to(url)
    tags: dict[str, str] = {}
    bodies: dict[str, bytes] = {}
    fresh: dict[str, float] = {}  # monotonic time until which the browser would reuse its copy
    polling = False  # past the page load
    rng = random.Random(index)

    async def fetch(path: str) -> bytes | None:
        if time.monotonic() < fresh.get(path, 0):
            tally.browser_cached += 1
            return bodies[path]  # still fresh in the browser's cache: no request at all
        headers = {"Accept-Encoding": ACCEPT}
        if path in tags:
            headers["If-None-Match"] = tags[path]
        t0, mark = time.perf_counter(), conn.received
        try:
            status, body = await conn.get(path, headers=headers)
        except TimeoutError:
            tally.error("timeout")
            conn.close()
            return None
        except (OSError, asyncio.IncompleteReadError, StaleConnectionError, ValueError) as exc:
            tally.error(type(exc).__name__)
            conn.close()
            return None
        tally.latencies.append(time.perf_counter() - t0)
        tally.requests += 1
        if polling:
            kind = path.split("?", 1)[0]
            tally.by_path[kind] = tally.by_path.get(kind, 0) + conn.received - mark
        max_age = re.search(r"max-age=(\d+)", conn.headers.get("cache-control", ""))
        if max_age and status in (200, 304):
            fresh[path] = time.monotonic() + int(max_age.group(1)) - int(conn.headers.get("age", "0"))
        if status == 304 and path in bodies:
            tally.not_modified += 1
            return bodies[path]
        if status != 200:
            tally.error(f"HTTP {status}")
            return None
        if "etag" in conn.headers:
            tags[path] = conn.headers["etag"]
        bodies[path] = decode(body, conn.headers.get("content-encoding"))
        return bodies[path]

    await asyncio.sleep(random.Random(index).uniform(0, start_within))
    try:
        html = await fetch("/")
        if html is None:
            return
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html.decode()):
            await fetch(asset.replace("&amp;", "&"))
        symbols = await fetch("/api/symbols")
        if symbols is None:
            return
        symbol = json.loads(symbols)["symbols"][0]["symbol"]
        oi_path = f"/api/oi?symbol={symbol}"
        oi = await fetch(oi_path)
        history = await fetch(f"/api/history?symbol={symbol}")
        last_point = json.loads(history)["points"][-1]["as_of"] if history and json.loads(history)["points"] else None
        tally.load_bytes += conn.received
        mark, polling = conn.received, True
        shown = json.loads(oi)["as_of"] if oi else None  # the version on screen
        retry = shown is None
        history_due = time.monotonic() + HISTORY_EVERY
        while True:
            due = RETRY if retry else datetime.fromisoformat(shown).timestamp() + period - time.time()
            wait = max(0.0, due) + rng.uniform(0, 0.5)
            if time.monotonic() + wait >= stop:
                break
            await asyncio.sleep(wait)
            await fetch("/api/symbols")
            oi = await fetch(oi_path)
            new = json.loads(oi)["as_of"] if oi is not None else None
            retry = new is None or new == shown  # not there yet: try again shortly
            if not retry:
                tally.versions += 1
                shown = new
            if time.monotonic() >= history_due:
                history_due += HISTORY_EVERY
                since = f"&since={last_point}" if last_point else ""
                more = await fetch(f"/api/history?symbol={symbol}{since.replace('+', '%2B')}")
                points = json.loads(more)["points"] if more else []
                if points:
                    last_point = points[-1]["as_of"]
        tally.poll_bytes += conn.received - mark
    finally:
        conn.close()


async def crowd(url: str, period: float, count: int, seconds: float) -> Tally:
    tally = Tally()
    stop = time.monotonic() + seconds
    await asyncio.gather(*(viewer(url, period, i, stop, tally, min(period, seconds / 4)) for i in range(count)))
    return tally


def ms(values: list[float], p: float) -> str:
    return f"{percentile(sorted(values), p) * 1000:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viewers", type=int, default=500)
    ap.add_argument("--duration", type=float, default=60, help="seconds for each run")
    ap.add_argument("--settle", type=float, default=15, help="seconds to let the refresher reach its pace first")
    args = ap.parse_args()
    if not varnish.available():
        raise SystemExit("varnishd is not installed (apt-get install varnish, or make varnish)")
    limit = raise_fd_limit(args.viewers * 2 + 256)
    if limit < args.viewers + 64:
        raise SystemExit(f"open-files limit {limit} is too low for {args.viewers} connections")

    with tempfile.TemporaryDirectory() as tmp, service(service_env(Path(tmp) / "var")) as svc:
        port = int(svc.url.rsplit(":", 1)[1])
        cfg = page_config(svc.url)
        period = cfg["refresh_ms"] / 1000
        print(f"service: {' '.join(Path(a).name if a.startswith(str(ROOT)) else a for a in svc.argv[2:])}")
        print(f"refresh period {period:g} s; symbols {', '.join(cfg['symbols'])}; viewers watch {cfg['symbols'][0]}")
        pids = svc.pids()
        time.sleep(args.settle / 2)
        cpu0, t0 = cpu_seconds(pids), time.monotonic()
        time.sleep(args.settle / 2)
        idle = (cpu_seconds(pids) - cpu0) / (time.monotonic() - t0)  # the refresher alone, nobody watching

        with varnish.varnish(port) as edge:
            print(f"\nthrough the cache (Varnish, {edge.url}), {args.duration:g} s each:")
            print(
                f"{'viewers':>8} {'origin req/min':>15} {'origin KB/min':>14} {'p50 ms':>7} {'p99 ms':>7} "
                f"{'errors':>7} {'viewer req':>11}"
            )
            asyncio.run(crowd(edge.url, period, 1, period))  # warm: the cached page and assets, as on a live day
            through = {}
            for n in (1, args.viewers):
                before, t0 = edge.origin_counters(), time.monotonic()
                tally = asyncio.run(crowd(edge.url, period, n, args.duration))
                minutes = (time.monotonic() - t0) / 60
                after = edge.origin_counters()
                reqs = (after["req"] - before["req"]) / minutes
                kb = (
                    (
                        after["beresp_hdrbytes"]
                        + after["beresp_bodybytes"]
                        - before["beresp_hdrbytes"]
                        - before["beresp_bodybytes"]
                    )
                    / 1024
                    / minutes
                )
                through[n] = (reqs, kb)
                print(
                    f"{n:>8} {reqs:>15.1f} {kb:>14.1f} {ms(tally.latencies, 50):>7} {ms(tally.latencies, 99):>7} "
                    f"{sum(tally.errors.values()):>7} {tally.requests:>11}"
                )
                if tally.errors:
                    print(f"         errors: {tally.errors}")
            (r1, b1), (rn, bn) = through[1], through[args.viewers]
            print(f"ratio {args.viewers}÷1: requests {rn / r1:.2f}, bytes {bn / b1:.2f} (goal ≤ 1.1)")
            print(
                f"origin bytes per 6.25 h session with the cache (any number of viewers): "
                f"{bn * SESSION_MINUTES / 1e3:.1f} MB"
            )

        print(f"\nwithout the cache, {args.viewers} viewers straight at the origin for {args.duration:g} s:")
        cpu0, t0 = cpu_seconds(pids), time.monotonic()
        tally = asyncio.run(crowd(svc.url, period, args.viewers, args.duration))
        wall = time.monotonic() - t0
        cores = (cpu_seconds(pids) - cpu0) / wall
        steady_minutes = (args.duration - min(period, args.duration / 4) / 2) / 60
        per_min = tally.poll_bytes / args.viewers / steady_minutes
        load = tally.load_bytes / args.viewers
        session = load + per_min * SESSION_MINUTES
        print(
            f"  requests {tally.requests}, 304s {tally.not_modified}, errors {sum(tally.errors.values())}, "
            f"p99 {ms(tally.latencies, 99)} ms, answered by the browser cache {tally.browser_cached}"
        )
        print(
            f"  per viewer: page load {load / 1024:.1f} KB, then {per_min / 1024:.1f} KB/min "
            f"({tally.versions / args.viewers / steady_minutes:.1f} new versions/min)"
        )
        print(f"  per 6.25 h session: {session / 1e6:.2f} MB (goal ≤ 3 MB)")
        polled = {k: v for k, v in tally.by_path.items() if k.startswith("/api/")}
        print(
            "  of which, per session: "
            + ", ".join(
                f"{k} {v / args.viewers / steady_minutes * SESSION_MINUTES / 1e6:.2f} MB" for k, v in polled.items()
            )
            + " (polling only)"
        )
        print(
            f"  server CPU: {idle:.3f} cores with nobody watching, {cores:.3f} with {args.viewers} viewers: "
            f"{(cores - idle) * 100 / args.viewers:.4f} cores per 100 viewers (t4g.nano baseline 0.1)"
        )


if __name__ == "__main__":
    main()
