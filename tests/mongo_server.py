"""A real MongoDB wire server for the tests: SecantusDB (WiredTiger storage) in a subprocess on a free loopback port.

A subprocess, not the in-process server, so that a test can kill it (an outage as the driver sees one: refused
connections) and start it again on the same data directory and port. SecantusDB is GPL-2.0: a test-only dependency
(requirements-dev.txt), never imported by the service.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pymongo

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MongoServer:
    """``start()``/``kill()``/``restart()``/``stop()`` a SecantusDB server; ``uri`` stays the same across restarts."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> MongoServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(self.port)]
        # --standalone: a plain single server to the driver (no replica-set discovery); a small cache for 2 cores;
        # --sync-on-commit: without it a SIGKILL loses every write since the last checkpoint (seen: all of them).
        cmd += [
            "--storage-path",
            str(self.data_dir),
            "--standalone",
            "--cache-size",
            "64M",
            "--sync-on-commit",
            "--log-level",
            "WARNING",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"secantusdb exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}"
                )
            client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=300, connectTimeoutMS=300)
            try:
                client.admin.command("ping")
                return
            except pymongo.errors.PyMongoError:
                time.sleep(0.1)
            finally:
                client.close()
        raise RuntimeError(f"secantusdb did not answer within {START_TIMEOUT:.0f} s")

    def kill(self) -> None:
        """SIGKILL: the server vanishes without a goodbye, as in a crash or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> MongoServer:
        self.kill()
        return self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
