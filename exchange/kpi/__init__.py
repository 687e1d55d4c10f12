"""Timeliness and volume KPIs computed from the recorded events (never from counters).

    query = parse_query({"from": "2026-11-01", "to": "2026-11-30", "under": "000.00.00.H49"})
    report = await kpi_report(stores.kpi, query, deadlines_of(settings))

Each figure carries its numerator, denominator, the event kinds it reads and how it counts; see
:mod:`exchange.kpi.figures`. Rendering (CSV, HTML with SVG charts) is :mod:`exchange.kpi.render`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
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
    structure_at: dt.date | None = None  # group by the registry's levels of that day


class Place(Protocol):
    level: str


Structure = Callable[[dt.date], Awaitable[Mapping[str, Place]]]


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
    """``from``, ``to`` (dates; default: this month so far), ``level``, ``under``, ``agency``,
    ``structure_at`` (a date: levels as the registry stood then, e.g. 2025-06-30 for the four
    levels before the 2025 reorganisation; default: the registry today); refused with
    ``request.invalid_parameter`` naming the field."""
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
    structure_at = (
        _day(params["structure_at"], "structure_at") if params.get("structure_at") else None
    )
    return KpiQuery(start, end, Scope(agency, level, under), structure_at=structure_at)


async def kpi_report(
    source: EvidenceSource,
    query: KpiQuery,
    deadlines: Deadlines,
    structure: Structure | None = None,
) -> dict:
    """The report of ``query`` from the events ``source`` holds; with ``query.structure_at``,
    levels come from ``structure`` (the registry's tree of that day, e.g.
    ``PostgresRegistry.structure_at``): a code of that day keeps the level it had then."""
    start, end = period_bounds(query.start, query.end)
    as_of = query.as_of or dt.datetime.now(dt.UTC)
    evidence = await source.evidence(start, end, as_of)
    if query.structure_at is not None and structure is not None:
        places = await structure(query.structure_at)
        levels = {**evidence.levels, **{code: p.level for code, p in places.items()}}
        evidence = dataclasses.replace(evidence, levels=levels)
    report = build_report(evidence, query.scope, deadlines)
    if query.structure_at is not None:
        report["structure_at"] = query.structure_at.isoformat()
    return report
