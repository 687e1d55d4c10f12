"""Offline verification of evidence bundles: ``lienthong audit verify BUNDLE --trust ROOT.pem``.

Nothing here talks to the hub. :mod:`exchange.bundle` reads the zip without extracting anything
and refuses, before anything else is looked at, bundles of the wrong layout or shape (unsafe or
unlisted members, links, truncated archives, malformed index documents). What remains is checked
here, one verdict per item: a leaf or receipt of the wrong shape is a failed check, never a crash.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from exchange import merkle
from exchange.audit_delivery import check_delivery_receipts, delivery_receipt_members
from exchange.bundle import (
    Bundle,
    BundleError,
    ShapeError,
    loads,
    parse_head,
    read_bundle,
    want_hex64,
    want_int,
    want_list,
    want_mapping,
    want_object,
    want_str,
)
from exchange.evidence import MIMETYPE
from exchange.federation import evidence as federation_evidence
from exchange.federation.evidence_check import check_federation
from exchange.hubkeys import key_id
from signing import CmsCheck, verify_detached

__all__ = ["BundleError", "Check", "load_anchors", "verify_bundle"]

LEAF_KEYS = {"v", "event", "package", "digest", "organ", "at", "detail"}


@dataclass(frozen=True)
class Check:
    """One verdict line."""

    item: str
    ok: bool
    detail: str


def load_anchors(paths: list[Path]) -> list[asn1_x509.Certificate]:
    """Trust anchors from PEM or DER files (several certificates per PEM file allowed)."""
    anchors = []
    for path in paths:
        data = Path(path).read_bytes()
        if pem.detect(data):
            anchors += [asn1_x509.Certificate.load(der) for _, _, der in pem.unarmor(data, True)]
        else:
            anchors.append(asn1_x509.Certificate.load(data))
    if not anchors:
        raise BundleError("no trust anchor given")
    return anchors


async def _signed(data: bytes, sig: bytes | None, anchors) -> tuple[CmsCheck | None, str]:
    """The signature's verdict and a sentence: who signed (which key), when, or what is wrong."""
    if sig is None:
        return None, "no signature"
    try:
        result = await verify_detached(data, sig, anchors)
    except ValueError as exc:
        return None, str(exc)
    when = f", timestamped {result.timestamp.isoformat()}" if result.timestamp else ""
    who = f"signed by {result.signer} (key {key_id(result.signer_cert)}){when}"
    return result, f"{result.problem}; {who}" if result.problem else who


async def _signed_check(checks: list[Check], item: str, data: bytes, sig, anchors) -> bool:
    result, detail = await _signed(data, sig, anchors)
    ok = result is not None and result.ok
    checks.append(Check(item, ok, detail))
    return ok


def _leaf_content(leaf: bytes) -> dict:
    """A decoded leaf (exchange.events.canonical_leaf), checked field by field."""
    content = want_object(loads(leaf, "the leaf"), "the leaf", LEAF_KEYS)
    want_str(content["event"], "the leaf's event")
    want_hex64(content["digest"], "the leaf's digest")
    want_str(content["at"], "the leaf's time")
    for name in ("package", "organ"):
        if content[name] is not None:
            want_str(content[name], f"the leaf's {name}")
    detail = want_mapping(content["detail"], "the leaf's detail")
    if content["event"] in ("status", "recalled"):
        want_str(detail.get("status_package"), "the leaf's detail.status_package")
        want_hex64(detail.get("status_digest"), "the leaf's detail.status_digest")
        if detail.get("status_code") is not None:
            want_str(detail["status_code"], "the leaf's detail.status_code")
    return content


def _receipt_claims(body: bytes) -> tuple[str, str, int | None]:
    """(package id, digest, leaf index) from a receipt's signed JSON."""
    claims = want_mapping(loads(body, "the receipt"), "the receipt")
    ledger = want_mapping(claims.get("ledger"), "the receipt's ledger")
    index = ledger.get("leaf_index")
    return (
        want_str(claims.get("package_id"), "the receipt's package_id"),
        want_hex64(claims.get("digest"), "the receipt's digest"),
        None if index is None else want_int(index, "the receipt's leaf_index"),
    )


