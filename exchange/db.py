"""PostgreSQL access: the pool, the schema, and creating the database on first run."""

from __future__ import annotations

import contextlib
import json
import re
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from exchange.config import Settings

__all__ = ["connect", "create_database", "drop_schema", "migrate", "unavailable"]

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
        OSError
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


async def migrate(settings: Settings) -> None:
    """Create the schema and its tables; safe to run any number of times."""
    schema = _schema_name(settings)
    sql = resources.files("exchange").joinpath("sql/schema.sql").read_text(encoding="utf-8")
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            # Serialise concurrent migrations (several workers starting at once).
            await conn.execute("SELECT pg_advisory_xact_lock(7214001)")
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute(sql)
    finally:
        await conn.close()


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
    """A pool whose connections see only the configured schema. With ``min_size=0`` it opens
    no connection until one is needed, so it can be made while PostgreSQL is down."""
    schema = _schema_name(settings)
    return await asyncpg.create_pool(
        settings.database_url,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": "lienthong"},
        init=_init_connection,
        reset=_keep_session,
    )
