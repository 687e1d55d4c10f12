"""Checking the ``federation/`` members of an evidence bundle offline (for :mod:`exchange.audit`;
what they are: :mod:`exchange.federation.evidence`)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable

from exchange.bundle import ShapeError, loads, want_mapping, want_str
from exchange.federation.evidence import PREFIX

__all__ = ["check_federation"]

# (data, signature) -> (signature valid and trusted, a sentence)
Verify = Callable[[bytes, bytes | None], Awaitable[tuple[bool, str]]]


async def check_federation(
    files: dict[str, bytes], digest: str, leaves: list[dict], verify: Verify
) -> list[tuple[str, bool, str]]:
    """Verdicts ``(item, ok, detail)`` on the ``federation/`` members of a bundle; ``digest``
    is the package's SHA-256 (hex), ``leaves`` the package's proven leaves."""
    verdicts = []
    recorded = {
        (leaf["detail"].get("hub"), leaf["detail"].get("receipt", {}).get("body"))
        for leaf in leaves
        if leaf["event"] == "remote" and leaf["detail"].get("kind") == "accepted"
    }
    for name in sorted(files):
        if not (name.startswith(PREFIX + "receipts/") and name.endswith(".json")):
            continue
        hub_id = name.rsplit("/", 1)[1].removesuffix(".json")
        item = f"remote receipt of {hub_id}"
        body = files[name]
        ok, detail = await verify(body, files.get(name.removesuffix(".json") + ".p7s"))
        try:
            claimed = want_str(want_mapping(loads(body, item), item).get("digest"), item)
        except ShapeError as exc:
            verdicts.append((item, False, str(exc)))
            continue
        in_ledger = (hub_id, base64.b64encode(body).decode()) in recorded
        if claimed != digest:
            ok, detail = False, "it names other bytes than the package"
        elif not in_ledger:
            ok, detail = False, "no proven 'remote' leaf records this receipt"
        verdicts.append((item, ok, detail))
    for name in sorted(files):
        if name.startswith(PREFIX + "witnessed/"):
            verdicts.append(await _check_witness(name, files[name], verify))
    return verdicts


async def _check_witness(name: str, data: bytes, verify: Verify) -> tuple[str, bool, str]:
    item = f"witnessed head {name.rsplit('/', 1)[1].removesuffix('.json')}"
    try:
        doc = want_mapping(loads(data, item), item)
        head = want_str(doc.get("peer_head"), item).encode()
        body = base64.b64decode(want_str(doc.get("body"), item))
        statement = want_mapping(loads(body, item), item)
        ours = base64.b64decode(want_str(doc.get("signature"), item))
        theirs = base64.b64decode(want_str(doc.get("peer_signature"), item))
    except (ShapeError, ValueError) as exc:
        return item, False, f"unreadable ({exc})"
    if statement.get("head_sha256") != hashlib.sha256(head).hexdigest():
        return item, False, "the witness statement covers another head"
    ok, detail = await verify(body, ours)
    if not ok:
        return item, False, f"witness signature: {detail}"
    peer_ok, peer_detail = await verify(head, theirs)
    size = statement.get("tree_size")
    if not peer_ok:
        return item, False, f"witnessed at size {size}, but the peer's signature: {peer_detail}"
    return item, True, f"size {size} countersigned ({detail}); the peer's head {peer_detail}"
