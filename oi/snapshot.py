"""Render a session from the store into a self-contained static site: the live dashboard in static mode.

Layout of the site (every name under ``assets/`` and ``data/`` carries a content hash, so it can be cached forever):

    index.html                      the same template as the live page, mode "static"
    error.html
    assets/app.<hash>.js, assets/snapshot.<hash>.js, assets/style.<hash>.css
    data/<SYMBOL>_<EXPIRY>.<hash>.js    one replay dataset, as a script (file:// forbids fetch)
    archive/YYYY-MM-DD/<SYMBOL>_<EXPIRY>.jsonl.gz   the stored snapshots, one JSON document a line
    sessions/YYYY-MM-DD/index.html  the same page again, for that day's folder (its links go up two levels)
    sessions/index.json, sessions/index.js   the sessions available (the script form, for file://)

Every session's folder refers to the shared ``assets/`` and ``data/`` at the root: the names there are content
hashes, so days that share an asset share one copy, and a day's data files never collide with another day's.
The front page ``index.html`` is the latest session's page, with links that start at the root.

Datasets are columnar and delta-encoded along time (OI and prices move little from one minute to the next, which
gzip then squeezes); the summary numbers (ATM, PCR, max pain, totals) are computed here over the full chain with
:mod:`oi.analytics`, so the static page shows exactly what the live API said.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import io
import json
import logging
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from oi import analytics, archive, closes, security, session
from oi.breadth import symbol_kind
from oi.closes import SessionClose
from oi.config import DEFAULT_LOT_SIZES
from oi.history import Series
from oi.market.calendar import CLOSE, IST
from oi.market.model import Leg, OptionChain
from oi.store import Store

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES, STATIC = ROOT / "templates", ROOT / "static"
ASSETS = (
    "app.js",
    "snapshot.js",
    "style.css",
    "favicon.svg",
    "vendor/uplot/uPlot.iife.min.js",
    "vendor/uplot/uPlot.min.css",
)
SESSIONS = "sessions"  # every session's page under sessions/YYYY-MM-DD/, and the index of them
EXTRA_STRIKES = 5  # the replay table keeps a few strikes beyond the default window, for when spot drifts
# (column name, leg attribute, decimal places): stored as integers scaled by 10**places, at the precision the API
# gives (oi.analytics.DECIMALS), which keeps deltas small for gzip. The previous OI and close are columns too: a
# source may revise them during the day, and the API answers each minute with that minute's own.
COLUMNS = (
    ("oi", "oi", 0),
    ("ltp", "ltp", analytics.DECIMALS["ltp"]),
    ("iv", "iv", analytics.DECIMALS["iv"]),
    ("volume", "volume", 0),
    ("prev_oi", "previous_oi", 0),
    ("close", "previous_close", analytics.DECIMALS["ltp"]),
)
# Greeks and quotes move every minute on every strike, so they would double the page's first download; they go in a
# second file per dataset that the page loads only when the reader turns those columns on.
DETAIL_COLUMNS = (
    *((name, name, analytics.DECIMALS[name]) for name in ("delta", "gamma", "theta", "vega", "bid", "ask")),
    ("bid_qty", "bid_qty", 0),
    ("ask_qty", "ask_qty", 0),
)


class SnapshotError(Exception):
    """The session cannot be published (no data, stale data); the message says which symbol and why."""


@dataclass
class Dataset:
    symbol: str
    expiry: str  # or analytics.COMBINED: the symbol's expiries summed, minute by minute
    chains: list[OptionChain]  # the session's per-minute history, oldest first
    prev_close: float = 0.0  # the underlying's previous close, 0 when unknown
    closes: list[SessionClose] = field(default_factory=list)  # earlier sessions' closes, for day over day


def attach_closes(store: Store, datasets: list[Dataset], day: date, count: int) -> None:
    """Give every dataset the closes of the `count` sessions before `day` (:mod:`oi.closes`), by the rule the live
    page's /api/closes follows (:func:`oi.closes.for_views`)."""
    expiries: dict[str, list[str]] = {}
    for ds in datasets:
        expiries.setdefault(ds.symbol, []).append(ds.expiry)
    offered = closes.for_views(closes.load(store), expiries, day, count)
    for ds in datasets:
        ds.closes = offered.get((ds.symbol, ds.expiry), [])


