#!/usr/bin/env python3
"""Night: point DOMAIN_NAME at the S3 snapshot (CNAME), once today's snapshot is there. See docs/operations.md."""

import sys

from dotenv import load_dotenv

from oi.cli_dns import main_cname
from oi.logs import setup_script_logging

if __name__ == "__main__":
    load_dotenv()
    setup_script_logging()
    sys.exit(main_cname())
