"""Publish the session's static dashboard to S3 (see `python upload.py --help`; also `python -m oi publish`)."""

import sys

from oi.cli import upload_main

if __name__ == "__main__":
    sys.exit(upload_main())
