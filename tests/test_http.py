"""Compressed, conditional, cacheable answers (oi/http.py) through the app, on the real SDK against the fake Dhan."""

import gzip
from datetime import datetime, timedelta

import brotli
import pytest

from oi.http import MIN_COMPRESS, Encoded, EncodedCache
from oi.market.calendar import IST
from oi.refresher import PACE_SLACK_SECONDS
from oi.web import create_app
from tests.helpers import make_config

LIVE = ("/api/oi?symbol=NIFTY", "/api/symbols", "/api/history?symbol=NIFTY")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def step(rt, timer, clock=None, minutes: float = 1.0) -> None:
    """Move time on (the app's clock by `minutes`, the pace timer past the gate), then one refresher tick."""
    if clock is not None:
        clock.at += timedelta(minutes=minutes)
    timer.advance(rt.config.dhan_min_interval_seconds + PACE_SLACK_SECONDS)
    rt.tick()


@pytest.fixture
def moving(rt, timer):
    """The app's and the refresher's clock under the test's control, data for NIFTY loaded."""
    clock = Clock(datetime(2026, 11, 23, 11, 0, tzinfo=IST))
    rt.clock = rt.refresher.clock = clock
    for _ in range(2):  # expiry list, then the first chain
        step(rt, timer)
    return clock


@pytest.mark.parametrize("path", LIVE)
@pytest.mark.parametrize("coding,decode", [("gzip", gzip.decompress), ("br", brotli.decompress)])
def test_encoded_bodies_decode_to_the_plain_body(client, rt, timer, moving, path, coding, decode):
    for _ in range(3):  # a few minutes of history, so every body is worth compressing
        step(rt, timer, moving)
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    encoded = client.get(path, headers={"Accept-Encoding": f"{coding}, identity;q=0.5"})
    assert encoded.headers["Vary"] == plain.headers["Vary"] == "Accept-Encoding"
    if len(plain.data) < MIN_COMPRESS:
        assert "Content-Encoding" not in encoded.headers
        return
    assert encoded.headers["Content-Encoding"] == coding
    assert len(encoded.data) < len(plain.data)
    assert decode(encoded.data) == plain.data
    # One exact byte sequence per strong tag: the encodings' tags differ from each other.
    assert encoded.headers["ETag"] != plain.headers["ETag"]


def test_brotli_preferred_and_refused_encodings_respected():
    body = Encoded.of(b'{"x":"' + b"abc" * 400 + b'"}')

    class Req:
        def __init__(self, header):
            from werkzeug.test import EnvironBuilder

            self.accept_encodings = EnvironBuilder(headers={"Accept-Encoding": header}).get_request().accept_encodings

    assert body.pick(Req("gzip, deflate, br"))[1] == "br"
    assert body.pick(Req("gzip, br;q=0"))[1] == "gzip"
    assert body.pick(Req("deflate"))[1] is None
    assert body.pick(Req(""))[1] is None


def test_etag_changes_exactly_when_the_data_changes(client, rt, timer, moving):
    seen: dict[str, str] = {}  # ETag -> as_of
    for minute in range(6):
        if minute % 2:
            rt.tick()  # pace gate closed: no upstream call, nothing new
        else:
            step(rt, timer, moving)
        for _ in range(2):
            r = client.get("/api/oi?symbol=NIFTY", headers={"Accept-Encoding": "gzip"})
            as_of = rt.views.get("NIFTY", None).chain.as_of.isoformat()
            seen.setdefault(r.headers["ETag"], as_of)
            assert seen[r.headers["ETag"]] == as_of  # one tag never names two versions
    versions = set(seen.values())
    assert len(versions) == 3 and len(seen) == len(versions)  # and one version never has two tags


def test_etag_covers_the_per_request_head(client, rt, timer, moving):
    """The head (stale, stale_reason, market_open) changes with time while the view does not: the tag follows."""
    fresh = client.get("/api/oi?symbol=NIFTY")
    moving.at += timedelta(minutes=5)  # no new data: the same view is now stale
    stale = client.get("/api/oi?symbol=NIFTY", headers={"If-None-Match": fresh.headers["ETag"]})
    assert stale.status_code == 200 and stale.get_json()["stale"] is True
    assert stale.headers["ETag"] != fresh.headers["ETag"]


@pytest.mark.parametrize("path", LIVE)
def test_matching_if_none_match_is_a_304_without_body(client, rt, timer, moving, path):
    step(rt, timer, moving)
    first = client.get(path, headers={"Accept-Encoding": "gzip"})
    tag = first.headers["ETag"]
    again = client.get(path, headers={"Accept-Encoding": "gzip", "If-None-Match": f'"other", {tag}'})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == tag and again.headers["Cache-Control"] == first.headers["Cache-Control"]
    assert client.get(path, headers={"Accept-Encoding": "gzip", "If-None-Match": "*"}).status_code == 304
    if "Content-Encoding" in first.headers:  # (small bodies are not compressed)
        # Another encoding is another representation: its tag does not match, so the body comes.
        assert client.get(path, headers={"If-None-Match": tag}).status_code == 200
    step(rt, timer, moving)  # new data: the old tag no longer matches (the symbol list itself did not change)
    expected = 304 if path == "/api/symbols" else 200
    assert client.get(path, headers={"Accept-Encoding": "gzip", "If-None-Match": tag}).status_code == expected


