"""Strike/leg → feed instrument: from the chain's own ``security_id`` when Dhan sends it, else Dhan's instrument
master CSV (tens of MB: downloaded at most once a day into the data dir, streamed row by row, read by header name).

Matching is on underlying symbol, expiry, strike and option type — never on underlying ids, which third parties
report differ between the master and the option-chain API.
"""

from __future__ import annotations

import csv
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import requests
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from oi.feed.merge import LegKey
from oi.feed.protocol import Instrument
from oi.market.calendar import IST
from oi.market.model import OptionChain

log = logging.getLogger(__name__)

MASTER_FILE = "dhan-instruments.csv"
RETRY_FAILED_SECONDS = 3600.0  # a failed download is retried at most hourly: the REST chain works without it
BSE_SYMBOLS = frozenset({"SENSEX", "BANKEX", "SENSEX50"})
OPTION_KINDS = frozenset({"OPTIDX", "OPTSTK"})


def fno_segment(symbol: str) -> str:
    """The derivatives segment of an underlying's options: SENSEX and BANKEX trade on BSE, the rest on NSE."""
    return "BSE_FNO" if symbol in BSE_SYMBOLS else "NSE_FNO"


def chain_legs(chain: OptionChain) -> dict[LegKey, Instrument] | None:
    """Instruments from the chain's own security ids (the documented response has them; early-2025 recordings do
    not). None when the chain carries none."""
    ids = chain.security_ids
    if not ids:
        return None
    segment = fno_segment(chain.symbol)
    return {key: (segment, str(sid)) for key, sid in ids.items()}


