"""Evidence bundles: one zip (ASiC-E layout) with everything an auditor needs to check, offline and
without trusting the hub, what happened to one package.

Layout (every member is listed with its SHA-256 in ``evidence.json``):

    mimetype                        application/vnd.etsi.asic-e+zip (first, stored)
    META-INF/manifest.xml           ASiC-E manifest
    package.edxml                   the exact bytes the sender posted
    statuses/<id>.edxml             every status package about it, exact bytes
    receipts/<id>.json, .p7s        the hub's signed receipts (package and statuses)
    delivery-receipts/<id>/<organ>.json, .p7s   signed delivery receipts: what each recipient took
    reports/<id>.json               verification reports, when the hub made them
    ledger/leaves.json              the leaves of every event, with inclusion proofs
    ledger/head.json, head.p7s      the signed tree head the proofs lead to
    certs/hub.pem                   the chains of the hub keys that signed head and receipts
    federation/...                  remote hubs' receipts, witnessed heads (exchange.federation)
    evidence.json                   index of the above
    README.txt                      what each item proves
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import zipfile
from typing import TYPE_CHECKING

import asyncpg
from asn1crypto import pem
from lxml import etree

from exchange.federation.evidence import federation_members
from exchange.history import package_parties
from exchange.hubkeys import chain_of, key_id, pem_chain

if TYPE_CHECKING:
    from exchange.hub import Hub

__all__ = ["MIMETYPE", "README", "build_bundle"]

MIMETYPE = "application/vnd.etsi.asic-e+zip"
MANIFEST_NS = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
README = """lienthong evidence bundle
=========================

What each item proves (check them all with: lienthong audit verify THIS.asice --trust HUB-ROOT.pem)

package.edxml       The exact bytes the sender posted. Its SHA-256 is the "digest" in every
                    ledger leaf about the package and in the hub's receipt.
