"""The day picker of the published snapshot (issue #15 item 3) in Chromium: from the front page to earlier sessions
and back, from a static server and from file:// with every other request blocked; the view travels along."""

from __future__ import annotations

import re
from datetime import date

import mongomock
import pytest

from oi.cli import upload_main
from oi.store import Store
from tests.browser import browser_page, serve_dir
from tests.session import record_session

DAYS = (date(2026, 11, 23), date(2026, 11, 25), date(2026, 11, 26))  # the 24th is a holiday
ROWS = "document.querySelectorAll('#rows tr').length === 21"


def env_for(day: date) -> dict[str, str]:
    return {"OI_SYMBOLS": "NIFTY,BANKNIFTY", "OI_SOURCE": "demo", "OI_NOW": f"{day}T16:00:00+05:30"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Three sessions rendered day after day into one folder, as they lie in the bucket."""
    recorded = Store(mongomock.MongoClient()["oi"], "mongomock")
    for day in DAYS:
        record_session(recorded, day=day, seed=day.day)
    out = tmp_path_factory.mktemp("sessions") / "site"
    for day in DAYS:
        assert upload_main(["--date", day.isoformat(), "--out", str(out)], env_for(day), store=recorded) == 0
    return out


def browse(page, url: str, root: str) -> None:
    """From the front page to the previous sessions and back, only `root` reachable."""
    errors, blocked = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route(
        "**/*",
        lambda r: r.continue_() if r.request.url.startswith(root) else (blocked.append(r.request.url), r.abort()),
    )
    page.goto(url + "#symbol=BANKNIFTY&interval=15")
    page.wait_for_function(ROWS, timeout=15000)
    page.wait_for_function("!document.querySelector('#days').hidden")
    assert page.locator("#day option").all_inner_texts() == [
        "26 Nov 2026 (Thu)",
        "25 Nov 2026 (Wed)",
        "23 Nov 2026 (Mon)",
    ]
    assert page.locator("#day").input_value() == "2026-11-26"
    assert page.get_attribute("#day-next", "aria-disabled") == "true"
    assert "26 Nov 2026" in page.locator("#banner").inner_text()

    page.click("#day-prev")
    page.wait_for_url(re.compile(r"sessions/2026-11-25/index\.html"))
    page.wait_for_function(ROWS, timeout=15000)
    assert "25 Nov 2026" in page.locator("#banner").inner_text()
    assert page.locator("#day").input_value() == "2026-11-25"
    assert page.locator("#symbol").input_value() == "BANKNIFTY"  # the view travels with the reader
    assert page.locator("#interval").input_value() == "15"

    page.select_option("#day", "2026-11-23")
    page.wait_for_url(re.compile(r"sessions/2026-11-23/index\.html"))
    page.wait_for_function(ROWS, timeout=15000)
    assert "23 Nov 2026" in page.locator("#banner").inner_text()
    assert page.get_attribute("#day-prev", "aria-disabled") == "true"
    spot = page.locator("#spot").inner_text()

    page.click("#day-next")
    page.wait_for_url(re.compile(r"sessions/2026-11-25/index\.html"))
    page.wait_for_function(ROWS, timeout=15000)
    page.wait_for_function("(s) => document.querySelector('#spot').textContent !== s", arg=spot)
    assert errors == [] and blocked == []


def test_day_picker_from_a_static_server(site):
    with serve_dir(site) as url, browser_page() as page:
        browse(page, url + "index.html", url)


def test_day_picker_from_file_url_with_network_blocked(site):
    with browser_page() as page:
        browse(page, (site / "index.html").as_uri(), site.as_uri() + "/")
