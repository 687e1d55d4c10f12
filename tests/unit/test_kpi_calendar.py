"""Working-day deadlines on Vietnam's calendar, and the percentile the KPIs use."""

from __future__ import annotations

import datetime as dt
import statistics

from hypothesis import given
from hypothesis import strategies as st

from exchange.kpi import deadline, is_working_day
from exchange.kpi.figures import percentile

ICT = dt.timezone(dt.timedelta(hours=7))


def _end_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), ICT)


def test_day_zero_is_the_day_itself_or_the_next_working_day():
    friday = dt.datetime(2026, 11, 27, 16, 0, tzinfo=ICT)
    assert deadline(friday, 0) == _end_of(dt.date(2026, 11, 27))
    assert deadline(friday, 1) == _end_of(dt.date(2026, 11, 30))  # over the weekend
    saturday = dt.datetime(2026, 11, 28, 9, 0, tzinfo=ICT)
    assert deadline(saturday, 0) == _end_of(dt.date(2026, 11, 30))


def test_public_holidays_do_not_count():
    # Tết 2026: 16-20 February are holidays; sent on Friday the 13th, one working day later is
    # Monday 23 February
    assert not is_working_day(dt.date(2026, 2, 17))
    sent = dt.datetime(2026, 2, 13, 10, 0, tzinfo=ICT)
    assert deadline(sent, 1) == _end_of(dt.date(2026, 2, 23))
    # National Day, 1-2 September 2026 (Tuesday, Wednesday)
    assert deadline(dt.datetime(2026, 8, 28, 10, tzinfo=ICT), 1) == _end_of(dt.date(2026, 9, 3))


def test_days_are_vietnams_not_utcs():
    # 18:00 UTC on Monday 30 November is 01:00 on Tuesday 1 December in Vietnam
    sent = dt.datetime(2026, 11, 30, 18, 0, tzinfo=dt.UTC)
    assert deadline(sent, 0) == _end_of(dt.date(2026, 12, 1))


@given(st.lists(st.floats(min_value=0, max_value=1e7), min_size=2, max_size=60))
def test_percentile_is_linear_interpolation_between_ranks(values):
    quartiles = statistics.quantiles(values, n=10, method="inclusive")
    assert abs(percentile(values, 0.9) - quartiles[8]) <= 1e-6 * max(1.0, max(values))
    assert abs(percentile(values, 0.5) - statistics.median(values)) <= 1e-6 * max(1.0, max(values))


def test_percentile_of_nothing_and_of_one():
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