def test_live_cache_control_in_market_hours(client, rt, timer, moving):
    period = rt.config.refresh_period_seconds  # 3 s: one symbol, one expiry
    # /api/oi changes every refresh period; the history gains a point a minute; the symbol list changes more rarely.
    for path, changes_every in zip(LIVE, (period, 60, 60), strict=True):
        half = max(1, int(changes_every / 2))
        r = client.get(path)
        assert r.headers["Cache-Control"] == (
            f"public, max-age={half}, s-maxage={half}, stale-while-revalidate={half}"
        ), path


def test_with_the_feed_live_api_oi_is_cached_for_half_a_publication(dhan_env, store, timer):
    """Ticks reach every worker once a second while the feed is live: an edge that kept /api/oi for half a REST
    round (here one symbol at 10 s) would hold them back that long."""
    app = create_app(
        make_config(**dhan_env, DHAN_MIN_INTERVAL_SECONDS="10", OI_NOW="2026-11-23T11:00:00+05:30"),
        store=store,
        timer=timer,
    )
    rt = app.extensions["oi"]
    for _ in range(2):
        step(rt, timer)
    client = app.test_client()
    assert "max-age=5," in client.get("/api/oi?symbol=NIFTY").headers["Cache-Control"]  # half a 10 s round
    store.set_status({**store.status(), "feed": {"state": "live", "instruments": 15}})  # the lease holder's word
    rt.views.sync(datetime(2026, 11, 23).date())
    assert "max-age=1," in client.get("/api/oi?symbol=NIFTY").headers["Cache-Control"]
    assert "max-age=30," in client.get("/api/history?symbol=NIFTY").headers["Cache-Control"]  # a point a minute
    store.set_status({**store.status(), "feed": {"state": "stopped", "instruments": 15}})
    rt.views.sync(datetime(2026, 11, 23).date())
    assert "max-age=5," in client.get("/api/oi?symbol=NIFTY").headers["Cache-Control"]  # REST's pace again


@pytest.mark.parametrize(
    "now,ttl",
    [
        # Monday before the open: cached until 09:15.
        (datetime(2026, 11, 23, 8, 45, tzinfo=IST), 1800),
        # Monday after the close: next open is Wednesday (Tuesday 24th is a holiday), so capped at an hour.
        (datetime(2026, 11, 23, 16, 0, tzinfo=IST), 3600),
    ],
)
def test_cache_control_after_hours_follows_the_calendar(dhan_env, store, timer, now, ttl):
    app = create_app(make_config(**dhan_env, OI_NOW=now.isoformat()), store=store, timer=timer)
    rt = app.extensions["oi"]
    for _ in range(2):
        step(rt, timer)
    r = app.test_client().get("/api/oi?symbol=NIFTY")
    assert r.status_code == 200 and r.get_json()["market_open"] is False
    assert f"max-age={ttl}, s-maxage={ttl}," in r.headers["Cache-Control"]


def test_demo_is_always_live(tmp_path, timer):
    from oi.config import from_env

    # REST only: with its simulated feed live the demo's answers change every second (the test above).
    env = {"OI_REFRESHER": "0", "OI_DATA_DIR": str(tmp_path), "OI_NOW": "2026-11-21T20:00:00+05:30", "OI_FEED": "off"}
    app = create_app(from_env(env), timer=timer)
    for _ in range(3):
        step(app.extensions["oi"], timer)
    r = app.test_client().get("/api/oi?symbol=NIFTY")
    assert "max-age=3," in r.headers["Cache-Control"]  # 2 symbols x 3 s = 6 s period: half of it


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/api/oi?symbol=NOPE",
        "/api/oi?symbol=NIFTY&expiry=2030-01-01",
        "/api/history?symbol=NIFTY&since=yesterday",
        "/api/nothing",
    ],
)
def test_errors_and_healthz_are_never_cached(client, rt, timer, moving, path):
    r = client.get(path, headers={"Accept-Encoding": "gzip", "If-None-Match": "*"})
    assert r.status_code != 304 and r.headers["Cache-Control"] == "no-store"
    assert "ETag" not in r.headers


def test_origin_lock_runs_before_conditional_handling(dhan_env, store, timer):
    app = create_app(make_config(**dhan_env, ORIGIN_SECRET="s3cret-edge-value"), store=store, timer=timer)
    rt = app.extensions["oi"]
    for _ in range(2):
        step(rt, timer)
    c = app.test_client()
    ok = c.get("/api/oi?symbol=NIFTY", headers={"X-Origin-Secret": "s3cret-edge-value"})
    assert ok.status_code == 200 and "public" in ok.headers["Cache-Control"]
    assert b"s3cret-edge-value" not in ok.data and "s3cret-edge-value" not in str(ok.headers)
    # Without the secret, even a request holding the current tag learns nothing: 403, never a 304 or a body.
    bare = c.get("/api/oi?symbol=NIFTY", headers={"If-None-Match": ok.headers["ETag"]})
    assert bare.status_code == 403 and bare.headers["Cache-Control"] == "no-store" and "ETag" not in bare.headers