class InstrumentMaster:
    """Dhan's scrip master, indexed for the followed symbols only (a few thousand rows kept out of ~200,000)."""

    def __init__(
        self,
        url: str,
        data_dir: Path,
        symbols: Iterable[str],
        clock: Callable[[], datetime],
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url, self.path, self.clock, self.timeout = url, Path(data_dir) / MASTER_FILE, clock, timeout
        self.symbols = frozenset(symbols)
        self.session = session or requests.Session()
        self._index: dict[tuple[str, str, float, str], Instrument] = {}
        self.lot_sizes: dict[str, int] = {}
        # symbol → (security id, segment) of the underlying itself: NSE equity rows (stocks) and index rows
        self.underlyings: dict[str, tuple[int, str]] = {}
        self._loaded_mtime: float | None = None
        self._failed_at: float | None = None
        self._deadline: float | None = None  # time.monotonic() by which a download must be done (ensure's budget)
        self._lock = threading.Lock()
        self.error: str | None = None

    def _fresh(self) -> bool:
        if not self.path.exists():
            return False
        fetched = datetime.fromtimestamp(self.path.stat().st_mtime, IST).date()
        return fetched == self.clock().astimezone(IST).date()

    def ensure(self, budget: float | None = None) -> bool:
        """Download today's master if not done yet, (re)index it if the file changed. True when an index is
        available (possibly yesterday's if today's download failed). Blocking: call it off the event loop.
        `budget` caps the download's wall time in seconds (start-up must finish inside gunicorn's worker timeout)."""
        with self._lock:
            self._deadline = time.monotonic() + budget if budget is not None else None
            now = self.clock().timestamp()
            if not self._fresh() and (self._failed_at is None or now - self._failed_at >= RETRY_FAILED_SECONDS):
                try:
                    with self._across_processes():  # gunicorn's workers start together: one downloads, all read
                        if not self._fresh():
                            self._download()
                    self._failed_at, self.error = None, None
                except (requests.RequestException, OSError) as exc:
                    self._failed_at = now
                    self.error = f"instrument master unavailable ({type(exc).__name__})"
                    log.warning("could not download Dhan's instrument master: %s", exc)
            if self.path.exists() and self.path.stat().st_mtime != self._loaded_mtime:
                try:
                    self._load()
                except (OSError, csv.Error, KeyError) as exc:
                    self.error = f"instrument master unreadable ({type(exc).__name__})"
                    log.warning("could not read Dhan's instrument master: %s", exc)
            return bool(self._index)

    @property
    def loaded(self) -> bool:
        """Whether a copy of the master has been read (it may hold no option leg of the followed symbols)."""
        return self._loaded_mtime is not None

    def load_cached(self) -> bool:
        """Index the master already on disk (any day's), never downloading: lot sizes when nothing needs the network."""
        with self._lock:
            if self.path.exists() and self.path.stat().st_mtime != self._loaded_mtime:
                try:
                    self._load()
                except (OSError, csv.Error, KeyError) as exc:
                    log.warning("could not read Dhan's instrument master: %s", exc)
            return self.loaded

    @contextmanager
    def _across_processes(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @retry(
        retry=retry_if_exception_type((requests.ConnectionError, requests.Timeout)),
        wait=wait_random_exponential(multiplier=1, max=10),
        stop=stop_after_attempt(3),
        reraise=True,
    )
    def _download(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.part")
        deadline = self._deadline
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("instrument master download over its time budget")  # an OSError: not retried
        try:
            with self.session.get(self.url, stream=True, timeout=self.timeout) as resp:
                resp.raise_for_status()
                with open(tmp, "wb") as fh:
                    for block in resp.iter_content(1 << 16):
                        fh.write(block)
                        if deadline is not None and time.monotonic() > deadline:
                            raise TimeoutError("instrument master download over its time budget")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        stamp = self.clock().timestamp()  # "downloaded on" by our clock, so the once-a-day check uses one clock
        os.utime(tmp, (stamp, stamp))
        os.replace(tmp, self.path)  # readers never see half a file
        log.info("downloaded Dhan's instrument master (%d bytes)", self.path.stat().st_size)

    def _load(self) -> None:
        index: dict[tuple[str, str, float, str], Instrument] = {}
        lots: dict[str, int] = {}
        underlyings: dict[str, tuple[int, str]] = {}
        mtime = self.path.stat().st_mtime
        with open(self.path, newline="", encoding="utf-8", errors="replace") as fh:
            for row in csv.DictReader(fh):
                if row.get("SEM_INSTRUMENT_NAME", "").strip() not in OPTION_KINDS:
                    found = underlying_row(row)
                    if found is not None and found[0] in self.symbols:
                        underlyings.setdefault(found[0], found[1])
                    continue
                symbol = underlying_of(row)
                if symbol not in self.symbols:
                    continue
                exchange = row["SEM_EXM_EXCH_ID"].strip().upper()
                segment = {"NSE": "NSE_FNO", "BSE": "BSE_FNO"}.get(exchange)
                kind = row["SEM_OPTION_TYPE"].strip().upper()
                try:
                    strike = float(row["SEM_STRIKE_PRICE"])
                    expiry = row["SEM_EXPIRY_DATE"].strip()[:10]  # "2026-10-30 23:30:00"
                    sid = str(int(float(row["SEM_SMST_SECURITY_ID"])))
                except (TypeError, ValueError):
                    continue
                if segment is None or kind not in ("CE", "PE"):
                    continue
                index[(symbol, expiry, strike, kind)] = (segment, sid)
                lot = row.get("SEM_LOT_UNITS", "").strip()
                if lot:
                    try:
                        lots.setdefault(symbol, int(float(lot)))
                    except ValueError:
                        pass
        self._index, self.lot_sizes, self.underlyings, self._loaded_mtime = index, lots, underlyings, mtime
        log.info("instrument master: %d option legs for %s", len(index), ", ".join(sorted(self.symbols)))

    def legs(self, symbol: str, expiry: str, strikes: Iterable[float]) -> dict[LegKey, Instrument]:
        out: dict[LegKey, Instrument] = {}
        for strike in strikes:
            for kind in ("CE", "PE"):
                inst = self._index.get((symbol, expiry, float(strike), kind))
                if inst is not None:
                    out[(float(strike), kind)] = inst
        return out


def underlying_row(row: dict) -> tuple[str, tuple[int, str]] | None:
    """(symbol, (security id, segment)) when the row is an underlying the option-chain API takes: an NSE equity of
    the EQ series (segment NSE_EQ) or an index (IDX_I). Matched on the trading symbol ("RELIANCE", "NIFTY")."""
    kind = (row.get("SEM_INSTRUMENT_NAME") or "").strip().upper()
    exchange = (row.get("SEM_EXM_EXCH_ID") or "").strip().upper()
    if kind == "EQUITY" and exchange == "NSE" and (row.get("SEM_SERIES") or "").strip().upper() == "EQ":
        segment = "NSE_EQ"
    elif kind == "INDEX":
        segment = "IDX_I"
    else:
        return None
    try:
        sid = int(float(row["SEM_SMST_SECURITY_ID"]))
    except (KeyError, TypeError, ValueError):
        return None
    symbol = (row.get("SEM_TRADING_SYMBOL") or "").strip().upper()
    return (symbol, (sid, segment)) if symbol else None


def underlying_of(row: dict) -> str:
    """The underlying's symbol of an option row: the trading symbol's first part ("NIFTY-Nov2026-24000-CE")."""
    trading = (row.get("SEM_TRADING_SYMBOL") or "").strip().upper()
    if trading:
        return trading.split("-")[0]
    return (row.get("SM_SYMBOL_NAME") or "").strip().upper()


class Resolver:
    """chain → {(strike, "CE"/"PE"): instrument}: the chain's ids first, the master second, None when neither."""

    def __init__(self, master: InstrumentMaster | None) -> None:
        self.master = master
        self.reason: str | None = None

    def __call__(self, chain: OptionChain) -> dict[LegKey, Instrument] | None:
        own = chain_legs(chain)
        if own:
            return own
        if self.master is None or not self.master.ensure():
            self.reason = (self.master.error if self.master else None) or "no security ids for the option legs"
            return None
        legs = self.master.legs(chain.symbol, chain.expiry, (s.strike for s in chain.strikes))
        if not legs:
            self.reason = f"{chain.symbol} {chain.expiry} not in Dhan's instrument master"
            return None
        return legs
