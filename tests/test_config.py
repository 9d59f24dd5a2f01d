import pytest

from oi.config import ConfigError, from_env


def test_defaults_pick_demo_without_credentials():
    cfg = from_env({})
    assert cfg.source == "demo"
    assert cfg.symbols == ("NIFTY", "BANKNIFTY")
    assert (cfg.expiries_per_symbol, cfg.strikes_around_atm, cfg.dhan_min_interval_seconds) == (1, 10, 3.0)
    assert (cfg.host, cfg.port, cfg.mongo_db, str(cfg.data_dir)) == ("127.0.0.1", 5000, "oi", "var")
    assert cfg.now is None and cfg.market_always_open is False


def test_credentials_switch_default_source_to_dhan():
    cfg = from_env({"DHAN_CLIENT_ID": "1", "DHAN_ACCESS_TOKEN": "tok-123456"})
    assert cfg.source == "dhan"
    assert "tok-123456" not in repr(cfg)  # secrets never show up in reprs (and so in tracebacks)


def test_explicit_demo_wins_over_credentials():
    assert from_env({"DHAN_CLIENT_ID": "1", "DHAN_ACCESS_TOKEN": "t", "OI_SOURCE": "demo"}).source == "demo"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OI_SOURCE": "yahoo"}, "OI_SOURCE"),
        ({"OI_SOURCE": "dhan"}, "DHAN_CLIENT_ID"),
        ({"OI_SYMBOLS": "NIFTY,APPLE"}, "OI_SYMBOLS"),
        ({"OI_SYMBOLS": " , "}, "OI_SYMBOLS"),
        ({"DHAN_MIN_INTERVAL_SECONDS": "fast"}, "DHAN_MIN_INTERVAL_SECONDS"),
        ({"DHAN_MIN_INTERVAL_SECONDS": "-1"}, "DHAN_MIN_INTERVAL_SECONDS"),
        ({"OI_EXPIRIES_PER_SYMBOL": "0"}, "OI_EXPIRIES_PER_SYMBOL"),
        ({"OI_STRIKES_AROUND_ATM": "ten"}, "OI_STRIKES_AROUND_ATM"),
        ({"OI_MARKET_ALWAYS_OPEN": "maybe"}, "OI_MARKET_ALWAYS_OPEN"),
        ({"OI_NOW": "yesterday"}, "OI_NOW"),
        ({"OI_NOW": "2026-11-23T10:00:00"}, "OI_NOW"),  # no offset: IST or UTC? refuse to guess
        ({"OI_HOLIDAYS": "2027-13-01"}, "OI_HOLIDAYS"),
        ({"PORT": "http"}, "PORT"),
        ({"DHAN_API_BASE": "api.dhan.co"}, "DHAN_API_BASE"),
        ({"OI_UNDERLYINGS": "FOO"}, "OI_UNDERLYINGS"),
        ({"OI_LOT_SIZES": "NIFTY:0"}, "OI_LOT_SIZES"),
        ({"OI_LOT_SIZES": "NIFTY=75"}, "OI_LOT_SIZES"),
    ],
)
def test_invalid_values_name_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        from_env(env)


def test_oi_now_and_symbols_parse():
    cfg = from_env({"OI_NOW": "2026-11-23T04:30:00Z", "OI_SYMBOLS": "banknifty, nifty,NIFTY"})
    assert cfg.now.isoformat() == "2026-11-23T04:30:00+00:00"
    assert cfg.symbols == ("BANKNIFTY", "NIFTY")


def test_operator_can_add_an_underlying():
    cfg = from_env({"OI_UNDERLYINGS": "RELIANCE:2885:NSE_FNO", "OI_SYMBOLS": "RELIANCE"})
    assert cfg.underlyings["RELIANCE"] == (2885, "NSE_FNO")


def test_lot_sizes_default_and_override():
    assert from_env({}).lot_sizes["NIFTY"] == 65
    cfg = from_env({"OI_LOT_SIZES": "nifty:75, RELIANCE:500"})
    assert (cfg.lot_sizes["NIFTY"], cfg.lot_sizes["RELIANCE"], cfg.lot_sizes["SENSEX"]) == (75, 500, 20)
