"""Packages, their deliveries and outbox rows, in PostgreSQL: every statement of that aggregate.

The rules live in the core (:mod:`exchange.submission`, :mod:`exchange.delivery`); this module
runs them inside the right transaction and under the right lock: a package, one delivery per
recipient, their outbox rows and the events recording them are written together or not at all.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime

import asyncpg

from exchange.events import Event, canonical_leaf
from exchange.ports import DocumentCandidate, NewPackage, Outgoing, Submission
from exchange.store.accepting import (
    ACCEPT_SQL,
    STORE_SQL,
    reused_document_id,
    store_args,
    stored_submission,
    submitted_event,
)
from exchange.store.events import record_events
from exchange.store.flows import FlowOutcome
from exchange.store.push import PUSH_CHANNEL
from schemas import Package

__all__ = ["DeliveryRow", "PostgresPackages"]

# Two-key advisory lock namespaces (distinct from the one-key locks of the sequencer etc.).
_LOCK_DIGEST = 7214010
_LOCK_DOCUMENT_ID = 7214011
_LOCK_DELIVERING = 7214002  # one delivering transaction at a time: inbox cursors only grow
_REPLACING_TYPES = {1, 2, 3}  # revoke, update, replace: may reuse a DocumentId
_PER_RECIPIENT_EVENTS = [
    "routed",
    "delivered",
    "fetched",
    "acknowledged",
    "disposition",
    "push_attempt",
    "push_failed",
    "import_failed",
]
_STATUS_EVENTS = ["status", "recalled"]

ChooseDocument = Callable[[Package, list[DocumentCandidate]], DocumentCandidate]
SettleFlows = Callable[
    [asyncpg.Connection, NewPackage, DocumentCandidate | None], Awaitable[FlowOutcome]
]


async def _lock(conn: asyncpg.Connection, namespace: int, key: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", namespace, key)


class DeliveryRow:
    """One recipient's copy, locked for the transaction of :meth:`PostgresPackages.delivery`."""

    def __init__(self, conn: asyncpg.Connection, package: asyncpg.Record, row) -> None:
        self._conn = conn
        self.package = package
        self.state: str | None = row["state"] if row else None
        self.recipient: str | None = row["recipient"] if row else None

    async def move(self, to: str, stamp: str, event: Event) -> None:
        """Set the state (and its time column ``stamp``) and record ``event`` with it."""
        assert stamp in ("delivered_at", "fetched_at", "acked_at")
        await self._conn.execute(
            f"UPDATE deliveries SET state = $3, {stamp} = now() "
            "WHERE package_id = $1 AND recipient = $2",
            self.package["id"],
            self.recipient,
            to,
        )
        await record_events(self._conn, [event])

    async def note(self, event: Event) -> bool:
        """Record ``event`` about this copy without changing its state, unless this copy has
        one of that kind already (a retried report); whether it was recorded."""
        seen = await self._conn.fetchval(
            "SELECT 1 FROM events WHERE package_id = $1 AND organ_id = $2 AND event = $3",
            self.package["id"],
            self.recipient,
            event.event,
        )
        if not seen:
            await record_events(self._conn, [event])
        return not seen


