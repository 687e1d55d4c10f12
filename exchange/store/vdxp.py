"""VDXP systems (systemid, sealed HMAC secret, organs served) and the read views the facades
need beyond the inbox: what a system's organs sent, with each receiver's copy."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

__all__ = ["PostgresVdxpSystems"]


async def _add_organs(conn: asyncpg.Connection, system_id: str, organs: Sequence[str]) -> None:
    start = await conn.fetchval(
        "SELECT coalesce(max(position) + 1, 0) FROM vdxp_system_organs WHERE system_id = $1",
        system_id,
    )
    await conn.executemany(
        "INSERT INTO vdxp_system_organs (system_id, organ_id, position) "
        "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        [(system_id, organ, start + i) for i, organ in enumerate(organs)],
    )


class PostgresVdxpSystems:
    """Rows of ``vdxp_systems`` and ``vdxp_system_organs`` (migration 0008)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def missing_agencies(self, organs: Sequence[str]) -> list[str]:
        """The organ ids of ``organs`` that are not in the registry."""
        rows = await self.pool.fetch(
            "SELECT code FROM agencies WHERE code = ANY($1::text[])", list(organs)
        )
        known = {r["code"] for r in rows}
        return [o for o in organs if o not in known]

    async def put(self, system_id: str, sealed: bytes, organs: Sequence[str]) -> None:
        """Create the system, or give it a new secret (un-revoking it); add the organs."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO vdxp_systems (system_id, secret_sealed) VALUES ($1, $2) "
                "ON CONFLICT (system_id) DO UPDATE SET secret_sealed = EXCLUDED.secret_sealed, "
                "revoked_at = NULL, created_at = now()",
                system_id,
                sealed,
            )
            await _add_organs(conn, system_id, organs)

    async def add_organs(self, system_id: str, organs: Sequence[str]) -> None:
        """Let the system serve ``organs`` too."""
        async with self.pool.acquire() as conn, conn.transaction():
            await _add_organs(conn, system_id, organs)

    async def reseal(self, system_id: str, old: bytes, new: bytes) -> None:
        """Replace the sealed secret ``old`` by ``new`` (the same secret under the current key),
        unless it changed meanwhile."""
        await self.pool.execute(
            "UPDATE vdxp_systems SET secret_sealed = $3 WHERE system_id = $1 "
            "AND secret_sealed = $2",
            system_id,
            old,
            new,
        )

    async def revoke(self, system_id: str) -> bool:
        """Stop accepting the system's signatures; whether it existed unrevoked."""
        done = await self.pool.execute(
            "UPDATE vdxp_systems SET revoked_at = now() "
            "WHERE system_id = $1 AND revoked_at IS NULL",
            system_id,
        )
        return done.endswith(" 1")

    async def system(self, system_id: str) -> tuple[bytes, list[str]] | None:
        """(sealed secret, organs served, its own first) of a live system, else None."""
        rows = await self.pool.fetch(
            "SELECT s.secret_sealed, o.organ_id FROM vdxp_systems s "
            "JOIN vdxp_system_organs o USING (system_id) "
            "WHERE s.system_id = $1 AND s.revoked_at IS NULL ORDER BY o.position",
            system_id,
        )
        if not rows:
            return None
        return bytes(rows[0]["secret_sealed"]), [r["organ_id"] for r in rows]

    async def sent(self, organs: Sequence[str], limit: int) -> list:
        """The ``limit`` newest packages sent by ``organs``, one row per receiver's copy, with
        whether that receiver reported a failed import (and did not acknowledge since)."""
        return await self.pool.fetch(
            """
            SELECT p.id, p.kind, p.sender, p.subject, p.document_id, p.received_at,
                   d.recipient, d.state, d.delivered_at, d.fetched_at, d.acked_at,
                   EXISTS (SELECT 1 FROM events e WHERE e.package_id = p.id
                           AND e.event = 'import_failed' AND e.organ_id = d.recipient
                           AND (d.acked_at IS NULL OR e.at > d.acked_at)) AS import_failed
            FROM (SELECT * FROM packages WHERE sender = ANY($1::text[])
                  ORDER BY received_at DESC LIMIT $2) p
            JOIN deliveries d ON d.package_id = p.id
            ORDER BY p.received_at DESC, d.id
            """,
            list(organs),
            limit,
        )
