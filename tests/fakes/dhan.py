"""A fake DhanHQ v2 HTTP server on 127.0.0.1 serving the recorded fixtures, for the real SDK to talk to."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "dhan"
CLIENT_ID = "1000000001"
TOKEN = "test-token-not-a-secret-0001"
ERRORS = json.loads((FIXTURES / "errors.json").read_text())


SLEEP, DROP = "sleep", "drop"
RATE_LIMITED = {"data": {"805": "Too many requests"}, "status": "failed"}


def unsigned_jwt(claims: dict) -> str:
    """A JWT-shaped token with `claims` as payload and no real signature (Dhan tokens are JWTs; we only read exp)."""
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{part({'alg': 'HS512', 'typ': 'JWT'})}.{part(claims)}.{part({'sig': 'fake'})}"


def dhan_jwt(exp: float, client_id: str = CLIENT_ID, **extra) -> str:
    claims = {"iss": "dhan", "tokenConsumerType": "SELF", "dhanClientId": client_id, "exp": int(exp)}
    return unsigned_jwt({**claims, **extra})


class FakeDhan:
    """Records every call (`clock()` time, path, payload); `script` queues answers to send next: (status, body), or
    (SLEEP, seconds) to stall before answering (a timeout for a client with a shorter one), or (DROP, None) to close
    the connection without answering. `clock` defaults to time.monotonic; tests driving a fake timer swap it in.
    `min_gap` (seconds, off by default) is a limiter stricter than Dhan's documentation: a call arriving closer than
    that to the previous one is refused with HTTP 429 and Dhan's 805 body, as users report from the real one."""

    def __init__(self, client_id: str = CLIENT_ID, token: str = TOKEN) -> None:
        self.client_id, self.token = client_id, token
        self.clock = time.monotonic
        self.stopping = threading.Event()
        self.chain = json.loads((FIXTURES / "optionchain_NIFTY.json").read_text())
        self.expiries = json.loads((FIXTURES / "expirylist_NIFTY.json").read_text())
        self.known_ids = {13, 25, 27, 442, 51}
        # UnderlyingSeg each known id must come with (ids not listed here are not checked): IDX_I for the indices,
        # NSE_EQ for a stock (add_underlying), as the SDK sends them
        self.segments: dict[int, str] = dict.fromkeys(self.known_ids, "IDX_I")
        self.chain_for = None  # optional: payload → option-chain response (the feed benchmark's many underlyings)
        self.calls: list[tuple[float, str, dict]] = []
        self.min_gap: float | None = None
        self.limited: list[float] = []  # clock() times of the calls the limiter refused
        self.script: deque[tuple[int, object]] = deque()
        # GET /v2/profile and /v2/RenewToken: answers to send next for RenewToken, and (path, token accepted) seen
        self.renew_script: deque[tuple[int, object]] = deque()
        self.account_calls: list[tuple[str, bool]] = []
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
                if self.path in ("/v2/profile", "/v2/RenewToken"):
                    return self._send(*fake.account(self.path, self.headers))
                if self.path != "/_calls":
                    return self._send(404, {})
                with fake.lock:
                    limited = set(fake.limited)
                    seen = [[t, p, t in limited] for t, p, _ in fake.calls]
                return self._send(200, seen)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                with fake.lock:
                    now = fake.clock()
                    previous = fake.calls[-1][0] if fake.calls else None
                    fake.calls.append((now, self.path, payload))
                    scripted = fake.script.popleft() if fake.script else None
                    if scripted is None and fake.min_gap and previous is not None and now - previous < fake.min_gap:
                        fake.limited.append(now)
                        scripted = (429, RATE_LIMITED)
                if self.headers.get("access-token") != fake.token or self.headers.get("client-id") != fake.client_id:
                    return self._send(401, ERRORS["token_invalid_DH901"]["body"])
                if scripted is not None and scripted[0] == DROP:
                    self.close_connection = True
                    return None
                if scripted is not None and scripted[0] == SLEEP:
                    fake.stopping.wait(scripted[1])
                    try:  # the client has given up by now: answering may meet a closed socket
                        return self._send(200, fake.chain)
                    except OSError:
                        self.close_connection = True
                        return None
                if scripted is not None:
                    return self._send(*scripted)
                scrip = payload.get("UnderlyingScrip")
                if scrip not in fake.known_ids or fake.segments.get(scrip, payload.get("UnderlyingSeg")) != payload.get(
                    "UnderlyingSeg"
                ):
                    return self._send(400, ERRORS["invalid_security_813"]["body"])
                if self.path.endswith("/optionchain/expirylist"):
                    return self._send(200, fake.expiries)
                if self.path.endswith("/optionchain"):
                    if payload.get("Expiry") not in fake.expiries["data"]:
                        return self._send(400, ERRORS["invalid_expiry_811"]["body"])
                    return self._send(200, fake.chain_for(payload) if fake.chain_for else fake.chain)
                return self._send(404, {"status": "failed", "data": {"404": "not found"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v2"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> FakeDhan:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def add_underlying(self, security_id: int, segment: str) -> None:
        """Make `security_id` a known underlying, answered only when asked with `segment` (a stock: NSE_EQ)."""
        self.known_ids.add(security_id)
        self.segments[security_id] = segment

    def chain_calls(self) -> list[tuple[float, str, dict]]:
        with self.lock:
            return [c for c in self.calls if c[1].endswith("/optionchain")]

    def account(self, path: str, headers) -> tuple[int, object]:
        """GET /v2/profile (tokenValidity in IST, as Dhan shows it) and GET /v2/RenewToken (a new token, 24 h past
        the old one's exp; from then on only the new token is accepted, as with a real renewal)."""
        with self.lock:
            ok = headers.get("access-token") == self.token
            self.account_calls.append((path, ok))
            if path.endswith("/RenewToken") and self.renew_script:
                return self.renew_script.popleft()
            if not ok:
                return 401, ERRORS["token_invalid_DH901"]["body"]
            exp = _exp(self.token) or time.time()
            if path.endswith("/profile"):
                ist = datetime.fromtimestamp(exp, timezone(timedelta(hours=5, minutes=30)))
                return 200, {
                    "dhanClientId": self.client_id,
                    "tokenValidity": ist.strftime("%d/%m/%Y %H:%M"),
                    "activeSegment": "Equity, Derivative",
                    "ddpi": "Active",
                    "mtf": "Active",
                    "dataPlan": "Active",
                    "dataValidity": "2027-01-01 00:00:00.0",
                }
            if headers.get("dhanClientId") != self.client_id:
                return 400, {"errorType": "Input_Exception", "errorCode": "DH-905", "errorMessage": "dhanClientId"}
            self.token = dhan_jwt(exp + 86400, self.client_id, n=len(self.account_calls))
            until = datetime.fromtimestamp(exp + 86400, timezone(timedelta(hours=5, minutes=30)))
            return 200, {"dhanClientId": self.client_id, "accessToken": self.token, "expiryTime": until.isoformat()}


def _exp(token: str) -> float | None:
    try:
        return float(json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))["exp"])
    except (IndexError, ValueError, KeyError):
        return None


if __name__ == "__main__":  # used by benchmarks/: python -m tests.fakes.dhan PORTFILE [MIN_GAP]
    import sys

    fake = FakeDhan().start()
    fake.min_gap = float(sys.argv[2]) if len(sys.argv) > 2 else None
    Path(sys.argv[1]).write_text(fake.base_url)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
