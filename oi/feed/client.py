"""One WebSocket connection to Dhan's feed: connect, subscribe everything it holds, read packets, watch for stalls.

Our own small client on `websockets` rather than the SDK's ``MarketFeed`` (FEED.md: it reconnects every 1.5 s
forever after a disconnect packet, dies if the first connect fails, and can block on close). A session ends with
:class:`FeedDroppedError` (retry with back-off), :class:`FeedClosedError` (Dhan said stop) or normally on stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import Opcode

from oi.feed import protocol
from oi.feed.subscriptions import Wanted

log = logging.getLogger(__name__)

# websockets logs the request line (token included, it is in the query string) at DEBUG: give it a logger of its
# own that never goes below INFO, whatever LOG_LEVEL says.
_ws_log = logging.getLogger("oi.feed.websockets")
_ws_log.setLevel(logging.INFO)


class FeedClosedError(Exception):
    """Dhan ended the feed on purpose (a disconnect packet, or a refused handshake): do not just reconnect."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class FeedDroppedError(Exception):
    """The connection broke or stalled; `was_live` says whether it had been up (the back-off then starts over)."""

    def __init__(self, message: str, was_live: bool = False) -> None:
        super().__init__(message)
        self.was_live = was_live


class _Connection(ClientConnection):
    """Remembers when the server last showed life: a data frame or one of its pings (pongs to our pings do not
    count: a server that answers pings but sends nothing in market hours is stalled)."""

    last_activity: float = 0.0

    def process_event(self, event) -> None:
        if getattr(event, "opcode", None) in (
            Opcode.TEXT,
            Opcode.BINARY,
            Opcode.CONT,
            Opcode.PING,
        ):
            self.last_activity = self.loop.time()
        super().process_event(event)


def feed_url(base: str, client_id: str, token: str) -> str:
    query = urlencode({"version": "2", "token": token, "clientId": client_id, "authType": "2"})
    return f"{base.rstrip('/')}?{query}"


class FeedConnection:
    """State of one of the (at most four) connections; :meth:`session` runs one connect-to-close cycle."""

    def __init__(
        self,
        index: int,
        holds: Callable[[], list[Wanted]],
        on_packet: Callable[[protocol.Packet], None],
        in_market: Callable[[], bool],
        stall_timeout: float = 40.0,
        ping_interval: float | None = 10.0,
        ping_timeout: float | None = 30.0,
        open_timeout: float = 10.0,
    ) -> None:
        self.index, self.holds, self.on_packet, self.in_market = index, holds, on_packet, in_market
        self.stall_timeout, self.ping_interval, self.ping_timeout = stall_timeout, ping_interval, ping_timeout
        self.open_timeout = open_timeout
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.live = False
        self.skipped = 0  # unknown, short or malformed packets
        self.stalled = False
        self.connects = 0
        self.ws: _Connection | None = None

    def send_delta(self, subscribe: list[Wanted], unsubscribe: list[Wanted]) -> None:
        """Queue subscription changes (before unsubscriptions). Dropped when not connected: a connect sends all."""
        if self.ws is None:
            return
        for mode in ("ticker", "full"):
            for msg in protocol.requests([i for m, i in subscribe if m == mode], mode):
                self.outbox.put_nowait(msg)
        for mode in ("ticker", "full"):
            for msg in protocol.requests([i for m, i in unsubscribe if m == mode], mode, subscribe=False):
                self.outbox.put_nowait(msg)

    async def session(self, url: str) -> None:
        try:
            ws = await connect(
                url,
                create_connection=_Connection,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                close_timeout=2,
                max_queue=None,  # never make the server wait on us: the book absorbs bursts
                compression=None,
                proxy=None,
                logger=_ws_log,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise FeedClosedError(status, f"Dhan refused the feed connection (HTTP {status})") from None
            raise FeedDroppedError(f"handshake failed (HTTP {status})") from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise FeedDroppedError(f"cannot connect ({type(exc).__name__})") from None
        self.connects += 1
        ws.last_activity = asyncio.get_running_loop().time()
        # A connect starts from scratch: anything queued for the old connection is covered by the full set.
        self.outbox = asyncio.Queue()
        self.ws = ws
        writer = asyncio.create_task(self._writer(ws))
        try:
            for mode in ("ticker", "full"):
                for msg in protocol.requests([i for m, i in self.holds() if m == mode], mode):
                    await ws.send(msg)
            self.live = True
            log.info("feed connection %d up: %d instrument(s)", self.index, len(self.holds()))
            await self._read(ws)
        except ConnectionClosed as exc:
            if self.stalled:
                raise FeedDroppedError(f"no packet and no ping for {self.stall_timeout:g} s", True) from None
            code = exc.rcvd.code if exc.rcvd else "none"
            raise FeedDroppedError(f"connection dropped (close code {code})", self.live) from None
        finally:
            self.live, self.ws = False, None
            writer.cancel()
            ws.transport.abort()  # never wait on a stalled peer's closing handshake

    async def _writer(self, ws: _Connection) -> None:
        while True:
            msg = await self.outbox.get()
            await ws.send(msg)

    async def _read(self, ws: _Connection) -> None:
        watchdog = asyncio.create_task(self._watch(ws))
        try:
            async for data in ws:  # no per-message timer: a watchdog task looks for stalls instead
                packet = protocol.parse(data) if isinstance(data, bytes) else None
                if packet is None:
                    self.skipped += 1
                    continue
                if isinstance(packet, protocol.Disconnect):
                    raise FeedClosedError(packet.reason, packet.message)
                self.on_packet(packet)
        finally:
            watchdog.cancel()
        if self.stalled:
            raise FeedDroppedError(f"no packet and no ping for {self.stall_timeout:g} s", True)
        raise FeedDroppedError("connection closed by Dhan", True)

    async def _watch(self, ws: _Connection) -> None:
        """In market hours, cut a connection on which the server has shown no life for `stall_timeout`."""
        loop = asyncio.get_running_loop()
        check = max(0.05, min(1.0, self.stall_timeout / 4))
        self.stalled = False
        while True:
            await asyncio.sleep(check)
            if self.in_market() and loop.time() - ws.last_activity > self.stall_timeout:
                self.stalled = True
                ws.transport.abort()
                return
