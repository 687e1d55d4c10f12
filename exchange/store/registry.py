"""The agency registry and who may sign for each agency, in PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncpg

from exchange.registry import COLUMNS, Agency

__all__ = ["PostgresRegistry", "REGISTRY_CHANNEL"]

REGISTRY_CHANNEL = "lienthong_registry"  # NOTIFY'd on every change, so hubs declare queues
_UPDATABLE = ("parent", "level", "valid_from", "valid_to", "successor", "verify_policy")
SIGNER_RULES = ("cert", "organization_identifier", "delegate")


def _agency(row: asyncpg.Record) -> Agency:
    return Agency(
        code=row["code"],
        name=row["name"],
        parent=row["parent"],
        level=row["level"],
        valid_from=row["valid_from"],
        valid_to=row["valid_to"],
        successor=row["successor"],
        verify_policy=row["verify_policy"],
    )


class PostgresRegistry:
    """Agencies, their signer rules and their signature policy."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def upsert(
        self, agencies: Sequence[Agency], given: Sequence[frozenset[str]] | None = None
    ) -> tuple[int, int]:
        """Insert or update agencies in one transaction; returns (inserted, updated).

        ``given``: per agency, the columns to write on an existing entry (a file's columns);
        the others keep their stored values. None writes every column (replace).
        """
        given = given or [frozenset(COLUMNS)] * len(agencies)
        rows = [
            (
                a.code,
                a.name,
                a.parent,
                a.level,
                a.valid_from,
                a.valid_to,
                a.successor,
                a.routing_key,
                a.verify_policy,
                [column in columns for column in _UPDATABLE],
            )
            for a, columns in zip(agencies, given, strict=True)
        ]
        async with self.pool.acquire() as conn, conn.transaction():
            existing = await conn.fetchval(
                "SELECT count(*) FROM agencies WHERE code = ANY($1::text[])", [r[0] for r in rows]
            )
            await conn.executemany(
                """
                INSERT INTO agencies (code, name, parent, level, valid_from, valid_to, successor,
                                      routing_key, verify_policy)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (code) DO UPDATE SET
                    name = EXCLUDED.name,
                    parent = CASE WHEN ($10::bool[])[1] THEN EXCLUDED.parent
                                  ELSE agencies.parent END,
                    level = CASE WHEN ($10::bool[])[2] THEN EXCLUDED.level
                                 ELSE agencies.level END,
                    valid_from = CASE WHEN ($10::bool[])[3] THEN EXCLUDED.valid_from
                                      ELSE agencies.valid_from END,
                    valid_to = CASE WHEN ($10::bool[])[4] THEN EXCLUDED.valid_to
                                    ELSE agencies.valid_to END,
                    successor = CASE WHEN ($10::bool[])[5] THEN EXCLUDED.successor
                                     ELSE agencies.successor END,
                    verify_policy = CASE WHEN ($10::bool[])[6] THEN EXCLUDED.verify_policy
                                         ELSE agencies.verify_policy END,
                    updated_at = now()
                """,
                rows,
            )
            await conn.execute("SELECT pg_notify($1, '')", REGISTRY_CHANNEL)
        return len(rows) - existing, existing

    async def agencies(self, codes: Sequence[str]) -> dict[str, Agency]:
        """Agencies by normalised code, in one query; unknown codes are absent."""
        rows = await self.pool.fetch(
            "SELECT * FROM agencies WHERE code = ANY($1::text[])", list(codes)
        )
        return {row["code"]: _agency(row) for row in rows}

    async def exists(self, code: str) -> bool:
        return bool(await self.pool.fetchval("SELECT 1 FROM agencies WHERE code = $1", code))

    async def codes(self) -> list[str]:
        """Every registered code, in order."""
        return [r["code"] for r in await self.pool.fetch("SELECT code FROM agencies ORDER BY 1")]

    async def list(
        self,
        *,
        parent: str | None = None,
        level: str | None = None,
        under: str | None = None,
        active_on: dt.date | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Agency]:
        """Agencies ordered by code, filtered by parent, level, subtree or date.

        ``under`` is a subtree prefix (:attr:`OrganId.subtree_prefix`), the unit itself
        included.
        """
        rows = await self.pool.fetch(
            """
            SELECT * FROM agencies
            WHERE ($1::text IS NULL OR parent = $1)
              AND ($2::text IS NULL OR level = $2)
              AND ($3::text IS NULL OR routing_key = $3 OR routing_key LIKE $3 || '.%')
              AND ($4::date IS NULL OR ((valid_from IS NULL OR valid_from <= $4)
                                         AND (valid_to IS NULL OR valid_to >= $4)))
            ORDER BY code LIMIT $5 OFFSET $6
            """,
            parent,
            level,
            under,
            active_on,
            limit,
            offset,
        )
        return [_agency(r) for r in rows]

    async def verify_policy(self, code: str) -> str | None:
        """The agency's own signature policy (None: the hub's setting)."""
        return await self.pool.fetchval("SELECT verify_policy FROM agencies WHERE code = $1", code)

    async def signer_rules(self, organ_id: str) -> list[tuple[str, str, str]]:
        """(organ id, rule, value) of the agency's rules and of the agencies it delegates to."""
        rows = await self.pool.fetch(
            "SELECT organ_id, rule, value FROM agency_signers WHERE organ_id = $1 OR organ_id IN "
            "(SELECT value FROM agency_signers WHERE organ_id = $1 AND rule = 'delegate')",
            organ_id,
        )
        return [(r["organ_id"], r["rule"], r["value"]) for r in rows]

    async def add_signer_rule(self, organ_id: str, rule: str, value: str) -> None:
        """Add a rule (idempotent)."""
        if rule not in SIGNER_RULES:
            raise ValueError(f"rule must be one of {', '.join(SIGNER_RULES)}")
        await self.pool.execute(
            "INSERT INTO agency_signers (organ_id, rule, value) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING",
            organ_id,
            rule,
            value,
        )