def collect(store: Store, symbols: tuple[str, ...], expiries_per_symbol: int, day: date) -> list[Dataset]:
    """The session's history for every configured symbol, by the live page's session model (:mod:`oi.session`).

    A symbol with more than one expiry also gets the combined dataset, built by the same rule as the live view.
    """
    out: list[Dataset] = []
    skipped: list[str] = []  # unreadable history documents: left out (and named) rather than failing the night
    frames = store.day_history(day, skipped)  # one pass over the day for every symbol and expiry
    earlier = [d for d in store.history_days() if d < day]
    before = store.last_frames(earlier[-1]) if earlier else {}  # the previous session's last spot, per symbol
    for symbol in symbols:
        held = sorted(e for s, e in frames if s == symbol)
        stored = store.expiries(symbol)
        # A list fetched after that day has dropped the expiries that have expired since: re-rendering an older
        # session asks which expiries it holds data of instead.
        listed = stored[0] if stored and stored[1] <= day else held or None
        wanted = session.nearest_expiries(listed or [], day, expiries_per_symbol)
        loaded = {e: frames.get((symbol, e), []) for e in wanted}
        if not any(loaded.values()):
            # The expiry list may have rolled since that day: look at every expiry the day holds.
            loaded.update((e, frames[(symbol, e)]) for e in held if e not in loaded)
        have = [e for e, chains in loaded.items() if chains]
        chosen = session.session_expiries(listed, day, expiries_per_symbol, have)
        lines = [session.frames(symbol, e, day, loaded[e], compress=False) for e in chosen]
        last = max((c for (s, _), c in before.items() if s == symbol), key=lambda c: c.as_of, default=None)
        spot_before = last.spot if last is not None and last.spot > 0 else None
        close = session.prev_close((c for e in chosen for c in loaded[e]), spot_before)
        out.extend(Dataset(symbol, line.expiry, _chains(line), close) for line in lines)
        if len(lines) > 1:
            out.append(Dataset(symbol, analytics.COMBINED, _chains(session.combined(lines, complete=True)), close))
    if skipped:
        log.warning("skipped %d unreadable history document(s) of %s: %s", len(skipped), day, ", ".join(skipped[:10]))
    return out


def _chains(line: Series) -> list[OptionChain]:
    return [line.chain(i) for i in range(len(line))]


def check(
    datasets: list[Dataset], symbols: tuple[str, ...], day: date, max_lag_minutes: int
) -> tuple[list[str], list[str]]:
    """Reasons not to publish: (symbols without data, symbols whose data ends too long before the close)."""
    missing, late = [], []
    close = datetime.combine(day, CLOSE, IST)
    for symbol in symbols:
        mine = [d for d in datasets if d.symbol == symbol]
        if not mine:
            missing.append(f"{symbol}: no data for the session of {day.isoformat()}")
            continue
        newest = max(d.chains[-1].as_of for d in mine)
        lag = (close - newest).total_seconds() / 60
        if lag > max_lag_minutes:
            late.append(
                f"{symbol}: newest data is {newest.astimezone(IST):%H:%M} IST, {lag:.0f} min before the close "
                f"(limit {max_lag_minutes} min, OI_SNAPSHOT_MAX_LAG_MINUTES; --allow-stale overrides)"
            )
    return missing, late


def _delta_rows(rows: list[list[int]]) -> list[list[int]]:
    out, prev = [], None
    for row in rows:
        out.append(row if prev is None else [a - b for a, b in zip(row, prev, strict=True)])
        prev = row
    return out


def _interval_levels(chains: list[OptionChain]) -> dict[str, list[list]]:
    """Per interval M and frame: [support, resistance] by the change in OI over the last M minutes (all strikes)."""
    ts = [c.as_of.timestamp() for c in chains]
    out = {}
    for minutes in analytics.INTERVALS:
        rows = []
        for chain in chains:
            j = bisect.bisect_right(ts, chain.as_of.timestamp() - 60 * minutes) - 1
            lv = analytics.levels(chain, analytics.interval_changes(chain, chains[j] if j >= 0 else None))
            rows.append([lv["support_by_interval"], lv["resistance_by_interval"]])
        out[str(minutes)] = rows
    return out


