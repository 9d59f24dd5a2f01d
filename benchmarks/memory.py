"""Memory of the whole live service, then what running it costs a month on the smallest EC2 instance that fits.

Starts gunicorn exactly as `oi.service` does (master + workers; the embedded store, as with MONGO_URI unset) with
the demo source (or `--source fake-dhan`) and the market forced open, lets a few viewers poll like the page does,
and samples the memory of the master and every worker every few seconds for MINUTES minutes:

- RSS sum (VmRSS in /proc/PID/status): counts a page shared by the master and the forked workers once per process,
  so it overstates the service;
- PSS sum (Pss in /proc/PID/smaps_rollup): splits shared pages between the processes that map them, but those
  include unrelated processes mapping the same files (other Pythons from the same venv), so on a shared machine it
  understates, and it moves with whatever else runs;
- unique: every physical page any of them maps, counted once (/proc/PID/pagemap; needs root to see frame numbers):
  what the service takes from the machine's RAM. The goal is judged on it (on PSS without root).

Prints peak and final (goal <= 120 MB), then the monthly AWS cost arithmetic.

Issue #14: by default the store starts with a full session already recorded (09:15-15:29 IST today, every symbol,
one frame a minute), so the views and series hold what they hold at the close, not an empty morning
(--empty-store for the old run); with --nginx, viewers go through nginx (deploy/nginx.conf) in front of gunicorn,
and nginx's own processes are reported separately.

    python benchmarks/memory.py [--minutes 10] [--viewers 5] [--source demo|fake-dhan] [--empty-store] [--nginx]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from datetime import time as dtime
from pathlib import Path

import requests
from common import (
    TIMEOUT,
    Service,
    Tally,
    children,
    fake_dhan,
    free_port,
    memory_kb,
    page_config,
    service,
    service_env,
    unique_kb,
    viewer,
)

GOAL_MB = 120
MIB = 1024  # /proc reports kB (KiB)


@dataclass
class Sample:
    at: float
    per_pid: dict[int, tuple[int, int | None]]  # pid → (RSS kB, PSS kB)
    unique: int | None  # kB, shared pages once

    @property
    def rss(self) -> int:
        return sum(r for r, _ in self.per_pid.values())

    @property
    def pss(self) -> int | None:
        values = [p for _, p in self.per_pid.values()]
        return None if None in values else sum(values)


def sample(svc: Service, t0: float, pids: list[int] | None = None) -> Sample:
    per_pid = {}
    for pid in svc.pids() if pids is None else pids:
        try:
            per_pid[pid] = memory_kb(pid)
        except (OSError, AttributeError):  # a worker that just exited (or is being replaced)
            continue
    return Sample(time.monotonic() - t0, per_pid, unique_kb(list(per_pid)))


def mb(kb: int | None) -> str:
    return "n/a" if kb is None else f"{kb / MIB:.1f}"


async def observe(
    svc: Service, cfg: dict, args: argparse.Namespace, front: Front | None = None
) -> tuple[list[Sample], Tally, list[Sample]]:
    t0 = time.monotonic()
    stop = t0 + args.minutes * 60
    tally = Tally()
    spread = cfg["refresh_ms"] / 1000
    url = front.url if front else svc.url
    crowd = asyncio.gather(*(viewer(url, cfg, i, stop, tally, spread) for i in range(args.viewers)))
    samples, next_print, nginx = [], 0.0, []
    while time.monotonic() < stop:
        samples.append(sample(svc, t0))
        if front:
            nginx.append(sample(svc, t0, front.pids()))
        s = samples[-1]
        if s.at >= next_print:
            count = len(s.per_pid)
            print(
                f"  {s.at:6.0f} s  RSS sum {mb(s.rss):>6}  PSS sum {mb(s.pss):>6}  unique {mb(s.unique):>6} MiB"
                f"  ({count} processes)"
            )
            next_print += 60
        await asyncio.sleep(args.every)
    await crowd
    samples.append(sample(svc, t0))
    return samples, tally, nginx


@dataclass
class Front:
    """nginx in front of the service, as deploy/nginx.conf sets it up on the box."""

    url: str
    proc: subprocess.Popen

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]


@contextmanager
def nginx_front(tmp: Path, upstream: str) -> Iterator[Front]:
    from tests.test_nginx import NGINX, main_config, running, site_config, wait_ok

    port, app_port = free_port(), int(upstream.rsplit(":", 1)[1])
    prefix = tmp / "nginx"
    prefix.mkdir()
    (prefix / "oi.conf").write_text(site_config(port, app_port))
    (prefix / "nginx.conf").write_text(main_config(prefix, prefix / "oi.conf"))
    with running([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")]) as proc:
        wait_ok(f"http://127.0.0.1:{port}/healthz", proc)
        yield Front(f"http://127.0.0.1:{port}", proc)


def preload_session(data_dir: Path, symbols: tuple[str, ...]) -> int:
    """Record today's full session (09:15-15:29 IST, a frame a minute) into the embedded store the service opens."""
    from oi.market.calendar import IST
    from oi.store import open_store
    from tests.session import record_session

    today = datetime.now(IST).date()
    store = open_store("", "oi", data_dir)
    record_session(store, symbols=symbols, day=today, start=dtime(9, 15), end=dtime(15, 29))
    return len(store.history(symbols[0], store.latest_all()[0].expiry, today))


