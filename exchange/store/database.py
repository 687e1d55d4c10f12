"""PostgreSQL: the pool, the database and its schema, and the numbered migrations."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import socket
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from exchange.config import Settings

log = logging.getLogger("lienthong.database")

__all__ = [
    "connect",
    "create_database",
    "drop_schema",
    "migrate",
    "migrations",
    "pool",
    "unavailable",
]

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _schema_name(settings: Settings) -> str:
    if not _IDENT.match(settings.database_schema):
        raise ValueError(f"database_schema {settings.database_schema!r} is not a plain identifier")
    return settings.database_schema


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means PostgreSQL (or the network to it) is unavailable right now, as
    opposed to a refused statement: a connection refused, reset or closed, the server shutting
    down or starting up, too many connections, a pool that could not hand out a connection."""
    return isinstance(
        exc,
        ConnectionError  # refused, reset, aborted (a disk error is not one)
        | socket.gaierror
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.OperatorInterventionError
        | asyncpg.TooManyConnectionsError
        # A connection left in a broken state by a server that went away mid-operation.
        | asyncpg.InternalClientError,
    )


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_database(settings: Settings) -> None:
    """Create the configured database if it does not exist (needs CREATEDB on the server)."""
    parts = urlsplit(settings.database_url)
    name = parts.path.lstrip("/")
    if not name or not _IDENT.match(name):
        return
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(maintenance)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


MIGRATIONS = "migrations"


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration shipped, in order (``NNNN_name.sql``)."""
    folder = resources.files("exchange.store").joinpath(MIGRATIONS)
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migrations share a version number")
    return found


_MIGRATION = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


async def migrate(settings: Settings) -> list[str]:
    """Apply the migrations not applied yet, in order, each recorded in ``schema_migrations``;
    returns the names applied now. Concurrent callers (several hub processes starting at
    once) wait for each other on an advisory lock. Each migration's SHA-256 is recorded; one
    whose file changed after it was applied is logged (the database keeps what it applied:
    a change belongs in a new migration)."""
    schema = _schema_name(settings)
    conn = await asyncpg.connect(settings.database_url)
    applied: list[str] = []
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(7214001)")
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            await conn.execute(
                "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS sha256 bytea"
            )
            done = {
                r["version"]: r["sha256"]
                for r in await conn.fetch("SELECT version, sha256 FROM schema_migrations")
            }
            for version, name, sql in migrations():
                digest = hashlib.sha256(sql.encode()).digest()
                if version not in done:
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                        version,
                        name,
                        digest,
                    )
                    applied.append(f"{version:04d}_{name}")
                elif done[version] is None:  # applied before checksums were kept
                    await conn.execute(
                        "UPDATE schema_migrations SET sha256 = $2 WHERE version = $1",
                        version,
                        digest,
                    )
                elif done[version] != digest:
                    log.warning(
                        "migration %04d_%s changed after it was applied; this database keeps "
                        "what it applied: put the change in a new migration",
                        version,
                        name,
                        extra={"schema": schema},
                    )
    finally:
        await conn.close()
    return applied


async def drop_schema(settings: Settings) -> None:
    """Remove the schema and everything in it (tests and `lienthong db reset`)."""
    schema = _schema_name(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset round trip: the hub takes only transaction-scoped
    advisory locks, sets nothing per session, and keeps its one LISTEN connection checked out."""


async def connect(settings: Settings, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections see only the configured schema, connected."""
    return await pool(settings, min_size=min_size, max_size=max_size)


def pool(settings: Settings, *, min_size: int = 0, max_size: int = 10) -> asyncpg.Pool:
    """The same pool, not initialised yet (``await`` it); with ``min_size=0`` it opens no
    connection until one is needed, so it can be made while PostgreSQL is down."""
    schema = _schema_name(settings)
    return asyncpg.create_pool(
        settings.database_url,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": "lienthong"},
        init=_init_connection,
        reset=_keep_session,
        # A server that stops answering (a partition, a hung host) must fail fast, so that
        # requests get 503 instead of hanging: connecting and every statement are bounded.
        timeout=min(10.0, settings.database_timeout_seconds),
        command_timeout=settings.database_timeout_seconds,
    )
