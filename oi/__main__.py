"""``python -m oi``: the operator's command line (see :mod:`oi.cli`)."""

import sys

from oi.cli import main

if __name__ == "__main__":
    sys.exit(main())
