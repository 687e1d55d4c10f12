"""The hub's signed receipts: for each accepted package, what exactly arrived, from whom, for whom,
when, and where it sits in the ledger, signed with the hub's key (detached CMS).

A receipt is canonical JSON; ``openssl cms -verify -binary -inform DER -content receipt.json
-in receipt.p7s -CAfile hub-root.pem`` checks it, as does ``lienthong audit verify``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass

from exchange.batching import GroupCommit
from exchange.errors import HubError
from exchange.hubkeys import key_id
from exchange.ledger import Ledger
from exchange.ports import Submission
from exchange.store.ledger import PostgresLedger
from signing import KeyHandle, sign_detached

__all__ = ["Claims", "Receipts", "receipt_json"]

log = logging.getLogger("lienthong.receipts")


def receipt_json(body: bytes, signature: bytes, key_id: str | None = None) -> dict:
    """The receipt as the API returns it: the signed bytes, the signature, the claims, and the
    hub key that signed it (None for receipts signed before keys were recorded)."""
    return {
        "body": base64.b64encode(body).decode(),
        "signature": base64.b64encode(signature).decode(),
        "signature_format": "CMS SignedData, detached, DER, base64",
        "key_id": key_id,
        "claims": json.loads(body),
    }


@dataclass(frozen=True)
class Claims:
    """What a receipt says."""

    package_id: uuid.UUID
    kind: str
    document_id: str | None
    digest: bytes
    sender: str
    recipients: tuple[str, ...]
    received_at: dt.datetime
    leaf_index: int | None

    def body(self) -> bytes:
        """The canonical JSON the signature covers."""
        return json.dumps(
            {
                "v": 1,
                "type": "lienthong.hub-receipt",
                "package_id": str(self.package_id),
                "kind": self.kind,
                "document_id": self.document_id,
                "digest": self.digest.hex(),
                "digest_algorithm": "sha256",
                "sender": self.sender,
                "recipients": list(self.recipients),
                "received_at": self.received_at.isoformat(timespec="microseconds"),
                "ledger": {"log": "lienthong", "leaf_index": self.leaf_index},
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()


class Receipts:
    """Signed receipts, made once per package and kept."""

    def __init__(self, store: PostgresLedger, ledger: Ledger, key: KeyHandle) -> None:
        self.store = store
        self.ledger = ledger
        self.key = key
        self._writes = GroupCommit(store.insert_receipts)  # one INSERT for concurrent receipts

    async def for_submission(self, result: Submission) -> dict | None:
        """The receipt of a package just accepted (or of the first submission of the same
        bytes), citing its 'submitted' leaf; None when the leaf has no position yet (then
        :meth:`issue` makes it later: a receipt is never signed without its leaf)."""
        if result.duplicate or result.event_id is None:
            stored = await self.load(result.id)
            if stored is not None:
                return stored
            facts = await self.store.receipt_facts(result.id)
            event_id = facts["event_id"]  # the first attempt may still wait for its leaf
        else:
            event_id = result.event_id
        positions = await self.ledger.wait_indexed([event_id])
        if event_id not in positions:
            log.warning(
                "receipt pending: no ledger position yet", extra={"package_id": str(result.id)}
            )
            return None
        if result.duplicate or result.received_at is None:
            return await self.issue(result.id)
        claims = Claims(
            result.id,
            result.kind,
            result.document_id,
            result.digest,
            result.sender,
            result.recipients,
            result.received_at,
            positions[event_id],
        )
        return await self._sign(claims)

    async def issue(self, package_id: uuid.UUID) -> dict:
        """The receipt of an accepted package: the stored one, or one made now."""
        existing = await self.load(package_id)
        if existing:
            return existing
        row = await self.store.receipt_facts(package_id)
        if row["ledger_index"] is None:
            raise HubError(
                "receipt.pending",
                "the package's ledger position is not assigned yet; ask again in a moment",
            )
        claims = Claims(
            package_id,
            row["kind"],
            row["document_id"],
            row["digest"],
            row["sender"],
            tuple(row["recipients"]),
            row["at"],
            row["ledger_index"],
        )
        return await self._sign(claims)

    async def load(self, package_id: uuid.UUID) -> dict | None:
        """The stored receipt, if there is one."""
        row = await self.store.receipt(package_id)
        return receipt_json(row["body"], row["signature"], row["key_id"]) if row else None

    async def _sign(self, claims: Claims) -> dict:
        """Sign and store; if another hub process stored one first, that one stands."""
        body = claims.body()
        signature = await sign_detached(body, self.key)
        kid = key_id(self.key.cert)
        if await self._writes.submit((claims.package_id, body, signature, kid)):
            return receipt_json(body, signature, kid)
        return await self.load(claims.package_id)
