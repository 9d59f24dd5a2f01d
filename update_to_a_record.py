#!/usr/bin/env python3
"""Day: point DOMAIN_NAME at this instance (A record), once the app is healthy. See docs/operations.md."""

import sys

from dotenv import load_dotenv

from oi.cli_dns import main_a
from oi.logs import setup_script_logging

if __name__ == "__main__":
    load_dotenv()
    setup_script_logging()
    sys.exit(main_a())