def cost(args: argparse.Namespace, label: str, peak_mib: float, bytes_per_refresh: float, interval: float) -> None:
    hours = args.hours_per_session * args.sessions / 12
    instance = args.hourly * hours
    ipv4 = args.ipv4_hourly * hours
    ebs = args.ebs_gb * args.ebs_gb_month
    total = instance + ipv4 + ebs
    lines = [
        f"Monthly AWS cost ({args.instance}, {args.region}, on-demand; the instance runs only during sessions):",
        f"  instance hours  {args.hours_per_session:g} h × {args.sessions} sessions a year ÷ 12 = {hours:.1f} h/month",
        f"  EC2 {args.instance:<10}  {hours:.1f} h × ${args.hourly:g}/h = ${instance:.2f}",
        f"  public IPv4     {hours:.1f} h × ${args.ipv4_hourly:g}/h = ${ipv4:.2f}  (charged while the instance runs)",
        f"  EBS gp3 root    {args.ebs_gb:g} GB × ${args.ebs_gb_month:g}/GB-month = ${ebs:.2f}  (billed when stopped)",
        "  S3 (snapshot + archives, a few MB a day), Cloudflare free plan, EventBridge Scheduler ≈ $0",
        f"  total ≈ ${total:.2f}/month (≈ ${total * 12:.2f}/year)",
        f"  prices: {args.price_source}",
    ]
    need = peak_mib + args.os_reserve_mib
    lines.append(
        f"  fits: service peak {label} {peak_mib:.0f} MiB + {args.os_reserve_mib:g} MiB assumed for the OS, sshd and "
        f"the cron jobs = {need:.0f} MiB of {args.instance_mib:g} MiB: {'yes' if need <= args.instance_mib else 'NO'}"
    )
    if bytes_per_refresh:
        session_mb = bytes_per_refresh * (3600 / interval) * args.hours_per_session / 1e6
        sessions = 100_000 / session_mb
        lines.append(
            f"  data out (not in the total): a viewer with the page open all session pulls ≈ {session_mb:.0f} MB "
            f"({bytes_per_refresh / 1e3:.1f} kB every {interval:g} s, uncompressed); AWS's free 100 GB/month covers "
            f"≈ {sessions:,.0f} such viewer-sessions, ≈ {sessions / (args.sessions / 12):,.0f} all-day viewers"
        )
    print()
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--viewers", type=int, default=5)
    ap.add_argument("--every", type=float, default=5, help="seconds between samples")
    ap.add_argument("--source", choices=("demo", "fake-dhan"), default="demo")
    ap.add_argument("--workers", type=int, help="override oi.service's --workers")
    ap.add_argument("--threads", type=int, help="override oi.service's --threads")
    ap.add_argument("--empty-store", action="store_true", help="start from an empty store (before #14)")
    ap.add_argument("--nginx", action="store_true", help="viewers through nginx; its memory reported separately")
    cost_args = ap.add_argument_group("cost arithmetic")
    cost_args.add_argument("--instance", default="t4g.nano")
    cost_args.add_argument("--instance-mib", type=float, default=512)
    cost_args.add_argument("--region", default="ap-south-1")
    cost_args.add_argument("--hourly", type=float, default=0.0045, help="USD per instance-hour")
    cost_args.add_argument("--ipv4-hourly", type=float, default=0.005, help="USD per public IPv4 address-hour")
    cost_args.add_argument("--ebs-gb", type=float, default=8)
    cost_args.add_argument("--ebs-gb-month", type=float, default=0.0912, help="USD per gp3 GB-month")
    cost_args.add_argument("--hours-per-session", type=float, default=6.75)
    cost_args.add_argument("--sessions", type=int, default=248, help="trading sessions a year")
    cost_args.add_argument("--os-reserve-mib", type=float, default=200)
    cost_args.add_argument(
        "--price-source",
        default=(
            "t4g.nano $0.0045/h is an assumption (not verified here: the widely quoted us-east-1 list price is "
            "$0.0042/h; check aws.amazon.com/ec2/pricing/on-demand for ap-south-1); public IPv4 $0.005/h is AWS's "
            "charge since 1 Feb 2024; gp3 $0.0912/GB-month for ap-south-1 as listed in third-party price tables"
        ),
    )
    args = ap.parse_args()

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        base = stack.enter_context(fake_dhan(tmp)) if args.source == "fake-dhan" else None
        env = service_env(tmp / "var", base)
        if not args.empty_store:
            frames = preload_session(tmp / "var", tuple(env["OI_SYMBOLS"].split(",")))
            print(f"store preloaded with today's full session: {frames} frames per symbol")
        svc = stack.enter_context(service(env, args.workers, args.threads))
        front = stack.enter_context(nginx_front(tmp, svc.url)) if args.nginx else None
        cfg = page_config(svc.url)
        command = " ".join(svc.argv[svc.argv.index("gunicorn") + 1 :])
        print(f"gunicorn {command}" + (" behind nginx (deploy/nginx.conf)" if front else ""))
        every = cfg["refresh_ms"] / 1000
        print(f"source {args.source}, {args.viewers} viewers polling every {every:g} s, {args.minutes:g} min")
        samples, tally, nginx = asyncio.run(observe(svc, cfg, args, front))
        body = requests.get(svc.url + f"/api/oi?symbol={cfg['symbols'][0]}", timeout=TIMEOUT).content

    final = samples[-1]

    def peak(values: list[int | None]) -> int | None:
        return None if None in values else max(values)

    peaks = {
        "RSS sum": peak([s.rss for s in samples]),
        "PSS sum": peak([s.pss for s in samples]),
        "unique": peak([s.unique for s in samples]),
    }
    finals = {"RSS sum": final.rss, "PSS sum": final.pss, "unique": final.unique}
    print()
    print("| MiB | " + " | ".join(peaks) + " |")
    print("| --- |" + " --- |" * len(peaks))
    print("| peak | " + " | ".join(mb(v) for v in peaks.values()) + " |")
    print("| final | " + " | ".join(mb(v) for v in finals.values()) + " |")
    print()
    print("final, per process (master first):")
    for pid, (rss, pss) in final.per_pid.items():
        role = "master" if pid == svc.proc.pid else "worker"
        print(f"  {role} {pid}: RSS {mb(rss)} MiB, PSS {mb(pss)} MiB")
    label = next(name for name in ("unique", "PSS sum", "RSS sum") if peaks[name] is not None)
    fair = peaks[label]
    # "120 MB" read both ways: 120 MiB (what free and top call MB) and 120 × 10^6 bytes.
    as_mib, as_mb = fair / MIB, fair * 1024 / 1e6
    if as_mb <= GOAL_MB:
        verdict = "met"
    elif as_mib <= GOAL_MB:
        verdict = "met if MB means MiB, MISSED if it means 10^6 bytes"
    else:
        verdict = "MISSED"
    print(f"peak {label}: {as_mib:.1f} MiB = {as_mb:.1f} MB (goal <= {GOAL_MB} MB: {verdict})")
    if nginx:
        peak_nginx = {
            "RSS sum": peak([s.rss for s in nginx]),
            "PSS sum": peak([s.pss for s in nginx]),
            "unique": peak([s.unique for s in nginx]),
        }
        print(
            "nginx (master + worker), peak, not in the figures above: "
            + ", ".join(f"{k} {mb(v)} MiB" for k, v in peak_nginx.items())
        )
    print(f"viewers: {tally.requests:,} requests, {sum(tally.errors.values())} errors")
    print(f"/api/oi body {len(body):,} B, gzipped {len(gzip.compress(body)):,} B")

    per_refresh = tally.bytes_polled / tally.polls if tally.polls else 0.0
    cost(args, label, fair / MIB, per_refresh, cfg["refresh_ms"] / 1000)


if __name__ == "__main__":
    main()
