"""What keeps the live service's memory down (the figures are benchmarks/memory.py's, docs/benchmarks.md):

- a worker on the embedded store never imports pymongo or mongomock (11 MiB), yet a MongoDB store's errors are
  still caught as store errors;
- gunicorn's master caps glibc's malloc arenas before forking, so a worker's request threads share two arenas
  instead of each keeping its own (with the feed's per-second bodies the service grew 6.8 MiB in 3 minutes
  uncapped, 2.3 capped).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from oi.store import duplicate_key_errors, open_store, store_errors
from tests.mongo_server import free_port

ROOT = Path(__file__).resolve().parent.parent
HEAP_MAX = 64 << 20  # a glibc non-main arena reserves one 64 MiB-aligned heap of this size on 64-bit Linux


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OI_", "DHAN_", "MONGO_", "ORIGIN_"))}
    env.update(OI_SOURCE="demo", OI_MARKET_ALWAYS_OPEN="1", OI_DATA_DIR=str(tmp_path), LOG_LEVEL="WARNING")
    return env


def test_a_worker_on_the_embedded_store_never_imports_pymongo_or_mongomock(tmp_path):
    # What a gunicorn worker does: import app (the service built, its views loaded), then run a refresher tick,
    # which writes to the store (a duplicate minute included) and catches whatever the store raises.
    script = (
        "import json, sys, app\n"
        "svc = app.app.extensions['oi']\n"
        "svc.tick(); svc.tick()\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'pymongo', 'mongomock', 'mongomock_ng'})))"
    )
    env = {**_env(tmp_path), "OI_REFRESHER": "0"}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_store_errors_name_the_backend_in_use(tmp_path):
    embedded = open_store("", "oi", tmp_path)
    assert embedded.backend == "embedded"
    assert any(e.__module__.startswith("montydb") for e in duplicate_key_errors())
    mock = open_store("mongomock://", "oi", tmp_path)  # imports mongomock, and with it pymongo
    import pymongo.errors

    assert pymongo.errors.PyMongoError in store_errors()
    mock.db.meta.insert_one({"_id": "x"})
    with pytest.raises(duplicate_key_errors()):
        mock.db.meta.insert_one({"_id": "x"})
    assert mock.claim("k", {"a": 1}, {"a": 2}) is True
    assert mock.claim("k", {"a": 1}, {"a": 3}) is False  # the insert's DuplicateKeyError matched, not raised


def _arena_heaps(pid: int) -> int:
    """glibc arenas besides the main one, from /proc/PID/maps: each is one HEAP_MAX-aligned reservation of HEAP_MAX
    bytes (its used part read-write, the rest without access)."""
    regions = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        low, high = (int(x, 16) for x in fields[0].split("-"))
        regions.append((low, high, fields[1], len(fields) > 5))  # a sixth field: a file or [stack], [heap]…
    heaps = 0
    for i, (low, high, perms, named) in enumerate(regions):
        if named or low % HEAP_MAX or not perms.startswith("rw"):
            continue
        end = high
        if end - low < HEAP_MAX and i + 1 < len(regions):
            n_low, n_high, n_perms, n_named = regions[i + 1]
            if n_low == high and n_perms.startswith("---") and not n_named:
                end = n_high
        heaps += end - low == HEAP_MAX
    return heaps


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc arenas, /proc")
def test_a_gunicorn_worker_keeps_to_two_malloc_arenas_under_concurrent_requests(tmp_path):
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"), "--workers", "1"]
    argv += ["--threads", "8", "--bind", f"127.0.0.1:{port}", "app:app"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "gunicorn did not come up"
            time.sleep(0.3)

        def hit(i: int) -> int:
            path = ("/", "/api/symbols", "/api/oi?symbol=NIFTY&strikes=all", "/api/oi?symbol=BANKNIFTY")[i % 4]
            with requests.Session() as s:  # a new connection each: spread over the worker's threads
                s.headers["Connection"] = "close"
                return s.get(url + path, timeout=10).status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(hit, range(400)))
        assert set(statuses) == {200}
        (worker,) = _children(proc.pid)
        # The main arena plus at most one more (MALLOC_ARENAS = 2); uncapped, this made 12.
        assert _arena_heaps(worker) <= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
