"""The delivery receipts in an evidence bundle, checked offline (part of ``audit verify``).

Each ``delivery-receipts/<package id>/<organ id>.json`` must be signed by a trusted hub key
(its ``.p7s``), name that package and recipient, the SHA-256 of the package's bytes in the
bundle, and the ledger position of an 'acknowledged' leaf of that recipient for that package,
proven in the bundle's signed tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from exchange.bundle import Bundle, ShapeError, loads, want_hex64, want_int, want_mapping, want_str

__all__ = ["check_delivery_receipts", "delivery_receipt_members"]

PREFIX = "delivery-receipts/"
SignedCheck = Callable[[list, str, bytes, bytes | None, list], Awaitable[bool]]


def _receipts(bundle: Bundle) -> list[tuple[str, str, str]]:
    """(package id, organ id, member name) of every delivery receipt about the bundle's
    packages; anything else under the folder is left to the layout check."""
    ids = {bundle.package_id, *bundle.status_ids}
    found = []
    for name in sorted(bundle.files):
        parts = name.removeprefix(PREFIX).split("/")
        if name.startswith(PREFIX) and len(parts) == 2 and name.endswith(".json"):
            pid, organ = parts[0], parts[1].removesuffix(".json")
            if pid in ids and organ:
                found.append((pid, organ, name))
    return found


def delivery_receipt_members(bundle: Bundle) -> set[str]:
    """The members delivery receipts may have in this bundle."""
    return {n for _, _, n in _receipts(bundle)} | {
        n.removesuffix(".json") + ".p7s" for _, _, n in _receipts(bundle)
    }


def _claims(body: bytes) -> dict:
    claims = want_mapping(loads(body, "the delivery receipt"), "the delivery receipt")
    if claims.get("type") != "lienthong.delivery-receipt":
        raise ShapeError("not a lienthong delivery receipt")
    ledger = want_mapping(claims.get("ledger"), "the delivery receipt's ledger")
    return {
        "package_id": want_str(claims.get("package_id"), "the delivery receipt's package_id"),
        "recipient": want_str(claims.get("recipient"), "the delivery receipt's recipient"),
        "digest": want_hex64(claims.get("digest"), "the delivery receipt's digest"),
        "leaf_index": want_int(ledger.get("leaf_index"), "the delivery receipt's leaf_index"),
    }


async def check_delivery_receipts(
    checks: list,
    bundle: Bundle,
    by_package: dict,
    anchors: list,
    signed_check: SignedCheck,
    make_check: Callable[[str, bool, str], object],
) -> None:
    """Append one signature check and one claims check per delivery receipt."""
    files = bundle.files
    for pid, organ, name in _receipts(bundle):
        item = f"delivery receipt {pid} {organ}"
        body = files[name]
        signature = files.get(name.removesuffix(".json") + ".p7s")
        if not await signed_check(checks, item, body, signature, anchors):
            continue
        try:
            claims = _claims(body)
        except ShapeError as exc:
            checks.append(make_check(f"{item} claims", False, str(exc)))
            continue
        subject = files.get(
            "package.edxml" if pid == bundle.package_id else f"statuses/{pid}.edxml"
        )
        digest = hashlib.sha256(subject).hexdigest() if subject is not None else None
        leaf = any(
            leaf["_index"] == claims["leaf_index"]
            and leaf["event"] == "acknowledged"
            and leaf["organ"] == organ
            for leaf in by_package.get(pid, [])
        )
        agrees = (
            claims["package_id"] == pid
            and claims["recipient"] == organ
            and claims["digest"] == digest
            and leaf
        )
        checks.append(
            make_check(
                f"{item} claims",
                agrees,
                "digest, recipient and 'acknowledged' leaf agree with the bundle"
                if agrees
                else "the receipt names other bytes, another recipient or no proven leaf",
            )
        )
