"""Hostile input over every query parameter of every endpoint: never a 500, never reflected markup, never a query
operator (or any user string) in a store filter.

A request is served from the in-memory views, so the store should see no reads at all during one, except the
``/healthz`` ping. The app's database handle is wrapped to record every collection call made while a request runs.
Parameters the app does not know (yet) are ignored or rejected; either way the properties must hold.
"""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qsl, quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oi.refresher import PACE_SLACK_SECONDS
from tests.helpers import MONDAY_1100

ENDPOINTS = ("/api/symbols", "/api/oi", "/api/history", "/api/events", "/healthz", "/")
PARAMS = ("symbol", "expiry", "strikes", "interval", "at", "since")
VALID = {
    "symbol": ("NIFTY", "nifty", " NIFTY "),
    "expiry": ("2026-11-24", "all"),
    "strikes": ("5", "all", "500"),
    "interval": ("3", "5", "10", "15", "30"),
    "at": ("2026-11-23T11:01:00+05:30", "2026-11-23T10:59", "2026-11-23T05:31:00Z", "2026-11-23"),
    "since": ("2026-11-23T11:01:00+05:30", "2026-11-23T10:59", "2026-11-23T05:31:00Z", "2026-11-23"),
}
# Names as PHP/Express-style parsers would turn into objects; here they must stay plain, unknown names.
HOSTILE_NAMES = (
    "symbol[$ne]",
    "symbol[]",
    "symbol[$regex]",
    "expiry[$gt]",
    "$where",
    "symbol.$",
    "__proto__[x]",
    "constructor[prototype][x]",
    "SYMBOL",
    "symbol ",
)
HUGE = "A" * 100_000
LITERAL = "[]{}$:<>\"/'"  # characters a lax client sends unencoded
HOSTILE_VALUES = (
    # operators and JSON
    '{"$ne": 1}',
    '{"$gt": ""}',
    '{"$regex": ".*"}',
    '[{"$where": "sleep(1000)"}]',
    '{"symbol": {"$ne": null}}',
    "NIFTY' || '1'=='1",
    "'; return true; var x='",
    "null",
    "[]",
    # markup
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</script><script>alert(1)</script>",
    "<svg/onload=alert(1)>",
    "javascript:alert(1)",
    "{{7*7}}${7*7}",
    # odd text
    "\u202eYTFIN",
    "NIFTY\u200f",
    "\ufeffNIFTY",
    "NIFTY\x00",
    "\x00",
    "\r\nSet-Cookie: x=1",
    "../../etc/passwd",
    "ＮＩＦＴＹ",
    "٣",
    "５",
    "²",  # str.isdigit() says yes, int() says no
    # numbers and dates at the edges
    "-1",
    "0",
    "1e309",
    "NaN",
    "Infinity",
    "0x10",
    "99999999999999999999999999",
    "2026-02-30",
    "2026-11-23T25:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2026-11-23T11:00:00+99:00",
    # size
    HUGE,
    "9" * 5000,
)
MARKUP = {v for v in HOSTILE_VALUES if "<" in v}
# Pre-encoded fragments, inserted as they are: NUL, invalid and overlong UTF-8, surrogates, RTL override, broken %.
RAW_FRAGMENTS = (
    "%00",
    "%ff",
    "%fe%ff",
    "%c0%ae",
    "%c0%bc",
    "%ed%a0%80",
    "%f4%90%80%80",
    "%e2%80%ae",
    "%ef%bb%bf",
    "%u202e",
    "%",
    "%2",
    "%%32%30",
    "+",
    "%2B",
    "%3Cscript%3E",
    "%26symbol%3DNIFTY",
    "NIFTY",
)
# The store's own reads a request may make: /healthz's reachability ping, nothing else.
ALLOWED_READS = {("/healthz", "meta", "find_one", '{"_id": "version"}')}


class Recorder:
    """Records (collection, method, first argument) of every collection call while `active`."""

    def __init__(self) -> None:
        self.active = False
        self.calls: list[tuple[str, str, object]] = []


class _Collection:
    def __init__(self, inner, name: str, recorder: Recorder) -> None:
        self._inner, self._name, self._recorder = inner, name, recorder

    def __getattr__(self, attr):
        value = getattr(self._inner, attr)
        if not callable(value) or attr.startswith("_"):
            return value

        def call(*args, **kwargs):
            if self._recorder.active:
                self._recorder.calls.append((self._name, attr, args[0] if args else kwargs.get("filter")))
            return value(*args, **kwargs)

        return call


class _Database:
    def __init__(self, inner, recorder: Recorder) -> None:
        self._inner, self._recorder = inner, recorder

    def __getitem__(self, name: str) -> _Collection:
        return _Collection(self._inner[name], name, self._recorder)

    def __getattr__(self, attr):
        value = getattr(self._inner, attr)
        if hasattr(value, "find_one"):
            return _Collection(value, attr, self._recorder)
        if callable(value) and not attr.startswith("_"):

            def call(*args, **kwargs):
                if self._recorder.active:
                    self._recorder.calls.append(("<db>", attr, args[0] if args else None))
                return value(*args, **kwargs)

            return call
        return value


