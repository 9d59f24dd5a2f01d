"""A fake Dhan market feed (WebSocket v2) on 127.0.0.1, speaking the binary protocol of FEED.md.

It checks the URL's query (version, token, clientId, authType), records every subscription request per connection,
answers a subscription with a prev-close packet then a Full packet per instrument (from :attr:`FakeFeed.quotes`),
and streams :meth:`FakeFeed.push` updates to the connections holding the instrument. Failures on demand: disconnect
packets, the oldest connection dropped with 805 when a 6th connects, abrupt drops, silence with or without pings,
raw (malformed) packets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from oi.feed import protocol
from tests.fakes.dhan import CLIENT_ID, TOKEN

_QUIET = logging.getLogger("tests.fakes.feed.server")
_QUIET.setLevel(logging.INFO)


@dataclass
class FakeConnection:
    ws: ServerConnection
    query: dict[str, str]
    opened: float
    requests: list[dict] = field(default_factory=list)  # every JSON request, in order
    held: dict[tuple[int, int], str] = field(default_factory=dict)  # (segment, id) → mode
    open: bool = True


class FakeFeed:
    def __init__(
        self, token: str = TOKEN, client_id: str = CLIENT_ID, ping_interval: float | None = None, max_connections=5
    ) -> None:
        self.token, self.client_id, self.max_connections = token, client_id, max_connections
        self.ping_interval = ping_interval
        self.connections: list[FakeConnection] = []
        self.rejected: list[dict[str, str]] = []  # queries refused at the handshake
        self.quotes: dict[tuple[int, int], dict] = {}  # (segment, id) → Full packet fields
        self.prev: dict[tuple[int, int], tuple[float, int]] = {}  # (segment, id) → (prev close, prev OI)
        self.on_subscribe = True  # send prev-close + Full per new instrument (after hours: that, then silence)
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    # --- lifecycle ----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        async with serve(
            self._handler,
            "127.0.0.1",
            0,
            process_request=self._check,
            ping_interval=self.ping_interval,
            ping_timeout=None,
            compression=None,
            logger=_QUIET,  # its DEBUG log shows the request line, token included: not what the tests check
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stopping.wait()

    def start(self) -> FakeFeed:
        self.thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stopping.set)
        self.thread.join(5)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _call(self, coro) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(5)

    # --- server side --------------------------------------------------------------------------------------------
    def _check(self, connection: ServerConnection, request) -> Response | None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}
        ok = (
            query.get("version") == "2"
            and query.get("authType") == "2"
            and query.get("token") == self.token
            and query.get("clientId") == self.client_id
        )
        if ok:
            return None
        with self.lock:
            self.rejected.append(query)
        return connection.respond(401, "unauthorized\n")

    async def _handler(self, ws: ServerConnection) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(ws.request.path).query).items()}
        conn = FakeConnection(ws, query, time.monotonic())
        with self.lock:
            self.connections.append(conn)
            live = [c for c in self.connections if c.open]
        if len(live) > self.max_connections:  # Dhan drops the oldest connection
            await self._disconnect(live[0], 805)
        try:
            async for message in ws:
                request = json.loads(message)
                with self.lock:
                    conn.requests.append(request)
                await self._on_request(conn, request)
        except ConnectionClosed:
            pass
        finally:
            conn.open = False

    async def _on_request(self, conn: FakeConnection, request: dict) -> None:
        code = request.get("RequestCode")
        items = [
            (protocol.SEGMENTS[i["ExchangeSegment"]], int(i["SecurityId"])) for i in request.get("InstrumentList", [])
        ]
        modes = {v: k for k, v in protocol.SUBSCRIBE.items()}
        unmodes = {v: k for k, v in protocol.UNSUBSCRIBE.items()}
        if code in modes:
            fresh = [k for k in items if k not in conn.held]
            for key in items:
                conn.held[key] = modes[code]
            if self.on_subscribe:
                for key in fresh:
                    for packet in self._packets(key, modes[code], first=True):
                        await conn.ws.send(packet)
        elif code in unmodes:
            for key in items:
                conn.held.pop(key, None)

    def _packets(self, key: tuple[int, int], mode: str, first: bool = False) -> list[bytes]:
        out = []
        if first and key in self.prev:
            out.append(protocol.prev_close_packet(*key, *self.prev[key]))
        q = self.quotes.get(key)
        if q is not None:
            if mode == "full":
                out.append(protocol.full_packet(*key, **q))
            else:
                out.append(protocol.ticker_packet(*key, q["ltp"]))
        return out

    async def _disconnect(self, conn: FakeConnection, reason: int) -> None:
        try:
            await conn.ws.send(protocol.disconnect_packet(reason))
            await conn.ws.close()
        except ConnectionClosed:
            pass
        conn.open = False

    # --- test controls (any thread) -----------------------------------------------------------------------------
    def open_connections(self) -> list[FakeConnection]:
        with self.lock:
            return [c for c in self.connections if c.open]

    def held(self, index: int = -1) -> set[tuple[int, int]]:
        with self.lock:
            return set(self.connections[index].held)

    def push(self, segment: int, security_id: int, **values) -> int:
        """Update an instrument's quote and send it to every connection holding it; returns how many got it."""
        key = (segment, security_id)
        with self.lock:
            q = self.quotes.setdefault(key, {"ltp": 0.0, "oi": 0})
            q.update(values)
            targets = [c for c in self.connections if c.open and key in c.held]

        async def send() -> int:
            n = 0
            for c in targets:
                try:
                    for packet in self._packets(key, c.held.get(key, "full")):
                        await c.ws.send(packet)
                    n += 1
                except ConnectionClosed:
                    pass
            return n

        return self._call(send())

    def send_raw(self, data: bytes, index: int = -1) -> None:
        conn = self.connections[index]
        self._call(conn.ws.send(data))

    def disconnect(self, reason: int, index: int = -1) -> None:
        self._call(self._disconnect(self.connections[index], reason))

    def drop(self, index: int = -1) -> None:
        """Cut the TCP connection without a closing handshake (a network drop)."""
        conn = self.connections[index]

        async def cut() -> None:
            conn.ws.transport.abort()
            conn.open = False

        self._call(cut())
