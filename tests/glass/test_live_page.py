"""The dashboard in headless Chromium: it renders the chain and updates itself without a reload."""

from oi.config import from_env
from oi.web import create_app
from tests.browser import browser_page, serve


def test_dashboard_renders_and_updates_without_reload(tmp_path):
    # Demo feed on the real clock, paced fast so the page has something new every fraction of a second.
    env = {"OI_DATA_DIR": str(tmp_path), "DHAN_MIN_INTERVAL_SECONDS": "0.1", "OI_SYMBOLS": "NIFTY,BANKNIFTY"}
    app = create_app(from_env(env))
    rt = app.extensions["oi"]
    rt.start()
    try:
        with serve(app) as url, browser_page() as page:
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_function("document.querySelectorAll('#rows tr').length === 21", timeout=15000)
            assert page.locator("#rows tr.atm").count() == 1
            atm = page.locator("#atm").inner_text()
            assert page.locator("#rows tr.atm th.strike").inner_text() == atm
            assert page.locator("#market-status").inner_text() == "Demo · always open"
            assert page.locator("#source-badge").inner_text().startswith("DEMO")

            page.evaluate("window.__same_document = true")
            first = page.evaluate("document.body.dataset.loaded")
            page.wait_for_function(f"document.body.dataset.loaded !== {first!r}", timeout=15000)
            assert page.evaluate("window.__same_document") is True  # updated in place, not reloaded

            page.select_option("#symbol", "BANKNIFTY")
            page.wait_for_function("document.querySelector('#spot').textContent.replace(/,/g, '') > 40000")
            assert page.locator("#rows tr").count() == 21
            assert errors == []
    finally:
        rt.close()
