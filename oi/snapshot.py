"""Render a session from the store into a self-contained static site: the live dashboard in static mode.

Layout of the site (every name under ``assets/`` and ``data/`` carries a content hash, so it can be cached forever):

    index.html                      the same template as the live page, mode "static"
    error.html
    assets/app.<hash>.js, assets/snapshot.<hash>.js, assets/style.<hash>.css
    data/<SYMBOL>_<EXPIRY>.<hash>.js    one replay dataset, as a script (file:// forbids fetch)
    archive/YYYY-MM-DD/<SYMBOL>_<EXPIRY>.jsonl.gz   the stored snapshots, one JSON document a line

Datasets are columnar and delta-encoded along time (OI and prices move little from one minute to the next, which
gzip then squeezes); the summary numbers (ATM, PCR, max pain, totals) are computed here over the full chain with
:mod:`oi.analytics`, so the static page shows exactly what the live API said.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import shutil
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from oi import analytics
from oi.market.calendar import CLOSE, IST
from oi.market.model import Leg, OptionChain
from oi.refresher import nearest_expiries
from oi.store import Store

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES, STATIC = ROOT / "templates", ROOT / "static"
ASSETS = ("app.js", "snapshot.js", "style.css")
EXTRA_STRIKES = 5  # the replay table keeps a few strikes beyond the default window, for when spot drifts
# (column name, leg attribute, scale to integers)
COLUMNS = (
    ("oi", "oi", 1),
    ("ltp", "ltp", 100),
    ("iv", "iv", 100),
    ("volume", "volume", 1),
)


class SnapshotError(Exception):
    """The session cannot be published (no data, stale data); the message says which symbol and why."""


@dataclass
class Dataset:
    symbol: str
    expiry: str
    chains: list[OptionChain]  # the session's per-minute history, oldest first


def collect(store: Store, symbols: tuple[str, ...], expiries_per_symbol: int, day: date) -> list[Dataset]:
    """The session's history for every configured symbol and its nearest expiries (as of that day)."""
    out = []
    latest = store.latest_all()
    for symbol in symbols:
        stored = store.expiries(symbol)
        wanted = nearest_expiries(stored[0], day, expiries_per_symbol) if stored else []
        for expiry in wanted:
            chains = store.history(symbol, expiry, day)
            if chains:
                out.append(Dataset(symbol, expiry, chains))
        if not any(d.symbol == symbol for d in out):
            # The expiry list may have rolled since: fall back to whatever expiry that day holds for the symbol.
            for expiry in sorted({c.expiry for c in latest if c.symbol == symbol}):
                chains = store.history(symbol, expiry, day)
                if chains:
                    out.append(Dataset(symbol, expiry, chains))
                    break
    return out


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


def encode(ds: Dataset, around: int) -> dict:
    """One dataset for the page: per-frame summary + per-strike columns, delta-encoded along time."""
    views = [analytics.summary(c) for c in ds.chains]
    # Strikes: the union over the session of ATM ± (around + EXTRA_STRIKES), so every minute has its window.
    keep: set[float] = set()
    for chain, view in zip(ds.chains, views, strict=True):
        keep.update(s.strike for s in analytics.window(chain.strikes, view["atm"], around + EXTRA_STRIKES))
    strikes = sorted(keep)
    last = {s.strike: s for s in ds.chains[-1].strikes}
    rows: dict[str, list[list[int]]] = {f"{side}_{name}": [] for side in ("ce", "pe") for name, _, _ in COLUMNS}
    empty = Leg()
    for chain in ds.chains:
        by_strike = {s.strike: s for s in chain.strikes}
        for side in ("ce", "pe"):
            legs = [getattr(by_strike[k], side) if k in by_strike else empty for k in strikes]
            for name, attr, scale in COLUMNS:
                rows[f"{side}_{name}"].append([round(getattr(leg, attr) * scale) for leg in legs])
    columns = {name: _delta_rows(r) for name, r in rows.items()}
    return {
        "symbol": ds.symbol,
        "expiry": ds.expiry,
        "source": ds.chains[-1].source,
        "t": [int(c.as_of.timestamp()) for c in ds.chains],
        "spot": [c.spot for c in ds.chains],
        "atm": [v["atm"] for v in views],
        "pcr": [v["pcr"] for v in views],
        "max_pain": [v["max_pain"] for v in views],
        "totals": [list(v["totals"].values()) for v in views],
        "strikes": [analytics.json_number(k) for k in strikes],
        "prev": {
            f"{side}_{name}": [getattr(getattr(last[k], side), attr) if k in last else 0 for k in strikes]
            for side in ("ce", "pe")
            for name, attr in (("oi", "previous_oi"), ("close", "previous_close"))
        },
        "scale": {name: scale for name, _, scale in COLUMNS},
        "columns": columns,
    }


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
) -> dict:
    """Write the site into `out` (emptied first). Returns a manifest: files written and the session."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    assets = {}
    for name in ASSETS:
        content = (STATIC / name).read_bytes()
        assets[name] = f"assets/{_hashed(name, content)}"
        _write(out / assets[name], content)
    for licence in sorted(STATIC.glob("vendor/**/*")):
        if licence.is_file():
            _write(out / "assets" / licence.relative_to(STATIC), licence.read_bytes())

    data_files, archives = {}, {}
    for ds in datasets:
        key = f"{ds.symbol}|{ds.expiry}"
        payload = json.dumps(encode(ds, around), separators=(",", ":"))
        script = f"window.OI_SNAPSHOT.add({payload});\n".encode()
        data_files[key] = f"data/{_hashed(f'{ds.symbol}_{ds.expiry}.js', script)}"
        _write(out / data_files[key], script)
        archive_key = f"archive/{day.isoformat()}/{ds.symbol}_{ds.expiry}.jsonl.gz"
        archives[key] = archive_key
        _write(out / archive_key, archive_bytes(ds))

    newest = max((ds.chains[-1].as_of for ds in datasets), default=None)
    as_of = f"{newest.astimezone(IST):%H:%M} IST, {day:%d %b %Y}" if newest else day.isoformat()
    listed = [s for s in symbols if any(d.symbol == s for d in datasets)]
    page_config = {
        "mode": "static",
        "symbols": listed,
        "strikes": around,
        "source": datasets[0].chains[-1].source if datasets else "demo",
        "banner": f"Session closed — data as of {as_of}. Replay the day with the slider.",
        "snapshot": {
            "session": day.isoformat(),
            "datasets": [
                {
                    "symbol": ds.symbol,
                    "expiry": ds.expiry,
                    "src": data_files[f"{ds.symbol}|{ds.expiry}"],
                    "archive": f"{archive_base}/{day.isoformat()}/{ds.symbol}_{ds.expiry}.jsonl.gz",
                }
                for ds in datasets
            ],
        },
    }
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.globals["asset"] = lambda name: assets[name]
    first = [data_files[f"{datasets[0].symbol}|{datasets[0].expiry}"]] if datasets else []
    html = env.get_template("index.html").render(
        page_config=page_config, source=page_config["source"], data_scripts=[assets["snapshot.js"], *first]
    )
    _write(out / "index.html", html.encode())
    error = env.get_template("error.html").render(session=day.isoformat())
    _write(out / "error.html", error.encode())
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    log.info("rendered %d files for the session of %s into %s", len(files), day.isoformat(), out)
    return {"session": day.isoformat(), "files": files, "archives": archives}
