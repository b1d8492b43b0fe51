"""Working hours and local calendar overrides on top of the Chinese calendar."""
from __future__ import annotations

import logging
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.config import load_settings
from models import deadlines
from models.deadlines import (add_working_days, add_working_hours, days_for_kind, is_working_day,
                              subtract_working_hours)

SH = ZoneInfo("Asia/Shanghai")


def sh(*args) -> datetime:
    """A time in the park."""
    return datetime(*args, tzinfo=SH)


@pytest.fixture(autouse=True)
def fresh_calendar(monkeypatch):
    """Each test starts without overrides and with the once-per-year warnings not yet given."""
    monkeypatch.setattr(deadlines, "_overrides", {})
    monkeypatch.setattr(deadlines, "_warned_years", set())


@pytest.mark.parametrize("start,hours,end", [
    (sh(2026, 11, 25, 10), 24, sh(2026, 11, 26, 10)),        # Wed → Thu
    (sh(2026, 11, 27, 10), 24, sh(2026, 11, 30, 10)),        # Fri → Mon: the weekend does not count
    (sh(2026, 9, 30, 10), 24, sh(2026, 10, 8, 10)),          # across National Day
    (sh(2026, 2, 13, 10), 24, sh(2026, 2, 14, 10)),          # to the make-up Saturday
    (sh(2026, 2, 14, 10), 24, sh(2026, 2, 24, 10)),          # over the Spring Festival
])
def test_working_hours_skip_days_off_both_ways(start, hours, end):
    """Adding counts only hours of working days; subtracting is its inverse."""
    assert add_working_hours(start, hours) == end
    assert subtract_working_hours(end, hours) == start


def test_from_a_day_off_the_count_starts_at_the_next_working_day():
    """Saturday 10:00 plus one working hour is Monday 01:00; back from there is Monday 00:00."""
    assert add_working_hours(sh(2026, 11, 28, 10), 1) == sh(2026, 11, 30, 1)
    assert subtract_working_hours(sh(2026, 11, 30, 1), 1) == sh(2026, 11, 30, 0)


def test_working_hours_keep_the_callers_zone():
    """A UTC time comes back in UTC, counted on the park's days."""
    start = datetime(2026, 11, 27, 17, 0, tzinfo=timezone.utc)  # Saturday 01:00 in the park
    end = add_working_hours(start, 2)
    assert end.tzinfo == timezone.utc and end.astimezone(SH) == sh(2026, 11, 30, 2, 0)


def test_naive_or_negative_amounts_are_refused():
    with pytest.raises(ValueError):
        add_working_hours(datetime(2026, 11, 27, 10), 1)
    with pytest.raises(ValueError):
        subtract_working_hours(sh(2026, 11, 27, 10), -1)


def test_local_overrides_beat_the_calendar():
    """A park day off (a typhoon closure) and an extra working Sunday, from config."""
    deadlines.configure(holidays=["2026-11-30"], workdays=[date(2026, 11, 29)])
    assert not is_working_day(date(2026, 11, 30)) and is_working_day(date(2026, 11, 29))
    assert add_working_days(sh(2026, 11, 27, 10), 1) == sh(2026, 11, 29, 10)
    assert add_working_days(sh(2026, 11, 27, 10), 2) == sh(2026, 12, 1, 10)


def test_2027_falls_back_to_weekends_plus_config_holidays_and_warns_once(caplog):
    """The library stops at 2026: New Year's Day 2027 comes from config, weekends from the weekday."""
    deadlines.configure(holidays=["2027-01-01"])
    with caplog.at_level(logging.WARNING, logger="models.deadlines"):
        assert add_working_days(sh(2026, 12, 30, 9), 2) == sh(2027, 1, 4, 9)  # 31 Dec, (1 Jan off), 4 Jan
        assert add_working_days(sh(2027, 1, 4, 9), 5) == sh(2027, 1, 11, 9)
    warnings = [r for r in caplog.records if "2027" in r.getMessage()]
    assert len(warnings) == 1


def test_settings_carry_overrides_from_the_environment():
    """REDSTEWARD_DEADLINES_HOLIDAYS takes a comma-separated list; the app applies it."""
    settings = load_settings(environ={"REDSTEWARD_DEADLINES_HOLIDAYS": "2027-02-05, 2027-02-08"})
    assert settings["deadlines"]["holidays"] == ["2027-02-05", "2027-02-08"]
    deadlines.configure(settings["deadlines"]["holidays"], settings["deadlines"]["workdays"])
    assert not is_working_day(date(2027, 2, 8))


def test_days_per_kind_from_config_unless_the_routing_rule_says():
    settings = load_settings(environ={})
    assert [days_for_kind(settings, k) for k in ("help", "inquiry", "suggestion")] == [3, 1, 7]
    assert days_for_kind(settings, "help", rule_days=10) == 10
    assert deadlines.complex_days(settings) == 15
