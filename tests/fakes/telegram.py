"""Fake Telegram Bot API: records sendMessage calls; can be told to fail with HTTP 500."""

from __future__ import annotations

from tests.fakes import FakeServer, Request


class FakeTelegram(FakeServer):
    def __init__(self, token: str = "123456:telegram-test-token", fail: bool = False) -> None:
        self.token = token
        self.fail = fail
        self.messages: list[dict] = []

    def handle(self, request: Request):
        if request.method != "POST" or request.path != f"/bot{self.token}/sendMessage":
            return 404, {}, {"ok": False, "error_code": 404, "description": "Not Found"}
        if self.fail:
            return 500, {}, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        body = request.json()
        if not body.get("chat_id") or not body.get("text"):
            return 400, {}, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
        self.messages.append(body)
        return 200, {}, {"ok": True, "result": {"message_id": len(self.messages), "text": body["text"]}}

    @property
    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages]
