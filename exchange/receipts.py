"""The hub's signed receipts: for each accepted package, what exactly arrived, from whom, for whom,
when, and where it sits in the ledger, signed with the hub's key (detached CMS).

A receipt is canonical JSON; ``openssl cms -verify -binary -inform DER -content receipt.json
-in receipt.p7s -CAfile hub-root.pem`` checks it, as does ``lienthong audit verify``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from dataclasses import dataclass

import asyncpg

from exchange.errors import HubError
from exchange.hubkeys import key_id
from signing import KeyHandle, sign_detached

__all__ = ["Claims", "issue_receipt", "load_receipt", "receipt_json", "sign_receipt"]


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


async def sign_receipt(pool: asyncpg.Pool, key: KeyHandle, claims: Claims) -> dict:
    """Sign and store a receipt; if another hub process stored one first, that one stands."""
    body = claims.body()
    signature = await sign_detached(body, key)
    kid = key_id(key.cert)
    stored = await pool.fetchval(
        "INSERT INTO receipts (package_id, body, signature, key_id) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (package_id) DO NOTHING RETURNING true",
        claims.package_id,
        body,
        signature,
        kid,
    )
    if stored:
        return receipt_json(body, signature, kid)
    return await load_receipt(pool, claims.package_id)


async def issue_receipt(pool: asyncpg.Pool, key: KeyHandle, package_id: uuid.UUID) -> dict:
    """The receipt of an accepted package: the stored one, or one made now from the database."""
    existing = await load_receipt(pool, package_id)
    if existing:
        return existing
    row = await pool.fetchrow(
        "SELECT p.digest, p.sender, p.kind, p.document_id, e.at, e.ledger_index, "
        "array_agg(d.recipient ORDER BY d.id) AS recipients "
        "FROM packages p JOIN deliveries d ON d.package_id = p.id "
        "JOIN events e ON e.package_id = p.id AND e.event = 'submitted' "
        "WHERE p.id = $1 GROUP BY p.id, e.id",
        package_id,
    )
    if row["ledger_index"] is None:
        raise HubError(
            "receipt.pending",
            "the package's ledger position is not assigned yet; ask again in a moment",
            status=503,
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
    return await sign_receipt(pool, key, claims)


async def load_receipt(pool: asyncpg.Pool, package_id: uuid.UUID) -> dict | None:
    row = await pool.fetchrow(
        "SELECT body, signature, key_id FROM receipts WHERE package_id = $1", package_id
    )
    return receipt_json(row["body"], row["signature"], row["key_id"]) if row else None
