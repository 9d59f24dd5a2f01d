"""Rendering a session into the static site: content, determinism, guard, archive."""

import gzip
import json
import re
from datetime import time

import pytest

from oi import analytics, snapshot
from oi.market.model import OptionChain
from tests.session import DAY, record_session

SYMBOLS = ("NIFTY", "BANKNIFTY")


@pytest.fixture
def recorded(store):
    record_session(store)
    return store


def decode(dataset: dict) -> dict:
    """The page's delta decoding, in Python: cumulative sums down each column."""
    out = {}
    for name, rows in dataset["columns"].items():
        acc, prev = [], None
        for row in rows:
            prev = row if prev is None else [a + b for a, b in zip(row, prev, strict=True)]
            acc.append(prev)
        out[name] = acc
    return out


def load_dataset(site, src):
    text = (site / src).read_text()
    assert text.startswith("window.OI_SNAPSHOT.add(")
    return json.loads(text[len("window.OI_SNAPSHOT.add(") : -3])


def test_site_layout_and_hashed_names(recorded, tmp_path):
    datasets = snapshot.collect(recorded, SYMBOLS, 1, DAY)
    manifest = snapshot.render_site(datasets, tmp_path / "site", DAY, SYMBOLS, 10)
    files = manifest["files"]
    assert "index.html" in files and "error.html" in files
    assert any(re.fullmatch(r"assets/app\.[0-9a-f]{12}\.js", f) for f in files)
    assert any(re.fullmatch(r"data/NIFTY_2026-11-23\.[0-9a-f]{12}\.js", f) for f in files)
    assert "archive/2026-11-23/BANKNIFTY_2026-11-23.jsonl.gz" in files
    html = (tmp_path / "site" / "index.html").read_text()
    assert "Session closed — data as of 15:29 IST, 23 Nov 2026" in html
    assert "http://" not in html and "https://" not in html  # nothing loaded from the network


def test_dataset_reproduces_every_minute_exactly(recorded, tmp_path):
    datasets = snapshot.collect(recorded, SYMBOLS, 1, DAY)
    nifty = next(d for d in datasets if d.symbol == "NIFTY")
    assert len(nifty.chains) == 40  # 14:50 … 15:29, one a minute
    site = tmp_path / "site"
    snapshot.render_site(datasets, site, DAY, SYMBOLS, 10)
    src = next(f for f in snapshot.render_site(datasets, site, DAY, SYMBOLS, 10)["files"] if f.startswith("data/NIFTY"))
    data = load_dataset(site, src)
    cols = decode(data)
    for i in (0, 17, 39):
        chain: OptionChain = nifty.chains[i]
        view = analytics.chain_view(chain)
        assert data["t"][i] == int(chain.as_of.timestamp())
        assert (data["spot"][i], data["atm"][i], data["pcr"][i], data["max_pain"][i]) == (
            view["spot"],
            view["atm"],
            view["pcr"],
            view["max_pain"],
        )
        assert data["totals"][i] == list(view["totals"].values())
        by_strike = {s.strike: s for s in chain.strikes}
        for j, k in enumerate(data["strikes"]):
            assert cols["ce_oi"][i][j] == by_strike[k].ce.oi
            assert cols["pe_ltp"][i][j] == round(by_strike[k].pe.ltp * 100)
            assert cols["ce_iv"][i][j] == round(by_strike[k].ce.iv * 100)
    # every minute's ATM ± 10 window is inside the kept strikes
    for view_atm in data["atm"]:
        centre = data["strikes"].index(view_atm)
        assert centre >= 10 and centre + 10 < len(data["strikes"])


def test_render_is_byte_for_byte_reproducible(recorded, tmp_path):
    datasets = snapshot.collect(recorded, SYMBOLS, 1, DAY)
    a = snapshot.render_site(datasets, tmp_path / "a", DAY, SYMBOLS, 10)
    b = snapshot.render_site(datasets, tmp_path / "b", DAY, SYMBOLS, 10)
    assert a["files"] == b["files"]
    for f in a["files"]:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_archive_reads_back_line_by_line(recorded, tmp_path):
    datasets = snapshot.collect(recorded, SYMBOLS, 1, DAY)
    snapshot.render_site(datasets, tmp_path / "site", DAY, SYMBOLS, 10)
    raw = gzip.decompress((tmp_path / "site/archive/2026-11-23/NIFTY_2026-11-23.jsonl.gz").read_bytes())
    lines = raw.decode().splitlines()
    assert len(lines) == 40
    first = OptionChain.from_doc(json.loads(lines[0]))
    assert first == recorded.history("NIFTY", "2026-11-23", DAY)[0]


