"""WSGI entry point: ``gunicorn app:app``; ``python app.py`` runs the development server (demo feed by default).

Each gunicorn worker imports this module and starts its own background work (the refresher tick, retention and
the token watch); the store's lease makes exactly one of them talk to Dhan.
"""

import sys

from oi.config import ConfigError, from_env, process_env
from oi.logs import setup_logging
from oi.web import create_app

try:
    config = from_env(process_env())  # the environment over .env, without changing os.environ
except ConfigError as exc:
    print(f"configuration error: {exc}", file=sys.stderr)
    sys.exit(2)
setup_logging(config)
app = create_app(config)
if config.start_refresher:
    app.extensions["oi"].start()

if __name__ == "__main__":
    # No reloader: it would start a second refresher. Threaded, so the page stays responsive during a fetch.
    app.run(host=config.host, port=config.port, debug=False, use_reloader=False, threaded=True)
