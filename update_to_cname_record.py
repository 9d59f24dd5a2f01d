#!/usr/bin/env python3
"""Night: point DOMAIN_NAME at the S3 snapshot (CNAME) once today's snapshot is there. `python -m oi dns night`."""

import sys

from oi.cli import night_main

if __name__ == "__main__":
    sys.exit(night_main())
