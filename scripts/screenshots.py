"""Take the README's screenshots of the demo dashboard in headless Chromium: python scripts/screenshots.py."""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from oi.config import from_env
from oi.web import create_app
from tests.browser import browser_page, serve

OUT = Path(__file__).resolve().parent.parent / "docs"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(from_env({"OI_DATA_DIR": tmp, "DHAN_MIN_INTERVAL_SECONDS": "0.2"}))
        try:
            with serve(app) as url, browser_page() as page:
                page.set_viewport_size({"width": 1280, "height": 900})
                page.goto(url)
                page.wait_for_function("document.querySelectorAll('#rows tr').length > 0", timeout=20000)
                page.screenshot(path=str(OUT / "dashboard.png"), full_page=True)
        finally:
            app.extensions["oi"].close()
    print(f"wrote {OUT / 'dashboard.png'}")


if __name__ == "__main__":
    main()
