"""Delivery receipts in PostgreSQL: the facts a receipt states, and the signed receipts."""

from __future__ import annotations

import uuid

import asyncpg

__all__ = ["PostgresDeliveryReceipts"]


class PostgresDeliveryReceipts:
    """Every statement about delivery receipts."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def taken(self, package_id: uuid.UUID, organ_id: str | None) -> list[asyncpg.Record]:
        """Each acknowledged copy of a package (only ``organ_id``'s unless None), with its
        'acknowledged' event and the stored receipt, if any."""
        return await self.pool.fetch(
            """
            SELECT d.id, d.recipient, p.digest, e.id AS event_id, e.ledger_index, e.at,
                   e.detail, r.body, r.signature, r.key_id
            FROM deliveries d JOIN packages p ON p.id = d.package_id
            JOIN LATERAL (SELECT id, ledger_index, at, detail FROM events
                          WHERE package_id = d.package_id AND event = 'acknowledged'
                            AND organ_id = d.recipient ORDER BY id LIMIT 1) e ON true
            LEFT JOIN delivery_receipts r ON r.delivery_id = d.id
            WHERE d.package_id = $1 AND d.state = 'acknowledged'
              AND ($2::text IS NULL OR d.recipient = $2)
            ORDER BY d.id
            """,
            package_id,
            organ_id,
        )

    async def insert(self, delivery_id: int, body: bytes, signature: bytes, key_id: str) -> bool:
        """Store a receipt unless one exists; whether this one was stored."""
        done = await self.pool.fetchval(
            "INSERT INTO delivery_receipts (delivery_id, body, signature, key_id) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (delivery_id) DO NOTHING RETURNING 1",
            delivery_id,
            body,
            signature,
            key_id,
        )
        return bool(done)

    async def load(self, delivery_id: int) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT body, signature, key_id FROM delivery_receipts WHERE delivery_id = $1",
            delivery_id,
        )
