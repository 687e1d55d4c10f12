"""What the commands share: their settings, and the stores of a short-lived pool."""

from __future__ import annotations

import argparse

from exchange.config import Settings, load_settings
from exchange.store import Stores
from exchange.store import database as db

__all__ = ["settings_of", "with_stores"]


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings, with the command's --host and --port when it has them."""
    settings = load_settings(args.config)
    if getattr(args, "host", None):
        settings = settings.replace(host=args.host)
    if getattr(args, "port", None) is not None:
        settings = settings.replace(port=args.port)
    for name in ("tls_cert", "tls_key", "tls_client_ca"):
        if getattr(args, name, None):
            settings = settings.replace(**{name: str(getattr(args, name))})
    return settings


async def with_stores(settings: Settings, work):
    """Run ``work(stores)`` against the configured database (created and migrated first)."""
    await db.create_database(settings)
    await db.migrate(settings)
    pool = await db.connect(settings, min_size=1, max_size=2)
    try:
        return await work(Stores.over(pool))
    finally:
        await pool.close()
