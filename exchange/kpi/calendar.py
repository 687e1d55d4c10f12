"""Working days in Vietnam: deadlines counted the way administrative reform reports count them.

Saturdays, Sundays and Vietnam's public holidays (with their observed and substituted days, from
the ``holidays`` package) are not working days. Days are Vietnam's (UTC+07:00, no daylight
saving), whatever the server's zone.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays

__all__ = ["VIETNAM", "deadline", "is_working_day"]

VIETNAM = dt.timezone(dt.timedelta(hours=7), "ICT")


@lru_cache(maxsize=64)
def _holidays(year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays("VN", years=[year]).keys())


def is_working_day(day: dt.date) -> bool:
    """Monday to Friday and not a public holiday in Vietnam."""
    return day.weekday() < 5 and day not in _holidays(day.year)


@lru_cache(maxsize=65536)
def deadline(start: dt.datetime, working_days: int) -> dt.datetime:
    """The end (24:00 in Vietnam) of the ``working_days``-th working day after ``start``'s day.

    Day 0 is ``start``'s own day when it is a working day, else the first working day after it:
    with 0, a document sent on a Saturday must be handled by the end of Monday (Decree 30/2020:
    receipt is confirmed on the day the document arrives).
    """
    return _deadline_of_day(start.astimezone(VIETNAM).date(), working_days)


@lru_cache(maxsize=4096)
def _deadline_of_day(day: dt.date, working_days: int) -> dt.datetime:
    while not is_working_day(day):
        day += dt.timedelta(days=1)
    for _ in range(working_days):
        day += dt.timedelta(days=1)
        while not is_working_day(day):
            day += dt.timedelta(days=1)
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), VIETNAM)
