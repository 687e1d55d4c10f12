"""The ledger in PostgreSQL: positions, subtree hashes, signed heads, receipts, the hub's keys.

The sequencer itself runs inside PostgreSQL (``ledger_sequence()``, migration 0001) so that one
round trip gives a batch of committed leaves their positions and stores the subtrees they
complete; :func:`exchange.ledger_check.check_ledger` recomputes all of it independently.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence

import asyncpg

__all__ = ["LedgerSnapshot", "PostgresLedger"]


class LedgerSnapshot:
    """One repeatable-read view of the whole ledger, for checking it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def heads(self) -> list[asyncpg.Record]:
        return await self._conn.fetch("SELECT * FROM tree_heads ORDER BY tree_size")

    def leaves(self, batch: int) -> AsyncIterator[asyncpg.Record]:
        """Every sequenced event with its stored leaf hash, in ledger order, streamed."""
        return self._conn.cursor(
            "SELECT e.id, e.package_id, e.event, e.organ_id, e.at, e.detail, e.digest, e.leaf, "
            "e.ledger_index, n.hash AS stored FROM events e "
            "LEFT JOIN ledger_nodes n ON n.level = 0 AND n.idx = e.ledger_index "
            "WHERE e.ledger_index IS NOT NULL ORDER BY e.ledger_index",
            prefetch=batch,
        )

    async def tree_size(self) -> int:
        return await _tree_size(self._conn)


async def _tree_size(conn) -> int:
    last = await conn.fetchval("SELECT max(idx) FROM ledger_nodes WHERE level = 0")
    return 0 if last is None else last + 1


