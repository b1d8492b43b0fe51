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
# Local overrides from config ([deadlines] holidays / workdays): day → is it a working day.
_overrides: dict[date, bool] = {}
KIND_SETTINGS = {"help": "help_days", "inquiry": "inquiry_days", "suggestion": "suggestion_days"}


def configure(holidays=(), workdays=()) -> None:
    """Sets the park's own days off and working days (dates or "YYYY-MM-DD"), over the calendar."""
    _overrides.clear()
    for days, working in ((holidays, False), (workdays, True)):
        for day in days:
            _overrides[day if isinstance(day, date) else date.fromisoformat(str(day).strip())] = working


def is_working_day(day: date) -> bool:
    """True on a working day; beyond chinese-calendar's years, Monday to Friday."""
    if day in _overrides:
        return _overrides[day]
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        # The library only knows published years; warn once per year and count weekdays.
        if day.year not in _warned_years:
            _warned_years.add(day.year)
            logger.warning("no holiday calendar for %s; counting Monday to Friday", day.year)
        return day.weekday() < 5


def _park_time(moment: datetime, amount: float, what: str) -> datetime:
    """The moment in the park's zone; refuses naive times and negative amounts."""
    if moment.tzinfo is None:
        raise ValueError(f"{what} needs an aware datetime")
    if amount < 0:
        raise ValueError(f"{what}: the amount must not be negative")
    return moment.astimezone(PARK_TZ)


def add_working_days(start: datetime, days: int) -> datetime:
    """The same local time `days` working days after `start` (aware in, aware out, same zone)."""
    local = _park_time(start, days, "add_working_days")
    day = local.date()
    remaining = days
    while remaining:
        day += timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    end = datetime.combine(day, local.timetz())
    return end.astimezone(start.tzinfo)


def add_working_hours(start: datetime, hours: float) -> datetime:
    """`start` plus `hours` counted only on working days (a working day has 24 of them)."""
    local = _park_time(start, hours, "add_working_hours")
    remaining = timedelta(hours=hours)
    while True:
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), PARK_TZ)
        if is_working_day(local.date()):
            if remaining <= midnight - local:
                return (local + remaining).astimezone(start.tzinfo)
            remaining -= midnight - local
        local = midnight


def subtract_working_hours(end: datetime, hours: float) -> datetime:
    """The latest time from which `hours` working hours reach `end` (the inverse of adding)."""
    local = _park_time(end, hours, "subtract_working_hours")
    day = local.date()
    remaining = timedelta(hours=hours)
    available = local - datetime.combine(day, datetime.min.time(), PARK_TZ)
    while True:
        if is_working_day(day):
            if remaining <= available:
                start = datetime.combine(day, datetime.min.time(), PARK_TZ) + available - remaining
                return start.astimezone(end.tzinfo)
            remaining -= available
        day -= timedelta(days=1)
        available = timedelta(days=1)


def days_for_kind(settings: dict, kind: str, rule_days: int | None = None) -> int:
    """Working days to answer: the routing rule's own number, else the configured one per kind."""
    if rule_days:
        return int(rule_days)
    return int(settings["deadlines"][KIND_SETTINGS.get(kind, "help_days")])


def complex_days(settings: dict) -> int:
    """Working days a handling organisation gets for a complex request forwarded from the form."""
    return int(settings["deadlines"]["complex_days"])
