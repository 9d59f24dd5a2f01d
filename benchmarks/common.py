"""Shared by the benchmarks: the service started the way `oi.service` starts it, the fake Dhan server, a lean
HTTP/1.1 keep-alive client (asyncio streams, so one process can hold hundreds of connections without becoming the
bottleneck), a viewer that behaves like the page, and /proc readers for CPU and memory.
"""

from __future__ import annotations

import array
import asyncio
import json
import os
import random
import re
import resource
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.dhan import CLIENT_ID, TOKEN  # noqa: E402

SERVICE_FILE = ROOT / "oi.service"
TIMEOUT = 10.0  # seconds, for every request the benchmarks make
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _NotReadyError(Exception):
    pass


def wait_for(url: str, seconds: float = 60, proc: subprocess.Popen | None = None) -> None:
    def check() -> None:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"process exited with {proc.returncode} before {url} answered")  # not retried
        if requests.get(url, timeout=2).status_code != 200:
            raise _NotReadyError

    try:
        Retrying(
            stop=stop_after_delay(seconds),
            wait=wait_fixed(0.5),
            retry=retry_if_exception_type((requests.RequestException, _NotReadyError)),
            reraise=True,
        )(check)
    except (requests.RequestException, _NotReadyError):
        raise SystemExit(f"timed out waiting for {url}") from None


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards `wanted` (capped by the hard limit); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# --- the service, as oi.service runs it -------------------------------------------------------------------------
def service_options(path: Path = SERVICE_FILE) -> tuple[list[tuple[str, str]], str]:
    """gunicorn's (option, value) pairs and the app from the unit's ExecStart line, so the benchmarks follow it."""
    for line in path.read_text().splitlines():
        if line.startswith("ExecStart="):
            argv = shlex.split(line.split("=", 1)[1])
            break
    else:
        raise SystemExit(f"no ExecStart= line in {path}")
    options, positional, rest = [], [], iter(argv[1:])
    for token in rest:
        if token.startswith("-"):
            name, eq, value = token.partition("=")
            options.append((name, value if eq else next(rest)))
        else:
            positional.append(token)
    if len(positional) != 1:
        raise SystemExit(f"cannot tell the app from ExecStart in {path}: {positional}")
    return options, positional[0]


ALIASES = {"-w": "--workers", "-b": "--bind", "-t": "--timeout"}


@dataclass
class Service:
    url: str
    proc: subprocess.Popen
    argv: list[str]
    workers: int
    threads: int

    def pids(self) -> list[int]:
        """The master and its workers."""
        return [self.proc.pid, *children(self.proc.pid)]


def gunicorn_argv(port: int, workers: int | None = None, threads: int | None = None) -> tuple[list[str], int, int]:
    """The unit's gunicorn command with --bind on loopback (and workers/threads overridden if given)."""
    options, app = service_options()
    merged: dict[str, str] = {}
    for name, value in options:
        merged[ALIASES.get(name, name)] = value
    merged["--bind"] = f"127.0.0.1:{port}"
    if "--config" in merged:  # the unit's absolute /opt/oi path: this checkout's file
        merged["--config"] = str(ROOT / Path(merged["--config"]).name)
    if workers is not None:
        merged["--workers"] = str(workers)
    if threads is not None:
        merged["--threads"] = str(threads)
    argv = [sys.executable, "-m", "gunicorn"]
    for name, value in merged.items():
        argv += [name, value]
    return [*argv, app], int(merged.get("--workers", "1")), int(merged.get("--threads", "1"))


def service_env(data_dir: Path, dhan_base: str | None = None, symbols: str = "NIFTY,BANKNIFTY") -> dict[str, str]:
    """The demo source (or the Dhan source against `dhan_base`), market forced open, an empty embedded store."""
    env = dict(os.environ)
    for name in ("MONGO_URI", "OI_SOURCE", "OI_NOW", "DHAN_CLIENT_ID", "DHAN_ACCESS_TOKEN", "DHAN_API_BASE"):
        env.pop(name, None)
    # The origin lock (issue #6) would answer 403 to a benchmark client without the header; the edge is not measured.
    env.pop("ORIGIN_SECRET", None)
    env.update(
        OI_MARKET_ALWAYS_OPEN="1",
        OI_DATA_DIR=str(data_dir),
        OI_SYMBOLS=symbols,
        LOG_LEVEL="WARNING",
    )
    if dhan_base:
        env.update(OI_SOURCE="dhan", DHAN_CLIENT_ID=CLIENT_ID, DHAN_ACCESS_TOKEN=TOKEN, DHAN_API_BASE=dhan_base)
    else:
        env["OI_SOURCE"] = "demo"
    return env


