"""nginx in front of gunicorn (red team #14, finding 1): the slow-client attack that froze gunicorn's threads is
absorbed by nginx, and the box's /healthz probe (5 s timeout, as the A-record flip uses) keeps answering.

Debian's nginx (/usr/sbin/nginx, installed by `make test`) runs in the foreground with a temporary prefix; its
server block is deploy/nginx.conf with only the ports changed. gunicorn runs with oi.service's options.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.mongo_server import free_port

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROBE_TIMEOUT = 5.0  # update_to_a_record.py's health probe

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed (make test installs it)")


def unit_gunicorn(port: int) -> list[str]:
    """oi.service's gunicorn command, bound to `port` on loopback, with this checkout's gunicorn.conf.py."""
    line = next(x for x in (ROOT / "oi.service").read_text().splitlines() if x.startswith("ExecStart="))
    argv = shlex.split(line.split("=", 1)[1])[1:]
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    argv[argv.index("--config") + 1] = str(ROOT / "gunicorn.conf.py")
    return [sys.executable, "-m", "gunicorn", *argv]


def site_config(listen: int, upstream: int) -> str:
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "listen 8000 default_server;" in text and "server 127.0.0.1:8001;" in text
    text = text.replace("listen 8000 default_server;", f"listen 127.0.0.1:{listen} default_server;")
    text = text.replace("listen [::]:8000 default_server;", "")  # loopback IPv4 only in tests
    return text.replace("server 127.0.0.1:8001;", f"server 127.0.0.1:{upstream};")


def main_config(prefix: Path, site: Path) -> str:
    temps = "".join(
        f"    {name}_temp_path {prefix / name};\n" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers as root here, so they can use the temp dirs
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\n"
        f"events {{ worker_connections 1024; }}\n"
        f"http {{\n{temps}    include {site};\n}}\n"
    )


def wait_ok(url: str, proc: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{proc.args[0]} exited with {proc.returncode}"
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered 200")


@contextmanager
def running(argv: list[str], **kwargs):
    proc = subprocess.Popen(argv, **kwargs)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def box(tmp_path):
    """gunicorn as oi.service runs it (demo data, market open) behind nginx with deploy/nginx.conf."""
    app_port, public_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OI_", "DHAN_", "MONGO_", "ORIGIN_"))}
    env.update(OI_SOURCE="demo", OI_MARKET_ALWAYS_OPEN="1", OI_DATA_DIR=str(tmp_path / "var"), LOG_LEVEL="WARNING")
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    (prefix / "oi.conf").write_text(site_config(public_port, app_port))
    (prefix / "nginx.conf").write_text(main_config(prefix, prefix / "oi.conf"))
    with (
        running(unit_gunicorn(app_port), cwd=ROOT, env=env) as app,
        running([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")]) as nginx,
    ):
        wait_ok(f"http://127.0.0.1:{app_port}/healthz", app)
        wait_ok(f"http://127.0.0.1:{public_port}/healthz", nginx)
        yield f"http://127.0.0.1:{public_port}", f"http://127.0.0.1:{app_port}"


def slow_clients(port: int, count: int, stop: threading.Event) -> threading.Thread:
    """`count` connections that send a request line and then one header byte every 2 s, never finishing."""
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(s)

    def trickle() -> None:
        while not stop.wait(2.0):
            for s in socks:
                try:
                    s.sendall(b"a")
                except OSError:
                    pass  # nginx dropped it after its header timeout: that is the point
        for s in socks:
            s.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    return thread


def idle_clients(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]


def probes(url: str, seconds: float) -> list[int | str]:
    results: list[int | str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            results.append(requests.get(url + "/healthz", timeout=PROBE_TIMEOUT).status_code)
        except requests.RequestException as exc:
            results.append(type(exc).__name__)
        time.sleep(0.5)
    return results


def test_slow_clients_do_not_freeze_healthz_behind_nginx(box):
    public, _ = box
    port = int(public.rsplit(":", 1)[1])
    stop = threading.Event()
    idle = idle_clients(port, 50)
    attack = slow_clients(port, 16, stop)  # twice gunicorn's 8 threads
    try:
        time.sleep(1.0)  # let the attack take hold
        seen = probes(public, 12.0)
    finally:
        stop.set()
        attack.join(10)
        for s in idle:
            s.close()
    assert len(seen) >= 5
    assert seen == [200] * len(seen)  # every probe answered within the flip's 5 s


def test_nginx_serves_the_app_compresses_static_files_and_drops_unfinished_headers(box):
    public, _ = box
    page = requests.get(public + "/", timeout=5)
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers  # the app's answer, passed on
    js = requests.get(public + "/static/app.js", headers={"Accept-Encoding": "gzip"}, timeout=5)
    assert js.status_code == 200 and js.headers.get("Content-Encoding") == "gzip"
    assert "Server" not in js.headers or "nginx/" not in js.headers["Server"]  # no version banner
    # a request that never completes its headers is dropped by nginx after its header timeout, not held forever
    # (the socket's 30 s timeout is the failure detector; nginx's header timeout is 10 s)
    with socket.create_connection(("127.0.0.1", int(public.rsplit(":", 1)[1])), timeout=30) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        try:
            answer = s.recv(1024)
        except ConnectionResetError:  # reset_timedout_connection: a RST instead of a FIN
            answer = b""
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408")  # closed (nginx usually sends nothing)
