"""Every KPI, computed from the recorded events of a period (:class:`~exchange.kpi.model.Evidence`).

A *slice* is what one scope sent (documents whose sender is in it) and received (copies whose
recipient is in it). Each figure names the event kinds it reads and says how it counts, so an
auditor can recompute it from an evidence export. Adding a figure is one function appended to
:data:`FIGURES`; figures whose events the hub does not record yet are listed in :data:`PENDING`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

from exchange.kpi.calendar import deadline
from exchange.kpi.model import Copy, Document, Evidence, Figure, Refusal

__all__ = ["FIGURES", "PENDING", "Deadlines", "Slice", "percentile", "slice_of", "slices_by"]

PASSED = "TOTAL-PASSED"
MILESTONE_STATUSES = ("01", "03", "06")
COUNTED_STATUSES = ("01", "02", "03", "04", "05", "06", "15", "16")

# Figures the issue asks for whose events are not recorded yet, and what will record them.
PENDING = {
    "witness_signatures": "needs witness co-signatures of tree heads (federation)",
}
DISPOSITIONS = ("recall_requested", "recalled", "recall_refused", "superseded")


@dataclass(frozen=True)
class Deadlines:
    """Working days allowed for statuses 01, 03 and 06 (settings ``kpi_deadline_*_days``)."""

    status_01: int = 0
    status_03: int = 1
    status_06: int = 10

    def days(self, code: str) -> int:
        return {"01": self.status_01, "03": self.status_03, "06": self.status_06}[code]


@dataclass(frozen=True)
class Slice:
    """What one scope sent and received in the period, and when the report looks."""

    sent: list[Document]
    received: list[Copy]
    refusals: list[Refusal]
    as_of: dt.datetime
    deadlines: Deadlines


def slice_of(evidence: Evidence, holds: Callable[[str], bool], deadlines: Deadlines) -> Slice:
    """The documents, copies and refusals of the agencies for which ``holds`` is true."""
    return Slice(
        [d for d in evidence.documents if holds(d.sender)],
        [c for c in evidence.copies if holds(c.recipient)],
        [r for r in evidence.refusals if holds(r.organ_id)],
        evidence.as_of,
        deadlines,
    )


def slices_by(whole: Slice, key: Callable[[str], str]) -> dict[str, Slice]:
    """The parts of a slice by ``key`` of the agency (its level, or the agency itself), in one
    pass: a document goes to its sender's part, a copy to its recipient's."""
    parts: dict[str, Slice] = {}

    def part(code: str) -> Slice:
        name = key(code)
        if name not in parts:
            parts[name] = Slice([], [], [], whole.as_of, whole.deadlines)
        return parts[name]

    for d in whole.sent:
        part(d.sender).sent.append(d)
    for c in whole.received:
        part(c.recipient).received.append(c)
    for r in whole.refusals:
        part(r.organ_id).refusals.append(r)
    return parts


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's ``percentile_cont``)."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


def _count(name: str, value: int, events: tuple[str, ...], how: str, **detail) -> Figure:
    return Figure(name, value, value, None, "count", events, how, detail)


def _rate(name: str, num: int, den: int, events: tuple[str, ...], how: str, **detail) -> Figure:
    return Figure(name, _ratio(num, den), num, den, "ratio", events, how, detail)


def _sent(s: Slice) -> list[Figure]:
    return [
        _count(
            "documents_sent",
            len(s.sent),
            ("submitted",),
            "documents (kind edoc) whose submitted event is in the period, by senders in scope; "
            "revocations (a linked event 'revokes' of their own) are recalls, not documents",
        )
    ]


def _received(s: Slice) -> list[Figure]:
    copies = len(s.received)
    events = ("submitted", "delivered")
    return [
        _count(
            "copies_received",
            copies,
            ("submitted",),
            "one per recipient in scope named in the submitted event of a document",
        ),
        _rate(
            "deliveries",
            sum(c.delivered_at is not None for c in s.received),
            copies,
            events,
            "copies with a delivered event, of copies received",
        ),
        _rate(
            "fetched",
            sum(c.fetched_at is not None for c in s.received),
            copies,
            ("submitted", "fetched"),
            "copies with a fetched event (first download by the recipient), of copies received",
        ),
    ]


def _statuses(s: Slice) -> list[Figure]:
    return [
        _rate(
            f"status_{code}",
            sum(code in c.statuses for c in s.received),
            len(s.received),
            ("submitted", "status"),
            f"copies whose recipient sent status {code} about the document, of copies received",
        )
        for code in COUNTED_STATUSES
    ]


def _times(s: Slice) -> list[Figure]:
    milestones: list[tuple[str, str, Callable[[Copy], dt.datetime | None]]] = [
        ("delivered", "delivered", lambda c: c.delivered_at),
        ("fetched", "fetched", lambda c: c.fetched_at),
    ] + [(code, "status", lambda c, code=code: c.statuses.get(code)) for code in MILESTONE_STATUSES]
    figures = []
    for label, kind, reached in milestones:
        seconds = [
            (at - c.document.submitted_at).total_seconds()
            for c in s.received
            if (at := reached(c)) is not None
        ]
        for name, q in (("median", 0.5), ("p90", 0.9)):
            value = percentile(seconds, q)
            figures.append(
                Figure(
                    f"time_to_{label}_{name}",
                    round(value, 3) if value is not None else None,
                    len(seconds),
                    len(s.received),
                    "seconds",
                    ("submitted", kind),
                    f"{name} of (first {kind}{'' if kind != 'status' else ' ' + label} event "
                    f"at - submitted at) over the copies that reached it (percentile_cont)",
                )
            )
    return figures


def _on_time(s: Slice) -> list[Figure]:
    figures = []
    for code in MILESTONE_STATUSES:
        days = s.deadlines.days(code)
        on_time = late = overdue = not_due = 0
        for c in s.received:
            due = deadline(c.document.submitted_at, days)
            at = c.statuses.get(code)
            if at is not None:
                on_time += at <= due
                late += at > due
            elif due <= s.as_of:
                overdue += 1
            else:
                not_due += 1
        figures.append(
            _rate(
                f"on_time_{code}",
                on_time,
                on_time + late + overdue,
                ("submitted", "status"),
                f"copies with status {code} by the end of the {days}-th working day after "
                "submission (Vietnam's calendar), of copies that have it or whose deadline "
                "passed; copies not due yet are left out",
                late=late,
                overdue=overdue,
                not_due=not_due,
                deadline_working_days=days,
            )
        )
    return figures


def _signatures(s: Slice) -> list[Figure]:
    with_pdfs = [d for d in s.sent if d.pdfs]
    return [
        _rate(
            "signed_packages",
            sum(d.signature == PASSED for d in s.sent),
            len(s.sent),
            ("submitted", "verified"),
            "documents whose verified event says TOTAL-PASSED, of documents sent",
            not_verified=sum(d.signature is None for d in s.sent),
        ),
        _rate(
            "signed_pdfs",
            sum(d.pdfs_passed == d.pdfs for d in with_pdfs),
            len(with_pdfs),
            ("submitted", "verified"),
            "documents whose every PDF attachment is TOTAL-PASSED in the report the verified "
            "event cites, of documents with PDF attachments in such a report",
        ),
    ]


def _refusals(s: Slice) -> list[Figure]:
    by_code: dict[str, int] = {}
    for r in s.refusals:
        by_code[r.code] = by_code.get(r.code, 0) + 1
    return [
        _rate(
            "rejected_02",
            sum("02" in c.statuses for c in s.received),
            len(s.received),
            ("submitted", "status"),
            "copies the recipient in scope rejected (status 02), of copies received",
        ),
        _rate(
            "refused_at_door",
            len(s.refusals),
            len(s.refusals) + len(s.sent),
            ("rejected", "submitted"),
            "rejected events of senders in scope, of those plus documents sent",
            by_code=by_code,
        ),
        _rate(
            "recalled",
            sum(d.recalled_at is not None for d in s.sent),
            len(s.sent),
            ("submitted", "recalled", "linked"),
            "documents with a recalled event (status 13 from the sender) or revoked by a "
            "revocation (a linked event 'revokes' naming it), of documents sent",
        ),
    ]


def _dispositions(s: Slice) -> list[Figure]:
    return [
        _rate(
            f"copies_{name}",
            sum(c.disposition == name for c in s.received),
            len(s.received),
            ("submitted", "disposition"),
            f"copies whose last disposition event says {name}, of copies received",
        )
        for name in DISPOSITIONS
    ]


def _push_failures(s: Slice) -> list[Figure]:
    return [
        _rate(
            "copies_push_failed",
            sum(c.push_failed_at is not None for c in s.received),
            len(s.received),
            ("submitted", "push_failed"),
            "copies with a push_failed event (the push gave up: a dead letter), of copies received",
        )
    ]


# Each function reads one slice and returns its figures; append new ones at the end.
FIGURES: list[Callable[[Slice], list[Figure]]] = [
    _sent,
    _received,
    _statuses,
    _times,
    _on_time,
    _signatures,
    _refusals,
    _dispositions,
    _push_failures,
]