def test_guard(store):
    record_session(store, symbols=("NIFTY",), end=time(14, 55))
    datasets = snapshot.collect(store, SYMBOLS, 1, DAY)
    missing, late = snapshot.check(datasets, SYMBOLS, DAY, 30)
    assert missing == ["BANKNIFTY: no data for the session of 2026-11-23"]
    assert len(late) == 1 and late[0].startswith("NIFTY: newest data is 14:55 IST, 35 min before the close")
    assert snapshot.check(datasets, ("NIFTY",), DAY, 40) == ([], [])


def test_two_expiries_add_a_combined_dataset_and_greeks_load_apart(store, tmp_path):
    record_session(store, SYMBOLS, expiries=2)
    datasets = snapshot.collect(store, SYMBOLS, 2, DAY)
    e1, e2 = (d.expiry for d in datasets[:2])
    assert [(d.symbol, d.expiry) for d in datasets[:3]] == [("NIFTY", e1), ("NIFTY", e2), ("NIFTY", "all")]
    parts, combined = datasets[:2], datasets[2]
    assert len(combined.chains) == 40
    for i in (0, 17, 39):  # every minute sums the two expiries' OI of that minute, strike by strike
        sums: dict[float, int] = {}
        for part in parts:
            for s in part.chains[i].strikes:
                sums[s.strike] = sums.get(s.strike, 0) + s.ce.oi
        assert {s.strike: s.ce.oi for s in combined.chains[i].strikes} == sums
        assert combined.chains[i].as_of == max(p.chains[i].as_of for p in parts)

    site = tmp_path / "site"
    files = snapshot.render_site(datasets, site, DAY, SYMBOLS, 10)["files"]
    assert any(re.fullmatch(rf"data/NIFTY_{e1}\.detail\.[0-9a-f]{{12}}\.js", f) for f in files)
    assert not any(f.startswith("data/NIFTY_all.detail") for f in files)  # no prices to show when combined
    assert not any("_all" in f for f in files if f.startswith("archive/"))  # derived data is not archived
    html = (site / "index.html").read_text()
    assert ".detail." not in html.split('id="oi-config"')[1].split("</script>", 1)[1]  # loaded only when asked
    main = load_dataset(site, next(f for f in files if re.fullmatch(rf"data/NIFTY_{e1}\.[0-9a-f]{{12}}\.js", f)))
    # The per-frame interval levels are the API's definition over the whole chain.
    chains = parts[0].chains
    for i, minutes in ((39, 5), (20, 15), (3, 5)):
        j = max(
            (k for k, c in enumerate(chains) if c.as_of.timestamp() <= chains[i].as_of.timestamp() - 60 * minutes),
            default=None,
        )
        ref = chains[j] if j is not None else None
        lv = analytics.levels(chains[i], analytics.interval_changes(chains[i], ref))
        assert main["levels_interval"][str(minutes)][i] == [lv["support_by_interval"], lv["resistance_by_interval"]]
    assert main["levels_interval"]["5"][3] == [None, None]  # nothing five minutes before 14:53


def test_an_older_session_keeps_its_own_expiries_after_the_list_moved_on(store):
    # The 23rd's nearest expiry is the 23rd itself; the list saved on the 25th no longer has it. Re-rendering the
    # 23rd (a backfill, the day picker's older days) must still show the 23rd's session, not the next expiry.
    from datetime import date

    record_session(store, symbols=("NIFTY",), day=DAY, expiries=2)
    first = {d.expiry for d in snapshot.collect(store, ("NIFTY",), 2, DAY)}
    record_session(store, symbols=("NIFTY",), day=date(2026, 11, 25), seed=25, expiries=2)
    assert DAY.isoformat() not in store.expiries("NIFTY")[0]  # the list moved on
    assert {d.expiry for d in snapshot.collect(store, ("NIFTY",), 2, DAY)} == first
    assert DAY.isoformat() in first
