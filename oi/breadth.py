"""Which underlyings the service follows, resolved at start-up: indices from the underlyings table, F&O stocks (and
any other symbol the table lacks) from Dhan's instrument master, lot sizes from the master where it has them.

Config validation never touches the network (oi/config.py accepts an unknown symbol that looks like one when the
source is Dhan); here, in the service, a symbol the master does not know — or every unresolved symbol when the
master cannot be had — is disabled with a reason, and the others are served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from oi.config import DEFAULT_LOT_SIZES, Config

if TYPE_CHECKING:  # the page-side helpers (symbol_kind) stay free of the feed's imports
    from oi.feed.instruments import InstrumentMaster

log = logging.getLogger(__name__)

INDEX, STOCK = "index", "stock"
# How long start-up may spend downloading the master: gunicorn kills a worker silent for 30 s (oi.service), and a
# slow download must cost the stocks (disabled, named on /healthz), not the whole service.
START_BUDGET_SECONDS = 20.0


def symbol_kind(symbol: str, underlyings: dict[str, tuple[int, str]]) -> str:
    """The picker's group: an index underlying (segment IDX_I, or a built-in index) or a stock."""
    entry = underlyings.get(symbol)
    if entry is None:
        return INDEX if symbol in DEFAULT_LOT_SIZES else STOCK
    return INDEX if entry[1] == "IDX_I" else STOCK


@dataclass(frozen=True)
class Breadth:
    """The outcome of resolving OI_SYMBOLS: what is served, how, and what was left out and why."""

    symbols: tuple[str, ...]
    underlyings: dict[str, tuple[int, str]]
    lot_sizes: dict[str, int]
    kinds: dict[str, str]
    disabled: dict[str, str] = field(default_factory=dict)  # symbol → why it is not served

    def apply(self, config: Config) -> Config:
        """`config` with the served symbols, resolved underlyings and lot sizes in force."""
        return replace(config, symbols=self.symbols, underlyings=self.underlyings, lot_sizes=self.lot_sizes)

    @property
    def reason(self) -> str | None:
        if not self.disabled:
            return None
        return "; ".join(f"{s} disabled ({why})" for s, why in self.disabled.items())


def build_master(config: Config, clock: Callable[[], datetime]) -> InstrumentMaster | None:
    """Dhan's instrument master (oi/feed/instruments.py) for the Dhan source, shared by symbol resolution and the
    feed so it is downloaded and read once; None for the demo."""
    if config.source != "dhan":
        return None
    from oi.feed.instruments import InstrumentMaster  # late: the demo and the static pages never need it

    return InstrumentMaster(
        config.dhan_instruments_url, config.data_dir, config.symbols, clock, timeout=config.dhan_timeout_seconds
    )


def resolve(config: Config, master: InstrumentMaster | None, download: bool = True) -> Breadth:
    """Resolve the configured symbols. The master is downloaded (at most once a day, shared with the feed) only when a
    symbol is missing from the underlyings table and `download` allows; else a copy on disk still supplies lot sizes."""
    table = dict(config.underlyings)
    unresolved = [s for s in config.symbols if s not in table]
    available = False
    if master is not None:
        if unresolved and download:
            master.ensure(START_BUDGET_SECONDS)
        else:
            master.load_cached()
        available = master.loaded
    disabled: dict[str, str] = {}
    for symbol in unresolved:
        found = master.underlyings.get(symbol) if master is not None and available else None
        if found is not None:
            table[symbol] = found
            log.info("%s: underlying %s (%s) from Dhan's instrument master", symbol, found[0], found[1])
            continue
        if master is None or not available:
            why = (master.error if master is not None else None) or "instrument master unavailable"
            why = f"{why}; add it to OI_UNDERLYINGS"
        else:
            why = "not in Dhan's instrument master"
        disabled[symbol] = why
        log.error("%s is not served: %s", symbol, why)
    # OI_LOT_SIZES wins, then the master (revised by NSE twice a year), then the built-in table.
    explicit = getattr(config.lot_sizes, "explicit", frozenset())
    from_master = master.lot_sizes if master is not None and available else {}
    lots = dict(config.lot_sizes)
    for symbol, size in from_master.items():
        if symbol not in explicit:
            lots[symbol] = size
    symbols = tuple(s for s in config.symbols if s not in disabled)
    kinds = {s: symbol_kind(s, table) for s in symbols}
    return Breadth(symbols, table, lots, kinds, disabled)
