"""Deadlines in working days, by the Chinese calendar (holidays and make-up workdays)."""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

logger = logging.getLogger(__name__)

# Working days are counted on the park's calendar, whatever zone the caller's time is in.
PARK_TZ = ZoneInfo("Asia/Shanghai")
_warned_years: set[int] = set()


def is_working_day(day: date) -> bool:
    """True on a working day; beyond chinese-calendar's years, Monday to Friday."""
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        # The library only knows published years; warn once per year and count weekdays.
        if day.year not in _warned_years:
            _warned_years.add(day.year)
            logger.warning("no holiday calendar for %s; counting Monday to Friday", day.year)
        return day.weekday() < 5


def add_working_days(start: datetime, days: int) -> datetime:
    """The same local time `days` working days after `start` (aware in, aware out, same zone)."""
    if start.tzinfo is None:
        raise ValueError("add_working_days needs an aware datetime")
    if days < 0:
        raise ValueError("days must not be negative")
    local = start.astimezone(PARK_TZ)
    day = local.date()
    remaining = days
    while remaining:
        day += timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    end = datetime.combine(day, local.timetz())
    return end.astimezone(start.tzinfo)