async def verify_bundle(
    path: Path, anchors: list[asn1_x509.Certificate], newer_head: Path | None = None
) -> list[Check]:
    """Check everything in a bundle; returns one :class:`Check` per item (raises BundleError
    only when the bundle cannot be examined at all)."""
    bundle = read_bundle(path)
    files = bundle.files
    checks: list[Check] = []
    if files.get("mimetype") != MIMETYPE.encode():
        checks.append(Check("layout", False, "missing or wrong mimetype member"))
    for name in bundle.manifest_missing:
        checks.append(Check(f"file {name}", False, "listed in the manifest but missing"))
    for name, digest in bundle.digests.items():
        data = files.get(name)
        if data is None or hashlib.sha256(data).hexdigest() != digest:
            checks.append(Check(f"file {name}", False, "missing or differs from evidence.json"))

    # 1. The signed tree head, and the key that signed it.
    head_json = files.get("ledger/head.json")
    if head_json is None:
        raise BundleError("the bundle has no ledger/head.json")
    head = parse_head(head_json, "ledger/head.json")
    result, detail = await _signed(head_json, files.get("ledger/head.p7s"), anchors)
    head_ok = result is not None and result.ok
    if result is not None and head.key is not None and head.key != key_id(result.signer_cert):
        head_ok, detail = False, f"the head names key {head.key}, but was {detail}"
    checks.append(Check("signed tree head", head_ok, detail))
    size, root = head.tree_size, head.root
    if not bundle.tree_size == bundle.leaves_tree_size == size:
        checks.append(
            Check(
                "tree size",
                False,
                f"evidence.json says {bundle.tree_size}, ledger/leaves.json "
                f"{bundle.leaves_tree_size}, the signed head {size}",
            )
        )

    # 2. Every leaf is in the tree the head commits to, and is a well-formed leaf.
    by_package: dict[str | None, list[dict]] = {}
    for entry in bundle.leaves:
        item = f"leaf {entry.index} ({entry.event})"
        try:
            merkle.verify_inclusion(entry.leaf, entry.index, size, entry.audit_path, root)
        except merkle.ProofError as exc:
            checks.append(Check(item, False, f"not proven in the signed tree: {exc}"))
            continue
        try:
            content = _leaf_content(entry.leaf)
        except ShapeError as exc:
            checks.append(Check(item, False, f"proven, but not a lienthong leaf: {exc}"))
            continue
        if (content["event"], content["package"]) != (entry.event, entry.package_id):
            checks.append(Check(item, False, "ledger/leaves.json describes another event"))
            continue
        checks.append(Check(item, head_ok, f"included in the tree of {size} leaves"))
        content["_index"] = entry.index
        by_package.setdefault(content["package"], []).append(content)
    await _check_subjects(checks, bundle, by_package, anchors)
    await check_delivery_receipts(checks, bundle, by_package, anchors, _signed_check, Check)
    _check_layout(checks, bundle, by_package)
    checks.extend(_parties(bundle))
    await _check_federation(checks, bundle, by_package, anchors)

    # 4. A newer head, obtained later from the hub: the log only grew.
    if newer_head is not None:
        checks.append(await _check_newer(Path(newer_head), size, root, anchors))
    return checks


_FIXED = frozenset(
    {
        "mimetype",
        "META-INF/manifest.xml",
        "evidence.json",
        "README.txt",
        "package.edxml",
        "ledger/leaves.json",
        "ledger/head.json",
        "ledger/head.p7s",
        "certs/hub.pem",
        "parties.json",  # the registry's names of the package's day: information, hashed
    }
)


def _parties(bundle: Bundle) -> list[Check]:
    """The codes of the package as the registry named them on its day, and today (from
    parties.json, hashed like every member; information for the reader, not proof)."""
    data = bundle.files.get("parties.json")
    if data is None:
        return []
    try:
        parties = want_mapping(loads(data, "parties.json"), "parties.json")
    except ShapeError as exc:
        return [Check("parties.json", False, str(exc))]
    found = []
    for code, entry in sorted(parties.items()):
        if not isinstance(entry, dict):
            return [Check("parties.json", False, f"the entry of {code} is not an object")]
        today = entry.get("today") if isinstance(entry.get("today"), dict) else {}
        now = ", ".join(today.get("successors") or []) or today.get("name") or "?"
        detail = (
            f"{entry.get('name', '?')} ({entry.get('level', '?')}) on {entry.get('as_of', '?')}; "
            f"today {now}"
        )
        found.append(Check(f"party {code}", True, detail))
    return found


def _check_layout(checks: list[Check], bundle: Bundle, by_package: dict) -> None:
    """Only the members a bundle is made of, about the packages it is about: a member listed
    in the (unsigned) index is not therefore evidence. A report must be the one whose digest
    the package's 'verified' leaf names."""
    ids = [bundle.package_id, *bundle.status_ids]
    allowed = set(_FIXED) | {f"statuses/{sid}.edxml" for sid in bundle.status_ids}
    for pid in ids:
        allowed |= {f"receipts/{pid}.json", f"receipts/{pid}.p7s", f"reports/{pid}.json"}
    allowed |= delivery_receipt_members(bundle)
    for name in sorted(bundle.files):
        if name not in allowed and not federation_evidence.allowed(name):
            checks.append(Check(f"file {name}", False, "not a member of an evidence bundle"))
    for pid in ids:
        data = bundle.files.get(f"reports/{pid}.json")
        if data is None:
            continue
        digest = hashlib.sha256(data).hexdigest()
        named = [
            leaf.get("detail", {}).get("report_digest")
            for leaf in by_package.get(pid, [])
            if leaf.get("event") == "verified" and isinstance(leaf.get("detail"), dict)
        ]
        ok = digest in named
        detail = (
            "the report the ledger's 'verified' leaf names"
            if ok
            else "no 'verified' leaf names this report"
        )
        checks.append(Check(f"report {pid}", ok, detail))


