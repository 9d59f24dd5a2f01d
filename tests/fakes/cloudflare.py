"""Fake Cloudflare API v4: DNS records and phase entry-point rulesets of one zone, and the token check.

Mimics what the flip depends on: the envelope ({success, errors, messages, result, result_info}), Bearer token
checks (403, code 9109), unknown zones (404, code 7003), the rule that a CNAME cannot share its name with another
address record (400, code 81053), and rate limiting (429 with Retry-After) on demand. Counts writes.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import uuid

from tests.fakes import FakeServer, Request

ADDRESS = {"A", "AAAA", "CNAME"}


def envelope(result=None, errors=(), result_info=None) -> dict:
    out = {"success": not errors, "errors": list(errors), "messages": [], "result": result}
    if result_info is not None:
        out["result_info"] = result_info
    return out


def error(status: int, code: int, message: str):
    return status, {}, envelope(errors=[{"code": code, "message": message}])


class FakeCloudflare(FakeServer):
    def __init__(self, token: str = "cf-test-token-abcdef", zone_id: str = "zone0123456789") -> None:
        self.token = token
        self.zone_id = zone_id
        self.records: dict[str, dict] = {}
        self.entrypoints: dict[str, dict] = {}
        self.writes = 0
        self.log: list[tuple[str, str]] = []
        self.fail_next: list[int] = []  # HTTP statuses to answer the next requests with (e.g. [429, 503])
        self.lock = threading.Lock()
        self.created = 0  # created_on counter: records made later are newer, as on Cloudflare

    @property
    def base_url(self) -> str:
        return f"{self.url}/client/v4"

    # Test helpers (no write counting) -------------------------------------------------------------------
    def add(self, rtype: str, name: str, content: str, proxied: bool = False, **extra) -> dict:
        self.created += 1
        record = {
            "created_on": f"2026-01-01T00:00:{self.created // 1000:02d}.{self.created % 1000:03d}Z",
            "id": uuid.uuid4().hex,
            "zone_id": self.zone_id,
            "name": name,
            "type": rtype,
            "content": content,
            "proxied": proxied,
            "ttl": 1,
            **extra,
        }
        self.records[record["id"]] = record
        return record

    def at(self, name: str, types=ADDRESS) -> list[dict]:
        return [r for r in self.records.values() if r["name"] == name and r["type"] in types]

    # HTTP ---------------------------------------------------------------------------------------------------
    def handle(self, request: Request):
        with self.lock:
            self.log.append((request.method, request.path))
            if self.fail_next:
                status = self.fail_next.pop(0)
                return status, {"Retry-After": "0"}, envelope(errors=[{"code": 971, "message": "Please wait"}])
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return error(403, 9109, "Invalid access token")
            if request.path == "/client/v4/user/tokens/verify":
                status = {"id": "tok0123", "status": "active"}
                return 200, {}, envelope({**status, "messages": [{"message": "This API Token is valid and active"}]})
            m = re.fullmatch(r"/client/v4/zones/([^/]+)/(.*)", request.path)
            if not m:
                return error(404, 7000, "No route for that URI")
            zone, rest = m.groups()
            if zone != self.zone_id:
                return error(404, 7003, "Could not route to /zones/..., perhaps your object identifier is invalid?")
            if rest == "dns_records":
                return self._collection(request)
            m = re.fullmatch(r"dns_records/([0-9a-f]+)", rest)
            if m:
                return self._record(request, m.group(1))
            m = re.fullmatch(r"rulesets/phases/([a-z_]+)/entrypoint", rest)
            if m:
                return self._entrypoint(request, m.group(1))
            return error(404, 7000, "No route for that URI")

    def _collection(self, request: Request):
        if request.method == "GET":
            q = request.query
            found = [
                r
                for r in self.records.values()
                if ("name" not in q or r["name"] == q["name"].lower()) and ("type" not in q or r["type"] == q["type"])
            ]
            per_page, page = int(q.get("per_page", 100)), int(q.get("page", 1))
            chunk = found[(page - 1) * per_page : page * per_page]
            info = {
                "page": page,
                "per_page": per_page,
                "count": len(chunk),
                "total_count": len(found),
                "total_pages": max(1, -(-len(found) // per_page)),
            }
            return 200, {}, envelope(chunk, result_info=info)
        if request.method == "POST":
            body = request.json()
            problem = self._invalid(body, None)
            if problem:
                return problem
            self.writes += 1
            record = self.add(body["type"], body["name"].lower(), body["content"], bool(body.get("proxied")))
            record["ttl"] = body.get("ttl", 1)
            return 200, {}, envelope(record)
        return error(405, 10000, "Method not allowed")

    def _record(self, request: Request, record_id: str):
        record = self.records.get(record_id)
        if record is None:
            return error(404, 81044, "Record does not exist.")
        if request.method == "GET":
            return 200, {}, envelope(record)
        if request.method == "DELETE":
            self.writes += 1
            del self.records[record_id]
            return 200, {}, envelope({"id": record_id})
        if request.method in ("PUT", "PATCH"):
            body = request.json()
            new = {**record, **body} if request.method == "PATCH" else {**body}
            if request.method == "PUT" and not all(new.get(k) for k in ("type", "name", "content")):
                return error(400, 9000, "DNS name, type and content are required for PUT")
            new.update(id=record_id, zone_id=self.zone_id, name=new["name"].lower(), created_on=record["created_on"])
            new.setdefault("proxied", False)
            new.setdefault("ttl", 1)
            problem = self._invalid(new, record_id)
            if problem:
                return problem
            self.writes += 1
            self.records[record_id] = new
            return 200, {}, envelope(new)
        return error(405, 10000, "Method not allowed")

    def _invalid(self, record: dict, record_id: str | None):
        rtype, name, content = record.get("type"), str(record.get("name", "")).lower(), record.get("content", "")
        if rtype == "A":
            try:
                ipaddress.IPv4Address(content)
            except ValueError:
                return error(400, 9005, "Content for A record must be a valid IPv4 address.")
        if record.get("proxied") and record.get("ttl", 1) != 1:
            return error(400, 9000, "TTL must be set to 1 (automatic) when proxied")
        others = [r for r in self.at(name) if r["id"] != record_id]
        if rtype in ADDRESS and others and (rtype == "CNAME" or any(r["type"] == "CNAME" for r in others)):
            return error(400, 81053, "An A, AAAA, or CNAME record with that host already exists.")
        if any(r["type"] == rtype and r["content"] == content for r in others):
            return error(400, 81057, "Record already exists.")
        return None

    def _entrypoint(self, request: Request, phase: str):
        if request.method == "GET":
            ruleset = self.entrypoints.get(phase)
            if ruleset is None:
                return error(404, 10003, f"could not find entrypoint ruleset in the {phase!r} phase")
            return 200, {}, envelope(ruleset)
        if request.method == "PUT":
            body = request.json()
            old = self.entrypoints.get(phase)
            rules = []
            for rule in body.get("rules", []):
                if not rule.get("expression") or not rule.get("action"):
                    return error(400, 20021, "rule is missing expression or action")
                rules.append({"id": rule.get("id") or uuid.uuid4().hex, "version": "1", **rule})
            self.writes += 1
            self.entrypoints[phase] = {
                "id": (old or {}).get("id") or uuid.uuid4().hex,
                "kind": "zone",
                "phase": phase,
                "name": "default",
                "description": body.get("description", ""),
                "version": str(int((old or {}).get("version", "0")) + 1),
                "rules": rules,
            }
            return 200, {}, envelope(self.entrypoints[phase])
        return error(405, 10000, "Method not allowed")
