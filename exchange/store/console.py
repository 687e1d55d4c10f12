"""The web console's SQL: its users (with lock-out), an agency's documents, failed deliveries,
and the operator actions, each recorded as a ``console_action`` event in the ledger."""

from __future__ import annotations

import hashlib
import uuid

import asyncpg

from exchange.events import Event
from exchange.store.events import record_events

__all__ = ["PostgresConsole"]

_LIST_LIMIT = 200


class PostgresConsole:
    """Console users and the reads and actions of the console's pages."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ----- users --------------------------------------------------------------------------

    async def add_user(self, name: str, role: str, agency: str | None, password_hash: str) -> None:
        """A new user, or a new password and role for an existing one (its lock lifted)."""
        await self.pool.execute(
            "INSERT INTO console_users (name, role, agency, password_hash) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET role = $2, agency = $3, "
            "password_hash = $4, failures = 0, locked_until = NULL, sessions_valid_after = now()",
            name,
            role,
            agency,
            password_hash,
        )

    async def user(self, name: str) -> asyncpg.Record | None:
        """The user row, with ``locked`` (true while a lock-out lasts)."""
        return await self.pool.fetchrow(
            "SELECT *, coalesce(locked_until > now(), false) AS locked "
            "FROM console_users WHERE name = $1",
            name,
        )

    async def users(self) -> list[asyncpg.Record]:
        """Every console user with its role, agency and lock-out (never the hash)."""
        return await self.pool.fetch(
            "SELECT name, role, agency, failures, locked_until FROM console_users ORDER BY name"
        )

    async def sign_in_failed(self, name: str, limit: int, lock_seconds: int) -> None:
        """Count a failure; at ``limit`` failures in a row the user is locked for a while."""
        await self.pool.execute(
            "UPDATE console_users SET failures = failures + 1, locked_until = CASE "
            "WHEN failures + 1 >= $2 THEN now() + make_interval(secs => $3) "
            "ELSE locked_until END WHERE name = $1",
            name,
            limit,
            lock_seconds,
        )

    async def end_sessions(self, name: str, before: float) -> None:
        """Void every session of ``name`` issued before ``before`` (a Unix time)."""
        await self.pool.execute(
            "UPDATE console_users SET sessions_valid_after = to_timestamp($2) WHERE name = $1",
            name,
            before,
        )

    async def signed_in(self, name: str) -> None:
        """A successful sign-in: the failure count starts again."""
        await self.pool.execute(
            "UPDATE console_users SET failures = 0, locked_until = NULL WHERE name = $1", name
        )

    # ----- documents ----------------------------------------------------------------------

    async def inbox(self, agency: str) -> list[asyncpg.Record]:
        """The newest documents and statuses addressed to ``agency``, with its copy's state."""
        return await self.pool.fetch(
            "SELECT p.id, p.kind, p.sender, p.document_id, p.subject, p.status_code, "
            "p.received_at, d.state, d.delivered_at, d.fetched_at FROM deliveries d "
            "JOIN packages p ON p.id = d.package_id WHERE d.recipient = $1 "
            "ORDER BY p.received_at DESC LIMIT $2",
            agency,
            _LIST_LIMIT,
        )

    async def sent(self, agency: str | None) -> list[asyncpg.Record]:
        """The newest documents ``agency`` sent (every agency's when None), with how many
        recipients have them delivered and acknowledged."""
        return await self.pool.fetch(
            "SELECT p.id, p.sender, p.document_id, p.subject, p.received_at, "
            "count(d.id) AS recipients, count(d.delivered_at) AS delivered, "
            "count(d.acked_at) AS acknowledged FROM packages p "
            "JOIN deliveries d ON d.package_id = p.id "
            "WHERE p.kind = 'edoc' AND ($1::text IS NULL OR p.sender = $1) "
            "GROUP BY p.id ORDER BY p.received_at DESC LIMIT $2",
            agency,
            _LIST_LIMIT,
        )

    async def failed_deliveries(self, older_than_seconds: float) -> list[asyncpg.Record]:
        """Copies still not in their inbox this long after submission (the broker lost them,
        the outbox keeps failing, or no consumer takes them)."""
        return await self.pool.fetch(
            "SELECT d.id, d.package_id, d.recipient, p.document_id, p.received_at, d.routed_at, "
            "d.republished, o.attempts FROM deliveries d JOIN packages p ON p.id = d.package_id "
            "LEFT JOIN outbox o ON o.delivery_id = d.id WHERE d.state = 'pending' "
            "AND p.received_at < now() - make_interval(secs => $1) "
            "ORDER BY p.received_at LIMIT $2",
            older_than_seconds,
            _LIST_LIMIT,
        )

    # ----- operator actions ---------------------------------------------------------------

    async def redeliver(self, delivery_id: int, by: str) -> bool:
        """Publish a pending delivery again now (its outbox row made due, or a new one); the
        action is a ``console_action`` event on the package. False if it is not pending."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT d.id, d.package_id, d.recipient, p.digest, a.routing_key "
                "FROM deliveries d JOIN packages p ON p.id = d.package_id "
                "JOIN agencies a ON a.code = d.recipient "
                "WHERE d.id = $1 AND d.state = 'pending' FOR UPDATE OF d",
                delivery_id,
            )
            if row is None:
                return False
            await conn.execute(
                "INSERT INTO outbox (delivery_id, routing_key, next_attempt_at) "
                "VALUES ($1, $2, now()) ON CONFLICT (delivery_id) "
                "DO UPDATE SET next_attempt_at = now(), attempts = 0",
                row["id"],
                row["routing_key"],
            )
            detail = {"action": "redeliver", "by": by, "delivery": row["id"]}
            event = Event(
                "console_action", row["digest"], row["package_id"], row["recipient"], detail
            )
            await record_events(conn, [event])
        return True

    async def clients(self) -> list[asyncpg.Record]:
        """Every DMS client id with its agency and whether it is revoked (never the hash)."""
        return await self.pool.fetch(
            "SELECT client_id, organ_id, created_at, revoked_at FROM credentials "
            "ORDER BY organ_id, created_at"
        )

    async def revoke(self, client_id: str, by: str) -> bool:
        """Revoke a client and its tokens, recorded as a ``console_action`` event (its digest:
        SHA-256 of the client id). False if there was no such unrevoked client."""
        async with self.pool.acquire() as conn, conn.transaction():
            organ = await conn.fetchval(
                "UPDATE credentials SET revoked_at = now() WHERE client_id = $1 "
                "AND revoked_at IS NULL RETURNING organ_id",
                client_id,
            )
            if organ is None:
                return False
            await conn.execute("DELETE FROM tokens WHERE client_id = $1", client_id)
            detail = {"action": "revoke_credentials", "by": by, "client_id": client_id}
            digest = hashlib.sha256(client_id.encode()).digest()
            await record_events(conn, [Event("console_action", digest, None, organ, detail)])
        return True

    async def package(self, package_id: uuid.UUID) -> asyncpg.Record | None:
        """The package row (the caller applies the visibility rule)."""
        return await self.pool.fetchrow("SELECT * FROM packages WHERE id = $1", package_id)

    async def ledger_positions(self, package_id: uuid.UUID) -> list[asyncpg.Record]:
        """The package's events that have a ledger position, with their leaves."""
        return await self.pool.fetch(
            "SELECT event, organ_id, at, leaf, ledger_index FROM events "
            "WHERE package_id = $1 AND ledger_index IS NOT NULL ORDER BY ledger_index",
            package_id,
        )
