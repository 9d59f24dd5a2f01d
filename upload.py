"""Publish the session's static dashboard to S3 (see `python upload.py --help`)."""

import sys

from dotenv import load_dotenv

from oi.logs import setup_script_logging
from oi.upload import main

if __name__ == "__main__":
    load_dotenv()
    setup_script_logging()
    sys.exit(main())
