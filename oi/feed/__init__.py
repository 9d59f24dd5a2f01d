"""Dhan's live market feed (WebSocket v2): tick-level LTP, volume, bid/ask and OI on top of the REST chain.

The package is self-contained: :class:`oi.feed.supervisor.FeedSupervisor` is the one object a service owns
(``start``/``stop``/``follow``/``apply``/``status``); everything else is its parts.
"""
