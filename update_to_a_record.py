#!/usr/bin/env python3
"""Day: point DOMAIN_NAME at this instance (A record), once the app is healthy. Also `python -m oi dns day`."""

import sys

from oi.cli import day_main

if __name__ == "__main__":
    sys.exit(day_main())