@contextmanager
def service(
    env: dict[str, str], workers: int | None = None, threads: int | None = None, argv: list[str] | None = None
) -> Iterator[Service]:
    """Run gunicorn until the block ends; ready once /healthz says 200. `argv` replaces the unit's command."""
    port = free_port()
    if argv is None:
        argv, workers, threads = gunicorn_argv(port, workers, threads)
    else:
        argv = [a.replace("{port}", str(port)) for a in argv]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/healthz", proc=proc)
        yield Service(url, proc, argv, workers or 0, threads or 0)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def fake_dhan(tmp: Path, min_gap: float | None = None) -> Iterator[str]:
    """`python -m tests.fakes.dhan` in its own process (with a limiter refusing calls closer than `min_gap`);
    yields its base URL (…/v2)."""
    portfile = Path(tmp) / "fake-dhan"
    argv = [sys.executable, "-m", "tests.fakes.dhan", str(portfile)] + ([str(min_gap)] if min_gap else [])
    proc = subprocess.Popen(argv, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not portfile.exists() or not portfile.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the fake Dhan server did not start")
            time.sleep(0.1)
        yield portfile.read_text()
    finally:
        proc.terminate()
        proc.wait(10)


def calls(fake: str) -> list[float]:
    """Monotonic times of every upstream call the fake Dhan has seen."""
    return [t for t, *_ in requests.get(fake.rsplit("/v2", 1)[0] + "/_calls", timeout=5).json()]


def limited_calls(fake: str) -> list[float]:
    """Times of the calls the fake's limiter refused (805), when it runs with a minimum gap."""
    return [t for t, _, limited in requests.get(fake.rsplit("/v2", 1)[0] + "/_calls", timeout=5).json() if limited]


# --- /proc ------------------------------------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of `pids` so far (processes that are gone count as 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, everything but idle and iowait), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def memory_kb(pid: int) -> tuple[int, int | None]:
    """(RSS, PSS) in kB: VmRSS from /proc/PID/status, Pss from /proc/PID/smaps_rollup (None if unavailable)."""
    rss = int(re.search(r"^VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M).group(1))
    try:
        pss = int(re.search(r"^Pss:\s+(\d+)", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.M).group(1))
    except (OSError, AttributeError):
        pss = None
    return rss, pss


PAGE = os.sysconf("SC_PAGE_SIZE")
PFN_MASK = (1 << 55) - 1


def unique_kb(pids: list[int]) -> int | None:
    """Resident memory of `pids` together, each physical page counted once however many of them map it, from
    /proc/PID/pagemap. Unlike PSS this does not depend on what else runs on the machine (PSS also splits a
    library's pages with unrelated processes that map the same file). None without the privilege to read frame
    numbers (the kernel reports them as 0 to unprivileged readers)."""
    frames: set[int] = set()
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
            with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
                for line in maps:
                    low, high = (int(x, 16) for x in line.split(None, 1)[0].split("-"))
                    pagemap.seek(low // PAGE * 8)
                    try:
                        entries = array.array("Q", pagemap.read((high - low) // PAGE * 8))
                    except OSError:  # e.g. [vsyscall]
                        continue
                    frames.update(e & PFN_MASK for e in entries if e >> 63)  # bit 63: page present
        except OSError:  # the process exited
            continue
    frames.discard(0)
    return len(frames) * PAGE // 1024 if frames else None


# --- a lean HTTP/1.1 client -------------------------------------------------------------------------------------
class StaleConnectionError(Exception):
    """The server closed a kept-alive connection before answering (browsers then resend an idempotent GET)."""


class Connection:
    """One keep-alive connection. `get` returns (status, body); reconnects when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0
        self.resent = 0
        self.headers: dict[str, str] = {}  # of the last response, names in lower case
        self.received = 0  # bytes of status lines, headers and bodies, as on the wire

    @classmethod
    def to(cls, url: str) -> Connection:
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        return cls(host, int(port))

    async def _connect(self) -> None:
        self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.connects += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def get(
        self, path: str, timeout: float = TIMEOUT, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        async with asyncio.timeout(timeout):
            if self.writer is None or self.reader.at_eof():
                await self._connect()
                return await self._exchange(path, extra)
            try:
                return await self._exchange(path, extra)
            except (StaleConnectionError, ConnectionResetError, BrokenPipeError):
                self.resent += 1
                await self._connect()
                return await self._exchange(path, extra)

    async def _exchange(self, path: str, extra: str = "") -> tuple[int, bytes]:
        reader, writer = self.reader, self.writer
        head = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUser-Agent: oi-bench\r\n{extra}\r\n"
        writer.write(head.encode())
        try:
            status_line = await reader.readline()
            if not status_line:
                raise StaleConnectionError
            received = len(status_line)
            status = int(status_line.split(None, 2)[1])
            length, close, chunked = None, False, False
            self.headers = {}
            while True:
                line = await reader.readline()
                received += len(line)
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                self.headers[name.decode("latin-1")] = value.strip().decode("latin-1")
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
            if status in (204, 304) or 100 <= status < 200:
                body = b""  # no body, whatever the headers say
            elif chunked:
                parts = []
                while size := int((await reader.readline()).split(b";")[0], 16):
                    parts.append(await reader.readexactly(size))
                    await reader.readline()
                await reader.readline()
                body = b"".join(parts)
            elif length is not None:
                body = await reader.readexactly(length)
            else:
                body, close = await reader.read(), True
        except BaseException:
            self.close()
            raise
        self.received += received + len(body)
        if close:
            self.close()
        return status, body


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list (nan if empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


# --- a viewer that behaves like static/app.js -------------------------------------------------------------------
@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)  # by kind: page, symbols, oi
    errors: dict[str, int] = field(default_factory=dict)  # by reason
    bytes_polled: int = 0  # response bodies of the periodic refreshes
    polls: int = 0
    stale: int = 0  # /api/oi answers flagged "stale": true
    connects: int = 0
    resent: int = 0

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values()) + sum(self.errors.values())

    def error(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1


def page_config(url: str) -> dict:
    """The page's embedded configuration (refresh_ms, symbols, strikes), read the way the browser gets it."""
    html = requests.get(url + "/", timeout=TIMEOUT).text
    match = re.search(r'<script type="application/json" id="oi-config">(.*?)</script>', html, re.S)
    if not match:
        raise SystemExit("cannot find the page's oi-config")
    return json.loads(match.group(1))


async def viewer(url: str, cfg: dict, index: int, stop: float, tally: Tally, start_within: float) -> None:
    """Open the page (HTML, CSS, JS), then like app.js's setInterval: every refresh_ms fetch /api/symbols and
    /api/oi for the chosen symbol and its nearest expiry, skipping a tick while a refresh is still in flight."""
    conn = Connection.to(url)
    interval = cfg["refresh_ms"] / 1000
    symbol, expiry = None, None

    async def fetch(path: str, kind: str) -> bytes | None:
        t0 = time.perf_counter()
        try:
            status, body = await conn.get(path)
        except TimeoutError:
            tally.error("timeout")
            conn.close()
            return None
        except (OSError, asyncio.IncompleteReadError, StaleConnectionError, ValueError) as exc:
            tally.error(type(exc).__name__)
            conn.close()
            return None
        tally.latencies.setdefault(kind, []).append(time.perf_counter() - t0)
        if status != 200:
            tally.error(f"HTTP {status}")
            return None
        return body

    async def refresh() -> None:
        nonlocal symbol, expiry
        body = await fetch("/api/symbols", "symbols")
        if body is None:
            return
        symbols = json.loads(body)["symbols"]
        names = [s["symbol"] for s in symbols]
        if symbol not in names:
            symbol = names[index % len(names)] if names else None
        expiries = next((s["expiries"] for s in symbols if s["symbol"] == symbol), [])
        if expiry not in expiries:
            expiry = expiries[0] if expiries else None
        if symbol is None:
            return
        query = f"symbol={symbol}&strikes={cfg['strikes']}" + (f"&expiry={expiry}" if expiry else "")
        oi = await fetch(f"/api/oi?{query}", "oi")
        tally.polls += 1
        tally.bytes_polled += len(body) + len(oi or b"")
        if oi is not None and oi.startswith(b'{"stale":true'):
            tally.stale += 1

    # Viewers arrive spread over the first interval, as real ones would, rather than in one burst.
    await asyncio.sleep(random.Random(index).uniform(0, start_within))
    try:
        for path in ("/", "/static/style.css", "/static/app.js"):
            await fetch(path, "page")
        first = time.monotonic()
        await refresh()
        ticks = 1
        while True:
            due = first + ticks * interval
            if due >= stop:
                break
            await asyncio.sleep(due - time.monotonic())
            await refresh()
            # setInterval keeps its cadence; ticks that fell due during a slow refresh are dropped (inflight guard).
            ticks = max(ticks + 1, int((time.monotonic() - first) / interval) + 1)
    finally:
        tally.connects += conn.connects
        tally.resent += conn.resent
        conn.close()