class PostgresLedger:
    """Every statement about the ledger, its heads, receipts and keys."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ----- the tree ---------------------------------------------------------------------

    async def sequence(self, batch: int) -> dict[int, int]:
        """Positions given now to committed, unsequenced events (event id → position); empty
        when nothing waits or another hub process holds the sequencer."""
        rows = await self.pool.fetch("SELECT * FROM ledger_sequence($1)", batch)
        return {r["sequenced_event"]: r["ledger_position"] for r in rows}

    async def positions(self, event_ids: Sequence[int]) -> dict[int, int]:
        """Positions of these events, those already sequenced."""
        rows = await self.pool.fetch(
            "SELECT id, ledger_index FROM events WHERE id = ANY($1::bigint[]) "
            "AND ledger_index IS NOT NULL",
            list(event_ids),
        )
        return {r["id"]: r["ledger_index"] for r in rows}

    async def nodes(self, keys: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Stored subtree hashes by (level, index), in one query."""
        if not keys:
            return {}
        levels, indexes = zip(*keys, strict=True)
        # A lateral primary-key probe per wanted node: O(k log n), whatever the table size.
        rows = await self.pool.fetch(
            "SELECT k.level, k.idx, n.hash FROM unnest($1::smallint[], $2::bigint[]) "
            "AS k(level, idx) CROSS JOIN LATERAL (SELECT hash FROM ledger_nodes "
            "WHERE level = k.level AND idx = k.idx) AS n",
            list(levels),
            list(indexes),
        )
        return {(r["level"], r["idx"]): r["hash"] for r in rows}

    async def leaf_hash(self, index: int) -> bytes | None:
        return await self.pool.fetchval(
            "SELECT hash FROM ledger_nodes WHERE level = 0 AND idx = $1", index
        )

    async def tree_size(self) -> int:
        """How many leaves the ledger holds."""
        return await _tree_size(self.pool)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[LedgerSnapshot]:
        """A consistent view of everything, while the hub keeps writing."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            yield LedgerSnapshot(conn)

    # ----- heads ------------------------------------------------------------------------

    async def insert_head(
        self, size: int, root: bytes, at: dt.datetime, body: bytes, signature: bytes, key
    ) -> None:
        """Store a signed head (an existing head of this size stands), noting its key."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self._record_key(conn, key)
            await conn.execute(
                "INSERT INTO tree_heads (tree_size, root_hash, signed_at, head, signature, key_id) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tree_size) DO NOTHING",
                size,
                root,
                at,
                body,
                signature,
                key.key_id,
            )

    async def head(self, size: int | None = None) -> asyncpg.Record | None:
        """The signed head of exactly ``size`` leaves, or the latest one."""
        if size is None:
            return await self.pool.fetchrow(
                "SELECT * FROM tree_heads ORDER BY tree_size DESC LIMIT 1"
            )
        return await self.pool.fetchrow("SELECT * FROM tree_heads WHERE tree_size = $1", size)

    # ----- the hub's keys ---------------------------------------------------------------

    async def record_key(self, key) -> None:
        """List ``key`` (``key_id``, ``subject``, ``chain_pem``) among the hub's keys, or note
        that it is still in use."""
        await self._record_key(self.pool, key)

    @staticmethod
    async def _record_key(conn, key) -> None:
        await conn.execute(
            "INSERT INTO hub_keys (key_id, subject, chain) VALUES ($1, $2, $3) "
            "ON CONFLICT (key_id) DO UPDATE SET last_used = greatest(hub_keys.last_used, now())",
            key.key_id,
            key.subject,
            key.chain_pem,
        )

    async def keys(self, ids: Iterable[str] | None = None) -> list[asyncpg.Record]:
        """Every key the hub has used (or those of ``ids``), oldest first."""
        return await self.pool.fetch(
            "SELECT key_id, subject, chain, first_used, last_used FROM hub_keys "
            "WHERE $1::text[] IS NULL OR key_id = ANY($1::text[]) ORDER BY first_used, key_id",
            None if ids is None else list(ids),
        )

    # ----- receipts and evidence --------------------------------------------------------

    async def insert_receipts(
        self, receipts: list[tuple[uuid.UUID, bytes, bytes, str]]
    ) -> list[bool]:
        """Store receipts (package id, body, signature, key id) unless one exists, in one
        statement; for each, whether it was stored (of two for one package, the first)."""
        if not receipts:
            return []
        stored = {
            r["package_id"]
            for r in await self.pool.fetch(
                "INSERT INTO receipts (package_id, body, signature, key_id) "
                "SELECT * FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::text[]) "
                "ON CONFLICT (package_id) DO NOTHING RETURNING package_id",
                *map(list, zip(*receipts, strict=True)),
            )
        }
        outcomes = []
        for package_id, *_ in receipts:
            outcomes.append(package_id in stored)
            stored.discard(package_id)
        return outcomes

    async def receipt(self, package_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT body, signature, key_id FROM receipts WHERE package_id = $1", package_id
        )

    async def receipt_facts(self, package_id: uuid.UUID) -> asyncpg.Record | None:
        """What a package's receipt says, from its rows and its 'submitted' event."""
        return await self.pool.fetchrow(
            "SELECT p.digest, p.sender, p.kind, p.document_id, e.id AS event_id, e.at, "
            "e.ledger_index, array_agg(d.recipient ORDER BY d.id) AS recipients "
            "FROM packages p JOIN deliveries d ON d.package_id = p.id "
            "JOIN events e ON e.package_id = p.id AND e.event = 'submitted' "
            "WHERE p.id = $1 GROUP BY p.id, e.id",
            package_id,
        )

    async def placed_leaves(self, event_ids: Sequence[int], size: int) -> list[asyncpg.Record]:
        """The events among these whose leaves are in the tree of ``size`` leaves."""
        return await self.pool.fetch(
            "SELECT id, package_id, event, leaf, ledger_index FROM events "
            "WHERE id = ANY($1::bigint[]) AND ledger_index < $2 ORDER BY ledger_index",
            list(event_ids),
            size,
        )

    async def reports(self, package_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
        """The verification reports of these packages."""
        return await self.pool.fetch(
            "SELECT package_id, report FROM verification_reports "
            "WHERE package_id = ANY($1::uuid[])",
            list(package_ids),
        )
