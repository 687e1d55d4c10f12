"""What the KPIs are computed from: the recorded events of a period, read into plain records.

:mod:`exchange.store.kpi` fills these from the ``events`` table (the ledger's rows, never from
counters) and :mod:`exchange.kpi.figures` computes every figure from them, so the same figures
can be recomputed from an evidence export by anyone who reads the leaves.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from schemas import OrganId

__all__ = ["Copy", "Document", "Evidence", "Figure", "Refusal", "Scope", "within"]

LEVELS = ("central", "province", "district", "commune")


@dataclass
class Document:
    """One document (an edoc package) submitted in the period: its ``submitted`` event, the
    ``verified`` event's indication, the PDF verdicts of the report that event cites, and its
    ``recalled`` event (status 13), if any."""

    id: str
    sender: str
    submitted_at: dt.datetime
    recipients: tuple[str, ...]
    signature: str | None = None  # indication of the package's verification, None: not verified
    pdfs: int = 0  # PDF attachments in the verification report
    pdfs_passed: int = 0  # of which TOTAL-PASSED
    recalled_at: dt.datetime | None = None


@dataclass
class Copy:
    """One recipient's copy of a document: the first ``delivered`` and ``fetched`` events, the
    first status of each code that recipient sent about it, and its last disposition."""

    document: Document
    recipient: str
    delivered_at: dt.datetime | None = None
    fetched_at: dt.datetime | None = None
    statuses: dict[str, dt.datetime] = field(default_factory=dict)
    disposition: str | None = None  # the last ``disposition`` event's "to" (None: active)
    push_failed_at: dt.datetime | None = None  # the first ``push_failed`` event (dead letter)


@dataclass(frozen=True)
class Refusal:
    """A ``rejected`` event: a readable package the hub refused at the door."""

    organ_id: str
    at: dt.datetime
    code: str


@dataclass
class Evidence:
    """Everything recorded about the documents of one period, up to ``as_of``."""

    start: dt.datetime
    end: dt.datetime
    as_of: dt.datetime
    documents: list[Document]
    copies: list[Copy]
    refusals: list[Refusal]
    levels: dict[str, str]  # organ id -> level, from the registry
    names: dict[str, str]  # organ id -> name

    def level_of(self, code: str) -> str:
        """The registry's level of an agency, or the level its code suggests."""
        if code in self.levels:
            return self.levels[code]
        try:
            return OrganId.parse(code).gov_level.value
        except ValueError:
            return "unknown"


def within(key: str, prefix: str) -> bool:
    """Whether a routing key (or a subtree prefix) lies in the subtree ``prefix`` selects."""
    return key == prefix or key.startswith(prefix + ".")


@dataclass(frozen=True)
class Scope:
    """Which agencies a report is about: one agency, a level, a subtree (all that are given)."""

    agency: str | None = None
    level: str | None = None
    under: str | None = None  # a subtree prefix (OrganId.subtree_prefix)

    def holds(self, code: str, evidence: Evidence) -> bool:
        """Whether the agency ``code`` is in the scope."""
        if self.agency is not None and code != self.agency:
            return False
        if self.level is not None and evidence.level_of(code) != self.level:
            return False
        if self.under is not None:
            try:
                key = OrganId.parse(code).routing_key
            except ValueError:
                return False
            if not within(key, self.under):
                return False
        return True

    def to_json(self) -> dict:
        return {"agency": self.agency, "level": self.level, "under": self.under}


@dataclass(frozen=True)
class Figure:
    """One KPI with how it was computed: ``value`` is ``numerator / denominator`` for a rate, the
    count itself for a count, seconds for a duration (then ``numerator`` copies reached the
    milestone out of ``denominator``); ``events`` are the event kinds it reads."""

    name: str
    value: float | int | None
    numerator: int | None
    denominator: int | None
    unit: str  # "count", "ratio" or "seconds"
    events: tuple[str, ...]
    how: str
    detail: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "value": self.value,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "unit": self.unit,
            "events": list(self.events),
            "how": self.how,
            **({"detail": self.detail} if self.detail else {}),
        }