@pytest.fixture
def served(app, rt, timer):
    """Three minutes of data (so `at` reaches history), then every store call during a request is recorded."""
    for minute in range(3):
        now = MONDAY_1100 + timedelta(minutes=minute)
        rt.clock = rt.refresher.clock = lambda now=now: now
        for _ in range(2):
            rt.tick()
            timer.advance(rt.config.dhan_min_interval_seconds + PACE_SLACK_SECONDS)
    recorder = Recorder()
    rt.store.db = _Database(rt.store.db, recorder)
    client = app.test_client()
    baseline = client.get("/").data
    assert client.get("/api/oi?symbol=NIFTY").status_code == 200
    assert client.get("/healthz").status_code == 200  # healthy: any 5xx from now on is the input's doing
    return client, recorder, baseline


def user_values(query: str) -> list[str]:
    """What the app sees of `query`, decoded the way werkzeug decodes it (invalid UTF-8 replaced)."""
    pairs = parse_qsl(query, keep_blank_values=True, errors="replace")
    return [text for pair in pairs for text in pair]


def check(served, path: str, query: str) -> None:
    client, recorder, baseline = served
    recorder.calls.clear()
    recorder.active = True
    try:
        resp = client.get(f"{path}?{query}")
    finally:
        recorder.active = False
    where = f"{path}?{query[:200]}"
    assert resp.status_code < 500, where
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    body = resp.get_data()

    if path.startswith("/api/") or path == "/healthz":
        assert resp.mimetype == "application/json", where
        payload = json.loads(body)
        if 400 <= resp.status_code < 500:
            assert isinstance(payload.get("error"), str) and payload["error"], where
        assert b"<" not in body, where  # no data or message of ours contains markup; user input must not either
    else:
        assert resp.status_code == 200, where
        # The page may reflect nothing that turns into markup: same number of tags as without a query.
        assert body.count(b"<") == baseline.count(b"<"), where
    text = body.decode("utf-8", "replace")
    for value in user_values(query):
        if value in MARKUP:
            assert value not in text, where

    # No user string, let alone an operator, can reach a filter when the only read allowed is a fixed one.
    for collection, method, argument in recorder.calls:
        shown = json.dumps(argument, sort_keys=True, default=str)
        assert (path, collection, method, shown) in ALLOWED_READS, (where, collection, method, shown)


# ------------------------------------------------------------------------------------------------ the catalogue


def catalogue() -> list[str]:
    """Every known hostile case once: for each parameter, each hostile value, plus name and encoding tricks."""
    queries = []
    for name in PARAMS:
        # With a valid symbol first, the other parameters get past the symbol check and are parsed too.
        prefix = "" if name == "symbol" else "symbol=NIFTY&"
        for value in HOSTILE_VALUES:
            queries.append(f"{prefix}{name}={quote(value, safe='')}")
            queries.append(f"{prefix}{name}={quote(value, safe=LITERAL)}")  # as a lax client would send it
        for fragment in RAW_FRAGMENTS:
            queries.append(f"{prefix}{name}={fragment}")
        queries.append("&".join([f"{name}={VALID[name][0]}"] * 1000))  # repeated
        queries.append(f"{name}={VALID[name][0]}&{name}={VALID[name][-1]}")
        queries.append(f"{name}")  # no '=' at all
    for name in HOSTILE_NAMES:
        queries.append(f"{quote(name, safe='[]$')}=NIFTY")
        queries.append(f"{name}=1&symbol=NIFTY")
    queries += ["", "&&&", "=", "==", "symbol=NIFTY;expiry=all", "symbol=NIFTY&" + "x=1&" * 2000]
    return list(dict.fromkeys(queries))


CATALOGUE = catalogue()


@pytest.mark.parametrize("path", ENDPOINTS)
def test_catalogue_of_hostile_queries(served, path):
    for query in CATALOGUE:
        check(served, path, query)


def test_catalogue_covers_every_parameter_and_kind():
    seen = {name: set() for name in PARAMS}
    names = set()
    for query in CATALOGUE:
        for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
            names.add(name)
            if name in seen:
                seen[name].add(value)
    for name, got in seen.items():
        assert {"<script>alert(1)</script>", '{"$ne": 1}', "\x00", "\ufffd", HUGE} <= got, name
    assert {"symbol[$ne]", "$where", "__proto__[x]"} <= names
    assert max(query.count("&") for query in CATALOGUE) >= 999  # a parameter repeated a thousand times


# ------------------------------------------------------------------------------------------------ hypothesis

names = st.one_of(st.sampled_from(PARAMS), st.sampled_from(HOSTILE_NAMES), st.text(max_size=12))
values = st.one_of(
    st.sampled_from([v for vs in VALID.values() for v in vs]),
    st.sampled_from(HOSTILE_VALUES),
    st.text(max_size=40),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)
encoded_values = st.one_of(
    st.tuples(values, st.sampled_from(["", LITERAL])).map(lambda t: quote(t[0], safe=t[1])),
    st.lists(st.sampled_from(RAW_FRAGMENTS), min_size=1, max_size=4).map("".join),
)
pairs = st.lists(st.tuples(names.map(lambda n: quote(n, safe="[]$")), encoded_values), max_size=6)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=st.sampled_from(ENDPOINTS), params=pairs, separator=st.sampled_from(["&", "&&", ";"]))
def test_random_hostile_queries(served, path, params, separator):
    check(served, path, separator.join(f"{n}={v}" for n, v in params))


def test_the_recorder_sees_reads(served):
    """The wrapper really records: a request that does read (/healthz's ping) shows up, with its filter."""
    client, recorder, _ = served
    recorder.active = True
    client.get("/healthz")
    recorder.active = False
    assert ("meta", "find_one", {"_id": "version"}) in recorder.calls
