"""The hub's signed receipts: for each accepted package, what exactly arrived, from whom, for whom,
when, and where it sits in the ledger, signed with the hub's key (detached CMS).

A receipt is canonical JSON; ``openssl cms -verify -binary -inform DER -content receipt.json
-in receipt.p7s -CAfile hub-root.pem`` checks it, as does ``lienthong audit verify``.
"""

from __future__ import annotations

import base64
import json
import uuid

import asyncpg

from signing.cms import sign_detached
from signing.keys import KeyHandle

__all__ = ["issue_receipt", "load_receipt", "receipt_json"]


def receipt_json(body: bytes, signature: bytes) -> dict:
    """The receipt as the API returns it: the signed bytes, the signature, and the claims."""
    return {
        "body": base64.b64encode(body).decode(),
        "signature": base64.b64encode(signature).decode(),
        "signature_format": "CMS SignedData, detached, DER, base64",
        "claims": json.loads(body),
    }


async def issue_receipt(
    pool: asyncpg.Pool, key: KeyHandle, package_id: uuid.UUID, *, fresh: bool = False
) -> dict:
    """Sign and store the receipt of an accepted package (once; later calls return the same).
    ``fresh``: the package was just accepted, so there is no receipt to look for yet."""
    existing = None if fresh else await load_receipt(pool, package_id)
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
    body = json.dumps(
        {
            "v": 1,
            "type": "lienthong.hub-receipt",
            "package_id": str(package_id),
            "kind": row["kind"],
            "document_id": row["document_id"],
            "digest": row["digest"].hex(),
            "digest_algorithm": "sha256",
            "sender": row["sender"],
            "recipients": list(row["recipients"]),
            "received_at": row["at"].isoformat(timespec="microseconds"),
            "ledger": {"log": "lienthong", "leaf_index": row["ledger_index"]},
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    signature = await sign_detached(body, key)
    stored = await pool.fetchval(
        "INSERT INTO receipts (package_id, body, signature) VALUES ($1, $2, $3) "
        "ON CONFLICT (package_id) DO NOTHING RETURNING true",
        package_id,
        body,
        signature,
    )
    # Two hubs signing at once: the first receipt stored is the receipt.
    return receipt_json(body, signature) if stored else await load_receipt(pool, package_id)


async def load_receipt(pool: asyncpg.Pool, package_id: uuid.UUID) -> dict | None:
    row = await pool.fetchrow(
        "SELECT body, signature FROM receipts WHERE package_id = $1", package_id
    )
    return receipt_json(row["body"], row["signature"]) if row else None
