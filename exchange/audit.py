"""Offline verification of evidence bundles: ``lienthong audit verify BUNDLE --trust ROOT.pem``.

Nothing here talks to the hub. The bundle is read member by member from the zip without
extracting anything to disk; member names with path tricks, oversized or too many members, and
truncated archives are refused before anything else is looked at.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from exchange import merkle
from exchange.evidence import MIMETYPE
from exchange.hubkeys import key_id
from signing.cms import verify_detached

__all__ = ["BundleError", "Check", "load_anchors", "verify_bundle"]

MAX_MEMBERS = 10_000
MAX_TOTAL_BYTES = 2 * 1024**3
MAX_RATIO = 200  # a member that inflates more than this is refused (zip bomb)


class BundleError(ValueError):
    """The bundle cannot be examined at all (not a zip, truncated, unsafe member names...)."""


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


def _safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    return (
        bool(name)
        and "\\" not in name
        and "\x00" not in name
        and not path.is_absolute()
        and ".." not in path.parts
        and not (len(name) > 1 and name[1] == ":")
    )


def _open(path: Path) -> dict[str, bytes]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"not a readable zip (truncated or corrupt): {exc}") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise BundleError(f"{len(infos)} members: more than {MAX_MEMBERS}")
        total = 0
        for info in infos:
            if not _safe_name(info.filename):
                raise BundleError(f"unsafe member name {info.filename!r} (path traversal)")
            total += info.file_size
            if (
                info.file_size > MAX_RATIO * max(info.compress_size, 1024)
                or total > MAX_TOTAL_BYTES
            ):
                raise BundleError(f"member {info.filename!r} inflates too much (zip bomb?)")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise BundleError("the zip holds two members with the same name")
        try:
            return {info.filename: archive.read(info) for info in infos if not info.is_dir()}
        except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile) as exc:
            raise BundleError(f"a member cannot be read (truncated or corrupt): {exc}") from None


def _json(files: dict[str, bytes], name: str) -> dict:
    if name not in files:
        raise BundleError(f"the bundle has no {name}")
    try:
        return json.loads(files[name])
    except ValueError:
        raise BundleError(f"{name} is not JSON") from None


async def _signed(
    checks: list[Check],
    item: str,
    data: bytes,
    sig: bytes | None,
    anchors,
    named_key: str | None = None,
) -> bool:
    if sig is None:
        checks.append(Check(item, False, "no signature"))
        return False
    try:
        result = await verify_detached(data, sig, anchors)
    except ValueError as exc:
        checks.append(Check(item, False, str(exc)))
        return False
    when = f", timestamped {result.timestamp.isoformat()}" if result.timestamp else ""
    who = f"signed by {result.signer} (key {key_id(result.signer_cert)}){when}"
    ok = result.ok
    if ok and named_key is not None and named_key != key_id(result.signer_cert):
        ok, who = False, f"the head names key {named_key}, but was {who}"
    checks.append(Check(item, ok, f"{result.problem}; {who}" if result.problem else who))
    return ok


async def verify_bundle(
    path: Path, anchors: list[asn1_x509.Certificate], newer_head: Path | None = None
) -> list[Check]:
    """Check everything in a bundle; returns one :class:`Check` per item (raises BundleError
    only when the bundle cannot be examined at all)."""
    files = _open(path)
    checks: list[Check] = []
    if files.get("mimetype") != MIMETYPE.encode():
        checks.append(Check("layout", False, "missing or wrong mimetype member"))
    index = _json(files, "evidence.json")
    for name, digest in index.get("files", {}).items():
        data = files.get(name)
        if data is None or hashlib.sha256(data).hexdigest() != digest:
            checks.append(Check(f"file {name}", False, "missing or differs from evidence.json"))
    package_id = index.get("package_id")
    status_ids = index.get("status_packages", [])

    # 1. The signed tree head.
    head_bytes = files.get("ledger/head.json", b"")
    try:
        head = json.loads(head_bytes)
        size, root = int(head["tree_size"]), bytes.fromhex(head["root_hash"])
    except (ValueError, KeyError, TypeError):
        raise BundleError("ledger/head.json is not a tree head") from None
    head_ok = await _signed(
        checks,
        "signed tree head",
        head_bytes,
        files.get("ledger/head.p7s"),
        anchors,
        head.get("key"),
    )

    # 2. Every leaf is in the tree the head commits to.
    leaves_doc = _json(files, "ledger/leaves.json")
    by_package: dict[str, list[dict]] = {}
    for entry in leaves_doc.get("leaves", []):
        item = f"leaf {entry.get('index')} ({entry.get('event')})"
        try:
            leaf = base64.b64decode(entry["leaf"], validate=True)
            merkle.verify_inclusion(
                leaf,
                int(entry["index"]),
                size,
                [bytes.fromhex(h) for h in entry["audit_path"]],
                root,
            )
            content = json.loads(leaf)
        except (merkle.ProofError, ValueError, KeyError, TypeError) as exc:
            checks.append(Check(item, False, f"not proven in the signed tree: {exc}"))
            continue
        checks.append(Check(item, head_ok, f"included in the tree of {size} leaves"))
        content["_index"] = int(entry["index"])
        by_package.setdefault(content.get("package"), []).append(content)

    # 3. The package and the statuses are the bytes the leaves and receipts speak of.
    subjects = [(package_id, "package.edxml")] + [
        (sid, f"statuses/{sid}.edxml") for sid in status_ids
    ]
    for pid, name in subjects:
        data = files.get(name)
        if data is None:
            checks.append(Check(name, False, "missing"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        mine = by_package.get(pid, [])
        wrong = [leaf["_index"] for leaf in mine if leaf.get("digest") != digest]
        submitted = [leaf for leaf in mine if leaf.get("event") == "submitted"]
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
        if await _signed(checks, f"receipt {pid}", body, files.get(f"receipts/{pid}.p7s"), anchors):
            claims = json.loads(body)
            leaf_index = claims.get("ledger", {}).get("leaf_index")
            agrees = claims.get("digest") == digest and any(
                leaf["_index"] == leaf_index for leaf in submitted
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
    for leaf in by_package.get(package_id, []):
        if leaf.get("event") in ("status", "recalled"):
            sid = leaf.get("detail", {}).get("status_package")
            data = files.get(f"statuses/{sid}.edxml")
            ok = data is not None and hashlib.sha256(data).hexdigest() == leaf["detail"].get(
                "status_digest"
            )
            checks.append(
                Check(
                    f"status {leaf['detail'].get('status_code')} link",
                    ok,
                    "the status package in the bundle is the one the ledger names"
                    if ok
                    else "the linked status package is missing or differs",
                )
            )

    # 4. A newer head, obtained later from the hub: the log only grew.
    if newer_head is not None:
        checks.append(await _check_newer(Path(newer_head), size, root, anchors))
    return checks


async def _check_newer(path: Path, size: int, root: bytes, anchors) -> Check:
    try:
        doc = json.loads(path.read_text())
        body = doc["head"].encode()
        newer = json.loads(body)
        signature = base64.b64decode(doc["signature"])
        proof = [bytes.fromhex(h) for h in doc.get("consistency", {}).get("proof", [])]
        proof_from = doc.get("consistency", {}).get("from")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Check("newer head", False, f"unreadable ({exc})")
    checks: list[Check] = []
    if not await _signed(checks, "newer head", body, signature, anchors):
        return checks[0]
    if proof_from not in (None, size):
        return Check(
            "newer head",
            False,
            f"its consistency proof starts at {proof_from}, not at the bundle's tree size {size}",
        )
    try:
        merkle.verify_consistency(
            size, int(newer["tree_size"]), root, bytes.fromhex(newer["root_hash"]), proof
        )
    except (merkle.ProofError, ValueError, KeyError) as exc:
        return Check("newer head", False, f"not consistent with the bundle's head: {exc}")
    return Check(
        "newer head",
        True,
        f"the log grew from {size} to {newer['tree_size']} leaves without rewriting",
    )
