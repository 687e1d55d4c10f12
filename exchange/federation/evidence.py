"""The cross-hub part of an evidence bundle.

For a package handed over to other hubs the bundle also holds, under ``federation/``:

    federation/receipts/<hub>.json, .p7s   each remote hub's signed receipt for the hand-over
    federation/witnessed/<peer>.json       this hub's latest countersignature of each peer's
                                           signed tree head (the peer's head and signature,
                                           this hub's statement and signature)

``lienthong audit verify`` (:mod:`.evidence_check`) checks each remote receipt's signature
(pass the remote hubs' roots with ``--trust`` too), that it names the package's bytes, and
that it is the receipt the ledger's ``remote`` leaf recorded; and each witness statement's
signature, that it covers that very head, and the peer's signature over it.
"""

from __future__ import annotations

import base64
import json

__all__ = ["PREFIX", "allowed", "federation_members"]

PREFIX = "federation/"


async def federation_members(hub, events) -> dict[str, bytes]:
    """Members to add to the bundle of a package whose visible ``events`` these are."""
    if hub.federation is None:
        return {}
    files: dict[str, bytes] = {}
    for event in events:
        detail = event["detail"]
        if event["event"] != "remote" or detail.get("kind") != "accepted":
            continue
        receipt = detail.get("receipt")
        if not isinstance(receipt, dict):
            continue
        name = f"{PREFIX}receipts/{detail['hub']}"
        files[f"{name}.json"] = base64.b64decode(receipt["body"])
        files[f"{name}.p7s"] = base64.b64decode(receipt["signature"])
    for peer in await hub.federation.store.peers():
        rows = await hub.federation.store.witnesses(peer["hub_id"], 1)
        if rows:
            row = rows[0]
            files[f"{PREFIX}witnessed/{peer['hub_id']}.json"] = json.dumps(
                {
                    "peer": row["peer"],
                    "peer_head": row["head"].decode(),
                    "peer_signature": base64.b64encode(row["peer_signature"]).decode(),
                    "body": base64.b64encode(row["body"]).decode(),
                    "signature": base64.b64encode(row["signature"]).decode(),
                },
                indent=1,
            ).encode()
    return files


def allowed(name: str) -> bool:
    """Whether a bundle member name is one :func:`federation_members` makes."""
    parts = name.split("/")
    return (
        len(parts) == 3
        and parts[0] + "/" == PREFIX
        and (
            (parts[1] == "receipts" and parts[2].endswith((".json", ".p7s")))
            or (parts[1] == "witnessed" and parts[2].endswith(".json"))
        )
    )
