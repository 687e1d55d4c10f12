"""Accepting packages and answering questions about them (inbox, bytes, acknowledgement, trail).

The rule of the hub: what it stores is exactly what it received. Parsing yields a read-only view
used to check and route; the bytes on disk are never rewritten.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

import asyncpg

from exchange.auth import Caller
from exchange.errors import HubError
from exchange.events import Event, canonical_leaf, record_events
from exchange.registry import check_recipient, get_agencies
from exchange.verification import Verdict
from schemas import FormatError, OrganId, Package

__all__ = [
    "Outgoing",
    "find_submission",
    "check_sender",
    "record_rejection",
    "Submission",
    "acknowledge",
    "inbox",
    "locate_package",
    "record_submission",
    "trail",
    "visible_events",
    "visible_statuses",
]

_NOT_FOUND = "package.not_found"
_REPLACING_TYPES = {1, 2, 3}  # revoke, update, replace: may reuse a DocumentId


@dataclass(frozen=True)
class Outgoing:
    """One delivery waiting for the broker."""

    delivery_id: int
    package_id: uuid.UUID
    recipient: str
    routing_key: str
    digest: bytes


@dataclass(frozen=True)
class Submission:
    """What the hub answers to an accepted package."""

    id: uuid.UUID
    kind: str
    document_id: str | None
    digest: bytes
    recipients: tuple[str, ...]
    duplicate: bool
    outgoing: tuple[Outgoing, ...] = ()
    event_id: int | None = None  # the 'submitted' event, whose ledger position the receipt cites
    receipt: dict | None = None
    verification: dict | None = None
    received_at: dt.datetime | None = None  # the 'submitted' event's time
    sender: str | None = None

    def to_json(self) -> dict:
        return {
            "id": str(self.id),
            "kind": self.kind,
            "document_id": self.document_id,
            "digest": self.digest.hex(),
            "digest_algorithm": "sha256",
            "recipients": list(self.recipients),
            "duplicate": self.duplicate,
            "verification": self.verification,
            "receipt": self.receipt,
        }


def _recipients(package: Package) -> list[str]:
    seen: dict[str, None] = {}
    for party in package.recipients:
        seen.setdefault(party.organ_id, None)
    return list(seen)


async def find_submission(
    conn: asyncpg.Connection | asyncpg.Pool, digest: bytes
) -> Submission | None:
    """The accepted package with exactly these bytes, if any (a re-sent package)."""
    row = await conn.fetchrow(
        "SELECT p.id, p.kind, p.document_id, array_agg(d.recipient ORDER BY d.id) AS recipients "
        "FROM packages p JOIN deliveries d ON d.package_id = p.id WHERE p.digest = $1 "
        "GROUP BY p.id",
        digest,
    )
    if row is None:
        return None
    return Submission(
        row["id"], row["kind"], row["document_id"], digest, tuple(row["recipients"]), True
    )  # its receipt is the one stored with the first submission


def check_sender(caller: Caller, package: Package) -> None:
    """Refuse a package whose ``From/OrganId`` is not the authenticated agency."""
    if package.sender.organ_id != caller.organ_id:
        raise HubError(
            "sender.mismatch",
            f"From/OrganId is {package.sender.organ_id} but the token belongs to {caller.organ_id}",
            field="From/OrganId",
        )


async def record_rejection(
    pool: asyncpg.Pool, caller: Caller, digest: bytes, error: HubError | FormatError
) -> None:
    """Put a refusal of a readable package in the ledger (who, which bytes, why)."""
    async with pool.acquire() as conn, conn.transaction():
        detail = {"code": error.code, **(getattr(error, "detail", None) or {})}
        await record_events(conn, [Event("rejected", digest, None, caller.organ_id, detail)])


async def record_submission(
    pool: asyncpg.Pool,
    caller: Caller,
    package: Package,
    digest: bytes,
    size: int,
    *,
    retry_after: float = 5.0,
    verdict: Verdict | None = None,
) -> Submission:
    """Check a parsed package against the caller and the registry, then store it in one go.

    Re-sending identical bytes returns the first submission (``duplicate=True``) and changes
    nothing. The outbox rows become due for the relay after ``retry_after`` seconds, unless the
    dispatcher's fast path publishes them first. Raises :class:`HubError` for every refusal.
    """
    check_sender(caller, package)
    async with pool.acquire() as conn:
        existing = await find_submission(conn, digest)
        if existing:
            return existing
        today = dt.datetime.now(dt.UTC).date()
        field = "To/OrganId" if package.kind == "edoc" else "ResponseFor/OrganId"
        recipients = _recipients(package)
        if not recipients:
            raise HubError("recipient.missing", "the package names no recipient")
        known = await get_agencies(conn, recipients)
        for code in recipients:
            check_recipient(known.get(code), code, today, field)
        return await _insert(conn, package, digest, size, recipients, retry_after, verdict)


# Two-key advisory lock namespaces (distinct from the one-key locks of the sequencer etc.).
_LOCK_DIGEST = 7214010
_LOCK_DOCUMENT_ID = 7214011


async def _lock(conn: asyncpg.Connection, namespace: int, key: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", namespace, key)


async def _refuse_reused_document_id(conn: asyncpg.Connection, package: Package) -> None:
    """A new document (type 0) may not reuse a DocumentId; checked under a lock on that id, so
    two different documents sent at the same moment cannot both pass."""
    await _lock(conn, _LOCK_DOCUMENT_ID, f"{package.sender.organ_id}/{package.document_id}")
    clash = await conn.fetchval(
        "SELECT id FROM packages WHERE sender = $1 AND document_id = $2 AND kind = 'edoc'",
        package.sender.organ_id,
        package.document_id,
    )
    if clash:
        raise HubError(
            "package.duplicate_document_id",
            f"DocumentId {package.document_id!r} was already sent with other content "
            f"(package {clash}); send an update, replacement or revocation "
            "(BussinessDocType 1-3) to change it",
            field="DocumentId",
        )


RECALL = "13"  # the only status a document's sender sends; recipients send all the others


async def _document_of_status(conn: asyncpg.Connection, package: Package) -> asyncpg.Record:
    """The document a status is about, checking that its sender is a party to it: a recipient
    (any status but 13) or the document's sender (13, the recall, to one of its recipients).

    Raises ``status.not_party`` (403) when the document exists but the caller has no such part
    in it, and ``status.unknown_document`` (422) when the hub knows no such document.
    """
    response = package.response_for[0]
    caller, organ = package.sender.organ_id, response.organ_id
    rows = await conn.fetch(
        "SELECT p.id, p.digest, p.sender, bool_or(d.recipient = $3) AS caller_receives, "
        "bool_or(d.recipient = $1) AS organ_receives FROM packages p "
        "JOIN deliveries d ON d.package_id = p.id "
        "WHERE p.document_id = $2 AND p.kind = 'edoc' AND p.sender IN ($1, $3) "
        "GROUP BY p.id ORDER BY p.received_at DESC",
        organ,
        response.document_id,
        caller,
    )
    recall = package.status_code == RECALL
    for row in rows:
        if not recall and row["sender"] == organ and row["caller_receives"]:
            return row
        if recall and row["sender"] == caller and row["organ_receives"]:
            return row
    if rows:
        role = (
            f"only the document's sender recalls it (status {RECALL})"
            if recall
            else f"only its recipients send status {package.status_code}"
        )
        raise HubError(
            "status.not_party",
            f"{caller} has no part in document {response.document_id!r} from {organ} "
            f"that allows this status: {role}",
            field="ResponseFor/DocumentId",
        )
    raise HubError(
        "status.unknown_document",
        f"the hub knows no document {response.document_id!r} between {organ} and {caller}",
        field="ResponseFor/DocumentId",
    )


async def _insert(
    conn: asyncpg.Connection,
    package: Package,
    digest: bytes,
    size: int,
    recipients: list[str],
    retry_after: float,
    verdict: Verdict | None,
) -> Submission:
    package_id = uuid.uuid4()
    response = package.response_for[0] if package.response_for else None
    async with conn.transaction():
        # The same bytes posted twice at once (a client retrying while its first attempt still
        # runs): the second waits here for the first, then gets the first's answer.
        await _lock(conn, _LOCK_DIGEST, digest.hex())
        existing = await find_submission(conn, digest)
        if existing:
            return existing
        if package.kind == "edoc" and package.business_doc_type not in _REPLACING_TYPES:
            await _refuse_reused_document_id(conn, package)
        about = await _document_of_status(conn, package) if package.kind == "status" else None
        submitted_event = Event(
            "submitted",
            digest,
            package_id,
            package.sender.organ_id,
            {"kind": package.kind, "size": size, "recipients": recipients},
        )
        keys = [OrganId.parse(r).routing_key for r in recipients]
        # One round trip for the package, its deliveries, their outbox rows and the
        # 'submitted' event (foreign keys are checked at the end of the statement).
        rows = await conn.fetch(
            """
            WITH p AS (
                INSERT INTO packages (id, digest, sender, kind, document_id, business_doc_type,
                                      status_code, response_for_organ, response_for_document,
                                      about_package, subject, size)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ), d AS (
                INSERT INTO deliveries (package_id, recipient)
                SELECT $1, r FROM unnest($13::text[]) AS r RETURNING id, recipient
            ), o AS (
                INSERT INTO outbox (delivery_id, routing_key, next_attempt_at)
                SELECT d.id, k.key, now() + make_interval(secs => $15)
                FROM d JOIN unnest($13::text[], $14::text[]) AS k(r, key) ON k.r = d.recipient
            ), e AS (
                INSERT INTO events (package_id, event, organ_id, at, detail, digest, leaf)
                VALUES ($1, 'submitted', $3, $16, $17, $2, $18) RETURNING id
            )
            SELECT d.id, d.recipient, (SELECT id FROM e) AS event_id FROM d
            """,
            package_id,
            digest,
            package.sender.organ_id,
            package.kind,
            package.document_id,
            package.business_doc_type,
            package.status_code,
            response.organ_id if response else None,
            response.document_id if response else None,
            about["id"] if about else None,
            package.subject,
            size,
            recipients,
            keys,
            retry_after,
            submitted_event.at,
            submitted_event.detail,
            canonical_leaf(submitted_event),
        )
        key_of = dict(zip(recipients, keys, strict=True))
        outgoing = tuple(
            Outgoing(r["id"], package_id, r["recipient"], key_of[r["recipient"]], digest)
            for r in sorted(rows, key=lambda r: r["id"])
        )
        submitted = rows[0]["event_id"]
        events = []
        if verdict is not None:
            await conn.execute(
                "INSERT INTO verification_reports (package_id, indication, digest, report) "
                "VALUES ($1, $2, $3, $4)",
                package_id,
                verdict.report.indication,
                verdict.digest,
                verdict.report_bytes,
            )
            events.append(
                Event("verified", digest, package_id, package.sender.organ_id, verdict.summary())
            )
        if about:
            # The status joins the document's own chain of leaves.
            events.append(
                Event(
                    "recalled" if package.status_code == RECALL else "status",
                    about["digest"],
                    about["id"],
                    package.sender.organ_id,
                    {
                        "status_code": package.status_code,
                        "status_package": str(package_id),
                        "status_digest": digest.hex(),
                    },
                )
            )
        await record_events(conn, events)
    return Submission(
        package_id,
        package.kind,
        package.document_id,
        digest,
        tuple(recipients),
        False,
        outgoing,
        submitted,
        verification=verdict.summary() if verdict else None,
        received_at=submitted_event.at,
        sender=package.sender.organ_id,
    )


async def locate_package(pool: asyncpg.Pool, caller: Caller, package_id: str) -> asyncpg.Record:
    """The package row if the caller sent it or receives it; otherwise 404, never 403."""
    try:
        key = uuid.UUID(package_id)
    except ValueError:
        raise HubError(_NOT_FOUND, "no such package") from None
    row = await pool.fetchrow(
        "SELECT p.* FROM packages p WHERE p.id = $1 AND (p.sender = $2 OR EXISTS "
        "(SELECT 1 FROM deliveries d WHERE d.package_id = p.id AND d.recipient = $2))",
        key,
        caller.organ_id,
    )
    if row is None:
        raise HubError(_NOT_FOUND, "no such package")
    return row


async def record_fetch(
    pool: asyncpg.Pool, caller: Caller, package_id: uuid.UUID, digest: bytes
) -> None:
    """Note the first time a recipient downloads a package."""
    async with pool.acquire() as conn, conn.transaction():
        first = await conn.fetchval(
            "UPDATE deliveries SET fetched_at = now() WHERE package_id = $1 AND recipient = $2 "
            "AND fetched_at IS NULL RETURNING id",
            package_id,
            caller.organ_id,
        )
        if first:
            await record_events(conn, [Event("fetched", digest, package_id, caller.organ_id)])


def _inbox_item(row: asyncpg.Record) -> dict:
    return {
        "cursor": str(row["inbox_seq"]),
        "id": str(row["id"]),
        "kind": row["kind"],
        "sender": row["sender"],
        "document_id": row["document_id"],
        "business_doc_type": row["business_doc_type"],
        "status_code": row["status_code"],
        "response_for": row["response_for_document"],
        "subject": row["subject"],
        "size": row["size"],
        "digest": row["digest"].hex(),
        "delivered_at": row["delivered_at"].isoformat(),
    }


async def inbox(
    pool: asyncpg.Pool, caller: Caller, after: int, limit: int, max_bytes: int = 1 << 20
) -> dict:
    """What waits for the caller, oldest first, starting after a cursor.

    A page holds at most ``limit`` items and stops once its items pass ``max_bytes`` of JSON
    (always at least one item), so a page stays small whatever the packages carry.
    """
    rows = await pool.fetch(
        """
        SELECT d.inbox_seq, d.delivered_at, p.id, p.kind, p.sender, p.document_id,
               p.business_doc_type, p.status_code, p.response_for_document, p.subject,
               p.size, p.digest
        FROM deliveries d JOIN packages p ON p.id = d.package_id
        WHERE d.recipient = $1 AND d.state = 'delivered' AND d.inbox_seq > $2
        ORDER BY d.inbox_seq LIMIT $3
        """,
        caller.organ_id,
        after,
        limit,
    )
    items, size = [], 0
    for row in rows:
        item = _inbox_item(row)
        size += len(json.dumps(item, ensure_ascii=False).encode())
        if items and size > max_bytes:
            break
        items.append(item)
    return {
        "items": items,
        "next": items[-1]["cursor"] if items else (str(after) if after else None),
    }


async def acknowledge(pool: asyncpg.Pool, caller: Caller, package_id: str) -> dict:
    """The recipient has stored the package safely: it leaves the inbox. Idempotent."""
    row = await locate_package(pool, caller, package_id)
    async with pool.acquire() as conn, conn.transaction():
        state = await conn.fetchval(
            "SELECT state FROM deliveries WHERE package_id = $1 AND recipient = $2 FOR UPDATE",
            row["id"],
            caller.organ_id,
        )
        if state is None:
            raise HubError(
                "delivery.not_recipient", "only a recipient acknowledges a package"
            )
        if state == "pending":
            raise HubError(
                "delivery.not_delivered", "the package has not reached the inbox yet"
            )
        if state == "delivered":
            await conn.execute(
                "UPDATE deliveries SET state = 'acknowledged', acked_at = now() "
                "WHERE package_id = $1 AND recipient = $2",
                row["id"],
                caller.organ_id,
            )
            await record_events(
                conn, [Event("acknowledged", row["digest"], row["id"], caller.organ_id)]
            )
    return {"id": str(row["id"]), "state": "acknowledged", "already": state == "acknowledged"}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


# Events about one recipient's copy; another recipient never sees them.
_PER_RECIPIENT_EVENTS = ["routed", "delivered", "fetched", "acknowledged"]
_STATUS_EVENTS = ["status", "recalled"]


async def visible_statuses(
    conn: asyncpg.Connection | asyncpg.Pool, package: asyncpg.Record, caller: str
) -> list[asyncpg.Record]:
    """The status packages about ``package`` that ``caller`` may see: all of them for its
    sender; for a recipient only those it sent or received."""
    return await conn.fetch(
        "SELECT p.id, p.digest FROM packages p WHERE p.about_package = $1 AND ($2 OR p.sender = $3 "
        "OR EXISTS (SELECT 1 FROM deliveries d WHERE d.package_id = p.id AND d.recipient = $3)) "
        "ORDER BY p.received_at, p.id",
        package["id"],
        package["sender"] == caller,
        caller,
    )


async def visible_events(
    conn: asyncpg.Connection | asyncpg.Pool,
    package: asyncpg.Record,
    caller: str,
    statuses: list[asyncpg.Record],
) -> list[asyncpg.Record]:
    """The one visibility rule for trails and evidence: the sender sees every event; a
    recipient sees the package's own events, those about its own copy, and the links to the
    statuses it may see (:func:`visible_statuses`), whose own events it sees whole."""
    return await conn.fetch(
        "SELECT id, package_id, event, organ_id, at, detail, leaf, ledger_index FROM events e "
        "WHERE e.package_id = ANY($6::uuid[]) OR (e.package_id = $1 AND ($2 "
        "OR (e.event <> ALL($3::text[]) AND e.event <> ALL($4::text[])) "
        "OR (e.event = ANY($3::text[]) AND e.organ_id = $5) "
        "OR (e.event = ANY($4::text[]) AND e.detail->>'status_package' = ANY($7::text[])))) "
        "ORDER BY e.id",
        package["id"],
        package["sender"] == caller,
        _PER_RECIPIENT_EVENTS,
        _STATUS_EVENTS,
        caller,
        [s["id"] for s in statuses],
        [str(s["id"]) for s in statuses],
    )


async def trail(pool: asyncpg.Pool, caller: Caller, package_id: str) -> dict:
    """The events of a package that the caller may see, oldest first, with the state of each
    copy it may see (every recipient's for the sender, its own for a recipient)."""
    row = await locate_package(pool, caller, package_id)
    deliveries = await pool.fetch(
        "SELECT recipient, state, delivered_at, fetched_at, acked_at FROM deliveries "
        "WHERE package_id = $1 AND ($2 OR recipient = $3) ORDER BY id",
        row["id"],
        row["sender"] == caller.organ_id,
        caller.organ_id,
    )
    statuses = await visible_statuses(pool, row, caller.organ_id)
    events = sorted(
        (
            e
            for e in await visible_events(pool, row, caller.organ_id, statuses)
            if e["package_id"] == row["id"]
        ),
        key=lambda e: (e["at"], e["id"]),
    )
    return {
        "id": str(row["id"]),
        "kind": row["kind"],
        "sender": row["sender"],
        "document_id": row["document_id"],
        "status_code": row["status_code"],
        "about": str(row["about_package"]) if row["about_package"] else None,
        "digest": row["digest"].hex(),
        "received_at": row["received_at"].isoformat(),
        "recipients": [
            {
                "organ_id": d["recipient"],
                "state": d["state"],
                "delivered_at": _iso(d["delivered_at"]),
                "fetched_at": _iso(d["fetched_at"]),
                "acknowledged_at": _iso(d["acked_at"]),
            }
            for d in deliveries
        ],
        "events": [
            {
                "at": e["at"].isoformat(),
                "event": e["event"],
                "organ_id": e["organ_id"],
                "detail": e["detail"],
                "ledger_index": e["ledger_index"],
            }
            for e in events
        ],
    }
