"""Client credentials, bearer tokens and client certificates, in PostgreSQL.

Only hashes are stored: scrypt for client secrets, SHA-256 for tokens, the SHA-256 fingerprint
for certificates. A copy of the database is not a copy of anyone's keys.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

__all__ = ["PostgresCredentials"]


class PostgresCredentials:
    """Who may call the hub, as what agency."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def agency_exists(self, organ_id: str) -> bool:
        return bool(await self.pool.fetchval("SELECT 1 FROM agencies WHERE code = $1", organ_id))

    async def add_client(self, client_id: str, organ_id: str, secret_hash: str) -> None:
        await self.pool.execute(
            "INSERT INTO credentials (client_id, organ_id, secret_hash) VALUES ($1, $2, $3)",
            client_id,
            organ_id,
            secret_hash,
        )

    async def revoke_client(self, client_id: str) -> bool:
        """Revoke a client and drop its tokens; whether it existed unrevoked."""
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.execute(
                "UPDATE credentials SET revoked_at = now() "
                "WHERE client_id = $1 AND revoked_at IS NULL",
                client_id,
            )
            await conn.execute("DELETE FROM tokens WHERE client_id = $1", client_id)
        return done.endswith(" 1")

    async def client(self, client_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT organ_id, secret_hash, revoked_at FROM credentials WHERE client_id = $1",
            client_id,
        )

    async def add_token(
        self, token_hash: bytes, client_id: str, organ_id: str, expires: dt.datetime
    ) -> None:
        """Store a token (its hash) and forget tokens expired for a day."""
        await self.pool.execute(
            "INSERT INTO tokens (token_hash, client_id, organ_id, expires_at) "
            "VALUES ($1, $2, $3, $4)",
            token_hash,
            client_id,
            organ_id,
            expires,
        )
        await self.pool.execute("DELETE FROM tokens WHERE expires_at < now() - interval '1 day'")

    async def token(self, token_hash: bytes) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT t.organ_id, t.client_id, t.expires_at, c.revoked_at FROM tokens t "
            "JOIN credentials c USING (client_id) WHERE t.token_hash = $1",
            token_hash,
        )

    async def bind_certificate(
        self, fingerprint: bytes, organ_id: str, subject: str, not_after: dt.datetime
    ) -> str | None:
        """Bind (or re-enable) a certificate; the owning agency, None if another owns it."""
        return await self.pool.fetchval(
            "INSERT INTO client_certificates (fingerprint, organ_id, subject, not_after) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (fingerprint) DO UPDATE SET revoked_at = NULL "
            "WHERE client_certificates.organ_id = EXCLUDED.organ_id RETURNING organ_id",
            fingerprint,
            organ_id,
            subject,
            not_after,
        )

    async def revoke_certificate(self, fingerprint: bytes) -> bool:
        done = await self.pool.execute(
            "UPDATE client_certificates SET revoked_at = now() "
            "WHERE fingerprint = $1 AND revoked_at IS NULL",
            fingerprint,
        )
        return done.endswith(" 1")

    async def certificate(self, fingerprint: bytes) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT organ_id, not_after FROM client_certificates "
            "WHERE fingerprint = $1 AND revoked_at IS NULL",
            fingerprint,
        )

    async def agency_has_certificate(self, organ_id: str) -> bool:
        return bool(
            await self.pool.fetchval(
                "SELECT 1 FROM client_certificates WHERE organ_id = $1 AND revoked_at IS NULL "
                "AND not_after > now() LIMIT 1",
                organ_id,
            )
        )