class PostgresPackages:
    """The package store of one hub process (a pool shared with the other stores)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ----- accepting --------------------------------------------------------------------

    async def find_by_digest(
        self, digest: bytes, conn: asyncpg.Connection | None = None
    ) -> Submission | None:
        """The accepted package with exactly these bytes, if any (a re-sent package)."""
        row = await (conn or self.pool).fetchrow(
            "SELECT p.id, p.kind, p.document_id, array_agg(d.recipient ORDER BY d.id) AS "
            "recipients FROM packages p JOIN deliveries d ON d.package_id = p.id "
            "WHERE p.digest = $1 GROUP BY p.id",
            digest,
        )
        if row is None:
            return None
        return Submission(
            row["id"], row["kind"], row["document_id"], digest, tuple(row["recipients"]), True
        )  # its receipt is the one stored with the first submission

    async def insert(
        self,
        new: NewPackage,
        choose_document: ChooseDocument,
        settle_flows: SettleFlows | None = None,
    ) -> Submission:
        """Store an accepted package with its deliveries, outbox rows and events, in one
        transaction; identical bytes stored meanwhile win (their submission is returned), and
        so does the earlier status a status harmlessly repeats (``settle_flows``, which also
        applies the package to the copies it concerns, in this transaction)."""
        package = new.package
        if package.kind == "edoc" and package.business_doc_type not in _REPLACING_TYPES:
            return await self._accept_new_document(new)  # settles no flow: one round trip
        digest = new.digest
        async with self.pool.acquire() as conn, conn.transaction():
            # The same bytes posted twice at once (a client retrying while its first attempt
            # still runs): the second waits here for the first, then gets the first's answer.
            await _lock(conn, _LOCK_DIGEST, digest.hex())
            existing = await self.find_by_digest(digest, conn)
            if existing:
                return existing
            about = None
            if package.kind == "status":
                about = choose_document(
                    package, await self._candidates(conn, package, new.sender_parties)
                )
            flows = FlowOutcome() if settle_flows is None else await settle_flows(conn, new, about)
            if flows.repeat_of is not None:
                return await self.find_by_digest(flows.repeat_of, conn)
            submitted = submitted_event(new)
            events = list(new.events)
            if about is not None:
                events.append(_status_link(package, new.id, digest, about))
            rows = await conn.fetch(STORE_SQL, *store_args(new, about, submitted, events))
            await record_events(conn, flows.events)
        return stored_submission(new, submitted, rows)

    async def _accept_new_document(self, new: NewPackage) -> Submission:
        """A new document (it settles no flow) in one call of ``accept_package``: under its
        digest lock the same bytes stored first win; under its DocumentId lock an earlier
        document with that id refuses it (both locks are the ones :meth:`insert` takes)."""
        submitted = submitted_event(new)
        rows = await self.pool.fetch(
            ACCEPT_SQL,
            _LOCK_DIGEST,
            _LOCK_DOCUMENT_ID,
            True,
            *store_args(new, None, submitted, list(new.events)),
        )
        if rows[0]["existing"] is not None:
            return await self.find_by_digest(new.digest)
        if rows[0]["clash"] is not None:
            raise reused_document_id(new.package, rows[0]["clash"])
        return stored_submission(new, submitted, rows)

    async def _candidates(
        self, conn, package: Package, parties: Sequence[str] = ()
    ) -> list[DocumentCandidate]:
        """Documents with the status's DocumentId sent by either end of the status; the
        caller receives one if any of its ``parties`` (itself, the codes it succeeded) does,
        and answers for that copy (``caller_copy``: its own first)."""
        response = package.response_for[0]
        rows = await conn.fetch(
            "SELECT p.id, p.digest, p.sender, "
            "bool_or(d.recipient = $3 OR d.recipient = ANY($4::text[])) AS caller_receives, "
            "bool_or(d.recipient = $1) AS organ_receives, (array_agg(d.recipient ORDER BY "
            "d.recipient = $3 DESC) FILTER (WHERE d.recipient = $3 OR d.recipient = "
            "ANY($4::text[])))[1] AS caller_copy, "
            "p.sender = $3 OR p.sender = ANY($4::text[]) AS caller_sent FROM packages p "
            "JOIN deliveries d ON d.package_id = p.id "
            "WHERE p.document_id = $2 AND p.kind = 'edoc' "
            "AND (p.sender IN ($1, $3) OR p.sender = ANY($4::text[])) "
            "GROUP BY p.id ORDER BY p.received_at DESC",
            response.organ_id,
            response.document_id,
            package.sender.organ_id,
            list(parties),
        )
        return [DocumentCandidate(**dict(r)) for r in rows]

    async def record_rejection(self, organ_id: str, digest: bytes, detail: dict) -> None:
        """Put a refusal of a readable package in the ledger (who, which bytes, why)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await record_events(conn, [Event("rejected", digest, None, organ_id, detail)])

    async def digest_known(self, digest: bytes) -> bool:
        return bool(await self.pool.fetchval("SELECT 1 FROM packages WHERE digest = $1", digest))

    # ----- reading ----------------------------------------------------------------------

    async def locate(self, package_id: uuid.UUID, organ_id: str) -> asyncpg.Record | None:
        """The package row if ``organ_id`` sent it or receives it."""
        return await self.pool.fetchrow(
            "SELECT p.* FROM packages p WHERE p.id = $1 AND (p.sender = $2 OR EXISTS "
            "(SELECT 1 FROM deliveries d WHERE d.package_id = p.id AND d.recipient = $2))",
            package_id,
            organ_id,
        )

    async def report(self, package_id: uuid.UUID) -> bytes | None:
        """The verification report stored on arrival, exactly as served."""
        return await self.pool.fetchval(
            "SELECT report FROM verification_reports WHERE package_id = $1", package_id
        )

    async def inbox(self, organ_id: str, after: int, limit: int) -> list[asyncpg.Record]:
        """Delivered, unacknowledged copies for ``organ_id`` after a cursor, oldest first."""
        return await self.pool.fetch(
            """
            SELECT d.inbox_seq, d.delivered_at, p.id, p.kind, p.sender, p.document_id,
                   p.business_doc_type, p.status_code, p.response_for_document, p.subject,
                   p.size, p.digest, d.addressed_as
            FROM deliveries d JOIN packages p ON p.id = d.package_id
            WHERE d.recipient = $1 AND d.state = 'delivered' AND d.inbox_seq > $2
              AND NOT EXISTS (SELECT 1 FROM dispositions x WHERE x.package_id = d.package_id
                              AND x.recipient = d.recipient AND x.disposition = 'recalled')
            ORDER BY d.inbox_seq LIMIT $3
            """,
            organ_id,
            after,
            limit,
        )

    async def copies(self, package: asyncpg.Record, organ_id: str) -> list[asyncpg.Record]:
        """The deliveries of a package ``organ_id`` may see (all for its sender)."""
        return await self.pool.fetch(
            "SELECT recipient, addressed_as, state, delivered_at, fetched_at, acked_at "
            "FROM deliveries "
            "WHERE package_id = $1 AND ($2 OR recipient = $3) ORDER BY id",
            package["id"],
            package["sender"] == organ_id,
            organ_id,
        )

    async def visible_statuses(
        self, package: asyncpg.Record, organ_id: str
    ) -> list[asyncpg.Record]:
        """The status packages about ``package`` that ``organ_id`` may see: all of them for its
        sender; for a recipient only those it sent or received."""
        return await self.pool.fetch(
            "SELECT p.id, p.digest FROM packages p WHERE p.about_package = $1 AND "
            "($2 OR p.sender = $3 OR EXISTS (SELECT 1 FROM deliveries d "
            "WHERE d.package_id = p.id AND d.recipient = $3)) ORDER BY p.received_at, p.id",
            package["id"],
            package["sender"] == organ_id,
            organ_id,
        )

    async def visible_events(
        self, package: asyncpg.Record, organ_id: str, statuses: Sequence[asyncpg.Record]
    ) -> list[asyncpg.Record]:
        """The one visibility rule for trails and evidence: the sender sees every event; a
        recipient sees the package's own events, those about its own copy, and the links to
        the statuses it may see (:meth:`visible_statuses`), whose own events it sees whole."""
        return await self.pool.fetch(
            "SELECT id, package_id, event, organ_id, at, detail, leaf, ledger_index FROM events e "
            "WHERE e.package_id = ANY($6::uuid[]) OR (e.package_id = $1 AND ($2 "
            "OR (e.event <> ALL($3::text[]) AND e.event <> ALL($4::text[])) "
            "OR (e.event = ANY($3::text[]) AND e.organ_id = $5) "
            "OR (e.event = ANY($4::text[]) AND e.detail->>'status_package' = ANY($7::text[])))) "
            "ORDER BY e.id",
            package["id"],
            package["sender"] == organ_id,
            _PER_RECIPIENT_EVENTS,
            _STATUS_EVENTS,
            organ_id,
            [s["id"] for s in statuses],
            [str(s["id"]) for s in statuses],
        )

    # ----- delivering -------------------------------------------------------------------

    async def mark_delivered(self, delivery_ids: list[int]) -> int:
        """Pending deliveries into their recipients' inboxes (cursor, time, 'delivered'
        event, a push for recipients on push); already delivered ones are left alone.
        Returns how many changed."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT delivery_id, package_id, recipient, digest FROM deliver_copies($1, $2, $3)",
                _LOCK_DELIVERING,
                delivery_ids,
                PUSH_CHANNEL,
            )
            await record_events(
                conn,
                [Event("delivered", r["digest"], r["package_id"], r["recipient"]) for r in rows],
            )
        return len(rows)

    async def record_fetch(self, package_id: uuid.UUID, organ_id: str, digest: bytes) -> bool:
        """Note the first download of a copy by its recipient; whether it was the first."""
        async with self.pool.acquire() as conn, conn.transaction():
            first = await conn.fetchval(
                "UPDATE deliveries SET fetched_at = now() WHERE package_id = $1 "
                "AND recipient = $2 AND fetched_at IS NULL RETURNING id",
                package_id,
                organ_id,
            )
            if first:
                await record_events(conn, [Event("fetched", digest, package_id, organ_id)])
        return bool(first)

    @contextlib.asynccontextmanager
    async def delivery(self, package: asyncpg.Record, organ_id: str) -> AsyncIterator[DeliveryRow]:
        """``organ_id``'s copy of ``package``, locked for one transaction (state None when it
        is not a recipient)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT recipient, state FROM deliveries WHERE package_id = $1 "
                "AND recipient = $2 FOR UPDATE",
                package["id"],
                organ_id,
            )
            yield DeliveryRow(conn, package, row)

    # ----- the outbox -------------------------------------------------------------------

    async def claim_due(self, retry: float, limit: int = 500) -> list[Outgoing]:
        """Rows whose publish was never confirmed, claimed so no other hub sends them too."""
        rows = await self.pool.fetch(
            """
            UPDATE outbox o SET attempts = o.attempts + 1,
                next_attempt_at = now() + make_interval(secs => least(300, $1 * 2 ^ o.attempts))
            FROM deliveries d JOIN packages p ON p.id = d.package_id
            WHERE d.id = o.delivery_id AND o.delivery_id IN (
                SELECT delivery_id FROM outbox WHERE next_attempt_at <= now()
                ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING o.delivery_id, d.package_id, d.recipient, o.routing_key, p.digest
            """,
            retry,
            limit,
        )
        return [Outgoing(*r) for r in rows]

    async def confirm_published(self, confirmed: list[Outgoing], published_at: datetime) -> None:
        """The broker confirmed these: their outbox rows go, and 'routed' is recorded once
        per delivery (a re-publication only moves ``routed_at``). One statement: the leaves
        are made here for every confirmed row and kept only for the first routing."""
        confirmed = list({c.delivery_id: c for c in confirmed}.values())  # once per copy
        routed = [
            Event(
                "routed",
                c.digest,
                c.package_id,
                c.recipient,
                {"routing_key": c.routing_key},
                published_at,
            )
            for c in confirmed
        ]
        # Only rows still there: the relay and the fast path may both have published one.
        # Rows are locked in id order, as deliver_copies locks them: two batches that share
        # rows wait for each other instead of deadlocking.
        await self.pool.execute(
            """
            WITH held AS (
                SELECT delivery_id FROM outbox WHERE delivery_id = ANY($1::bigint[])
                ORDER BY delivery_id FOR UPDATE
            ), gone AS (
                DELETE FROM outbox o USING held WHERE o.delivery_id = held.delivery_id
                RETURNING o.delivery_id
            ), before AS (
                SELECT id, routed_at FROM deliveries
                WHERE id IN (SELECT delivery_id FROM gone) ORDER BY id FOR UPDATE
            ), moved AS (
                UPDATE deliveries d SET routed_at = $2 FROM before
                WHERE d.id = before.id RETURNING d.id, before.routed_at IS NULL AS first
            )
            INSERT INTO events (package_id, event, organ_id, at, detail, digest, leaf)
            SELECT e.package, 'routed', e.organ, $2, e.detail::jsonb, e.digest, e.leaf
            FROM unnest($1::bigint[], $3::uuid[], $4::text[], $5::text[], $6::bytea[],
                        $7::bytea[]) WITH ORDINALITY AS e(id, package, organ, detail, digest,
                                                          leaf, n)
            JOIN moved ON moved.id = e.id AND moved.first
            ORDER BY e.n
            """,
            [c.delivery_id for c in confirmed],
            published_at,
            [e.package_id for e in routed],
            [e.organ_id for e in routed],
            [json.dumps(e.detail) for e in routed],
            [e.digest for e in routed],
            [canonical_leaf(e) for e in routed],
        )

    async def due_now(self) -> None:
        """Every outbox row is due at once, its backoff reset (the broker is back)."""
        await self.pool.execute("UPDATE outbox SET next_attempt_at = now(), attempts = 0")

    async def reconcile(self, after_seconds: float) -> int:
        """Put back in the outbox every delivery routed long ago and still not delivered (a
        message the broker lost); returns how many. "Long ago" is ``after_seconds`` the first
        time, then twice as long after each republication of the same delivery. Copies are
        taken in id order, skipping any another transaction holds (being delivered right now),
        so this never deadlocks with the confirms or the deliveries."""
        rows = await self.pool.fetch(
            """
            WITH candidates AS (
                SELECT d.id, d.recipient FROM deliveries d
                WHERE d.state = 'pending' AND d.routed_at < now()
                      - make_interval(secs => $1 * 2 ^ least(d.republished, 12))
                  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_id = d.id)
                ORDER BY d.id FOR NO KEY UPDATE OF d SKIP LOCKED
            ), lost AS (
                INSERT INTO outbox (delivery_id, routing_key, next_attempt_at)
                SELECT c.id, a.routing_key, now() FROM candidates c
                JOIN agencies a ON a.code = c.recipient
                ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id
            )
            UPDATE deliveries SET republished = republished + 1
            FROM lost WHERE deliveries.id = lost.delivery_id RETURNING deliveries.id
            """,
            after_seconds,
        )
        return len(rows)

    async def copies_waiting(self) -> dict[str, int]:
        """How many copies are on their way (pending) or in an inbox (delivered): both
        counts use a partial index, so a scrape stays cheap whatever the history."""
        pending = await self.pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE state = 'pending'"
        )
        delivered = await self.pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'"
        )
        return {"pending": pending, "delivered": delivered}

    async def outbox_gauge(self) -> tuple[int, float]:
        """(rows in the outbox, age in seconds of the oldest)."""
        row = await self.pool.fetchrow(
            "SELECT count(*) AS depth, "
            "coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age FROM outbox"
        )
        return row["depth"], float(row["age"])


def _status_link(
    package: Package, package_id: uuid.UUID, digest: bytes, about: DocumentCandidate
) -> Event:
    # The status joins the document's own chain of leaves.
    return Event(
        "recalled" if package.status_code == "13" else "status",
        about.digest,
        about.id,
        package.sender.organ_id,
        {
            "status_code": package.status_code,
            "status_package": str(package_id),
            "status_digest": digest.hex(),
        },
    )
