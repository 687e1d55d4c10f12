"""What a caller may see of a package's history: its trail, under the one visibility rule.

The sender sees every event and every copy; a recipient sees the package's own events, its own
copy and the statuses it sent or received (never another recipient's). The evidence bundle
(:mod:`exchange.evidence`) applies the same rule, through the same store queries.
"""

from __future__ import annotations

from exchange.auth import Caller
from exchange.delivery import Deliveries
from exchange.documents import business_view
from exchange.store.flows import PostgresFlows

__all__ = ["trail"]


async def trail(deliveries: Deliveries, caller: Caller, package_id: str) -> dict:
    """The events of a package that the caller may see, oldest first, with the state, last
    status and disposition of each copy it may see, and the packages linked to it."""
    packages = deliveries.packages
    row = await deliveries.locate(caller, package_id)
    copies = await packages.copies(row, caller.organ_id)
    statuses = await packages.visible_statuses(row, caller.organ_id)
    events = sorted(
        (
            e
            for e in await packages.visible_events(row, caller.organ_id, statuses)
            if e["package_id"] == row["id"]
        ),
        key=lambda e: (e["at"], e["id"]),
    )
    return {
        "id": str(row["id"]),
        "kind": row["kind"],
        "sender": row["sender"],
        "document_id": row["document_id"],
        "status_code": row["status_code"],
        "about": str(row["about_package"]) if row["about_package"] else None,
        "digest": row["digest"].hex(),
        "received_at": row["received_at"].isoformat(),
        **await business_view(PostgresFlows(packages.pool), caller, row, copies),
        "events": [
            {
                "at": e["at"].isoformat(),
                "event": e["event"],
                "organ_id": e["organ_id"],
                "detail": e["detail"],
                "ledger_index": e["ledger_index"],
            }
            for e in events
        ],
    }
