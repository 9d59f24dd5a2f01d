"""HTTP for the pre-serialized answers: compressed once, validated by a strong ETag, cacheable at the edge.

An :class:`Encoded` body holds the plain bytes, their gzip and brotli forms and a content hash, computed once per
body (one view version, one history length, one set of head values) and kept in an :class:`EncodedCache`, so a
request only picks the bytes its ``Accept-Encoding`` allows or answers ``304``. The ETag is a hash of the exact plain
bytes (the per-request head included), so it is strong and changes exactly when what a viewer would read changes;
each encoding has its own tag (``-gz``, ``-br``) because a strong tag names one exact byte sequence.

Cache policy (:func:`cache_control`): in market hours the live JSON may be reused for at most half the period at
which it changes (the refresh period for ``/api/oi``; a minute for the history, one point a minute, and the symbol
list), by browsers and shared caches (Cloudflare) alike, with as much again of stale-while-revalidate, so a viewer
is never more than one period behind; after the close the data does not move until the next session, so it is
cached until then (capped at an hour). Errors and ``/healthz`` are ``no-store``.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import threading
from base64 import urlsafe_b64encode
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import brotli
from flask import Flask, Request, Response, url_for
from flask import request as flask_request

log = logging.getLogger(__name__)

GZIP_LEVEL = 9  # once per body, not per request: the smallest output is worth the ~1 ms
# Quality 11 is ~25% smaller than gzip -9 on the chain JSON (2.3 KB vs 3.0 KB for 21 strikes) for ~20 ms once per
# view version; qualities 5-9 save only 5-8% (README, "Cost at scale").
BROTLI_QUALITY = 11
# For answers few viewers share (a replay's ?at=, an old ?since=), whose variety a client controls: ~1 ms instead of
# ~20, so that asking for many of them cannot cost the server much more than asking for one live answer.
QUICK_GZIP_LEVEL, QUICK_BROTLI_QUALITY = 6, 5
MIN_COMPRESS = 256  # below this an encoded body saves nothing worth a header
NO_STORE = "no-store"
# The page's HTML changes only with a deploy: browsers revalidate it, the edge may keep it a minute.
PAGE_CACHE = "public, max-age=0, s-maxage=60"
MINUTE = 60.0  # the cadence of answers that change at most once a minute (history, the symbol list)
CLOSED_MAX_SECONDS = 3600  # after the close; bounded so a calendar surprise (a special session) heals in an hour
VARY = "Accept-Encoding"


def _tag(plain: bytes) -> str:
    return urlsafe_b64encode(hashlib.blake2b(plain, digest_size=12).digest()).decode()


@dataclass(frozen=True, slots=True)
class Encoded:
    """One response body in every encoding we serve, with its entity tag (unquoted, identity form)."""

    plain: bytes
    etag: str
    gzip: bytes | None = None
    br: bytes | None = None

    @classmethod
    def of(cls, plain: bytes, quick: bool = False) -> Encoded:
        if len(plain) < MIN_COMPRESS:
            return cls(plain, _tag(plain))
        gz = gzip.compress(plain, QUICK_GZIP_LEVEL if quick else GZIP_LEVEL, mtime=0)
        br = brotli.compress(plain, mode=brotli.MODE_TEXT, quality=QUICK_BROTLI_QUALITY if quick else BROTLI_QUALITY)
        return cls(
            plain,
            _tag(plain),
            gz if len(gz) < len(plain) else None,
            br if len(br) < min(len(plain), len(gz)) else None,
        )

    @property
    def size(self) -> int:
        return len(self.plain) + len(self.gzip or b"") + len(self.br or b"")

    def pick(self, request: Request) -> tuple[bytes, str | None, str]:
        """(body, Content-Encoding or None, quoted ETag) for what the request's Accept-Encoding allows."""
        accept = request.accept_encodings
        if self.br is not None and accept["br"] > 0:
            return self.br, "br", f'"{self.etag}-br"'
        if self.gzip is not None and accept["gzip"] > 0:
            return self.gzip, "gzip", f'"{self.etag}-gz"'
        return self.plain, None, f'"{self.etag}"'


