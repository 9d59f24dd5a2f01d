"""``serve``: the dashboard on Flask's development server (production runs gunicorn on ``app:app``)."""

from __future__ import annotations

import click

from oi.cli.startup import services


@click.command(
    "serve",
    help="Serve the dashboard on HOST:PORT with the development server (demo feed by default).",
    short_help="serve the dashboard (development server)",
)
@click.option("--host", help="address to listen on (default HOST)")
@click.option("--port", type=click.IntRange(1, 65535), help="port (default PORT)")
def serve(host: str | None, port: int | None) -> int:
    from oi.web import create_app

    config = services().config
    app = create_app(config)
    if config.start_refresher:
        app.extensions["oi"].start()  # the background work starts explicitly, here, once
    # No reloader: it would start a second refresher. Threaded, so the page stays responsive during a fetch.
    app.run(host=host or config.host, port=port or config.port, debug=False, use_reloader=False, threaded=True)
    return 0
