"""WSGI entry point: ``gunicorn app:app``; ``python app.py`` runs the development server (demo feed by default).

Each gunicorn worker imports this module and starts its own background work (the refresher tick, retention and
the token watch); the store's lease makes exactly one of them talk to Dhan.
"""

import sys

from dotenv import load_dotenv

from oi.config import ConfigError, from_env
from oi.logs import setup_logging
from oi.web import create_app

load_dotenv()
try:
    config = from_env()
except ConfigError as exc:
    print(f"configuration error: {exc}", file=sys.stderr)
    sys.exit(2)  # like every command: 2 is a configuration error
setup_logging(config)
app = create_app(config)
if config.start_refresher:
    app.extensions["oi"].start()

if __name__ == "__main__":
    # No reloader: it would start a second refresher. Threaded, so the page stays responsive during a fetch.
    app.run(host=config.host, port=config.port, debug=False, use_reloader=False, threaded=True)