class EncodedCache:
    """Encoded bodies by key, within a byte budget; the oldest entries go first (old versions are never asked
    for again, so insertion order is a good enough eviction order). Lookups take no lock; a miss builds under one,
    so a crowd arriving at a new version compresses it once."""

    # The live set is small (one entry per view, window and head in use: ~20 KB each; a few hundred KB for five
    # symbols with three expiries); the budget only bounds how many old versions linger before they are dropped.
    def __init__(self, budget_bytes: int = 2 << 20) -> None:
        self.budget = budget_bytes
        self.used = 0
        self.builds = 0
        self._entries: dict[Hashable, tuple[Encoded, int]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], bytes], quick: bool = False) -> Encoded:
        found = self._entries.get(key)
        if found is not None:
            return found[0]
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                return found[0]
            encoded = Encoded.of(build(), quick)
            self.builds += 1
            parts = key if isinstance(key, tuple) else (key,)
            size = encoded.size + sum(len(p) for p in parts if isinstance(p, bytes))  # keys keep their bytes alive
            self._entries[key] = (encoded, size)
            self.used += size
            while self.used > self.budget and len(self._entries) > 1:
                self.used -= self._entries.pop(next(iter(self._entries)))[1]
            return encoded


def cache_control(market_open: bool, refresh_seconds: float, now: datetime, next_open: datetime | None) -> str:
    """The policy for live JSON (module doc). `next_open` is when data starts moving again, if closed."""
    live = max(1, int(refresh_seconds / 2))
    if market_open or next_open is None:
        ttl, swr = live, live
    else:
        ttl = max(live, min(CLOSED_MAX_SECONDS, math.floor((next_open - now).total_seconds())))
        swr = live
    return f"public, max-age={ttl}, s-maxage={ttl}, stale-while-revalidate={swr}"


def respond(
    request: Request, encoded: Encoded, cache: str, content_type: str = "application/json", status: int = 200
) -> Response:
    """The answer for `encoded`: 304 when the request already holds this exact representation, else its bytes in
    the best encoding the client accepts. Either way with the ETag, Vary and Cache-Control a cache needs."""
    body, coding, etag = encoded.pick(request)
    headers = {"ETag": etag, "Vary": VARY, "Cache-Control": cache}
    if status == 200 and request.method in ("GET", "HEAD") and request.if_none_match.contains_weak(etag.strip('"')):
        return Response(status=304, headers=headers)
    resp = Response(body, status=status, content_type=content_type, headers=headers)
    if coding:
        resp.headers["Content-Encoding"] = coding
    return resp


class StaticFiles:
    """The static assets, read and compressed once at start: a few tens of KB, so cheaper than compressing on
    every request (flask-compress) or keeping a cache for that. The page names them with their content hash
    (``?v=``), so those URLs are cached for good; any other URL of an asset is revalidated on each use."""

    CACHE = "public, no-cache"
    IMMUTABLE = "public, max-age=31536000, immutable"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, tuple[Encoded, str]] = {}
        types = {
            ".css": "text/css; charset=utf-8",
            ".js": "text/javascript; charset=utf-8",
            ".svg": "image/svg+xml",
            ".json": "application/json",
        }
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix in types:
                rel = path.relative_to(folder).as_posix()
                self.files[rel] = (Encoded.of(path.read_bytes()), types[path.suffix])

    def serve(self, request: Request, filename: str) -> Response | None:
        """The asset's answer, or None for a file not pre-loaded (left to Flask's own static handler)."""
        found = self.files.get(filename)
        if found is None:
            return None
        encoded, content_type = found
        cache = self.IMMUTABLE if request.args.get("v") == encoded.etag else self.CACHE
        return respond(request, encoded, cache, content_type)

    def version(self, filename: str) -> str | None:
        found = self.files.get(filename)
        return found[0].etag if found else None


def register_http(app: Flask) -> EncodedCache:
    """Give `app` its encoded-body cache, serve its static assets pre-compressed, and make the templates' `asset()`
    name them by content hash."""
    cache = app.extensions["oi.http"] = EncodedCache()
    files = StaticFiles(Path(app.static_folder))
    flask_static = app.view_functions["static"]

    def static(filename: str) -> Response:
        return files.serve(flask_request, filename) or flask_static(filename=filename)

    app.view_functions["static"] = static
    app.jinja_env.globals["asset"] = lambda name: url_for("static", filename=name, v=files.version(name))
    return cache
