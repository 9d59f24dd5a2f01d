"""WSGI entry point: ``gunicorn app:app``; ``python app.py`` runs the development server (demo feed by default)."""

import sys

from dotenv import load_dotenv

from oi.config import ConfigError, from_env
from oi.logs import setup_logging
from oi.web import create_app

load_dotenv()
try:
    config = from_env()
except ConfigError as exc:
    sys.exit(f"configuration error: {exc}")
setup_logging(config)
app = create_app(config)

if __name__ == "__main__":
    # No reloader: it would start a second refresher. Threaded, so the page stays responsive during a fetch.
    app.run(host=config.host, port=config.port, debug=False, use_reloader=False, threaded=True)
