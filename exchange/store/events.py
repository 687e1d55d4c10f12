"""Writing trail events with their ledger leaves, inside the transaction of their change."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from exchange.events import Event, canonical_leaf

__all__ = ["record_events"]


async def record_events(conn: asyncpg.Connection, events: Iterable[Event]) -> None:
    """Insert events with their leaves; call inside the transaction of the change they record."""
    rows = [
        (e.package_id, e.event, e.organ_id, e.at, e.detail, e.digest, canonical_leaf(e))
        for e in events
    ]
    if rows:
        await conn.executemany(
            "INSERT INTO events (package_id, event, organ_id, at, detail, digest, leaf) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            rows,
        )
