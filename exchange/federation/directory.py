"""The directory across hubs: which hub serves which agency.

The national hub knows every agency and its home hub; a provincial hub pulls that list from a
peer (``lienthong federation directory pull HUB``) and imports the agencies served elsewhere,
with their home hub. Its own agencies stay as its registry says: an entry the peer lists as
served here, or that this hub registered itself without a home elsewhere, is never overwritten.
"""

from __future__ import annotations

import datetime as dt

from exchange.errors import HubError
from exchange.federation.messages import check_hub_id
from exchange.federation.peers import Peers
from exchange.registry import Agency
from exchange.store.federation import PostgresFederation
from exchange.store.registry import PostgresRegistry
from schemas import FormatError, OrganId

__all__ = ["import_directory", "pull_directory"]


def _date(value: object) -> dt.date | None:
    return dt.date.fromisoformat(value) if isinstance(value, str) and value else None


async def import_directory(
    hub_id: str, items: list[dict], registry: PostgresRegistry, store: PostgresFederation
) -> int:
    """Import the entries served by other hubs; returns how many were written."""
    codes = [i.get("code") for i in items if isinstance(i, dict)]
    ours = await store.local_codes([c for c in codes if isinstance(c, str)])
    agencies, homes = [], []
    for item in items:
        try:
            home = check_hub_id(item.get("home_hub"), "home_hub")
            code = str(OrganId.parse(item["code"]))
            if home == hub_id or code in ours:
                continue  # our own agencies: our registry is authoritative
            agencies.append(
                Agency(
                    code,
                    str(item["name"])[:500],
                    item.get("parent"),
                    item["level"],
                    _date(item.get("valid_from")),
                    _date(item.get("valid_to")),
                    item.get("successor"),
                    successors=tuple(str(s) for s in item.get("successors") or ())[:20],
                )
            )
            homes.append((code, home))
        except (KeyError, TypeError, ValueError, FormatError) as exc:
            raise HubError(
                "federation.bad_message", f"directory entry {item!r:.80} is unusable: {exc}"
            ) from None
    if agencies:
        await registry.upsert(agencies)
        await store.set_homes(homes)
    return len(agencies)


async def pull_directory(
    hub_id: str, peers: Peers, peer: str, registry: PostgresRegistry, store: PostgresFederation
) -> int:
    """Fetch ``peer``'s directory over mutual TLS and import it."""
    answer = await (await peers.client(peer)).get_json("/v1/federation/directory")
    items = answer.get("items")
    if not isinstance(items, list):
        raise HubError("federation.bad_message", f"{peer} served no directory")
    return await import_directory(hub_id, items, registry, store)
