"""gunicorn settings read by the master (``gunicorn -c gunicorn.conf.py app:app``; gunicorn also picks this file up
from the working directory by itself).

Configuration is validated once, in the master, before any worker boots. Without this a bad setting made every
worker exit with code 1 at import and the master booted a new one about three times a second, forever: a full core,
~62,000 log lines an hour, and systemd never saw a failure (red team, #14). Now the master exits non-zero with one
line naming the variable, and systemd's Restart=on-failure / RestartSec pace any retries.
"""

import sys

from dotenv import load_dotenv


def on_starting(server) -> None:
    load_dotenv()
    from oi.config import ConfigError, from_env

    try:
        from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr, flush=True)
        # SystemExit from this hook stops the arbiter before it forks a worker, with this status
        sys.exit(1)