def encode(ds: Dataset, around: int, lot_size: int | None = None) -> dict:
    """One dataset for the page: per-frame summary + per-strike columns, delta-encoded along time."""
    views = [analytics.summary(c) for c in ds.chains]
    levels = [analytics.levels(c) for c in ds.chains]
    # Strikes: the union over the session of ATM ± (around + EXTRA_STRIKES), so every minute has its window.
    keep: set[float] = set()
    for chain, view in zip(ds.chains, views, strict=True):
        keep.update(s.strike for s in analytics.window(chain.strikes, view["atm"], around + EXTRA_STRIKES))
    strikes = sorted(keep)
    columns = _columns(ds, strikes, COLUMNS)
    atm_prices = [analytics.atm_prices(c) for c in ds.chains]
    return {
        "symbol": ds.symbol,
        "expiry": ds.expiry,
        "source": ds.chains[-1].source,
        "t": [int(c.as_of.timestamp()) for c in ds.chains],
        "spot": [c.spot for c in ds.chains],
        "atm": [v["atm"] for v in views],
        "pcr": [v["pcr"] for v in views],
        "max_pain": [v["max_pain"] for v in views],
        "straddle": [p[0] for p in atm_prices],
        "atm_iv": [p[1] for p in atm_prices],
        "totals": [list(v["totals"].values()) for v in views],
        "strike_count": [len(c.strikes) for c in ds.chains],
        "levels": [list(lv.values()) for lv in levels],
        "levels_interval": _interval_levels(ds.chains),
        "prev_close": ds.prev_close or None,
        "lot_size": lot_size,
        "strikes": [analytics.json_number(k) for k in strikes],
        "scale": {name: 10**places for name, _, places in COLUMNS + DETAIL_COLUMNS},
        "columns": columns,
        "closes": [c.as_json(set(strikes)) for c in ds.closes],  # the rows the page can show, and the totals
    }


def _columns(ds: Dataset, strikes: list[float], spec: tuple) -> dict[str, list[list[int]]]:
    rows: dict[str, list[list[int]]] = {f"{side}_{name}": [] for side in ("ce", "pe") for name, _, _ in spec}
    empty = Leg()
    for chain in ds.chains:
        by_strike = {s.strike: s for s in chain.strikes}
        for side in ("ce", "pe"):
            legs = [getattr(by_strike[k], side) if k in by_strike else empty for k in strikes]
            for name, attr, places in spec:
                # Rounded to the API's value first: scaling the raw float could round the other way at a half.
                rows[f"{side}_{name}"].append([round(round(getattr(leg, attr), places) * 10**places) for leg in legs])
    return {name: _delta_rows(r) for name, r in rows.items()}


def encode_detail(ds: Dataset, strikes: list[float]) -> dict:
    """The Greeks and quotes of a dataset, on the same strikes and frames as :func:`encode`'s."""
    return {"symbol": ds.symbol, "expiry": ds.expiry, "columns": _columns(ds, strikes, DETAIL_COLUMNS)}