statuses/*.edxml    The status packages (01-16) about it, exact bytes; each one's SHA-256 is in
                    a leaf of the package's chain ("status_digest") and in the status's own leaves.
receipts/*          The hub's receipts: what arrived, from whom, for whom, when, and at which ledger
                    leaf, signed by the hub (CMS; openssl cms -verify can check them too).
delivery-receipts/* The hub's delivery receipts: the bytes (SHA-256) a recipient's system took,
                    when, how (push or pull), at which 'acknowledged' leaf; signed by the hub.
reports/*           Signature verification reports made at the hub's door, when there are any.
ledger/leaves.json  Every event (submitted, routed, delivered, fetched, acknowledged, status,
                    recalled) as its exact leaf bytes with an inclusion proof (RFC 9162).
ledger/head.*       The signed tree head (size, root hash, time) the proofs lead to, signed by the
                    hub and timestamped by a TSA when the hub has one. A leaf that verifies against
                    this head was in the log when the head was signed; the hub cannot later drop or
                    change it without every newer head failing a consistency check
                    (lienthong audit verify ... --head NEWER.json).
certs/hub.pem       The certificate chains of the hub keys that signed the head and the receipts
                    (several after a key rotation; ledger/head.json names its key by the SHA-256
                    of its certificate), for convenience: trust comes from the anchors you pass
                    to the verifier, never from the bundle.
parties.json        The sender's and recipients' names and places in the registry on the day the
                    package arrived (the codes of then), and what each is today: its name, or
                    the codes that succeeded it after a reorganisation.
"""


async def _signer_chains(hub: Hub, ids: set[str | None]) -> bytes:
    """The chains of the hub keys that signed what the bundle holds (the current key stands for
    items signed before keys were recorded), each certificate once, the current key first."""
    current = key_id(hub.key.cert)
    wanted = {current if i is None else i for i in ids}
    chains = {r["key_id"]: r["chain"] for r in await hub.ledger_store.keys(wanted)}
    chains[current] = pem_chain(chain_of(hub.key))
    ders: list[bytes] = []
    for kid in sorted(wanted, key=lambda i: (i != current, i)):
        for _, _, der in pem.unarmor(chains.get(kid, "").encode(), multiple=True):
            if der not in ders:
                ders.append(der)
    return "".join(pem.armor("CERTIFICATE", d).decode() for d in ders).encode()


def _manifest(names: list[str]) -> bytes:
    root = etree.Element(f"{{{MANIFEST_NS}}}manifest", nsmap={"manifest": MANIFEST_NS})
    entry = etree.SubElement(root, f"{{{MANIFEST_NS}}}file-entry")
    entry.set(f"{{{MANIFEST_NS}}}full-path", "/")
    entry.set(f"{{{MANIFEST_NS}}}media-type", MIMETYPE)
    for name in names:
        entry = etree.SubElement(root, f"{{{MANIFEST_NS}}}file-entry")
        entry.set(f"{{{MANIFEST_NS}}}full-path", name)
        media = (
            "application/xml" if name.endswith((".edxml", ".xml")) else "application/octet-stream"
        )
        if name.endswith(".json"):
            media = "application/json"
        elif name.endswith(".p7s"):
            media = "application/pkcs7-signature"
        entry.set(f"{{{MANIFEST_NS}}}media-type", media)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


async def build_bundle(hub: Hub, package: asyncpg.Record, caller: str) -> bytes:
    """The evidence zip for one package row, as ``caller`` (who may see the package) may see it."""
    ledger = hub.ledger
    statuses = await hub.packages.visible_statuses(package, caller)
    ids = [package["id"], *(s["id"] for s in statuses)]
    events = await hub.packages.visible_events(package, caller, statuses)
    positions = await ledger.wait_indexed([e["id"] for e in events], timeout=10)
    # The latest signed head will do when it already covers every leaf: no new signature (nor
    # TSA request) per download.
    head = await ledger.head()
    if head is None or head.tree_size <= max(positions.values(), default=-1):
        head = await ledger.sign_head()
    if head is None:
        raise RuntimeError("the ledger could not sign a head")
    placed = await hub.ledger_store.placed_leaves([e["id"] for e in events], head.tree_size)
    leaves = []
    for row in placed:
        proof = await ledger.inclusion(row["ledger_index"], head.tree_size)
        leaves.append(
            {
                "index": row["ledger_index"],
                "package_id": str(row["package_id"]),
                "event": row["event"],
                "leaf": base64.b64encode(row["leaf"]).decode(),
                "audit_path": [h.hex() for h in proof],
            }
        )
    files: dict[str, bytes] = {"package.edxml": hub.blobs.read(package["digest"])}
    for status in statuses:
        files[f"statuses/{status['id']}.edxml"] = hub.blobs.read(status["digest"])
    signers = {head.key_id}
    for package_id in ids:
        receipt = await hub.receipts.issue(package_id)
        files[f"receipts/{package_id}.json"] = base64.b64decode(receipt["body"])
        files[f"receipts/{package_id}.p7s"] = base64.b64decode(receipt["signature"])
        signers.add(receipt["key_id"])
        for taken in await hub.delivery_receipts.for_package(package_id, _only(package, caller)):
            if taken["receipt"] is not None:
                name = f"delivery-receipts/{package_id}/{taken['recipient']}"
                files[f"{name}.json"] = base64.b64decode(taken["receipt"]["body"])
                files[f"{name}.p7s"] = base64.b64decode(taken["receipt"]["signature"])
                signers.add(taken["receipt"]["key_id"])
    for report in await hub.ledger_store.reports(ids):
        files[f"reports/{report['package_id']}.json"] = report["report"]
    files["ledger/leaves.json"] = json.dumps(
        {"tree_size": head.tree_size, "leaves": leaves}, indent=1
    ).encode()
    files["ledger/head.json"] = head.head
    files["ledger/head.p7s"] = head.signature
    files["certs/hub.pem"] = await _signer_chains(hub, signers)
    files |= await federation_members(hub, events)  # remote receipts, witnessed heads
    files["README.txt"] = README.encode()  # hashed too: the auditor reads it
    copies = await hub.packages.copies(package, caller)
    codes = [package["sender"], *(c for r in copies for c in (r["addressed_as"], r["recipient"]))]
    parties = await package_parties(hub.registry, codes, package["received_at"])
    files["parties.json"] = json.dumps(parties, indent=1, ensure_ascii=False).encode()
    index = {
        "v": 1,
        "type": "lienthong.evidence",
        "package_id": str(package["id"]),
        "status_packages": [str(s["id"]) for s in statuses],
        "tree_size": head.tree_size,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    files["evidence.json"] = json.dumps(index, indent=1).encode()
    # Compressing up to 50 MiB is no work for the event loop.
    return await asyncio.to_thread(_zip, files)


def _only(package: asyncpg.Record, caller: str) -> str | None:
    """Whose delivery receipts the caller sees: every recipient's for the sender, else its own."""
    return None if package["sender"] == caller else caller


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE, compress_type=zipfile.ZIP_STORED)
        bundle.writestr("META-INF/manifest.xml", _manifest(sorted(files)))
        for name, data in sorted(files.items()):
            bundle.writestr(name, data)
    return out.getvalue()
