"""The business flows in PostgreSQL: each recipient's disposition and the links between
documents (tables ``dispositions`` and ``package_links``, migration 0006).

The rules are in :mod:`exchange.flows`; the writing functions here take the connection of the
transaction that stores the package causing the change, and lock the copies they return.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from exchange.events import Event

__all__ = ["FlowOutcome", "PostgresFlows"]

_COPY = """
    SELECT x.*, p.digest, p.document_id, p.sender,
           (d.fetched_at IS NOT NULL OR d.state = 'acknowledged') AS taken
    FROM dispositions x
    JOIN deliveries d ON d.package_id = x.package_id AND d.recipient = x.recipient
    JOIN packages p ON p.id = x.package_id
"""


@dataclass(frozen=True)
class FlowOutcome:
    """What the flows make of a package being stored: the events to record with it, or
    ``repeat_of`` (the digest of an earlier status it harmlessly repeats: nothing is stored)."""

    events: tuple[Event, ...] = ()
    repeat_of: bytes | None = None


class PostgresFlows:
    """Statements of the business flows; writers take the caller's transaction."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ----- inside the transaction that stores a package --------------------------------

    @staticmethod
    async def versions(conn: asyncpg.Connection, document_id: str) -> list[asyncpg.Record]:
        """Documents (new, updated, replacement versions) with this DocumentId, newest first."""
        return await conn.fetch(
            "SELECT id, sender, digest, document_id FROM packages WHERE document_id = $1 "
            "AND kind = 'edoc' AND business_doc_type IN (0, 2, 3) ORDER BY received_at DESC, id",
            document_id,
        )

    @staticmethod
    async def recipients(conn: asyncpg.Connection, package_id: uuid.UUID) -> list[str]:
        return [
            r["recipient"]
            for r in await conn.fetch(
                "SELECT recipient FROM deliveries WHERE package_id = $1 ORDER BY id", package_id
            )
        ]

    @staticmethod
    async def lock_copy(
        conn: asyncpg.Connection, package_id: uuid.UUID, recipient: str
    ) -> asyncpg.Record | None:
        """A recipient's copy, locked for the transaction (None: not a recipient). Only the
        disposition row is locked: the delivery row is the broker's and the fetch's, and
        locking it here could deadlock with a batch of deliveries."""
        await conn.execute(
            "INSERT INTO dispositions (package_id, recipient) SELECT package_id, recipient "
            "FROM deliveries WHERE package_id = $1 AND recipient = $2 ON CONFLICT DO NOTHING",
            package_id,
            recipient,
        )
        return await conn.fetchrow(
            _COPY + "WHERE x.package_id = $1 AND x.recipient = $2 FOR UPDATE OF x",
            package_id,
            recipient,
        )

    @staticmethod
    async def lock_awaiting(
        conn: asyncpg.Connection, recipient: str, about: uuid.UUID
    ) -> list[asyncpg.Record]:
        """The recipient's copies waiting for its answer to ``about``: the document itself (a
        recall by status 13) or the documents ``about`` revokes, updates or replaces."""
        return await conn.fetch(
            _COPY + "WHERE x.recipient = $1 AND x.awaiting IS NOT NULL "
            "AND (x.package_id = $2 OR x.awaiting = $2) ORDER BY x.package_id FOR UPDATE OF x",
            recipient,
            about,
        )

    @staticmethod
    async def linked_copies(
        conn: asyncpg.Connection, recipient: str, about: uuid.UUID
    ) -> list[asyncpg.Record]:
        """The recipient's copies of ``about`` and of what ``about`` concerns (no lock)."""
        return await conn.fetch(
            _COPY + "WHERE x.recipient = $1 AND (x.package_id = $2 OR x.package_id IN "
            "(SELECT concerns FROM package_links WHERE package_id = $2))",
            recipient,
            about,
        )

    @staticmethod
    async def save_copy(conn: asyncpg.Connection, copy) -> None:
        """Write a copy's new business state (an :class:`exchange.flows.Copy`)."""
        await conn.execute(
            "UPDATE dispositions SET disposition = $3, progress = $4, status_code = $5, "
            "status_received = $6, status_package = $7, awaiting = $8, answer = $9, "
            "superseded_by = $10, updated_at = now() WHERE package_id = $1 AND recipient = $2",
            copy.package_id,
            copy.recipient,
            copy.disposition,
            copy.progress,
            copy.status_code,
            copy.status_received,
            copy.status_package,
            copy.awaiting,
            copy.answer,
            copy.superseded_by,
        )

    @staticmethod
    async def link(
        conn: asyncpg.Connection,
        package_id: uuid.UUID,
        concerns: uuid.UUID,
        relation: str,
        organs: Sequence[str],
    ) -> None:
        await conn.execute(
            "INSERT INTO package_links (package_id, concerns, relation, organs) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            package_id,
            concerns,
            relation,
            list(organs),
        )

    @staticmethod
    async def digest_of(conn: asyncpg.Connection, package_id: uuid.UUID) -> bytes:
        return await conn.fetchval("SELECT digest FROM packages WHERE id = $1", package_id)

    # ----- reading ----------------------------------------------------------------------

    async def copies(self, package_id: uuid.UUID) -> dict[str, asyncpg.Record]:
        """Every recipient's business state of a package, by recipient (absent: active)."""
        rows = await self.pool.fetch("SELECT * FROM dispositions WHERE package_id = $1", package_id)
        return {r["recipient"]: r for r in rows}

    async def recalled(self, package_id: uuid.UUID, recipient: str) -> bool:
        """Whether the recipient's copy was recalled (it may not read it any more)."""
        return bool(
            await self.pool.fetchval(
                "SELECT 1 FROM dispositions WHERE package_id = $1 AND recipient = $2 "
                "AND disposition = 'recalled'",
                package_id,
                recipient,
            )
        )

    async def links(self, package_id: uuid.UUID, organ_id: str) -> list[asyncpg.Record]:
        """The packages linked to this one, either way, that ``organ_id`` sent or receives."""
        return await self.pool.fetch(
            """
            SELECT l.relation, l.organs, l.package_id = $1 AS outgoing, p.id, p.document_id,
                   p.business_doc_type, p.received_at
            FROM package_links l
            JOIN packages p ON p.id = CASE WHEN l.package_id = $1 THEN l.concerns
                                           ELSE l.package_id END
            WHERE (l.package_id = $1 OR l.concerns = $1) AND (p.sender = $2 OR EXISTS
                  (SELECT 1 FROM deliveries d WHERE d.package_id = p.id AND d.recipient = $2))
            ORDER BY p.received_at, p.id
            """,
            package_id,
            organ_id,
        )

    async def document(self, organ_id: str, document_id: str) -> list[asyncpg.Record]:
        """Every package with this DocumentId that ``organ_id`` sent or receives, the packages
        linked to them, and the statuses about them that it sent or receives; oldest first."""
        return await self.pool.fetch(
            """
            WITH RECURSIVE mine AS (
                SELECT p.id FROM packages p WHERE p.document_id = $2 AND p.kind = 'edoc'
            ), family AS (
                SELECT id FROM mine
                UNION SELECT CASE WHEN l.package_id = f.id THEN l.concerns ELSE l.package_id END
                FROM package_links l JOIN family f ON f.id IN (l.package_id, l.concerns)
            ), everything AS (
                SELECT id FROM family
                UNION SELECT s.id FROM packages s JOIN family f ON s.about_package = f.id
            )
            SELECT p.id, p.kind, p.sender, p.document_id, p.business_doc_type, p.status_code,
                   p.about_package, p.subject, p.received_at
            FROM packages p JOIN everything e ON e.id = p.id
            WHERE p.sender = $1 OR EXISTS
                  (SELECT 1 FROM deliveries d WHERE d.package_id = p.id AND d.recipient = $1)
            ORDER BY p.received_at, p.id
            """,
            organ_id,
            document_id,
        )
