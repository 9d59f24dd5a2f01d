"""Pure functions over an :class:`OptionChain`: ATM, PCR, max pain, totals, and the API's view of a chain.

Definitions (issue #2): ``oi_change = oi − previous_oi``; ``atm`` is the chain strike nearest spot (tie → lower);
``pcr`` = total PE OI ÷ total CE OI over all strikes; ``max_pain`` is the strike K minimizing
Σᵢ CE_OIᵢ·max(0, K − Kᵢ) + PE_OIᵢ·max(0, Kᵢ − K); totals are over all strikes.
"""

from __future__ import annotations

from collections.abc import Sequence

from oi.market.model import Leg, OptionChain, Strike


def atm_strike(strikes: Sequence[Strike], spot: float) -> float | None:
    """Nearest strike to spot, the lower one on a tie. None when spot is unknown (0 on holidays and pre-open)."""
    if not strikes or spot <= 0:
        return None
    return min(strikes, key=lambda s: (abs(s.strike - spot), s.strike)).strike


def totals(strikes: Sequence[Strike]) -> dict[str, int]:
    return {
        "ce_oi": sum(s.ce.oi for s in strikes),
        "pe_oi": sum(s.pe.oi for s in strikes),
        "ce_oi_change": sum(s.ce.oi_change for s in strikes),
        "pe_oi_change": sum(s.pe.oi_change for s in strikes),
    }


def pcr(strikes: Sequence[Strike]) -> float | None:
    ce = sum(s.ce.oi for s in strikes)
    return round(sum(s.pe.oi for s in strikes) / ce, 4) if ce else None


def max_pain(strikes: Sequence[Strike]) -> float | None:
    """The expiry price at which option writers pay out least. Lowest such strike on a tie; None with no OI."""
    if not any(s.ce.oi or s.pe.oi for s in strikes):
        return None
    ks = [s.strike for s in strikes]
    # O(n) sweep instead of the O(n²) double loop: pain(K) is piecewise linear in K with slopes that change only at
    # strikes, so carry running sums of OI and OI×strike on each side.
    ce_oi = [s.ce.oi for s in strikes]
    pe_oi = [s.pe.oi for s in strikes]
    total_pe, total_pe_k = sum(pe_oi), sum(o * k for o, k in zip(pe_oi, ks, strict=True))
    ce_below = ce_below_k = pe_below = pe_below_k = 0.0
    best, best_pain = None, None
    for i, k in enumerate(ks):
        ce_below += ce_oi[i]
        ce_below_k += ce_oi[i] * k
        # CE strikes ≤ K pay K − Kᵢ; PE strikes ≥ K pay Kᵢ − K (PE strictly below K pay nothing).
        pe_above, pe_above_k = total_pe - pe_below, total_pe_k - pe_below_k
        pain = (k * ce_below - ce_below_k) + (pe_above_k - k * pe_above)
        if best_pain is None or pain < best_pain:
            best, best_pain = k, pain
        pe_below += pe_oi[i]
        pe_below_k += pe_oi[i] * k
    return best


def window_slice(strikes: Sequence[float], centre: float | None, around: int | None) -> slice:
    """The slice of `around` strikes either side of `centre` (ATM; the middle when unknown), all when None."""
    if around is None or not strikes:
        return slice(None)
    mid = strikes.index(centre) if centre in strikes else len(strikes) // 2
    return slice(max(0, mid - around), mid + around + 1)


def window(strikes: Sequence[Strike], centre: float | None, around: int | None) -> Sequence[Strike]:
    return strikes[window_slice([s.strike for s in strikes], centre, around)]


def json_number(x: float) -> float | int:
    """Strikes as ints when whole, so JSON says 23850 rather than 23850.0."""
    return int(x) if float(x).is_integer() else x


def summary(chain: OptionChain) -> dict:
    """ATM, PCR, max pain and totals of a chain: the numbers the API, the page and the snapshot all show."""
    atm, mp = atm_strike(chain.strikes, chain.spot), max_pain(chain.strikes)
    return {
        "atm": None if atm is None else json_number(atm),
        "pcr": pcr(chain.strikes),
        "max_pain": None if mp is None else json_number(mp),
        "totals": totals(chain.strikes),
    }


def leg_view(leg: Leg) -> dict:
    return {
        "oi": leg.oi,
        "oi_change": leg.oi_change,
        "previous_oi": leg.previous_oi,
        "ltp": leg.ltp,
        "ltp_change": round(leg.ltp - leg.previous_close, 2) if leg.previous_close else None,
        "iv": leg.iv,
        "volume": leg.volume,
        "delta": leg.delta,
        "gamma": leg.gamma,
        "theta": leg.theta,
        "vega": leg.vega,
        "bid": leg.bid,
        "bid_qty": leg.bid_qty,
        "ask": leg.ask,
        "ask_qty": leg.ask_qty,
    }


def chain_view(chain: OptionChain) -> dict:
    """Everything the API says about a chain, with every strike; callers cut the window with :func:`window_slice`."""
    head = {
        "symbol": chain.symbol,
        "expiry": chain.expiry,
        "spot": chain.spot,
        "as_of": chain.as_of.isoformat(),
        "source": chain.source,
    }
    return {
        **head,
        **summary(chain),
        "strike_count": len(chain.strikes),
        "strikes": [
            {"strike": json_number(s.strike), "ce": leg_view(s.ce), "pe": leg_view(s.pe)} for s in chain.strikes
        ],
    }
