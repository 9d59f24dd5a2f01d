"""The real dhanhq SDK against the fake DhanHQ server: requests, normalization and error classification."""

import json

import pytest

from oi.config import DEFAULT_UNDERLYINGS
from oi.market.dhan import AUTH, INVALID_EXPIRY, INVALID_SECURITY, NETWORK, RATE_LIMIT, UPSTREAM, DhanError, DhanSource
from tests.fakes.dhan import CLIENT_ID, ERRORS, TOKEN
from tests.helpers import MONDAY_1100


@pytest.fixture
def source(fake_dhan):
    return DhanSource.create(CLIENT_ID, TOKEN, fake_dhan.base_url, 2.0, DEFAULT_UNDERLYINGS)


def test_sdk_sends_dhan_request_shape(source, fake_dhan):
    source.chain("NIFTY", "2026-11-24", MONDAY_1100)
    _, path, payload = fake_dhan.calls[-1]
    assert path == "/v2/optionchain"
    assert payload == {
        "UnderlyingScrip": 13,
        "UnderlyingSeg": "IDX_I",
        "Expiry": "2026-11-24",
        "dhanClientId": CLIENT_ID,
    }


def test_expiry_list(source, fake_dhan):
    expiries = source.expiries("BANKNIFTY")
    assert expiries[:2] == ["2026-11-24", "2026-12-01"]
    assert fake_dhan.calls[-1][2]["UnderlyingScrip"] == 25


def test_chain_normalized_from_fixture(source):
    chain = source.chain("NIFTY", "2026-11-24", MONDAY_1100)
    assert (chain.symbol, chain.expiry, chain.spot, chain.source) == ("NIFTY", "2026-11-24", 23847.35, "dhan")
    assert len(chain.strikes) == 24
    assert [s.strike for s in chain.strikes] == sorted(s.strike for s in chain.strikes)
    row = next(s for s in chain.strikes if s.strike == 23850.0)
    assert (row.ce.oi, row.ce.previous_oi, row.ce.ltp, row.ce.volume) == (6340035, 5870020, 118.8, 129316850)
    assert row.ce.oi_change == 470015
    assert (row.pe.oi, row.pe.previous_oi, row.pe.ltp) == (3746860, 3470155, 108.45)
    illiquid = next(s for s in chain.strikes if s.strike == 26000.0)
    assert illiquid.pe.oi == 0 and illiquid.pe.iv == 0 and illiquid.pe.delta == 0


def test_wrong_token_is_an_auth_error(fake_dhan):
    bad = DhanSource.create(CLIENT_ID, "wrong-token", fake_dhan.base_url, 2.0, DEFAULT_UNDERLYINGS)
    with pytest.raises(DhanError) as err:
        bad.chain("NIFTY", "2026-11-24", MONDAY_1100)
    assert (err.value.kind, err.value.http_status, err.value.code) == (AUTH, 401, "DH-901")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("rate_limit_805", RATE_LIMIT),
        ("rate_limit_DH904", RATE_LIMIT),
        ("auth_failed_808", AUTH),
        ("not_subscribed_806", AUTH),
        ("token_invalid_DH901", AUTH),
        ("invalid_expiry_811", INVALID_EXPIRY),
        ("invalid_security_813", INVALID_SECURITY),
    ],
)
def test_error_bodies_are_classified_although_the_sdk_drops_them(source, fake_dhan, name, kind):
    fake_dhan.script.append((ERRORS[name]["http_status"], ERRORS[name]["body"]))
    with pytest.raises(DhanError) as err:
        source.chain("NIFTY", "2026-11-24", MONDAY_1100)
    assert err.value.kind == kind
    assert err.value.http_status == ERRORS[name]["http_status"]


def test_failed_body_with_http_200_is_still_an_error(source, fake_dhan):
    fake_dhan.script.append((200, ERRORS["rate_limit_805"]["body"]))
    with pytest.raises(DhanError) as err:
        source.chain("NIFTY", "2026-11-24", MONDAY_1100)
    assert err.value.kind == RATE_LIMIT and err.value.code == "805"


def test_bare_http_statuses(source, fake_dhan):
    fake_dhan.script.extend([(429, b"slow down"), (503, b"<html>bad gateway</html>"), (200, b"{not json")])
    kinds = []
    for _ in range(3):
        with pytest.raises(DhanError) as err:
            source.chain("NIFTY", "2026-11-24", MONDAY_1100)
        kinds.append(err.value.kind)
    assert kinds == [RATE_LIMIT, UPSTREAM, UPSTREAM]


def test_connection_refused_is_a_network_error():
    dead = DhanSource.create(CLIENT_ID, TOKEN, "http://127.0.0.1:9/v2", 1.0, DEFAULT_UNDERLYINGS)
    with pytest.raises(DhanError) as err:
        dead.expiries("NIFTY")
    assert err.value.kind == NETWORK and err.value.http_status is None


def test_chain_without_oc_is_rejected(source, fake_dhan):
    fake_dhan.script.append((200, json.dumps({"data": {"last_price": 1}, "status": "success"}).encode()))
    with pytest.raises(DhanError, match="oc"):
        source.chain("NIFTY", "2026-11-24", MONDAY_1100)
