"""The rows of an accepted package in one statement: the SQL functions ``store_package`` and
``accept_package`` (migration 0012), and the arguments they take.

A new document, which settles no flow, is accepted in a single round trip (locks, lookups and
inserts inside ``accept_package``); a status or a revocation, update or replacement keeps its
transaction, where the flow rules run, and writes its rows with ``store_package``.
"""

from __future__ import annotations

import json
import uuid

import asyncpg

from exchange.errors import HubError
from exchange.events import Event, canonical_leaf
from exchange.ports import DocumentCandidate, NewPackage, Outgoing, Submission
from schemas import Package

__all__ = [
    "ACCEPT_SQL",
    "STORE_SQL",
    "reused_document_id",
    "store_args",
    "stored_submission",
    "submitted_event",
]

_STORE_ARGS = 29
STORE_SQL = (
    "SELECT delivery_id, recipient, event_id FROM store_package("
    + ", ".join(f"${i}" for i in range(1, _STORE_ARGS + 1))
    + ")"
)
ACCEPT_SQL = (
    "SELECT existing, clash, delivery_id, recipient, event_id FROM accept_package("
    + ", ".join(f"${i}" for i in range(1, _STORE_ARGS + 4))
    + ")"
)


def submitted_event(new: NewPackage) -> Event:
    """The 'submitted' leaf of a package about to be stored."""
    package = new.package
    return Event(
        "submitted",
        new.digest,
        new.id,
        package.sender.organ_id,
        {"kind": package.kind, "size": new.size, "recipients": list(new.recipients)}
        | ({"redirected_from": new.redirected_from} if new.redirected_from else {}),
    )


def store_args(
    new: NewPackage, about: DocumentCandidate | None, submitted: Event, events: list[Event]
) -> tuple:
    """The arguments of ``store_package``: the package, its copies, its 'submitted' leaf, its
    verification report, and ``events`` after it (in this order)."""
    package = new.package
    response = package.response_for[0] if package.response_for else None
    report = new.report or (None, None, None)
    return (
        new.id,
        new.digest,
        package.sender.organ_id,
        package.kind,
        package.document_id,
        package.business_doc_type,
        package.status_code,
        response.organ_id if response else None,
        response.document_id if response else None,
        about.id if about else None,
        package.subject,
        new.size,
        list(new.recipients),
        list(new.routing_keys),
        [new.redirected_from.get(r) for r in new.recipients],
        new.retry_after,
        submitted.at,
        submitted.detail,
        canonical_leaf(submitted),
        *report,
        [e.package_id for e in events],
        [e.event for e in events],
        [e.organ_id for e in events],
        [e.at for e in events],
        [json.dumps(e.detail) for e in events],
        [e.digest for e in events],
        [canonical_leaf(e) for e in events],
    )


def stored_submission(new: NewPackage, submitted: Event, rows: list[asyncpg.Record]) -> Submission:
    """The submission the core answers with, from the rows ``store_package`` returned."""
    key_of = dict(zip(new.recipients, new.routing_keys, strict=True))
    outgoing = tuple(
        Outgoing(r["delivery_id"], new.id, r["recipient"], key_of[r["recipient"]], new.digest)
        for r in sorted(rows, key=lambda r: r["delivery_id"])
    )
    return Submission(
        new.id,
        new.package.kind,
        new.package.document_id,
        new.digest,
        new.recipients,
        False,
        outgoing,
        rows[0]["event_id"],
        received_at=submitted.at,
        sender=new.package.sender.organ_id,
    )


def reused_document_id(package: Package, clash: uuid.UUID) -> HubError:
    """The refusal of a new document that reuses its sender's earlier DocumentId."""
    return HubError(
        "package.duplicate_document_id",
        f"DocumentId {package.document_id!r} was already sent with other content "
        f"(package {clash}); send an update, replacement or revocation "
        "(BussinessDocType 1-3) to change it",
        field="DocumentId",
    )