async def _check_subjects(checks: list[Check], bundle: Bundle, by_package, anchors) -> None:
    """3. The package and the statuses are the bytes the leaves and receipts speak of."""
    files = bundle.files
    subjects = [(bundle.package_id, "package.edxml")] + [
        (sid, f"statuses/{sid}.edxml") for sid in bundle.status_ids
    ]
    for pid, name in subjects:
        data = files.get(name)
        if data is None:
            checks.append(Check(name, False, "missing"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        mine = by_package.get(pid, [])
        wrong = [leaf["_index"] for leaf in mine if leaf["digest"] != digest]
        submitted = [leaf for leaf in mine if leaf["event"] == "submitted"]
        if not submitted or wrong:
            detail = "its digest does not match the ledger" + (
                f" (leaves {wrong})" if wrong else ""
            )
            checks.append(Check(name, False, detail if wrong else "no 'submitted' leaf"))
        else:
            checks.append(Check(name, True, f"sha256 {digest[:16]}… matches {len(mine)} leaves"))
        body = files.get(f"receipts/{pid}.json")
        if body is None:
            checks.append(Check(f"receipt {pid}", False, "missing"))
            continue
        signature = files.get(f"receipts/{pid}.p7s")
        if await _signed_check(checks, f"receipt {pid}", body, signature, anchors):
            try:
                claimed_id, claimed_digest, leaf_index = _receipt_claims(body)
            except ShapeError as exc:
                checks.append(Check(f"receipt {pid} claims", False, str(exc)))
                continue
            agrees = (
                claimed_id == pid
                and claimed_digest == digest
                and any(leaf["_index"] == leaf_index for leaf in submitted)
            )
            checks.append(
                Check(
                    f"receipt {pid} claims",
                    agrees,
                    "digest and leaf index agree with the package and the ledger"
                    if agrees
                    else "the receipt names other bytes or another leaf",
                )
            )
    for leaf in by_package.get(bundle.package_id, []):
        if leaf["event"] in ("status", "recalled"):
            detail = leaf["detail"]
            data = files.get(f"statuses/{detail['status_package']}.edxml")
            ok = data is not None and hashlib.sha256(data).hexdigest() == detail["status_digest"]
            checks.append(
                Check(
                    f"status {detail.get('status_code')} link",
                    ok,
                    "the status package in the bundle is the one the ledger names"
                    if ok
                    else "the linked status package is missing or differs",
                )
            )


async def _check_federation(checks: list[Check], bundle: Bundle, by_package, anchors) -> None:
    """Remote hubs' receipts and witnessed heads (see :mod:`exchange.federation.evidence`)."""
    data = bundle.files.get("package.edxml")
    if data is None:
        return

    async def verify(body: bytes, signature: bytes | None) -> tuple[bool, str]:
        result, detail = await _signed(body, signature, anchors)
        return result is not None and result.ok, detail

    for item, ok, detail in await check_federation(
        bundle.files,
        hashlib.sha256(data).hexdigest(),
        by_package.get(bundle.package_id, []),
        verify,
    ):
        checks.append(Check(item, ok, detail))


async def _check_newer(path: Path, size: int, root: bytes, anchors) -> Check:
    try:
        doc = want_mapping(loads(path.read_bytes(), path.name), path.name)
        body = want_str(doc.get("head"), f"{path.name}: head").encode()
        newer = parse_head(body, f"{path.name}: head")
        signature = base64.b64decode(want_str(doc.get("signature"), f"{path.name}: signature"))
        consistency = want_mapping(doc.get("consistency", {}), f"{path.name}: consistency")
        proof = [
            bytes.fromhex(want_hex64(h, f"{path.name}: consistency proof"))
            for h in want_list(consistency.get("proof", []), f"{path.name}: consistency proof")
        ]
        proof_from = consistency.get("from")
    except (OSError, ValueError) as exc:  # ShapeError and base64's binascii.Error among them
        return Check("newer head", False, f"unreadable ({exc})")
    result, detail = await _signed(body, signature, anchors)
    if result is None or not result.ok:
        return Check("newer head", False, detail)
    if newer.key is not None and newer.key != key_id(result.signer_cert):
        return Check("newer head", False, f"it names key {newer.key}, but was {detail}")
    if proof_from not in (None, size):
        return Check(
            "newer head",
            False,
            f"its consistency proof starts at {proof_from}, not at the bundle's tree size {size}",
        )
    try:
        merkle.verify_consistency(size, newer.tree_size, root, newer.root, proof)
    except merkle.ProofError as exc:
        return Check("newer head", False, f"not consistent with the bundle's head: {exc}")
    return Check(
        "newer head",
        True,
        f"the log grew from {size} to {newer.tree_size} leaves without rewriting ({detail})",
    )
