"""The delivery state machine: every change of a recipient's copy goes through here.

A copy is ``pending`` (stored, on its way through the broker), then ``delivered`` (in the
recipient's inbox), then ``acknowledged`` (the recipient stored it safely; it leaves the inbox).
Its first download is noted on the way (``fetched``). Each change is recorded as an event, whose
leaf enters the ledger, in the transaction of the change itself. Statuses (01-16) are the
business side of the same copy: who may send which is decided here too; what each status,
recall, update and replacement does to the copy is :mod:`exchange.flows`.
"""

from __future__ import annotations

import json
import uuid
from enum import StrEnum

from exchange.auth import Caller
from exchange.errors import HubError
from exchange.events import Event
from exchange.ports import DocumentCandidate
from exchange.store.postgres import PostgresPackages
from schemas import Package

__all__ = ["RECALL", "Deliveries", "DeliveryState", "choose_document"]

RECALL = "13"  # the only status a document's sender sends; recipients send all the others
_NOT_FOUND = "package.not_found"


class DeliveryState(StrEnum):
    """Where a recipient's copy is."""

    PENDING = "pending"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"


# Which state each state may move to, and the column that stamps the move.
TRANSITIONS: dict[DeliveryState, dict[DeliveryState, str]] = {
    DeliveryState.PENDING: {DeliveryState.DELIVERED: "delivered_at"},
    DeliveryState.DELIVERED: {DeliveryState.ACKNOWLEDGED: "acked_at"},
    DeliveryState.ACKNOWLEDGED: {},
}


class Deliveries:
    """The use cases of a recipient's copy: deliver, fetch, acknowledge, list the inbox."""

    def __init__(self, packages: PostgresPackages) -> None:
        self.packages = packages

    async def locate(self, caller: Caller, package_id: str):
        """The package if the caller sent it or receives it; otherwise 404, never 403."""
        try:
            key = uuid.UUID(package_id)
        except ValueError:
            raise HubError(_NOT_FOUND, "no such package") from None
        row = await self.packages.locate(key, caller.organ_id)
        if row is None:
            raise HubError(_NOT_FOUND, "no such package")
        return row

    async def deliver(self, delivery_ids: list[int]) -> int:
        """pending → delivered, for the deliveries the broker brought (idempotent: a copy
        delivered already stays as it is, however many messages name it)."""
        return await self.packages.mark_delivered(delivery_ids)

    async def fetched(self, caller: Caller, package) -> None:
        """Note the first download of the caller's copy (the sender's reads are not noted)."""
        if caller.organ_id != package["sender"]:
            await self.packages.record_fetch(package["id"], caller.organ_id, package["digest"])

    async def acknowledge(self, caller: Caller, package_id: str) -> dict:
        """delivered → acknowledged: the recipient stored it safely. Idempotent."""
        package = await self.locate(caller, package_id)
        async with self.packages.delivery(package, caller.organ_id) as copy:
            if copy.state is None:
                raise HubError("delivery.not_recipient", "only a recipient acknowledges a package")
            state = DeliveryState(copy.state)
            if state is DeliveryState.PENDING:
                raise HubError(
                    "delivery.not_delivered", "the package has not reached the inbox yet"
                )
            if state is DeliveryState.DELIVERED:
                to = DeliveryState.ACKNOWLEDGED
                event = Event("acknowledged", package["digest"], package["id"], caller.organ_id)
                await copy.move(to, TRANSITIONS[state][to], event)
        return {
            "id": str(package["id"]),
            "state": "acknowledged",
            "already": state is DeliveryState.ACKNOWLEDGED,
        }

    async def inbox(self, caller: Caller, after: int, limit: int, max_bytes: int) -> dict:
        """What waits for the caller, oldest first, starting after a cursor.

        A page holds at most ``limit`` items and stops once its items pass ``max_bytes`` of
        JSON (always at least one item), so a page stays small whatever the packages carry.
        """
        items, size = [], 0
        for row in await self.packages.inbox(caller.organ_id, after, limit):
            item = _inbox_item(row)
            size += len(json.dumps(item, ensure_ascii=False).encode())
            if items and size > max_bytes:
                break
            items.append(item)
        return {
            "items": items,
            "next": items[-1]["cursor"] if items else (str(after) if after else None),
        }


def choose_document(package: Package, candidates: list[DocumentCandidate]) -> DocumentCandidate:
    """The document a status is about, checking that its sender is a party to it: a recipient
    (any status but 13) or the document's sender (13, the recall, to one of its recipients).

    Raises ``status.not_party`` when the document exists but the caller has no such part in
    it, and ``status.unknown_document`` when the hub knows no such document.
    """
    response = package.response_for[0]
    caller, organ = package.sender.organ_id, response.organ_id
    recall = package.status_code == RECALL
    for candidate in candidates:
        if not recall and candidate.sender == organ and candidate.caller_receives:
            return candidate
        if recall and candidate.sender == caller and candidate.organ_receives:
            return candidate
    if candidates:
        role = (
            f"only the document's sender recalls it (status {RECALL})"
            if recall
            else f"only its recipients send status {package.status_code}"
        )
        raise HubError(
            "status.not_party",
            f"{caller} has no part in document {response.document_id!r} from {organ} "
            f"that allows this status: {role}",
            field="ResponseFor/DocumentId",
        )
    raise HubError(
        "status.unknown_document",
        f"the hub knows no document {response.document_id!r} between {organ} and {caller}",
        field="ResponseFor/DocumentId",
    )


def _inbox_item(row) -> dict:
    return {
        "cursor": str(row["inbox_seq"]),
        "id": str(row["id"]),
        "kind": row["kind"],
        "sender": row["sender"],
        "document_id": row["document_id"],
        "business_doc_type": row["business_doc_type"],
        "status_code": row["status_code"],
        "response_for": row["response_for_document"],
        "subject": row["subject"],
        "size": row["size"],
        "digest": row["digest"].hex(),
        "delivered_at": row["delivered_at"].isoformat(),
    }