def archive_bytes(ds: Dataset) -> bytes:
    """The session's snapshots as gzip JSON Lines, byte-for-byte reproducible (mtime 0) so re-runs upload nothing."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as gz:
        for chain in ds.chains:
            gz.write(json.dumps(chain.to_doc(), separators=(",", ":")).encode() + b"\n")
    return buf.getvalue()


def _hashed(name: str, content: bytes) -> str:
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.{hashlib.sha256(content).hexdigest()[:12]}{dot}{ext}"


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def render_site(
    datasets: list[Dataset],
    out: Path,
    day: date,
    symbols: tuple[str, ...],
    around: int,
    archive_base: str = "archive",
    lot_sizes: dict[str, int] | None = None,
    events: list[dict] | None = None,
    sessions: list[str] | None = None,
    kinds: dict[str, str] | None = None,
) -> dict:
    """Write the site into `out` (emptied first). Returns a manifest: files written and the session.

    `events` are the session's fired alerts (:func:`oi.alerts.session_events`: newest first, each as /api/events
    gives it); the page config carries them as ``events`` for the page's events strip.

    `sessions` are the days (YYYY-MM-DD) whose folders exist besides this one (the bucket's, when publishing): the
    sessions index lists them and this day, for the page's day picker."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    assets = {}
    for name in ASSETS:
        content = (STATIC / name).read_bytes()
        assets[name] = f"assets/{_hashed(name, content)}"
        _write(out / assets[name], content)
    for licence in sorted(STATIC.glob("vendor/**/*")):
        if licence.is_file() and licence.relative_to(STATIC).as_posix() not in ASSETS:  # licences and notes
            _write(out / "assets" / licence.relative_to(STATIC), licence.read_bytes())

    lot_sizes = DEFAULT_LOT_SIZES if lot_sizes is None else lot_sizes
    data_files, detail_files, archives = {}, {}, {}
    for ds in datasets:
        key = f"{ds.symbol}|{ds.expiry}"
        main = encode(ds, around, lot_sizes.get(ds.symbol))
        payload = json.dumps(main, separators=(",", ":"))
        script = f"window.OI_SNAPSHOT.add({payload});\n".encode()
        data_files[key] = f"data/{_hashed(f'{ds.symbol}_{ds.expiry}.js', script)}"
        _write(out / data_files[key], script)
        if ds.expiry != analytics.COMBINED:  # the combined view has no prices, IV or Greeks
            detail = json.dumps(encode_detail(ds, main["strikes"]), separators=(",", ":"))
            script = f"window.OI_SNAPSHOT.addDetail({detail});\n".encode()
            detail_files[key] = f"data/{_hashed(f'{ds.symbol}_{ds.expiry}.detail.js', script)}"
            _write(out / detail_files[key], script)
        if ds.expiry == analytics.COMBINED:
            continue  # derived from the others: nothing to archive
        archives[key] = archive.archive_key(ds.symbol, ds.expiry, day)
        _write(out / archives[key], archive_bytes(ds))

    newest = max((ds.chains[-1].as_of for ds in datasets), default=None)
    as_of = f"{newest.astimezone(IST):%H:%M} IST, {day:%d %b %Y}" if newest else day.isoformat()
    listed = [s for s in symbols if any(d.symbol == s for d in datasets)]

    def page_config(root: str) -> dict:
        """The page's config; every link in it relative to `root`, the way from the page's folder to the site's."""
        relative_archive = "://" not in archive_base
        return {
            "mode": "static",
            "symbols": listed,
            # "index" / "stock" per symbol: the picker groups them (the built-in indices are indices by default)
            "kinds": {s: (kinds or {}).get(s) or symbol_kind(s, {}) for s in listed},
            "strikes": around,
            "source": datasets[0].chains[-1].source if datasets else "demo",
            "banner": f"Session closed — data as of {as_of}. Replay the day with the slider.",
            "root": root,
            "snapshot": {
                "session": day.isoformat(),
                "datasets": [
                    {
                        "symbol": ds.symbol,
                        "expiry": ds.expiry,
                        "src": root + data_files[f"{ds.symbol}|{ds.expiry}"],
                        "detail": root + detail_files[f"{ds.symbol}|{ds.expiry}"]
                        if f"{ds.symbol}|{ds.expiry}" in detail_files
                        else None,
                        "archive": None
                        if ds.expiry == analytics.COMBINED
                        else f"{root if relative_archive else ''}{archive_base}/{day.isoformat()}/"
                        f"{ds.symbol}_{ds.expiry}.jsonl.gz",
                    }
                    for ds in datasets
                ],
            },
            "events": events or [],
        }

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    first = [data_files[f"{datasets[0].symbol}|{datasets[0].expiry}"]] if datasets else []
    for root, path in (("", "index.html"), ("../../", f"{SESSIONS}/{day.isoformat()}/index.html")):
        env.globals["asset"] = lambda name, root=root: root + assets[name]
        config = page_config(root)
        html = env.get_template("index.html").render(
            page_config=config,
            source=config["source"],
            data_scripts=[root + assets["snapshot.js"], *(root + f for f in first)],
            sessions_script=f"{root}{SESSIONS}/index.js",
            csp=security.META_CSP,  # S3 website hosting sends no headers: the policy travels in the page
        )
        _write(out / path, html.encode())
    days = sorted({*(sessions or ()), day.isoformat()}, reverse=True)
    index = {"latest": days[0], "sessions": days}
    _write(out / SESSIONS / "index.json", json.dumps(index, separators=(",", ":")).encode())
    _write(out / SESSIONS / "index.js", f"window.OI_SESSIONS = {json.dumps(index, separators=(',', ':'))};\n".encode())
    # S3 serves the error page at any path: its links start at the site root.
    error = env.get_template("error.html").render(session=day.isoformat(), root="/")
    _write(out / "error.html", error.encode())
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    log.info("rendered %d files for the session of %s into %s", len(files), day.isoformat(), out)
    return {"session": day.isoformat(), "files": files, "archives": archives}
