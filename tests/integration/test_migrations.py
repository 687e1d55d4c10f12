"""Numbered migrations: applied in order, once each, recorded; a database made by the earlier
unnumbered schema takes them without harm; several processes migrating at once wait in turn."""

from __future__ import annotations

import asyncio

import asyncpg

from exchange.store import database as db
from tests.conftest import make_settings


async def _recorded(settings) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            f'SELECT version, name FROM "{settings.database_schema}".schema_migrations '
            "ORDER BY version"
        )
        return [(r["version"], r["name"]) for r in rows]
    finally:
        await conn.close()


async def test_fresh_database_gets_every_migration_once(tmp_path):
    settings = make_settings(tmp_path)
    try:
        shipped = db.migrations()
        assert [v for v, _, _ in shipped] == list(range(1, len(shipped) + 1))
        first, second = await asyncio.gather(db.migrate(settings), db.migrate(settings))
        assert sorted(first + second) == [f"{v:04d}_{n}" for v, n, _ in shipped]
        assert await db.migrate(settings) == []
        assert await _recorded(settings) == [(v, n) for v, n, _ in shipped]
    finally:
        await db.drop_schema(settings)


async def test_a_migration_edited_after_it_was_applied_is_reported(tmp_path, caplog):
    settings = make_settings(tmp_path)
    try:
        await db.migrate(settings)
        with caplog.at_level("WARNING", logger="lienthong.database"):
            assert await db.migrate(settings) == []
        assert not caplog.records  # unchanged files: nothing to say
        conn = await asyncpg.connect(settings.database_url)
        try:
            await conn.execute(
                f'UPDATE "{settings.database_schema}".schema_migrations '
                "SET sha256 = '\\x00' WHERE version = 12"
            )
        finally:
            await conn.close()
        with caplog.at_level("WARNING", logger="lienthong.database"):
            assert await db.migrate(settings) == []  # nothing is applied again
        (record,) = caplog.records
        assert "0012_accept_in_one_call changed after it was applied" in record.getMessage()
    finally:
        await db.drop_schema(settings)


async def test_a_database_of_the_unnumbered_schema_is_taken_over(tmp_path):
    """What the earlier idempotent schema file made (every statement applied, nothing
    recorded) migrates cleanly: the migrations are safe to run again."""
    settings = make_settings(tmp_path)
    conn = await asyncpg.connect(settings.database_url)
    try:
        schema = settings.database_schema
        await conn.execute(f'CREATE SCHEMA "{schema}"; SET search_path TO "{schema}"')
        for _, _, sql in db.migrations():
            await conn.execute(sql)
        await conn.execute(
            "INSERT INTO agencies (code, name, level, routing_key) "
            "VALUES ('000.00.00.H49', 'UBND', 'province', 'H49.00.00.000')"
        )
    finally:
        await conn.close()
    try:
        applied = await db.migrate(settings)
        assert len(applied) == len(db.migrations())
        pool = await db.connect(settings, min_size=1, max_size=1)
        try:
            assert await pool.fetchval("SELECT name FROM agencies") == "UBND"
        finally:
            await pool.close()
    finally:
        await db.drop_schema(settings)
