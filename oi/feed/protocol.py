"""Dhan market feed v2 wire format: binary response packets (little-endian) and JSON subscription requests.

Layouts are from ../shared/FEED.md (the SDK's source and Dhan's docs). Parsing is total: an unknown code or a
packet shorter than its layout yields ``None`` so the reader skips it and keeps reading.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

HEADER = struct.Struct("<BHBI")  # code, packet length (header included), exchange segment, security id

TICKER, QUOTE, OI, PREV_CLOSE, MARKET_STATUS, FULL, DISCONNECT = 2, 4, 5, 6, 7, 8, 50
INDEX = 1  # undocumented layout: skipped

SEGMENTS = {"IDX_I": 0, "NSE_EQ": 1, "NSE_FNO": 2, "NSE_CURRENCY": 3, "BSE_EQ": 4, "MCX_COMM": 5, "BSE_FNO": 8}
SEGMENT_NAMES = {v: k for k, v in SEGMENTS.items()}

# Request codes: subscribe/unsubscribe per mode, and the polite goodbye.
SUBSCRIBE = {"ticker": 15, "quote": 17, "full": 21}
UNSUBSCRIBE = {"ticker": 16, "quote": 18, "full": 22}
DISCONNECT_REQUEST = 12
MAX_PER_MESSAGE = 100
MAX_PER_CONNECTION = 5000

DISCONNECT_REASONS = {
    805: "too many connections or requests (Dhan code 805)",
    806: "the Dhan Data API plan is not active (Dhan code 806)",
    807: "the access token expired (Dhan code 807)",
    808: "Dhan rejected the client id or token (Dhan code 808)",
    809: "the access token is invalid (Dhan code 809)",
    810: "the client id is invalid (Dhan code 810)",
}
TOKEN_CODES = frozenset({807, 808, 809})

_TICKER = struct.Struct("<fI")  # @8: LTP, LTT
_OI = struct.Struct("<I")  # @8
_PREV = struct.Struct("<fI")  # @8: previous close, previous-day OI
_DISC = struct.Struct("<H")  # @8
# @8: LTP f32, LTQ u16, LTT u32, ATP f32, volume u32, sell qty u32, buy qty u32, OI u32, day-high OI, day-low OI,
# open, close, high, low f32; then the first depth level (@62) '<IIHHff'.
_FULL = struct.Struct("<fHIfIIIIIIffffIIHHff")
_QUOTE = struct.Struct("<fHIfIIIffff")
FULL_LENGTH, QUOTE_LENGTH = 162, 50

Instrument = tuple[str, str]  # (exchange segment name, security id as a string), as requests carry them


class Tick(NamedTuple):
    """A Full, Quote or Ticker packet. Fields a mode does not carry are None."""

    code: int
    segment: int
    security_id: int
    ltp: float
    ltt: int
    volume: int | None = None
    oi: int | None = None
    bid: float | None = None
    bid_qty: int | None = None
    ask: float | None = None
    ask_qty: int | None = None


class OiUpdate(NamedTuple):
    segment: int
    security_id: int
    oi: int


class PrevClose(NamedTuple):
    segment: int
    security_id: int
    prev_close: float
    prev_oi: int


class Disconnect(NamedTuple):
    reason: int

    @property
    def message(self) -> str:
        return DISCONNECT_REASONS.get(self.reason, f"Dhan closed the feed (code {self.reason})")


class MarketStatus(NamedTuple):
    segment: int
    security_id: int


Packet = Tick | OiUpdate | PrevClose | Disconnect | MarketStatus


def price(value: float) -> float:
    """float32 → the exchange's price: 152.3 arrives as 152.3000030517578; two decimals recover the tick."""
    return round(value, 2)


def parse(data: bytes) -> Packet | None:
    """One WebSocket message → a packet, or None (unknown code, short or malformed: the caller skips it)."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < HEADER.size:
        return None
    code, length, segment, security_id = HEADER.unpack_from(data)
    # The declared length must fit in what arrived; a packet longer than its layout is fine (extra bytes ignored).
    if length > len(data):
        return None
    try:
        if code == FULL and length >= FULL_LENGTH:
            ltp, _ltq, ltt, _atp, volume, _sq, _bq, oi, _hi, _lo, _o, _c, _h, _l, bq, aq, _bo, _ao, bp, ap = (
                _FULL.unpack_from(data, 8)
            )
            return Tick(code, segment, security_id, price(ltp), ltt, volume, oi, price(bp), bq, price(ap), aq)
        if code == QUOTE and length >= QUOTE_LENGTH:
            ltp, _ltq, ltt, _atp, volume, *_ = _QUOTE.unpack_from(data, 8)
            return Tick(code, segment, security_id, price(ltp), ltt, volume)
        if code == TICKER and length >= 16:
            ltp, ltt = _TICKER.unpack_from(data, 8)
            return Tick(code, segment, security_id, price(ltp), ltt)
        if code == OI and length >= 12:
            return OiUpdate(segment, security_id, _OI.unpack_from(data, 8)[0])
        if code == PREV_CLOSE and length >= 16:
            prev, prev_oi = _PREV.unpack_from(data, 8)
            return PrevClose(segment, security_id, price(prev), prev_oi)
        if code == DISCONNECT and length >= 10:
            return Disconnect(_DISC.unpack_from(data, 8)[0])
        if code == MARKET_STATUS:
            return MarketStatus(segment, security_id)
    except struct.error:
        return None
    return None


def requests(instruments: Iterable[Instrument], mode: str = "full", subscribe: bool = True) -> Iterator[str]:
    """JSON request frames for `instruments`, at most :data:`MAX_PER_MESSAGE` each (Dhan's limit)."""
    code = (SUBSCRIBE if subscribe else UNSUBSCRIBE)[mode]
    batch: list[dict] = []
    for segment, security_id in instruments:
        batch.append({"ExchangeSegment": segment, "SecurityId": str(security_id)})
        if len(batch) == MAX_PER_MESSAGE:
            yield _request(code, batch)
            batch = []
    if batch:
        yield _request(code, batch)


def _request(code: int, batch: list[dict]) -> str:
    return json.dumps({"RequestCode": code, "InstrumentCount": len(batch), "InstrumentList": batch})


# --- building packets: the fake server and the benchmark speak the same format ----------------------------------
def full_packet(
    segment: int,
    security_id: int,
    ltp: float,
    oi: int,
    volume: int = 0,
    bid: float = 0.0,
    bid_qty: int = 0,
    ask: float = 0.0,
    ask_qty: int = 0,
    ltt: int = 0,
    ltq: int = 0,
) -> bytes:
    head = HEADER.pack(FULL, FULL_LENGTH, segment, security_id)
    body = _FULL.pack(
        ltp, ltq, ltt, ltp, volume, 0, 0, oi, oi, oi, ltp, ltp, ltp, ltp, bid_qty, ask_qty, 1, 1, bid, ask
    )
    depth = bytes(FULL_LENGTH - len(head) - len(body))  # depth levels 2-5
    return head + body + depth


def ticker_packet(segment: int, security_id: int, ltp: float, ltt: int = 0) -> bytes:
    return HEADER.pack(TICKER, 16, segment, security_id) + _TICKER.pack(ltp, ltt)


def prev_close_packet(segment: int, security_id: int, prev_close: float, prev_oi: int) -> bytes:
    return HEADER.pack(PREV_CLOSE, 16, segment, security_id) + _PREV.pack(prev_close, prev_oi)


def disconnect_packet(reason: int) -> bytes:
    return HEADER.pack(DISCONNECT, 10, 0, 0) + _DISC.pack(reason)
