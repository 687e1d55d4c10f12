"""Timeliness and volume KPIs computed from the recorded events (never from counters).

    query = parse_query({"from": "2026-11-01", "to": "2026-11-30", "under": "000.00.00.H49"})
    report = await kpi_report(stores.kpi, query, deadlines_of(settings))

Each figure carries its numerator, denominator, the event kinds it reads and how it counts; see
:mod:`exchange.kpi.figures`. Rendering (CSV, HTML with SVG charts) is :mod:`exchange.kpi.render`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from exchange.errors import HubError
from exchange.kpi.calendar import VIETNAM, deadline, is_working_day
from exchange.kpi.figures import PENDING, Deadlines
from exchange.kpi.model import LEVELS, Evidence, Scope, within
from exchange.kpi.report import build_report, period_bounds
from schemas import OrganId

__all__ = [
    "PENDING",
    "Deadlines",
    "KpiQuery",
    "Scope",
    "deadline",
    "deadlines_of",
    "is_working_day",
    "kpi_report",
    "parse_query",
    "within",
]

MAX_DAYS = 366


class EvidenceSource(Protocol):
    async def evidence(
        self, start: dt.datetime, end: dt.datetime, as_of: dt.datetime
    ) -> Evidence: ...


@dataclass(frozen=True)
class KpiQuery:
    """A period (both days included, Vietnam's calendar), a scope, and when to look."""

    start: dt.date
    end: dt.date
    scope: Scope
    as_of: dt.datetime | None = None


def deadlines_of(settings) -> Deadlines:
    """The deadlines the settings give (``kpi_deadline_01_days`` ...)."""
    return Deadlines(
        settings.kpi_deadline_01_days, settings.kpi_deadline_03_days, settings.kpi_deadline_06_days
    )


def _day(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise HubError(
            "request.invalid_parameter", f"{name} must be a date YYYY-MM-DD", field=name
        ) from None


def parse_query(params: Mapping[str, str], today: dt.date | None = None) -> KpiQuery:
    """``from``, ``to`` (dates; default: this month so far), ``level``, ``under``, ``agency``;
    refused with ``request.invalid_parameter`` naming the field."""
    today = today or dt.datetime.now(VIETNAM).date()
    start = _day(params["from"], "from") if params.get("from") else today.replace(day=1)
    end = _day(params["to"], "to") if params.get("to") else today
    if end < start:
        raise HubError("request.invalid_parameter", "to is before from", field="to")
    if (end - start).days >= MAX_DAYS:
        raise HubError(
            "request.invalid_parameter", f"a period is at most {MAX_DAYS} days", field="to"
        )
    level = params.get("level") or None
    if level is not None and level not in LEVELS:
        raise HubError(
            "request.invalid_parameter", f"level must be one of {', '.join(LEVELS)}", field="level"
        )
    under = (
        OrganId.parse(params["under"], field="under").subtree_prefix
        if params.get("under")
        else None
    )
    agency = str(OrganId.parse(params["agency"], field="agency")) if params.get("agency") else None
    return KpiQuery(start, end, Scope(agency, level, under))


async def kpi_report(source: EvidenceSource, query: KpiQuery, deadlines: Deadlines) -> dict:
    """The report of ``query`` from the events ``source`` holds."""
    start, end = period_bounds(query.start, query.end)
    as_of = query.as_of or dt.datetime.now(dt.UTC)
    evidence = await source.evidence(start, end, as_of)
    return build_report(evidence, query.scope, deadlines)
