"""Axis tick labels at the glass: on a narrow range uPlot spaces ticks by pixels alone, finer than a label prints, and
the straddle chart showed "307", "307". Every tick label an axis draws must be distinct and name its tick's value."""

from __future__ import annotations

import re

from tests.browser import browser_page
from tests.glass.test_charts import ROWS, SETTLE, live  # noqa: F401  (live: the fixture)

# The session's points squeezed into narrow ranges: straddle within ₹307 ± 0.3, ATM IV 14.03 ± 0.01 %, PCR
# 1.002 ± 0.001, call and put OI 4.12 and 4.123 Cr ± 0.001 Cr. Polling stops first, so no fresh answer widens
# them again.
NARROW = """() => {
  const OI = window.OI;
  clearTimeout(OI.state.timer);
  OI.state.timer = null;
  OI.state.points = OI.state.points.map((p, i) => Object.assign({}, p, {
    straddle: 307 + 0.3 * Math.sin(i), atm_iv: 14.03 + 0.01 * Math.sin(i),
    pcr: 1.002 + 0.001 * Math.cos(i), ce_oi: 41200000 + 10000 * Math.sin(i), pe_oi: 41230000 + 10000 * Math.cos(i),
  }));
  OI.render(OI.state.last);
  return OI.state.points.length;
}"""

AXES = """() => ['straddle', 'intraday', 'totals'].map((name) => {
  const u = window.OI.charts[name];
  const scale = (a) => u.scales[a.scale];
  return [name, u.axes.slice(1).map((a) => [a.scale, a._splits, a._values, scale(a).min, scale(a).max])];
})"""


def number(label: str) -> float:
    """The value a tick label says: 307, 1,02,000 (Indian grouping), 4.12 Cr, 50 L, 14.0."""
    scale = {"Cr": 1e7, "L": 1e5}
    match = re.fullmatch(r"(-?[\d,]+(?:\.\d+)?)(?: (Cr|L))?%?", label)
    assert match, f"unexpected tick label {label!r}"
    return float(match.group(1).replace(",", "")) * scale.get(match.group(2), 1)


def test_narrow_ranges_never_print_the_same_tick_label_twice(live):  # noqa: F811
    url, _ = live
    with browser_page(viewport={"width": 1440, "height": 900}) as page:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_function(ROWS, timeout=15000)
        page.wait_for_function("window.OI.charts.straddle && window.OI.state.points.length > 30", timeout=15000)
        assert page.evaluate(NARROW) > 30
        page.evaluate(SETTLE)
        narrow = {"straddle": {"y": 3.0, "r": 1.0}, "intraday": {"r": 0.1}, "totals": {"y": 3e6}}
        for name, axes in page.evaluate(AXES):
            for scale, splits, labels, lo, hi in axes:
                if scale in narrow[name]:  # the range the test made narrow really is (else it proves nothing)
                    assert hi - lo < narrow[name][scale], f"{name}/{scale}: range {lo}..{hi} is not narrow"
                assert labels, f"{name}/{scale}: no tick labels on {lo}..{hi}"
                assert len(set(labels)) == len(labels), f"{name}/{scale}: repeated tick labels {labels}"
                for value, label in zip(splits, labels, strict=True):  # and each says its own tick, not a neighbour
                    off = abs(number(label) - value)
                    assert off <= 1e-9 * max(1.0, abs(value)), f"{name}/{scale}: {label} drawn at {value}"
        assert errors == []
