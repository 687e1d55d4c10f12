"""Federation rows in PostgreSQL: peers, home hubs, notes from peers, cursors, witnesses.

The rules live in :mod:`exchange.federation`; this module only reads and writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from exchange.events import Event
from exchange.store.events import record_events

__all__ = ["PostgresFederation"]


class PostgresFederation:
    """Every statement of the federation tables (a pool shared with the other stores)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ----- peers ------------------------------------------------------------------------

    async def add_peer(
        self, hub_id: str, amqp_sealed: bytes, http_url: str, cert_der: bytes, cert_sha256: bytes
    ) -> None:
        await self.pool.execute(
            "INSERT INTO federation_peers (hub_id, amqp_sealed, http_url, cert_der, cert_sha256) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hub_id) DO UPDATE SET "
            "amqp_sealed = $2, http_url = $3, cert_der = $4, cert_sha256 = $5, last_error = NULL",
            hub_id,
            amqp_sealed,
            http_url,
            cert_der,
            cert_sha256,
        )

    async def remove_peer(self, hub_id: str) -> bool:
        return bool(
            await self.pool.fetchval(
                "DELETE FROM federation_peers WHERE hub_id = $1 RETURNING 1", hub_id
            )
        )

    async def peers(self) -> list[asyncpg.Record]:
        return await self.pool.fetch("SELECT * FROM federation_peers ORDER BY hub_id")

    async def peer(self, hub_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT * FROM federation_peers WHERE hub_id = $1", hub_id)

    async def peer_by_certificate(self, cert_sha256: bytes) -> str | None:
        return await self.pool.fetchval(
            "SELECT hub_id FROM federation_peers WHERE cert_sha256 = $1", cert_sha256
        )

    async def peer_error(self, hub_id: str, error: str | None) -> None:
        """Note the last failure talking to a peer (None: it answered)."""
        if error is None:
            await self.pool.execute(
                "UPDATE federation_peers SET last_seen_at = now() WHERE hub_id = $1", hub_id
            )
        else:
            await self.pool.execute(
                "UPDATE federation_peers SET last_error = $2, last_error_at = now() "
                "WHERE hub_id = $1",
                hub_id,
                error[:500],
            )

    # ----- home hubs --------------------------------------------------------------------

    async def set_homes(self, homes: Sequence[tuple[str, str]]) -> int:
        """Record (organ id, hub id) pairs; returns how many were written."""
        await self.pool.executemany(
            "INSERT INTO agency_home_hubs (organ_id, hub_id) VALUES ($1, $2) "
            "ON CONFLICT (organ_id) DO UPDATE SET hub_id = $2, updated_at = now()",
            list(homes),
        )
        return len(homes)

    async def homes(self, organ_ids: Sequence[str]) -> dict[str, str]:
        """The home hub of each of these agencies served elsewhere (absent: served here)."""
        rows = await self.pool.fetch(
            "SELECT organ_id, hub_id FROM agency_home_hubs WHERE organ_id = ANY($1::text[])",
            list(organ_ids),
        )
        return {r["organ_id"]: r["hub_id"] for r in rows}

    async def directory(self) -> list[asyncpg.Record]:
        """Every agency with its home hub (NULL: this hub)."""
        return await self.pool.fetch(
            "SELECT a.code, a.name, a.parent, a.level, a.valid_from, a.valid_to, a.successor, "
            "a.successors, h.hub_id "
            "FROM agencies a LEFT JOIN agency_home_hubs h ON h.organ_id = a.code "
            "ORDER BY a.code"
        )

    async def local_codes(self, organ_ids: Sequence[str]) -> set[str]:
        """Those of ``organ_ids`` registered here and served here."""
        rows = await self.pool.fetch(
            "SELECT code FROM agencies a WHERE code = ANY($1::text[]) AND NOT EXISTS "
            "(SELECT 1 FROM agency_home_hubs h WHERE h.organ_id = a.code)",
            list(organ_ids),
        )
        return {r["code"] for r in rows}

    # ----- packages seen by federation --------------------------------------------------

    async def package_by_digest(self, digest: bytes) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT p.id, p.sender, p.digest, a.detail AS arrival FROM packages p LEFT JOIN "
            "events a ON a.package_id = p.id AND a.event = 'arrived' WHERE p.digest = $1",
            digest,
        )

    async def handed_over(self, digest: bytes) -> bool:
        """Whether the package with these bytes has a recipient served by another hub (only
        then may a peer fetch it)."""
        return bool(
            await self.pool.fetchval(
                "SELECT 1 FROM packages p JOIN deliveries d ON d.package_id = p.id "
                "JOIN agency_home_hubs h ON h.organ_id = d.recipient WHERE p.digest = $1 LIMIT 1",
                digest,
            )
        )

    async def recipients(self, package_id: uuid.UUID) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT recipient FROM deliveries WHERE package_id = $1 ORDER BY id", package_id
        )
        return [r["recipient"] for r in rows]

    async def record_note(
        self, digest: bytes, hub_id: str, organ_id: str, kind: str, event: Event
    ) -> bool:
        """Record a peer's note once (with its 'remote' event); whether it was new."""
        async with self.pool.acquire() as conn, conn.transaction():
            new = await conn.fetchval(
                "INSERT INTO federation_notes (digest, hub_id, organ_id, event) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1",
                digest,
                hub_id,
                organ_id,
                kind,
            )
            if new:
                await record_events(conn, [event])
        return bool(new)

    async def remote_deliveries(self, package_id: uuid.UUID, organ_ids: Sequence[str]) -> list[int]:
        """Pending copies of this package for these agencies served elsewhere."""
        rows = await self.pool.fetch(
            "SELECT d.id FROM deliveries d JOIN agency_home_hubs h ON h.organ_id = d.recipient "
            "WHERE d.package_id = $1 AND d.recipient = ANY($2::text[]) AND d.state = 'pending'",
            package_id,
            list(organ_ids),
        )
        return [r["id"] for r in rows]

    async def backlog(self) -> dict[str, int]:
        """Copies waiting for another hub's answer, by that agency's home hub."""
        rows = await self.pool.fetch(
            "SELECT h.hub_id, count(*) AS n FROM deliveries d JOIN agency_home_hubs h "
            "ON h.organ_id = d.recipient WHERE d.state = 'pending' GROUP BY h.hub_id"
        )
        return {r["hub_id"]: r["n"] for r in rows}

    # ----- the note reporter ------------------------------------------------------------

    async def reportable(self, kinds: Sequence[str], limit: int) -> list[asyncpg.Record]:
        """Events after the reporter's cursor about packages that arrived from a peer. The
        cursor is a ledger position: the sequencer numbers leaves in commit order, so an event
        committed late is never behind the cursor (event ids are not in commit order)."""
        position = await self.pool.fetchval(
            "SELECT position FROM federation_cursors WHERE name = 'reporter'"
        )
        return await self.pool.fetch(
            "SELECT e.id, e.ledger_index, e.event, e.organ_id, e.at, e.detail, p.digest, "
            "p.sender, a.detail AS arrival, (h.hub_id IS NOT NULL) AS served_elsewhere "
            "FROM events e JOIN packages p ON p.id = e.package_id "
            "JOIN events a ON a.package_id = e.package_id AND a.event = 'arrived' "
            "LEFT JOIN agency_home_hubs h ON h.organ_id = e.organ_id "
            "WHERE e.ledger_index > $1 AND e.event = ANY($2::text[]) "
            "ORDER BY e.ledger_index LIMIT $3",
            -1 if position is None else position,
            list(kinds),
            limit,
        )

    async def advance(self, position: int) -> None:
        await self.pool.execute(
            "INSERT INTO federation_cursors (name, position) VALUES ('reporter', $1) "
            "ON CONFLICT (name) DO UPDATE SET position = greatest(federation_cursors.position, $1)",
            position,
        )

    # ----- witnesses --------------------------------------------------------------------

    async def last_witnessed(self, peer: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT * FROM federation_witnesses WHERE peer = $1 ORDER BY tree_size DESC LIMIT 1",
            peer,
        )

    async def add_witness(
        self,
        peer: str,
        tree_size: int,
        root_hash: bytes,
        head: bytes,
        peer_signature: bytes,
        body: bytes,
        signature: bytes,
    ) -> None:
        await self.pool.execute(
            "INSERT INTO federation_witnesses (peer, tree_size, root_hash, head, peer_signature, "
            "body, signature) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            peer,
            tree_size,
            root_hash,
            head,
            peer_signature,
            body,
            signature,
        )

    async def witnesses(self, peer: str | None, limit: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT * FROM federation_witnesses WHERE ($1::text IS NULL OR peer = $1) "
            "ORDER BY witnessed_at DESC, peer LIMIT $2",
            peer,
            limit,
        )

    async def add_inconsistency(self, peer: str, detail: dict) -> None:
        await self.pool.execute(
            "INSERT INTO federation_inconsistencies (peer, detail) VALUES ($1, $2)", peer, detail
        )

    async def inconsistencies(self) -> list[asyncpg.Record]:
        return await self.pool.fetch("SELECT * FROM federation_inconsistencies ORDER BY id")
