"""A real HTTP cache in front of the app: Debian's Varnish on loopback, configured to behave like Cloudflare's edge
with the project's Cache Rule (cache /api/* for the TTL the origin's s-maxage gives, serve stale while revalidating,
add the origin secret on the way to the origin the way the transform rule does). Used by tests and benchmarks.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

VARNISHD = shutil.which("varnishd") or "/usr/sbin/varnishd"

VCL = """vcl 4.1;

backend origin {{
    .host = "127.0.0.1";
    .port = "{port}";
    .connect_timeout = 2s;
    .first_byte_timeout = 10s;
}}

sub vcl_recv {{
    # The edge's cache key is the URL and (by Vary) the normalised Accept-Encoding; viewers' cookies do not matter.
    unset req.http.Cookie;
    unset req.http.X-Origin-Secret;
}}

sub vcl_backend_fetch {{
    {secret}
}}

sub vcl_deliver {{
    if (obj.hits > 0) {{
        set resp.http.X-Cache = "HIT";
    }} else {{
        set resp.http.X-Cache = "MISS";
    }}
}}
"""


@dataclass
class Edge:
    url: str
    workdir: Path

    def origin_counters(self) -> dict[str, int]:
        """What Varnish sent to and got from the origin so far: requests, and response header and body bytes."""
        out = subprocess.run(
            ["varnishstat", "-n", str(self.workdir), "-1", "-j"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        counters = json.loads(out)
        counters = counters.get("counters", counters)
        wanted = {"req": 0, "beresp_hdrbytes": 0, "beresp_bodybytes": 0}
        for name, value in counters.items():
            if name.startswith("VBE.") and name.rsplit(".", 1)[-1] in wanted and isinstance(value, dict):
                wanted[name.rsplit(".", 1)[-1]] += int(value.get("value", 0))
        return wanted


def available() -> bool:
    return Path(VARNISHD).exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def varnish(origin_port: int, secret: str = "", memory: str = "64m") -> Iterator[Edge]:
    """varnishd in the foreground on a free loopback port in front of 127.0.0.1:`origin_port`.

    Grace comes only from the origin's stale-while-revalidate (default_grace=0), and kept objects are revalidated
    with If-None-Match (default_keep), as a CDN does."""
    with tempfile.TemporaryDirectory(prefix="oi-varnish-") as tmp:
        vcl = Path(tmp) / "edge.vcl"
        line = f'set bereq.http.X-Origin-Secret = "{secret}";' if secret else ""
        vcl.write_text(VCL.format(port=origin_port, secret=line))
        port = _free_port()
        argv = [
            VARNISHD,
            "-F",
            "-j",
            "none",  # run as whoever runs the tests; no privilege separation needed on loopback
            "-n",
            str(Path(tmp) / "work"),
            "-a",
            f"127.0.0.1:{port}",
            "-T",
            "none",
            "-f",
            str(vcl),
            "-s",
            f"malloc,{memory}",
            "-p",
            "default_grace=0",
            "-p",
            "default_keep=60",
            "-p",
            "thread_pool_min=10",
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"varnishd exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("varnishd did not start listening within 30 s") from None
                    time.sleep(0.1)
            yield Edge(f"http://127.0.0.1:{port}", Path(tmp) / "work")
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
