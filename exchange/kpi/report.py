"""A KPI report: the figures of a scope, per level and per agency, and what the charts show."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from exchange.kpi.calendar import VIETNAM
from exchange.kpi.figures import FIGURES, PENDING, Deadlines, Slice, slice_of, slices_by
from exchange.kpi.model import LEVELS, Evidence, Figure, Scope

__all__ = ["REPORT_SCHEMA", "TIME_TO_03_BUCKETS", "build_report", "figures_of", "period_bounds"]

REPORT_SCHEMA = "lienthong.kpi-report/1"
# Upper bounds (seconds) of the time-to-03 distribution's bars; the last is open-ended.
TIME_TO_03_BUCKETS = (
    ("< 1 h", 3600),
    ("1–4 h", 4 * 3600),
    ("4–24 h", 24 * 3600),
    ("1–3 d", 3 * 86400),
    ("3–7 d", 7 * 86400),
    ("> 7 d", None),
)
TOP_LATE = 10


def figures_of(part: Slice) -> dict[str, Figure]:
    """Every figure of a slice, by name."""
    return {f.name: f for compute in FIGURES for f in compute(part)}


def _json(figures: dict[str, Figure]) -> dict:
    return {name: figure.to_json() for name, figure in figures.items()}


def build_report(evidence: Evidence, scope: Scope, deadlines: Deadlines) -> dict:
    """The report as JSON-ready data: figures of the whole scope, per level, per agency (the
    agencies that sent or received anything), and the series the charts draw."""

    codes = {d.sender for d in evidence.documents} | {c.recipient for c in evidence.copies}
    codes |= {r.organ_id for r in evidence.refusals}
    inside = {code for code in codes if scope.holds(code, evidence)}
    whole = slice_of(evidence, inside.__contains__, deadlines)
    overall = figures_of(whole)
    levels = slices_by(whole, evidence.level_of)
    by_level = {
        level: _json(figures_of(levels[level]))
        for level in LEVELS
        if level in levels and (levels[level].sent or levels[level].received)
    }
    by_agency = [
        {
            "organ_id": code,
            "name": evidence.names.get(code),
            "level": evidence.level_of(code),
            "figures": _json(figures_of(part)),
        }
        for code, part in sorted(slices_by(whole, str).items())
        if part.sent or part.received
    ]
    return {
        "schema": REPORT_SCHEMA,
        "period": {
            "from": evidence.start.astimezone(VIETNAM).date().isoformat(),
            "to": (evidence.end.astimezone(VIETNAM).date() - dt.timedelta(days=1)).isoformat(),
            "start": evidence.start.isoformat(),
            "end": evidence.end.isoformat(),  # excluded
        },
        "as_of": evidence.as_of.isoformat(),
        "scope": scope.to_json(),
        "deadlines_working_days": {
            "01": deadlines.status_01,
            "03": deadlines.status_03,
            "06": deadlines.status_06,
        },
        "figures": _json(overall),
        "by_level": by_level,
        "by_agency": by_agency,
        "charts": _charts(whole, by_level, by_agency),
        "pending": PENDING,
    }


def _charts(whole: Slice, by_level: dict, by_agency: list[dict]) -> dict:
    weeks = Counter(
        "{}-W{:02d}".format(*d.submitted_at.astimezone(VIETNAM).isocalendar()[:2])
        for d in whole.sent
    )
    seconds = [
        (at - c.document.submitted_at).total_seconds()
        for c in whole.received
        if (at := c.statuses.get("03")) is not None
    ]
    buckets = []
    low = 0.0
    for label, high in TIME_TO_03_BUCKETS:
        count = sum(low <= s < high if high else s >= low for s in seconds)
        buckets.append({"label": label, "count": count})
        low = float(high or 0)
    late = sorted(
        (
            {
                "organ_id": a["organ_id"],
                "name": a["name"],
                "late": a["figures"]["on_time_03"]["detail"]["late"]
                + a["figures"]["on_time_03"]["detail"]["overdue"],
                "on_time_03": a["figures"]["on_time_03"]["value"],
            }
            for a in by_agency
        ),
        key=lambda a: (-a["late"], a["organ_id"]),
    )
    return {
        "on_time_by_level": {
            level: {code: f[f"on_time_{code}"]["value"] for code in ("01", "03", "06")}
            for level, f in by_level.items()
        },
        "time_to_03_distribution": buckets,
        "volume_per_week": [{"week": w, "documents": n} for w, n in sorted(weeks.items())],
        "top_late_agencies": [a for a in late if a["late"]][:TOP_LATE],
    }


def period_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start 00:00, end+1 00:00) in Vietnam's time: ``end`` is included."""
    return (
        dt.datetime.combine(start, dt.time(), VIETNAM),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), VIETNAM),
    )
