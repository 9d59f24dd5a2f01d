"""Dhan's live market feed (WebSocket v2): tick-level LTP, volume, bid/ask and OI on top of the REST chain.

The package is self-contained: :class:`oi.feed.supervisor.FeedSupervisor` is the one object a service owns
(``start``/``stop``/``follow``/``apply``/``status``); everything else is its parts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from oi.market.model import OptionChain


class Feed(Protocol):
    """What the refresher needs from a feed (the live one, or the demo's simulated ticks)."""

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def follow(self, chains: Iterable[OptionChain]) -> None: ...

    def apply(self, chain: OptionChain) -> OptionChain: ...

    def changed(self) -> set[tuple[str, str]]: ...

    def status(self): ...

    def token_replaced(self, token: str | None = None) -> None: ...
