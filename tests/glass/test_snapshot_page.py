"""The rendered snapshot in headless Chromium, from a plain static server and from file:// with no network."""

import pytest

from oi import snapshot
from tests.browser import browser_page, serve_dir
from tests.session import DAY, record_session

SYMBOLS = ("NIFTY", "BANKNIFTY")


@pytest.fixture
def site(store, tmp_path):
    record_session(store)
    out = tmp_path / "site"
    snapshot.render_site(snapshot.collect(store, SYMBOLS, 1, DAY), out, DAY, SYMBOLS, 10)
    return out


@pytest.fixture
def static_server(site):
    with serve_dir(site) as url:
        yield url + "index.html"


def exercise(page, url):
    """Open the snapshot, check table and replay, switch symbol; only `url`'s origin may be reached."""
    errors, blocked = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    origin = url.rsplit("/", 1)[0]

    def gate(route):
        if route.request.url.startswith(origin):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", gate)
    page.goto(url)
    page.wait_for_function("document.querySelectorAll('#rows tr').length === 21", timeout=15000)
    assert page.locator("#banner").inner_text().startswith("Session closed — data as of 15:29 IST")
    assert page.locator("#market-status").inner_text() == "Session closed"
    assert page.locator("#replay-time").inner_text() == "15:29 IST"
    last_table = page.locator("#rows").inner_text()
    last_spot = page.locator("#spot").inner_text()

    # Move the replay slider to the first minute: the numbers must change to that minute's.
    page.locator("#replay").fill("0")
    page.wait_for_function("document.querySelector('#replay-time').textContent === '14:50 IST'")
    assert page.locator("#rows").inner_text() != last_table
    assert page.locator("#spot").inner_text() != last_spot
    page.click("#replay-latest")
    page.wait_for_function("document.querySelector('#replay-time').textContent === '15:29 IST'")
    assert page.locator("#spot").inner_text() == last_spot

    page.select_option("#symbol", "BANKNIFTY")
    page.wait_for_function("Number(document.querySelector('#spot').textContent.replace(/,/g, '')) > 40000")
    assert page.locator("#rows tr").count() == 21
    assert page.get_attribute("#archive-link", "href") == "archive/2026-11-23/BANKNIFTY_2026-11-23.jsonl.gz"
    assert errors == [] and blocked == []


def test_snapshot_from_a_static_server(static_server):
    with browser_page() as page:
        exercise(page, static_server)


def test_snapshot_from_file_url_with_network_blocked(site):
    with browser_page() as page:
        exercise(page, (site / "index.html").as_uri())
