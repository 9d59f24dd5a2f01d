"""A fake DhanHQ v2 HTTP server on 127.0.0.1 serving the recorded fixtures, for the real SDK to talk to."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "dhan"
CLIENT_ID = "1000000001"
TOKEN = "test-token-not-a-secret-0001"
ERRORS = json.loads((FIXTURES / "errors.json").read_text())


class FakeDhan:
    """Records every call (monotonic time, path, payload); `script` queues (status, body) answers to send next."""

    def __init__(self, client_id: str = CLIENT_ID, token: str = TOKEN) -> None:
        self.client_id, self.token = client_id, token
        self.chain = json.loads((FIXTURES / "optionchain_NIFTY.json").read_text())
        self.expiries = json.loads((FIXTURES / "expirylist_NIFTY.json").read_text())
        self.known_ids = {13, 25, 27, 442, 51}
        self.calls: list[tuple[float, str, dict]] = []
        self.script: deque[tuple[int, object]] = deque()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: object) -> None:
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):  # benchmark hook: the upstream calls seen so far
                if self.path != "/_calls":
                    return self._send(404, {})
                with fake.lock:
                    seen = [[t, p] for t, p, _ in fake.calls]
                return self._send(200, seen)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                with fake.lock:
                    fake.calls.append((time.monotonic(), self.path, payload))
                    scripted = fake.script.popleft() if fake.script else None
                if self.headers.get("access-token") != fake.token or self.headers.get("client-id") != fake.client_id:
                    return self._send(401, ERRORS["token_invalid_DH901"]["body"])
                if scripted is not None:
                    return self._send(*scripted)
                if payload.get("UnderlyingScrip") not in fake.known_ids:
                    return self._send(400, ERRORS["invalid_security_813"]["body"])
                if self.path.endswith("/optionchain/expirylist"):
                    return self._send(200, fake.expiries)
                if self.path.endswith("/optionchain"):
                    if payload.get("Expiry") not in fake.expiries["data"]:
                        return self._send(400, ERRORS["invalid_expiry_811"]["body"])
                    return self._send(200, fake.chain)
                return self._send(404, {"status": "failed", "data": {"404": "not found"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v2"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> FakeDhan:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def chain_calls(self) -> list[tuple[float, str, dict]]:
        with self.lock:
            return [c for c in self.calls if c[1].endswith("/optionchain")]


if __name__ == "__main__":  # used by benchmarks/: python -m tests.fakes.dhan PORTFILE
    import sys

    fake = FakeDhan().start()
    Path(sys.argv[1]).write_text(fake.base_url)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
