"""Signed delivery receipts (non-repudiation of delivery): when a recipient's system takes a
package (a 2xx to a push, or an ack after pull), the hub signs what it handed over: the bytes'
digest, the recipient, the time, how (push or pull) and the ledger leaf of the
'acknowledged' event, with its own key (detached CMS, like the acceptance receipt).

A receipt is made once per copy, as soon as its leaf has a ledger position, when it is first
asked for (``GET /v1/packages/{id}/receipts``, the evidence bundle); then it is kept.
"""

from __future__ import annotations

import json
import uuid

from exchange.hubkeys import key_id
from exchange.ledger import Ledger
from exchange.receipts import receipt_json
from exchange.store.delivery_receipts import PostgresDeliveryReceipts
from signing import KeyHandle, sign_detached

__all__ = ["DeliveryReceipts", "delivery_claims"]

RECEIPT_TYPE = "lienthong.delivery-receipt"


def delivery_claims(package_id: uuid.UUID, row) -> bytes:
    """The canonical JSON a delivery receipt's signature covers."""
    detail = row["detail"] or {}
    return json.dumps(
        {
            "v": 1,
            "type": RECEIPT_TYPE,
            "package_id": str(package_id),
            "digest": row["digest"].hex(),
            "digest_algorithm": "sha256",
            "recipient": row["recipient"],
            "delivered_at": row["at"].isoformat(timespec="microseconds"),
            "via": detail.get("via", "pull"),
            "webhook_id": detail.get("webhook_id"),
            "ledger": {"log": "lienthong", "leaf_index": row["ledger_index"]},
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


class DeliveryReceipts:
    """Delivery receipts, made once per acknowledged copy and kept."""

    def __init__(self, store: PostgresDeliveryReceipts, ledger: Ledger, key: KeyHandle) -> None:
        self.store = store
        self.ledger = ledger
        self.key = key

    async def for_package(self, package_id: uuid.UUID, organ_id: str | None) -> list[dict]:
        """``{"recipient", "receipt"}`` for each copy taken (only ``organ_id``'s unless None);
        ``receipt`` is None while the 'acknowledged' leaf waits for its ledger position."""
        rows = await self.store.taken(package_id, organ_id)
        waiting = [r["event_id"] for r in rows if r["body"] is None and r["ledger_index"] is None]
        positions = await self.ledger.wait_indexed(waiting) if waiting else {}
        found = []
        for row in rows:
            if row["body"] is not None:
                receipt = receipt_json(row["body"], row["signature"], row["key_id"])
            elif row["ledger_index"] is None and row["event_id"] not in positions:
                receipt = None
            else:
                placed = dict(row)
                placed["ledger_index"] = positions.get(row["event_id"], row["ledger_index"])
                receipt = await self._sign(package_id, placed)
            found.append({"recipient": row["recipient"], "receipt": receipt})
        return found

    async def _sign(self, package_id: uuid.UUID, row: dict) -> dict:
        body = delivery_claims(package_id, row)
        signature = await sign_detached(body, self.key)
        kid = key_id(self.key.cert)
        if await self.store.insert(row["id"], body, signature, kid):
            return receipt_json(body, signature, kid)
        stored = await self.store.load(row["id"])
        return receipt_json(stored["body"], stored["signature"], stored["key_id"])
