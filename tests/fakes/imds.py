"""Fake EC2 instance metadata service, IMDSv2 only (token required, as on a hardened instance)."""

from __future__ import annotations

import secrets

from tests.fakes import FakeServer, Request


class FakeImds(FakeServer):
    def __init__(self, public_ipv4: str | None = "203.0.113.10", instance_id: str = "i-0123456789abcdef0") -> None:
        self.public_ipv4 = public_ipv4
        self.instance_id = instance_id
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str]] = []

    def handle(self, request: Request):
        self.requests.append((request.method, request.path))
        if request.path == "/latest/api/token":
            if request.method != "PUT" or not request.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return 400, {}, "missing or invalid TTL"
            token = secrets.token_hex(16)
            self.tokens.add(token)
            return 200, {}, token
        if request.headers.get("X-aws-ec2-metadata-token") not in self.tokens:
            return 401, {}, "Unauthorized"  # IMDSv1-style request refused
        values = {
            "/latest/meta-data/public-ipv4": self.public_ipv4,
            "/latest/meta-data/instance-id": self.instance_id,
        }
        value = values.get(request.path)
        if request.method != "GET" or value is None:
            return 404, {}, "Not Found"
        return 200, {}, value
