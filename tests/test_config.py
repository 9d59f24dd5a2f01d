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


@pytest.mark.parametrize(
    ("variable", "raw", "bounds"),
    [
        ("DHAN_MIN_INTERVAL_SECONDS", "inf", "0.01 to 600"),
        ("DHAN_MIN_INTERVAL_SECONDS", "nan", "0.01 to 600"),
        ("DHAN_MIN_INTERVAL_SECONDS", "601", "0.01 to 600"),
        ("DHAN_TIMEOUT_SECONDS", "1e9", "0.1 to 120"),
        ("DHAN_TIMEOUT_SECONDS", "-inf", "0.1 to 120"),
        ("DHAN_TOKEN_ALERT_MINUTES", "NaN", "0 to 1440"),
        ("OI_RETENTION_DAYS", "100000", "1 to 3650"),
        ("PORT", "70000", "1 to 65535"),
        ("OI_EXPIRIES_PER_SYMBOL", "50", "1 to 10"),
        ("OI_SNAPSHOT_MAX_LAG_MINUTES", "-5", "0 to 1440"),
    ],
)
def test_numbers_must_be_finite_and_in_range(variable, raw, bounds):
    with pytest.raises(ConfigError) as caught:
        from_env({variable: raw})
    assert variable in str(caught.value) and bounds in str(caught.value)


def test_every_setting_is_read_from_its_variable():
    from oi.config import variables

    names = variables()
    assert names["S3_BUCKET_NAME"] == "s3_bucket" and names["OI_DATA_DIR"] == "data_dir"
    cfg = from_env({"S3_BUCKET_NAME": "b.example.com", "OI_DATA_DIR": "/tmp/oi-data", "CLOUDFLARE_API_BASE": "x/"})
    assert (cfg.s3_bucket, str(cfg.data_dir), cfg.cloudflare_api_base) == ("b.example.com", "/tmp/oi-data", "x")
    assert str(cfg.dhan_token_file) == "/tmp/oi-data/dhan_token.json"  # follows OI_DATA_DIR unless set


def test_a_data_dir_that_cannot_be_written_is_a_configuration_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="OI_DATA_DIR"):
        from_env({"OI_DATA_DIR": str(blocker / "var")})
    assert from_env({"OI_DATA_DIR": str(tmp_path / "new" / "var")}).data_dir == tmp_path / "new" / "var"


@pytest.mark.parametrize("content", [None, "2026-13-45\n", b"\xff\xfe\x00bad"])
def test_a_bad_or_unreadable_holidays_file_is_a_configuration_error(tmp_path, content):
    path = tmp_path / "holidays.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match="OI_HOLIDAYS_FILE"):
        from_env({"OI_HOLIDAYS_FILE": str(path)})
    path.write_text("# ok\n2027-01-26\n")
    assert from_env({"OI_HOLIDAYS_FILE": str(path)}).holidays_file == path
