"""Heal the embedded store's damaged files (red team, issue #14).

montydb keeps each collection in its own SQLite file (``<data>/montydb/<db>/<name>.collection``) and treats "the
file exists" as "the collection exists". A ``kill -9`` during collection creation leaves 0-byte files ("no such
table" on every read and write, forever); a truncated file is "malformed"; a document that is not JSON any more
fails every query on its collection (``JSONDecodeError``: montydb scans whole collections). Each left the day stale
forever while the refresher kept calling Dhan and discarding the answer.

:func:`heal` finds such files and moves them aside — kept for a post-mortem, named in the log and on ``/healthz`` —
so montydb recreates the collection empty on the next write. It runs at start-up and after a store error. Only the
small collections (``meta``, ``latest``, ``expiries``, ...) have every document decoded; a day's history is only
checked as an SQLite file (its documents are read one by one elsewhere, and an unreadable one is skipped).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".collection"
HISTORY_PREFIX = "history_"


def problem(path: Path) -> str | None:
    """Why the collection file at `path` is unusable, or None when it is fine."""
    if path.stat().st_size == 0:
        return "empty file"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return f"cannot open: {exc}"
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='documents'").fetchone():
            return "no documents table"
        check = conn.execute("PRAGMA quick_check").fetchone()
        if not check or check[0] != "ok":
            return f"integrity check: {check[0] if check else 'no answer'}"
        if not path.name.startswith(HISTORY_PREFIX):
            for (value,) in conn.execute("SELECT v FROM documents"):
                json.loads(value)
    except sqlite3.Error as exc:
        return str(exc)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return "a document is not readable JSON"
    finally:
        conn.close()
    return None


def heal(db_dir: Path, now: datetime | None = None) -> list[str]:
    """Move every damaged collection file under `db_dir` aside; returns "<file> (<why>) -> <kept as>" lines."""
    moved: list[str] = []
    if not db_dir.is_dir():
        return moved
    stamp = (now or datetime.now()).strftime("%Y%m%dT%H%M%S")
    for path in sorted(db_dir.glob(f"*{SUFFIX}")):
        try:
            why = problem(path)
        except OSError as exc:
            why = f"unreadable: {exc.strerror}"
        if why is None:
            continue
        kept = path.with_name(f"{path.name}.damaged-{stamp}")
        try:
            path.rename(kept)
            for extra in ("-wal", "-shm"):  # SQLite's WAL files belong to the damaged database
                side = path.with_name(path.name + extra)
                if side.exists():
                    side.rename(kept.with_name(kept.name + extra))
        except OSError as exc:
            log.error("store file %s is damaged (%s) and could not be moved aside: %s", path, why, exc.strerror)
            continue
        line = f"{path.name} ({why}) -> {kept.name}"
        log.warning("store file damaged: moved %s aside as %s (%s); the collection starts empty", path, kept.name, why)
        moved.append(line)
    return moved
