"""Stock resolution at start-up: a synthetic instrument master the size of Dhan's (~220,000 rows) on disk, resolved for
2 indices + 50 stocks as each gunicorn worker does — time and Python heap peak (goal: a few seconds, a few MB: the
file is streamed, only the followed symbols' rows are kept).

    python benchmarks/breadth.py
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oi.breadth import resolve  # noqa: E402
from oi.config import from_env  # noqa: E402
from oi.feed.instruments import MASTER_FILE, InstrumentMaster  # noqa: E402
from oi.market.calendar import IST  # noqa: E402

HEADER = (
    "SEM_EXM_EXCH_ID,SEM_SEGMENT,SEM_SMST_SECURITY_ID,SEM_INSTRUMENT_NAME,SEM_EXPIRY_CODE,SEM_TRADING_SYMBOL,"
    "SEM_LOT_UNITS,SEM_CUSTOM_SYMBOL,SEM_EXPIRY_DATE,SEM_STRIKE_PRICE,SEM_OPTION_TYPE,SEM_TICK_SIZE,SEM_EXPIRY_FLAG,"
    "SEM_EXCH_INSTRUMENT_TYPE,SEM_SERIES,SM_SYMBOL_NAME"
)
EXPIRIES = ("2026-11-25", "2026-12-30", "2027-01-27")


def write_master(path: Path, stocks: list[str]) -> int:
    rng, sid, rows = random.Random(7), 100_000, 0
    with open(path, "w") as fh:
        fh.write(HEADER + "\n")
        for i, name in enumerate(("NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "SENSEX")):
            fh.write(f"NSE,I,{13 + i},INDEX,0,{name},1.0,{name},,0.00000,XX,0.0500,NA,INDEX,X,{name}\n")
            for expiry in EXPIRIES * 2:
                for k in range(200):
                    for kind in ("CE", "PE"):
                        sid += 1
                        fh.write(
                            f"NSE,D,{sid},OPTIDX,0,{name}-X-{k}-{kind},75.0,{name} {k} {kind},{expiry} 14:30:00,"
                            f"{20000 + 50 * k}.00000,{kind},5.0000,W,OPTIDX,NA,\n"
                        )
                        rows += 1
        for n, stock in enumerate(stocks):
            fh.write(f"NSE,E,{1000 + n},EQUITY,,{stock},1.0,{stock},,0.00000,XX,0.0500,NA,ES,EQ,{stock} LTD\n")
            fh.write(f"BSE,E,{500000 + n},EQUITY,,{stock},1.0,{stock},,0.00000,XX,0.0500,NA,ES,A,{stock} LTD\n")
            lot = rng.choice((250, 500, 550, 700, 1250))
            for expiry in EXPIRIES:
                for k in range(80):
                    for kind in ("CE", "PE"):
                        sid += 1
                        fh.write(
                            f"NSE,D,{sid},OPTSTK,0,{stock}-X-{k}-{kind},{lot}.0,{stock} {k} {kind},{expiry} 14:30:00,"
                            f"{100 + 10 * k}.00000,{kind},0.0500,M,OPTSTK,NA,\n"
                        )
                        rows += 1
        for n in range(110_000):  # the rest of the file: cash-market rows of both exchanges, bonds, ETFs, …
            fh.write(f"BSE,E,{900000 + n},EQUITY,,SCRIP{n},1.0,Scrip {n},,0.00000,XX,0.0100,NA,ES,A,SCRIP {n} LTD\n")
            rows += 1
    return rows + 2 * len(stocks) + 5


def main() -> None:
    stocks = [f"STOCK{n:03d}" for n in range(200)]
    with tempfile.TemporaryDirectory() as tmp:
        rows = write_master(Path(tmp) / MASTER_FILE, stocks)
        size = (Path(tmp) / MASTER_FILE).stat().st_size
        symbols = ",".join(["NIFTY", "BANKNIFTY", *stocks[::4]])
        env = {"DHAN_CLIENT_ID": "1", "DHAN_ACCESS_TOKEN": "x" * 20, "OI_SYMBOLS": symbols, "OI_DATA_DIR": tmp}
        config = from_env(env)
        clock = lambda: datetime.now(IST)  # noqa: E731
        master = InstrumentMaster("http://127.0.0.1:9/unused", Path(tmp), config.symbols, clock)
        start = time.perf_counter()
        breadth = resolve(config, master)  # the file is today's: no download, one streamed read
        elapsed = time.perf_counter() - start
        tracemalloc.start()  # a second read for the heap figure (tracing slows it down)
        resolve(config, InstrumentMaster("http://127.0.0.1:9/unused", Path(tmp), config.symbols, clock))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert not breadth.disabled and len(breadth.symbols) == 52, breadth.disabled
    print(f"master: {rows:,} rows, {size / 1e6:.1f} MB on disk")
    print(f"resolve 2 indices + 50 stocks: {elapsed:.2f} s, Python heap peak {peak / 1e6:.1f} MB")
    kept = f"{len(master._index):,} option legs, {len(master.underlyings)} underlyings"
    print(f"kept: {kept}, {len(master.lot_sizes)} lot sizes")


if __name__ == "__main__":
    main()
