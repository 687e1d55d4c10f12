"""What users see of the business flows: each copy's disposition in a trail, the links
between packages, a document with every package about it, and the door closed on a recalled
copy. Nothing here changes anything (:mod:`exchange.flows` does)."""

from __future__ import annotations

from exchange.auth import Caller
from exchange.errors import HubError
from exchange.store.flows import PostgresFlows

__all__ = ["business_view", "document", "refuse_recalled"]


_INCOMING = {"revokes": "revoked_by", "updates": "updated_by", "replaces": "replaced_by"}


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _str(value) -> str | None:
    return None if value is None else str(value)


async def refuse_recalled(flows: PostgresFlows, caller: Caller, row) -> None:
    """A recipient whose copy was recalled never reads the document again (``410``)."""
    if caller.organ_id != row["sender"] and await flows.recalled(row["id"], caller.organ_id):
        raise HubError(
            "package.recalled",
            "its sender recalled this document: your copy is no longer available",
        )


def _copy_state(delivery) -> str:
    """pending, delivered, fetched (downloaded, not acknowledged yet) or acknowledged."""
    if delivery["state"] == "delivered" and delivery["fetched_at"]:
        return "fetched"
    return delivery["state"]


async def business_view(flows: PostgresFlows, caller: Caller, row, copies) -> dict:
    """Per visible copy its state, last status and disposition; and the linked packages."""
    business = await flows.copies(row["id"])
    recipients = []
    for delivery in copies:
        flow = business.get(delivery["recipient"])
        recipients.append(
            {
                "organ_id": delivery["recipient"],
                "state": _copy_state(delivery),
                "status_code": flow["status_code"] if flow else None,
                "status_received": flow["status_received"] if flow else None,
                "progress": flow["progress"] if flow else None,
                "disposition": flow["disposition"] if flow else "active",
                "awaiting_answer": bool(flow and flow["awaiting"]),
                "answer": flow["answer"] if flow else None,
                "superseded_by": _str(flow["superseded_by"]) if flow else None,
                "delivered_at": _iso(delivery["delivered_at"]),
                "fetched_at": _iso(delivery["fetched_at"]),
                "acknowledged_at": _iso(delivery["acked_at"]),
            }
        )
    links = [
        {
            "relation": link["relation"] if link["outgoing"] else _INCOMING[link["relation"]],
            "package": str(link["id"]),
            "document_id": link["document_id"],
            "organs": list(link["organs"]),
        }
        for link in await flows.links(row["id"], caller.organ_id)
    ]
    return {"recipients": recipients, "links": links}


async def document(flows: PostgresFlows, packages, caller: Caller, document_id: str) -> dict:
    """A document the caller sent or receives, with every package about it (its versions,
    revocations, updates, replacements and statuses), each with the copies the caller may
    see; ``packages`` is the package store (for the visibility rule of copies)."""
    items = []
    for row in await flows.document(caller.organ_id, document_id):
        view = await business_view(flows, caller, row, await packages.copies(row, caller.organ_id))
        items.append(
            {
                "id": str(row["id"]),
                "kind": row["kind"],
                "sender": row["sender"],
                "document_id": row["document_id"],
                "business_doc_type": row["business_doc_type"],
                "status_code": row["status_code"],
                "about": _str(row["about_package"]),
                "subject": row["subject"],
                "received_at": row["received_at"].isoformat(),
                **view,
            }
        )
    return {"document_id": document_id, "packages": items}
