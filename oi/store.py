"""MongoDB repository: latest chain per (symbol, expiry), per-minute history, expiry lists, lease and pace gate.

It uses a deliberately small subset of the pymongo API that behaves the same on MongoDB, mongomock(-ng) and the
embedded on-disk default (montydb on SQLite), and the contract tests run it against each of them:

* ``find_one``/``find`` by ``_id`` or equality, ``$lt``/``$lte``/``$gte``, ``$or``; ``sort`` + ``limit``;
* ``insert_one`` (DuplicateKeyError on a taken ``_id``), ``replace_one(upsert=True)`` with ``_id`` repeated in the
  replacement (montydb otherwise invents a new id), ``update_one`` with ``$set``/``$inc``;
* ``delete_one`` by ``_id``; ``find`` with an ``{"_id": 1}`` projection;
* ``list_collection_names``/``drop_collection``. No indexes, TTL, ``aggregate`` or ``bulk_write`` — except one TTL
  index per history collection on real MongoDB (:meth:`Store.ensure_ttl`), a server-side backstop to the prune.

montydb scans a whole collection for every query and has no indexes, so data is shaped to keep every collection
small: ``latest`` holds one document per (symbol, expiry); history lives in one collection per session day
(``history_YYYYMMDD``), at most one snapshot per minute, written with ``insert_one`` so a write never scans. Old
days are dropped whole (:meth:`Store.prune`), and so are the fired alerts, kept the same way (``events_YYYYMMDD``).
montydb's read-modify-write updates are not atomic across processes, so on the embedded store the lease, pace gate
and version counter take an ``flock`` on a file beside the data.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import sqlite3
import sys
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from oi.market.calendar import IST
from oi.market.model import OptionChain

log = logging.getLogger(__name__)

HISTORY_PREFIX = "history_"
EVENTS_PREFIX = "events_"  # fired alerts (oi/alerts/), one collection per session day like history
# A BSON date in history documents on real MongoDB only, for its TTL index; the other backends keep plain types.
TTL_FIELD, TTL_INDEX = "created", "ttl_created"


# Only the loaded backend's exceptions are named: a backend that was never imported cannot raise, and importing one
# to name its exceptions costs memory (pymongo and mongomock: 11 MiB of the service on the embedded store,
# docs/benchmarks.md, memory.py). So these are functions, evaluated where an exception is being matched (`except
# store_errors():`), by which time the store in use has imported its backend.
_DUPLICATE_KEY = (
    ("pymongo.errors", "DuplicateKeyError"),
    ("mongomock", "DuplicateKeyError"),
    ("mongomock_ng", "DuplicateKeyError"),
    ("montydb.errors", "DuplicateKeyError"),
)
_BACKEND_ERRORS = (("pymongo.errors", "PyMongoError"), ("montydb.errors", "MontyError"))


def _loaded(names: tuple[tuple[str, str], ...]) -> tuple[type[Exception], ...]:
    found = (getattr(sys.modules.get(module), name, None) for module, name in names)
    return tuple(error for error in found if error is not None)


def duplicate_key_errors() -> tuple[type[Exception], ...]:
    """What the loaded backends raise for an ``_id`` that is taken."""
    return _loaded(_DUPLICATE_KEY)


def store_errors() -> tuple[type[Exception], ...]:
    """What a failing backend raises: pymongo's errors (mongomock's are pymongo's), montydb's, and on the embedded
    store SQLite's and the lock file's. JSONDecodeError: montydb's answer to a damaged document
    (oi/store_repair.py), not a bug of ours to trace back."""
    return (sqlite3.Error, OSError, json.JSONDecodeError, *_loaded(_BACKEND_ERRORS))


def minute_id(chain: OptionChain) -> str:
    return f"{chain.symbol}|{chain.expiry}|{chain.as_of.astimezone(IST):%H%M}"


def history_collection(day: date) -> str:
    return f"{HISTORY_PREFIX}{day:%Y%m%d}"


def events_collection(day: date) -> str:
    return f"{EVENTS_PREFIX}{day:%Y%m%d}"


class Store:
    """Repository over a pymongo-compatible ``Database``. ``lock_path`` set → cross-process flock (embedded)."""

    def __init__(self, db: Any, backend: str, lock_path: Path | None = None, files: Path | None = None) -> None:
        self.db = db
        self.backend = backend
        self._lock_path = lock_path
        self._files = files  # the embedded store's collection files, healed by heal()
        self.repaired: list[str] = []  # damaged files this process moved aside (named on /healthz)
        # montydb's shared SQLite connection (and mongomock) are not thread-safe. pymongo is, and its operations are
        # atomic on the server, so on MongoDB nothing waits on a lock: with the server gone each call blocks for the
        # server-selection timeout, and a shared lock would queue every other thread behind it (red team, #14).
        self._thread_lock: Any = contextlib.nullcontext() if backend == "mongodb" else threading.RLock()

    @contextlib.contextmanager
    def _atomic(self) -> Iterator[None]:
        """Serialize a read-modify-write across threads, and across processes on the embedded store."""
        with self._thread_lock:
            if self._lock_path is None:
                yield
                return
            with open(self._lock_path, "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)

    # --- chains -------------------------------------------------------------------------------------------------
    def save_chain(self, chain: OptionChain, history: bool = True) -> bool:
        """Store as latest; keep the first snapshot of each minute as history (unless `history` is False: a frame
        from outside the session). Returns True if history grew."""
        doc = chain.to_doc()
        key = f"{chain.symbol}|{chain.expiry}"
        with self._atomic():
            self.db.latest.replace_one({"_id": key}, {"_id": key, **doc}, upsert=True)
            if not history:
                self._bump_version()
                return False
            grew = True
            extra = {TTL_FIELD: chain.as_of} if self.backend == "mongodb" else {}
            try:
                self.db[history_collection(chain.as_of.astimezone(IST).date())].insert_one(
                    {"_id": minute_id(chain), **doc, **extra}
                )
            except duplicate_key_errors():
                grew = False
            self._bump_version()
        return grew

    def save_latest(self, chains: list[OptionChain]) -> None:
        """Replace the latest view of each chain, with one version bump for them all: the market feed publishes
        ticks this way every second (history keeps its one snapshot a minute through :meth:`save_chain`)."""
        if not chains:
            return
        with self._atomic():
            for chain in chains:
                key = f"{chain.symbol}|{chain.expiry}"
                self.db.latest.replace_one({"_id": key}, {"_id": key, **chain.to_doc()}, upsert=True)
            self._bump_version()

    def latest(self, symbol: str, expiry: str) -> OptionChain | None:
        with self._thread_lock:
            doc = self.db.latest.find_one({"_id": f"{symbol}|{expiry}"})
        return OptionChain.from_doc(doc) if doc else None

    def latest_all(self) -> list[OptionChain]:
        with self._thread_lock:
            docs = list(self.db.latest.find({}))
        return [OptionChain.from_doc(d) for d in docs]

    def history(
        self,
        symbol: str,
        expiry: str,
        day: date,
        until: datetime | None = None,
        limit: int | None = None,
        skipped: list[str] | None = None,
    ) -> list[OptionChain]:
        """The day's per-minute snapshots of (symbol, expiry), oldest first; optionally only up to `until`. With a
        `skipped` list, documents that cannot be read as a chain are left out and their ids appended to it."""
        query: dict[str, Any] = {"symbol": symbol, "expiry": expiry}
        if until is not None:
            query["ts"] = {"$lte": until.timestamp()}
        with self._thread_lock:
            cursor = self.db[history_collection(day)].find(query).sort("ts", -1 if limit else 1)
            docs = list(cursor.limit(limit) if limit else cursor)
        if limit:
            docs.reverse()
        if skipped is None:
            return [OptionChain.from_doc(d) for d in docs]
        chains = []
        for doc in docs:
            try:
                chains.append(OptionChain.from_doc(doc))
            except (KeyError, TypeError, ValueError):
                skipped.append(str(doc.get("_id")))
        return chains

    def day_history(self, day: date, skipped: list[str] | None = None) -> dict[tuple[str, str], list[OptionChain]]:
        """Every snapshot of `day`, per (symbol, expiry), oldest first, in one pass over the day (montydb reads the
        whole collection for any query: asking per expiry read it once per expiry). Documents that cannot be read as
        a chain are left out and their ids appended to `skipped`."""
        out: dict[tuple[str, str], list[OptionChain]] = {}
        with self._thread_lock:
            for doc in self.db[history_collection(day)].find({}):
                try:
                    chain = OptionChain.from_doc(doc)
                except (KeyError, TypeError, ValueError):
                    if skipped is not None:
                        skipped.append(str(doc.get("_id")))
                    continue
                out.setdefault((chain.symbol, chain.expiry), []).append(chain)
        for chains in out.values():
            chains.sort(key=lambda c: c.as_of)
        return out

    def last_frames(self, day: date) -> dict[tuple[str, str], OptionChain]:
        """The last snapshot of every (symbol, expiry) on `day`, in one pass over the day: montydb reads a whole
        collection for any query (~0.6 s for a day of five symbols), so one pass serves every pair at once."""
        last: dict[tuple[str, str], dict] = {}
        with self._thread_lock:
            for doc in self.db[history_collection(day)].find({}):
                key = (doc["symbol"], doc["expiry"])
                if key not in last or doc["ts"] > last[key]["ts"]:
                    last[key] = doc
        return {key: OptionChain.from_doc(doc) for key, doc in last.items()}

    def history_days(self, prefix: str = HISTORY_PREFIX) -> list[date]:
        with self._thread_lock:
            names = self.db.list_collection_names()
        days = []
        for name in names:
            if name.startswith(prefix):
                with contextlib.suppress(ValueError):
                    days.append(datetime.strptime(name[len(prefix) :], "%Y%m%d").date())
        return sorted(days)

    def history_expiries(self, symbol: str, day: date) -> list[str]:
        """The expiries `symbol` has snapshots of on `day`: that session's own list, which a later expiry list no
        longer shows once they have expired."""
        with self._thread_lock:
            docs = list(self.db[history_collection(day)].find({"symbol": symbol}, {"expiry": 1}))
        return sorted({d["expiry"] for d in docs})

    def last_spot_before(self, symbol: str, day: date) -> float | None:
        """The last spot stored for `symbol` in the newest session before `day`: the previous close, as we saw it."""
        earlier = [d for d in self.history_days() if d < day]
        if not earlier:
            return None
        with self._thread_lock:
            docs = list(self.db[history_collection(earlier[-1])].find({"symbol": symbol}).sort("ts", -1).limit(1))
        return float(docs[0]["spot"]) if docs and docs[0]["spot"] > 0 else None

    def prune(self, today: date, keep_days: int) -> list[date]:
        """Drop history (and fired-event) days older than `keep_days`, and the `latest` documents of expiries that
        expired before the same cutoff (each is ~12 KB and every view reload reads them all); returns the dropped
        history days."""
        cutoff = today - timedelta(days=keep_days)
        dropped = [d for d in self.history_days() if d < cutoff]
        with self._atomic():
            for day in dropped:
                self.db.drop_collection(history_collection(day))
            for day in self.history_days(EVENTS_PREFIX):
                if day < cutoff:
                    self.db.drop_collection(events_collection(day))
            expired = [d["_id"] for d in self.db.latest.find({"expiry": {"$lt": cutoff.isoformat()}}, {"_id": 1})]
            for key in expired:
                self.db.latest.delete_one({"_id": key})
            # Session closes (oi/closes.py) outlive their history: they go with their expiry, like `latest`.
            closed = [d["_id"] for d in self.db.closes.find({"expiry": {"$lt": cutoff.isoformat()}}, {"_id": 1})]
            for key in closed:
                self.db.closes.delete_one({"_id": key})
            if closed:
                self.db.meta.update_one({"_id": "version"}, {"$inc": {"closes": 1}}, upsert=True)
            if expired or closed:
                self._bump_version()
        return dropped

    def ensure_ttl(self, keep_days: int) -> list[str]:
        """On real MongoDB, a TTL index on every history collection, so the server drops documents older than
        `keep_days` even if the prune stops running. The prune job calls it, so a day's collection is indexed on
        the first run after its first write, long before anything in it expires. Idempotent; a changed retention
        replaces the index. Returns the collections indexed (none on the other backends: montydb ignores indexes,
        the prune covers it)."""
        if self.backend != "mongodb":
            return []
        import pymongo.errors

        seconds = keep_days * 86400
        names = [history_collection(day) for day in self.history_days()]
        for name in names:
            collection = self.db[name]
            try:
                collection.create_index(TTL_FIELD, expireAfterSeconds=seconds, name=TTL_INDEX)
            except pymongo.errors.OperationFailure:  # same name, other options: the retention changed
                collection.drop_index(TTL_INDEX)
                collection.create_index(TTL_FIELD, expireAfterSeconds=seconds, name=TTL_INDEX)
        return names

    # --- fired alerts (oi/alerts/) ------------------------------------------------------------------------------
    def insert_event(self, day: date, doc: dict) -> bool:
        """Store a fired event under its deterministic ``_id``; False if that id is taken (another process fired
        it first). Moves the event counter and the version stamp, so every process re-reads the day's events."""
        with self._atomic():
            try:
                self.db[events_collection(day)].insert_one(dict(doc))
            except duplicate_key_errors():
                return False
            # The version bump (:meth:`_bump_version`) and the event counter in one write: on the embedded store
            # every write is a commit, and this runs in the refresher's tick.
            self.db.meta.update_one({"_id": "version"}, {"$inc": {"n": 1, "events": 1}}, upsert=True)
        return True

    def events(self, day: date) -> list[dict]:
        """The day's fired events, oldest first."""
        with self._thread_lock:
            return list(self.db[events_collection(day)].find({}).sort("ts", 1))

    def events_stamp(self) -> int:
        """A counter that moves with every stored event: a process re-reads the events only when it moved."""
        with self._thread_lock:
            doc = self.db.meta.find_one({"_id": "version"})
        return int(doc.get("events", 0)) if doc else 0

    # --- session closes (oi/closes.py): one small document per (symbol, expiry, day) --------------------------
    def save_close(self, doc: dict, announce: bool = True) -> None:
        """Store a session close under its ``_id``. `announce` moves the closes counter, so every process re-reads
        them; today's close, rewritten every few minutes, is not served before tomorrow and need not be."""
        with self._atomic():
            self.db.closes.replace_one({"_id": doc["_id"]}, dict(doc), upsert=True)
            if announce:
                self.db.meta.update_one({"_id": "version"}, {"$inc": {"n": 1, "closes": 1}}, upsert=True)

    def closes(self) -> list[dict]:
        with self._thread_lock:
            return list(self.db.closes.find({}))

    def close_ids(self) -> set[str]:
        with self._thread_lock:
            return {d["_id"] for d in self.db.closes.find({}, {"_id": 1})}

    def closes_stamp(self) -> int:
        """A counter that moves with every stored close: a process re-reads the closes only when it moved."""
        with self._thread_lock:
            doc = self.db.meta.find_one({"_id": "version"})
        return int(doc.get("closes", 0)) if doc else 0

    # --- expiry lists -------------------------------------------------------------------------------------------
    def save_expiries(self, symbol: str, expiries: list[str], fetched_on: date) -> None:
        with self._atomic():
            self.db.expiries.replace_one(
                {"_id": symbol},
                {"_id": symbol, "expiries": list(expiries), "fetched_on": fetched_on.isoformat()},
                upsert=True,
            )
            self._bump_version()

    def expiries(self, symbol: str) -> tuple[list[str], date] | None:
        with self._thread_lock:
            doc = self.db.expiries.find_one({"_id": symbol})
        if not doc:
            return None
        return list(doc["expiries"]), date.fromisoformat(doc["fetched_on"])

    # --- version stamp: how other processes notice new data without re-reading it -------------------------------
    def _bump_version(self) -> None:
        self.db.meta.update_one({"_id": "version"}, {"$inc": {"n": 1}}, upsert=True)

    def version(self) -> int:
        with self._thread_lock:
            doc = self.db.meta.find_one({"_id": "version"})
        return int(doc["n"]) if doc else 0

    # --- lease (single-flight refresher) and pace gate ----------------------------------------------------------
    def claim(self, key: str, condition: dict, update: dict) -> bool:
        """Atomically apply `update` to meta[key] if `condition` holds, creating it if absent."""
        with self._atomic():
            if self.db.meta.update_one({"_id": key, **condition}, {"$set": update}).matched_count:
                return True
            try:
                self.db.meta.insert_one({"_id": key, **update})
                return True
            except duplicate_key_errors():
                return False

    def acquire_lease(self, name: str, holder: str, now: float, ttl: float) -> bool:
        """Take or renew the lease `name` for `holder` until now + ttl; False while someone else holds it."""
        return self.claim(
            f"lease:{name}",
            {"$or": [{"holder": holder}, {"expires": {"$lt": now}}]},
            {"holder": holder, "expires": now + ttl},
        )

    def release_lease(self, name: str, holder: str) -> None:
        with self._atomic():
            self.db.meta.update_one({"_id": f"lease:{name}", "holder": holder}, {"$set": {"expires": 0.0}})

    def lease_holder(self, name: str, now: float) -> str | None:
        with self._thread_lock:
            doc = self.db.meta.find_one({"_id": f"lease:{name}"})
        return doc["holder"] if doc and doc["expires"] >= now else None

    def claim_slot(self, name: str, now: float, interval: float) -> bool:
        """The global pace: True (and the next slot moves to now + interval) only if the slot is due."""
        return self.claim(f"pace:{name}", {"next_at": {"$lte": now}}, {"next_at": now + interval, "last_at": now})

    def delay_slot(self, name: str, until: float) -> None:
        """Push the next slot out (back-off after a rate limit); never pulls it earlier."""
        with self._atomic():
            self.db.meta.update_one({"_id": f"pace:{name}", "next_at": {"$lt": until}}, {"$set": {"next_at": until}})

    def pace(self, name: str) -> dict:
        """The adaptive pace state stored beside the slot (oi/pace.py); empty until the first change."""
        with self._thread_lock:
            doc = self.db.meta.find_one({"_id": f"pace:{name}"}) or {}
        return {k: doc[k] for k in ("pace", "floor", "floor_until") if k in doc}

    def set_pace(self, name: str, state: dict) -> None:
        # No upsert: a document without next_at would never match claim_slot's condition. The slot's document
        # exists by then (a pace changes only after a claimed call).
        with self._atomic():
            self.db.meta.update_one({"_id": f"pace:{name}"}, {"$set": state})

    # --- refresher status shared with every worker --------------------------------------------------------------
    def set_status(self, status: dict) -> None:
        with self._atomic():
            self.db.meta.replace_one({"_id": "status"}, {"_id": "status", **status}, upsert=True)
            self._bump_version()

    def status(self) -> dict:
        with self._thread_lock:
            doc = self.db.meta.find_one({"_id": "status"}) or {}
        doc.pop("_id", None)
        return doc

    # --- damaged embedded files (oi/store_repair.py) ---------------------------------------------------------------
    def heal(self) -> list[str]:
        """Move damaged collection files aside so montydb recreates them; a no-op on MongoDB."""
        if self._files is None:
            return []
        from oi.store_repair import heal

        with self._atomic():
            moved = heal(self._files)
        self.repaired.extend(moved)
        return moved

    def can_store(self, day: date) -> None:
        """Raise a store error unless a chain for `day` could be written now: the data dir takes a write, and the
        latest and the day's history collections can be read. Checked before an upstream call after a failed write,
        so Dhan is not asked for answers that would be thrown away."""
        if self._files is None:
            return
        with self._atomic():
            self.db.probe.replace_one({"_id": "probe"}, {"_id": "probe", "day": day.isoformat()}, upsert=True)
            self.db.latest.find_one({"_id": "-"})
            self.db[history_collection(day)].find_one({"_id": "-"})

    def ping(self) -> bool:
        # No traceback: an outage would log one per call; oi/store_monitor.py says once that the store is down.
        try:
            with self._thread_lock:
                self.db.meta.find_one({"_id": "version"})
            return True
        except Exception:
            log.debug("store ping failed", exc_info=True)  # the traceback only at DEBUG
            return False


def open_store(mongo_uri: str, mongo_db: str, data_dir: Path) -> Store:
    """MongoDB when `mongo_uri` is set (``mongomock://`` → in-memory double), else the embedded on-disk store."""
    if mongo_uri.startswith("mongomock://"):
        import mongomock

        return Store(mongomock.MongoClient()[mongo_db], "mongomock")
    if mongo_uri:
        import pymongo

        # Short waits: with the server gone, each call gives up in 2 s instead of pymongo's 30 s (or our old 5 s).
        client = pymongo.MongoClient(
            mongo_uri, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000, socketTimeoutMS=10000
        )
        return Store(client[mongo_db], "mongodb")
    from montydb import MontyClient, set_storage

    path = Path(data_dir) / "montydb"
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "monty.storage.cfg").exists():
        set_storage(str(path), storage="sqlite", use_bson=False)
    store = Store(MontyClient(str(path))[mongo_db], "embedded", lock_path=path / "store.lock", files=path / mongo_db)
    store.heal()  # damaged files from a crash: moved aside before anything reads them
    return store
