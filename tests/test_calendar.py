import logging
from datetime import date, datetime

from oi.config import from_env
from oi.market.calendar import IST, MarketCalendar, calendar_from_config, clock_from_config, read_holidays_file


def ist(*args):
    return datetime(*args, tzinfo=IST)


def test_session_bounds_in_ist():
    cal = MarketCalendar()
    assert not cal.is_open(ist(2026, 11, 23, 9, 14, 59))
    assert cal.is_open(ist(2026, 11, 23, 9, 15))
    assert cal.is_open(ist(2026, 11, 23, 15, 29, 59))
    assert not cal.is_open(ist(2026, 11, 23, 15, 30))


def test_utc_input_is_converted_not_misread():
    # 04:00 UTC is 09:30 IST: open. A naive UTC/IST mix-up would call it closed.
    assert MarketCalendar().is_open(datetime.fromisoformat("2026-11-23T04:00:00+00:00"))


def test_weekends_and_2026_holidays_closed():
    cal = MarketCalendar()
    assert not cal.is_open(ist(2026, 11, 21, 11, 0))  # Saturday
    assert not cal.is_open(ist(2026, 11, 24, 11, 0))  # listed NSE holiday
    assert not cal.is_trading_day(date(2026, 12, 25))
    assert cal.is_trading_day(date(2026, 11, 25))


def test_next_open_skips_weekend_and_holiday():
    cal = MarketCalendar()
    # Friday after close → Monday; Monday 23rd after close → Wednesday (24th is a holiday)
    assert cal.next_open(ist(2026, 11, 20, 16, 0)) == ist(2026, 11, 23, 9, 15)
    assert cal.next_open(ist(2026, 11, 23, 15, 45)) == ist(2026, 11, 25, 9, 15)
    assert cal.last_session_day(ist(2026, 11, 24, 20, 0)) == date(2026, 11, 23)


def test_operator_added_holidays_without_code_change(tmp_path):
    f = tmp_path / "holidays.txt"
    f.write_text("# Diwali extra\n2026-11-25\n\n2027-01-26  # Republic Day\n")
    cfg = from_env({"OI_HOLIDAYS": "2026-11-26", "OI_HOLIDAYS_FILE": str(f)})
    cal = calendar_from_config(cfg)
    assert not cal.is_trading_day(date(2026, 11, 25))
    assert not cal.is_trading_day(date(2026, 11, 26))
    assert not cal.is_trading_day(date(2027, 1, 26))
    assert read_holidays_file(f) == {date(2026, 11, 25), date(2027, 1, 26)}


def test_uncovered_year_warns_loudly_once(caplog):
    cal = MarketCalendar()
    with caplog.at_level(logging.WARNING):
        cal.is_open(ist(2027, 3, 1, 10, 0))
        cal.is_open(ist(2027, 3, 2, 10, 0))
    warnings = [r for r in caplog.records if "DOES NOT COVER 2027" in r.getMessage()]
    assert len(warnings) == 1


def test_always_open_and_pinned_clock():
    cfg = from_env({"OI_MARKET_ALWAYS_OPEN": "1", "OI_NOW": "2026-11-21T23:00:00+05:30"})
    assert calendar_from_config(cfg).is_open(clock_from_config(cfg)())
    assert clock_from_config(cfg)() == ist(2026, 11, 21, 23, 0)