def test_history_since_returns_only_newer_points(client, rt, timer, moving):
    for _ in range(4):
        step(rt, timer, moving)
    full = client.get("/api/history?symbol=NIFTY").get_json()["points"]
    assert len(full) == 5
    cut = full[2]["as_of"]
    newer = client.get("/api/history", query_string={"symbol": "NIFTY", "since": cut}).get_json()
    assert newer["points"] == full[3:] and newer["symbol"] == "NIFTY"
    assert (
        client.get("/api/history", query_string={"symbol": "NIFTY", "since": full[-1]["as_of"]}).get_json()["points"]
        == []
    )
    naive = datetime.fromisoformat(cut).replace(tzinfo=None).isoformat()  # a naive time is IST, like ?at=
    assert client.get("/api/history", query_string={"symbol": "NIFTY", "since": naive}).get_json()["points"] == full[3:]
    early = (datetime.fromisoformat(full[0]["as_of"]) - timedelta(minutes=1)).isoformat()
    assert client.get("/api/history", query_string={"symbol": "NIFTY", "since": early}).get_json()["points"] == full
    step(rt, timer, moving)
    assert len(client.get("/api/history", query_string={"symbol": "NIFTY", "since": cut}).get_json()["points"]) == 3


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01T10:00", "", "10:30:00+99:00"])
def test_bad_since_is_a_json_400(client, rt, timer, moving, since):
    r = client.get("/api/history", query_string={"symbol": "NIFTY", "since": since})
    assert r.status_code == 400 and "'since'" in r.get_json()["error"]
    assert r.headers["Cache-Control"] == "no-store"


def test_static_assets_precompressed_and_conditional(client):
    plain = client.get("/static/app.js", headers={"Accept-Encoding": ""})
    gz = client.get("/static/app.js", headers={"Accept-Encoding": "gzip"})
    br = client.get("/static/app.js", headers={"Accept-Encoding": "br, gzip"})
    assert plain.status_code == gz.status_code == br.status_code == 200
    assert plain.content_type.startswith("text/javascript")
    assert gzip.decompress(gz.data) == plain.data and brotli.decompress(br.data) == plain.data
    assert br.headers["Vary"] == "Accept-Encoding" and br.headers["Content-Encoding"] == "br"
    assert client.get("/static/app.js", headers={"If-None-Match": plain.headers["ETag"]}).status_code == 304
    assert client.get("/static/nope.js").status_code == 404


def test_encoded_cache_builds_once_and_stays_within_budget():
    cache = EncodedCache(budget_bytes=20_000)
    calls = []

    def build(n):
        calls.append(n)
        return (b'{"n":%d,"pad":"' % n) + b"x" * 5000 + b'"}'

    first = cache.get(1, lambda: build(1))
    assert cache.get(1, lambda: build(1)) is first and calls == [1]
    for n in range(2, 12):
        cache.get(n, lambda n=n: build(n))
    assert cache.used <= 20_000 and 1 not in cache._entries and 11 in cache._entries


def test_page_names_assets_by_content_hash(client, rt, timer):
    import re

    page = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert (
        page.headers["Cache-Control"] == "public, max-age=0, s-maxage=60" and page.headers["Vary"] == "Accept-Encoding"
    )
    html = gzip.decompress(page.data).decode()
    src = re.search(r'src="(/static/app\.js\?v=[^"]+)"', html).group(1)
    versioned = client.get(src)
    assert versioned.status_code == 200 and "immutable" in versioned.headers["Cache-Control"]
    assert versioned.headers["ETag"].strip('"') == src.rsplit("=", 1)[1]  # the hash of what is served
    assert client.get("/static/app.js?v=old").headers["Cache-Control"] == "public, no-cache"
    assert client.get("/", headers={"If-None-Match": client.get("/").headers["ETag"]}).status_code == 304


@pytest.mark.parametrize("quick", [False, True])
def test_replay_answers_decode_too(client, rt, timer, moving, quick):
    """?at= answers take the quick compression; both settings decode to the plain body."""
    for _ in range(3):
        step(rt, timer, moving)
    path = "/api/oi?symbol=NIFTY&at=2026-11-23T11:01:00" if quick else "/api/oi?symbol=NIFTY"
    plain = client.get(path).data
    for coding, decode in (("gzip", gzip.decompress), ("br", brotli.decompress)):
        r = client.get(path, headers={"Accept-Encoding": coding})
        assert r.headers["Content-Encoding"] == coding and decode(r.data) == plain
    assert Encoded.of(plain, quick=quick).gzip is not None
