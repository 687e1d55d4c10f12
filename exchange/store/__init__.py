"""PostgreSQL adapters: every SQL statement of the hub, and the migrations.

stores = Stores.over(pool)
await stores.registry.upsert(agencies)
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from exchange.store.console import PostgresConsole
from exchange.store.credentials import PostgresCredentials
from exchange.store.kpi import PostgresKpi
from exchange.store.ledger import PostgresLedger
from exchange.store.postgres import PostgresPackages
from exchange.store.registry import PostgresRegistry

__all__ = [
    "PostgresConsole",
    "PostgresCredentials",
    "PostgresKpi",
    "PostgresLedger",
    "PostgresPackages",
    "PostgresRegistry",
    "Stores",
]


@dataclass(frozen=True)
class Stores:
    """The stores of one pool."""

    pool: asyncpg.Pool
    packages: PostgresPackages
    registry: PostgresRegistry
    credentials: PostgresCredentials
    ledger: PostgresLedger
    kpi: PostgresKpi
    console: PostgresConsole

    @classmethod
    def over(cls, pool: asyncpg.Pool) -> Stores:
        return cls(
            pool,
            PostgresPackages(pool),
            PostgresRegistry(pool),
            PostgresCredentials(pool),
            PostgresLedger(pool),
            PostgresKpi(pool),
            PostgresConsole(pool),
        )
