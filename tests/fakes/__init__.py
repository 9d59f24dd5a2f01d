"""In-process fake HTTP services for tests: each runs a ThreadingHTTPServer on 127.0.0.1, port 0, in a thread."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Request:
    def __init__(self, method: str, path: str, query: dict[str, str], headers, body: bytes) -> None:
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body

    def json(self):
        return json.loads(self.body or b"null")


class _Handler(BaseHTTPRequestHandler):
    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        status, headers, payload = self.server.fake.handle(Request(self.command, parts.path, query, self.headers, body))
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", **headers}
        elif isinstance(payload, str):
            payload = payload.encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815 - the names http.server calls

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


class FakeServer:
    """Base: subclasses implement ``handle(request) -> (status, headers, body)``. Use as a context manager."""

    def __enter__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.fake = self
        self.server.daemon_threads = True
        # A short poll interval makes shutdown() quick (the default 0.5 s adds up across many tests).
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def handle(self, request: Request):  # pragma: no cover - abstract
        raise NotImplementedError


def closed_port_url() -> str:
    """A URL nothing listens on (a service that is down): connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class HealthServer(FakeServer):
    """Stands in for the app's /healthz: healthy answers 200 {"status": "ok"}, unhealthy 503."""

    def __init__(self, healthy: bool = True) -> None:
        self.healthy = healthy
        self.hits = 0

    def handle(self, request: Request):
        self.hits += 1
        if request.path != "/healthz":
            return 404, {}, {"error": "not found"}
        if self.healthy:
            return 200, {}, {"status": "ok"}
        return 503, {}, {"status": "degraded", "reason": "no data yet"}
