"""A background check of the store, so no request waits on it.

With ``MONGO_URI`` pointing at nothing, every pymongo call waits for its server-selection timeout; a ``/healthz``
that pinged the store itself stacked those waits (8 concurrent probes answered one after another, up to 70 s), so
the flips' 5 s health probe saw a dead service. :class:`StoreMonitor` pings from its own thread every few seconds
and keeps the answer; ``/healthz`` reads :meth:`StoreMonitor.state`. A store outage is logged once when it starts
("store unreachable: MONGO_URI=<host>", credentials never shown) and once when it ends, not a traceback per call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

CHECK_SECONDS = 2.0


def describe_store(mongo_uri: str) -> str:
    """Which store, for a log line: ``MONGO_URI=<scheme>://<hosts>``, no user, password, path or options."""
    if not mongo_uri:
        return "the embedded store (OI_DATA_DIR)"
    try:
        parts = urlsplit(mongo_uri)
        hosts = parts.netloc.rpartition("@")[2]
        return f"MONGO_URI={parts.scheme}://{hosts or '?'}"
    except ValueError:
        return "MONGO_URI=<unparseable>"


@dataclass(frozen=True)
class StoreState:
    ok: bool | None  # None: not checked yet
    checked_at: float | None = None
    error: str | None = None  # the exception's type name, never its text (it may carry the URI)

    @property
    def label(self) -> str:
        return {True: "ok", False: "down", None: "unknown"}[self.ok]


class StoreMonitor:
    """``start()``/``stop()`` the background check; ``state()`` is the last result and never touches the store.

    Without a running thread (tests, scripts, the app without its refresher), ``state()`` checks inline, so
    callers see a current state either way."""

    def __init__(
        self,
        ping: Callable[[], bool],
        where: str,
        interval: float = CHECK_SECONDS,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ping, self.where, self.interval, self._timer = ping, where, interval, timer
        self._state = StoreState(None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> StoreState:
        try:
            ok, error = bool(self._ping()), None
        except Exception as exc:  # whatever the backend raises, this is "down", and it must not kill the thread
            ok, error = False, type(exc).__name__
            log.debug("store check failed", exc_info=True)  # the traceback only at DEBUG
        previous = self._state.ok
        self._state = StoreState(ok, self._timer(), None if ok else error or "ping failed")
        if not ok and previous is not False:
            log.warning("store unreachable: %s (%s)", self.where, self._state.error)
        elif ok and previous is False:
            log.info("store reachable again: %s", self.where)
        return self._state

    def state(self) -> StoreState:
        return self._state if self.running else self.check()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> StoreMonitor:
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="store-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            self._stop.wait(self.interval)
