"""gunicorn settings read by the master (``gunicorn -c gunicorn.conf.py app:app``; gunicorn also picks this file up
from the working directory by itself).

Configuration is validated once, in the master, before any worker boots. Without this a bad setting made every
worker exit with code 1 at import and the master booted a new one about three times a second, forever: a full core,
~62,000 log lines an hour, and systemd never saw a failure (red team, #14). Now the master exits non-zero with one
line naming the variable, and systemd's Restart=on-failure / RestartSec pace any retries.

The master also caps glibc's malloc arenas before it forks (:func:`limit_malloc_arenas`); workers inherit the cap.
"""

import ctypes
import sys

from dotenv import load_dotenv

M_ARENA_MAX = -8  # glibc's <malloc.h>
# glibc gives each thread that allocates its own arena (up to 8 per core), and what is freed in an arena mostly stays
# there, fragmented. A worker's 8 request threads plus the scheduler's and alerts' pools each build and drop 20-100 KB
# bodies every second while the feed ticks: uncapped, the service grew 6.8 MiB in 3 minutes of memory.py instead
# of 2.3 (docs/benchmarks.md). Two arenas rather than one: about the same memory, and a compression running outside
# the GIL does not hold up every other thread's allocations.
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap this process's malloc arenas (inherited by the processes it forks). False where the C library is not glibc
    (musl, macOS): nothing to cap there, and nothing breaks."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def on_starting(server) -> None:
    limit_malloc_arenas()
    load_dotenv()
    from oi.config import ConfigError, from_env

    try:
        from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr, flush=True)
        # SystemExit from this hook stops the arbiter before it forks a worker, with this status
        sys.exit(1)
