"""Every definition of issue #2, checked against values worked out by hand from the NIFTY fixture."""

import json
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oi import analytics
from oi.market.calendar import IST
from oi.market.dhan import normalize
from oi.market.model import Leg, OptionChain, Strike

FIXTURE = Path(__file__).parent / "fixtures" / "dhan" / "optionchain_NIFTY.json"


@pytest.fixture(scope="module")
def chain():
    data = json.loads(FIXTURE.read_text())["data"]
    return normalize("NIFTY", "2026-11-24", data, datetime(2026, 11, 23, 11, 0, tzinfo=IST))


def test_fixture_values(chain):
    view = analytics.chain_view(chain)
    # spot 23847.35: 23850 is 2.65 away, 23800 is 47.35 away
    assert view["atm"] == 23850
    # Σ PE OI 110,711,510 ÷ Σ CE OI 119,783,105 over all 24 strikes, 26000 included
    assert view["pcr"] == pytest.approx(110711510 / 119783105, abs=1e-4) and view["pcr"] == 0.9243
    assert view["totals"] == {
        "ce_oi": 119783105,
        "pe_oi": 110711510,
        "ce_oi_change": 11094200,
        "pe_oi_change": 9178585,
    }
    # writers' payout at 23850 is 3,843,739,250 (next best 4,067,453,000)
    assert view["max_pain"] == 23850


def test_small_chain_by_hand():
    # Strikes 100/110/120. CE OI 10/20/5, PE OI 30/10/0.
    # pain(100) = CE 0 + PE (110-100)·10 = 100
    # pain(110) = CE (110-100)·10 = 100 + PE 0 = 100            → tie with 100: lower wins
    # pain(120) = CE 20·10 + 10·20 = 400
    strikes = [
        Strike(100.0, Leg(oi=10, previous_oi=4), Leg(oi=30, previous_oi=35)),
        Strike(110.0, Leg(oi=20), Leg(oi=10)),
        Strike(120.0, Leg(oi=5), Leg(oi=0)),
    ]
    assert analytics.max_pain(strikes) == 100.0
    assert analytics.pcr(strikes) == round(40 / 35, 4)
    assert analytics.totals(strikes)["ce_oi_change"] == 6 + 20 + 5
    assert analytics.totals(strikes)["pe_oi_change"] == -5 + 10 + 0
    assert analytics.atm_strike(strikes, 105.0) == 100.0  # tie → lower
    assert analytics.atm_strike(strikes, 105.01) == 110.0
    assert analytics.atm_strike(strikes, 0) is None  # a zero spot never picks an ATM


def test_max_pain_moves_with_oi():
    strikes = [Strike(100.0, Leg(oi=0), Leg(oi=1000)), Strike(110.0, Leg(oi=0), Leg(oi=0)), Strike(120.0)]
    # only puts at 100: pain is 0 at 100 and grows below it → 100
    assert analytics.max_pain(strikes) == 100.0
    strikes[2] = Strike(120.0, Leg(oi=0), Leg(oi=5000))
    # pain(100)=5000·20=100000, pain(110)=5000·10=50000, pain(120)=0 → 120
    assert analytics.max_pain(strikes) == 120.0


def brute_force_max_pain(strikes):
    pains = {
        k.strike: sum(s.ce.oi * max(0, k.strike - s.strike) + s.pe.oi * max(0, s.strike - k.strike) for s in strikes)
        for k in strikes
    }
    return min(pains, key=lambda k: (pains[k], k))


@given(st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 10**7)), min_size=1, max_size=60))
def test_linear_max_pain_equals_the_definition(ois):
    strikes = [Strike(20000.0 + 50 * i, Leg(oi=c), Leg(oi=p)) for i, (c, p) in enumerate(ois)]
    if not any(c or p for c, p in ois):
        assert analytics.max_pain(strikes) is None
    else:
        assert analytics.max_pain(strikes) == brute_force_max_pain(strikes)


def test_window_is_centred_on_atm(chain):
    view = analytics.chain_view(chain)
    around = analytics.window(chain.strikes, view["atm"], 2)
    assert [s.strike for s in around] == [23750.0, 23800.0, 23850.0, 23900.0, 23950.0]


def test_doc_round_trip(chain):
    again = OptionChain.from_doc(json.loads(json.dumps(chain.to_doc())))
    assert again == chain
