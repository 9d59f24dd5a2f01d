"""Pure functions over an :class:`OptionChain`: ATM, PCR, max pain, totals, and the API's view of a chain.

Definitions (issue #2): ``oi_change = oi − previous_oi``; ``atm`` is the chain strike nearest spot (tie → lower);
``pcr`` = total PE OI ÷ total CE OI over all strikes; ``max_pain`` is the strike K minimizing
Σᵢ CE_OIᵢ·max(0, K − Kᵢ) + PE_OIᵢ·max(0, Kᵢ − K); totals are over all strikes.

Issue #5: ``oi_change_interval`` = OI now − OI in ``ref``, the latest stored snapshot at or before now − M minutes
(None when there is none, or the strike is not in it). Support = the strike with the largest PE OI, resistance =
the strike with the largest CE OI; "by change" = the largest increase (positive only: writers adding); ties → the
lower strike. PCR of change = Σ PE change ÷ Σ CE change (None when the CE sum is 0). All over every strike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from oi.market.model import Leg, OptionChain, Strike

INTERVALS = (3, 5, 10, 15, 30)  # minutes offered for "change in OI over the last M minutes"
COMBINED = "all"  # the expiry name of the summed-across-expiries view


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


def ratio(pe: float, ce: float) -> float | None:
    return round(pe / ce, 4) if ce else None


def pcr(strikes: Sequence[Strike]) -> float | None:
    return ratio(sum(s.pe.oi for s in strikes), sum(s.ce.oi for s in strikes))


def top_strike(strikes: Sequence[float], values: Sequence[float | None]) -> float | int | None:
    """The strike with the largest positive value (the lower one on a tie); None when nothing is positive."""
    best, best_value = None, 0
    for k, v in zip(strikes, values, strict=True):
        if v is not None and v > best_value:
            best, best_value = k, v
    return None if best is None else json_number(best)


def interval_changes(chain: OptionChain, ref: OptionChain | None) -> list[tuple[int | None, int | None]]:
    """Per strike of `chain`: (CE, PE) OI change since `ref`; None where `ref` is missing or lacks the strike."""
    if ref is None:
        return [(None, None)] * len(chain.strikes)
    before = {s.strike: s for s in ref.strikes}
    out = []
    for s in chain.strikes:
        old = before.get(s.strike)
        out.append((None, None) if old is None else (s.ce.oi - old.ce.oi, s.pe.oi - old.pe.oi))
    return out


def levels(chain: OptionChain, changes: Sequence[tuple[int | None, int | None]] | None = None) -> dict:
    """Support/resistance by OI and by change in OI since the previous session (and since `ref` when given)."""
    ks = [s.strike for s in chain.strikes]
    out = {
        "support": top_strike(ks, [s.pe.oi for s in chain.strikes]),
        "resistance": top_strike(ks, [s.ce.oi for s in chain.strikes]),
        "support_by_change": top_strike(ks, [s.pe.oi_change for s in chain.strikes]),
        "resistance_by_change": top_strike(ks, [s.ce.oi_change for s in chain.strikes]),
    }
    if changes is not None:
        out["support_by_interval"] = top_strike(ks, [pe for _, pe in changes])
        out["resistance_by_interval"] = top_strike(ks, [ce for ce, _ in changes])
    return out


def merge(chains: Sequence[OptionChain], expiry: str = COMBINED) -> OptionChain:
    """One chain summing OI, previous OI and volume per strike across expiries of one symbol.

    Prices, IV and Greeks do not add up across expiries, so they are left at 0 ("not available"). Spot comes from
    the freshest part; as_of is the freshest part's time.
    """
    newest = max(chains, key=lambda c: c.as_of)
    sums: dict[float, list[int]] = {}
    for chain in chains:
        for s in chain.strikes:
            row = sums.setdefault(s.strike, [0] * 6)
            for i, leg in enumerate((s.ce, s.pe)):
                row[3 * i] += leg.oi
                row[3 * i + 1] += leg.previous_oi
                row[3 * i + 2] += leg.volume
    strikes = tuple(
        Strike(k, Leg(oi=r[0], previous_oi=r[1], volume=r[2]), Leg(oi=r[3], previous_oi=r[4], volume=r[5]))
        for k, r in sorted(sums.items())
    )
    return replace(newest, expiry=expiry, strikes=strikes, prev_close=max(c.prev_close for c in chains))


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
    t = totals(chain.strikes)
    return {
        "atm": None if atm is None else json_number(atm),
        "pcr": ratio(t["pe_oi"], t["ce_oi"]),
        "pcr_change": ratio(t["pe_oi_change"], t["ce_oi_change"]),
        "max_pain": None if mp is None else json_number(mp),
        "totals": t,
    }


def spot_change(spot: float, prev_close: float) -> dict:
    ok = spot > 0 and prev_close > 0
    return {
        "spot_prev_close": prev_close if prev_close > 0 else None,
        "spot_change": round(spot - prev_close, 2) if ok else None,
        "spot_change_pct": round(100 * (spot - prev_close) / prev_close, 2) if ok else None,
    }


def atm_prices(chain: OptionChain) -> tuple[float | None, float | None]:
    """(ATM straddle premium = CE LTP + PE LTP at the ATM strike, ATM IV = the mean of its legs' non-zero IVs).

    None where a price or IV is missing (0: untraded leg, the combined view)."""
    atm = atm_strike(chain.strikes, chain.spot)
    row = next((s for s in chain.strikes if s.strike == atm), None)
    if row is None:
        return None, None
    straddle = round(row.ce.ltp + row.pe.ltp, 2) if row.ce.ltp > 0 and row.pe.ltp > 0 else None
    ivs = [v for v in (row.ce.iv, row.pe.iv) if v > 0]
    return straddle, round(sum(ivs) / len(ivs), 2) if ivs else None


def history_point(chain: OptionChain) -> dict:
    """One point of the intraday series (/api/history: spot, PCR, OI totals, max pain, ATM straddle and IV)."""
    t = totals(chain.strikes)
    mp = max_pain(chain.strikes)
    straddle, atm_iv = atm_prices(chain)
    return {
        "as_of": chain.as_of.isoformat(),
        "spot": chain.spot,
        "pcr": ratio(t["pe_oi"], t["ce_oi"]),
        "max_pain": None if mp is None else json_number(mp),
        "ce_oi": t["ce_oi"],
        "pe_oi": t["pe_oi"],
        "straddle": straddle,
        "atm_iv": atm_iv,
    }


def interval_price_changes(chain: OptionChain, ref: OptionChain | None) -> list[tuple[float | None, float | None]]:
    """Per strike of `chain`: (CE, PE) LTP change since `ref`, for the build-up labels; None where either price is
    missing (0) or `ref` lacks the strike."""
    if ref is None:
        return [(None, None)] * len(chain.strikes)
    before = {s.strike: s for s in ref.strikes}

    def diff(now: Leg, then: Leg) -> float | None:
        return round(now.ltp - then.ltp, 2) if now.ltp > 0 and then.ltp > 0 else None

    out = []
    for s in chain.strikes:
        old = before.get(s.strike)
        out.append((None, None) if old is None else (diff(s.ce, old.ce), diff(s.pe, old.pe)))
    return out


PRICE_FIELDS = ("ltp", "iv", "delta", "gamma", "theta", "vega", "bid", "bid_qty", "ask", "ask_qty")
# Decimal places the API (and the snapshot, which stores these fields as scaled integers) gives each price field:
# one rule for both, so the night-time page shows exactly what the live one did.
DECIMALS = {"ltp": 2, "iv": 2, "delta": 4, "gamma": 5, "theta": 2, "vega": 2, "bid": 2, "ask": 2}


def price(name: str, value: float) -> float:
    """A price field at the API's precision (Dhan's float32 noise and the source's long decimals cut off)."""
    return round(value, DECIMALS[name])


def leg_view(leg: Leg, prices: bool = True) -> dict:
    """A leg as the API shows it. Without `prices` (the combined view) price, IV and Greek fields are null."""
    ltp = price("ltp", leg.ltp)
    out = {
        "oi": leg.oi,
        "oi_change": leg.oi_change,
        "previous_oi": leg.previous_oi,
        "ltp": ltp,
        "ltp_change": round(ltp - price("ltp", leg.previous_close), 2) if leg.previous_close else None,
        "iv": price("iv", leg.iv),
        "volume": leg.volume,
        "delta": price("delta", leg.delta),
        "gamma": price("gamma", leg.gamma),
        "theta": price("theta", leg.theta),
        "vega": price("vega", leg.vega),
        "bid": price("bid", leg.bid),
        "bid_qty": leg.bid_qty,
        "ask": price("ask", leg.ask),
        "ask_qty": leg.ask_qty,
    }
    if not prices:
        out.update(dict.fromkeys(PRICE_FIELDS))
        out["ltp_change"] = None
    return out


def chain_view(
    chain: OptionChain,
    ref: OptionChain | None = None,
    interval: int | None = None,
    prev_close: float = 0.0,
    lot_size: int | None = None,
) -> dict:
    """Everything the API says about a chain, with every strike; callers cut the window with :func:`window_slice`.

    With `interval`, `ref` is the snapshot M minutes back (None if history does not reach that far) and every leg
    gets ``oi_change_interval`` and ``ltp_change_interval`` (the build-up labels' price move; null when combined).
    """
    combined = chain.expiry == COMBINED
    head = {
        "symbol": chain.symbol,
        "expiry": chain.expiry,
        "combined": combined,
        "spot": chain.spot,
        **spot_change(chain.spot, chain.prev_close or prev_close),
        "as_of": chain.as_of.isoformat(),
        "source": chain.source,
        "lot_size": lot_size,
    }
    changes = interval_changes(chain, ref) if interval else None
    price_changes = interval_price_changes(chain, ref if not combined else None) if interval else None
    body = {**head, **summary(chain), "levels": levels(chain, changes)}
    if interval:
        totals_ = body["totals"]
        ce = sum(c for c, _ in changes if c is not None) if ref else None
        pe = sum(p for _, p in changes if p is not None) if ref else None
        totals_["ce_oi_change_interval"], totals_["pe_oi_change_interval"] = ce, pe
        body["interval"] = interval
        body["interval_from"] = ref.as_of.isoformat() if ref else None
        body["pcr_change_interval"] = ratio(pe, ce) if ref else None
    strikes = []
    for i, s in enumerate(chain.strikes):
        ce, pe = leg_view(s.ce, not combined), leg_view(s.pe, not combined)
        if changes is not None:
            ce["oi_change_interval"], pe["oi_change_interval"] = changes[i]
            ce["ltp_change_interval"], pe["ltp_change_interval"] = price_changes[i]
        strikes.append({"strike": json_number(s.strike), "ce": ce, "pe": pe})
    return {**body, "strike_count": len(chain.strikes), "strikes": strikes}
