"""Reading an evidence bundle without trusting it (for :mod:`exchange.audit`).

The zip is read member by member, nothing is extracted to disk. Refused before anything is
verified: unsafe member names (path traversal), links and other special entries, encrypted or
oddly compressed members, too many or too large members, truncated archives, members that
neither ``META-INF/manifest.xml`` nor ``evidence.json`` lists (a forged ``statuses/x.edxml``
would otherwise sit in the bundle, unexamined, next to what was proven), and index documents
(``evidence.json``, ``ledger/leaves.json``, ``ledger/head.json``) that are not JSON of exactly
the expected shape. JSON nested too deeply to parse is refused, not a crash.
"""

from __future__ import annotations

import base64
import json
import stat
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lxml import etree

from exchange.evidence import MANIFEST_NS

__all__ = [
    "Bundle",
    "BundleError",
    "HeadDoc",
    "LeafEntry",
    "ShapeError",
    "loads",
    "parse_head",
    "read_bundle",
    "want_hex64",
    "want_int",
    "want_list",
    "want_mapping",
    "want_object",
    "want_str",
    "want_uuid",
]

MAX_MEMBERS = 10_000
MAX_TOTAL_BYTES = 2 * 1024**3
MAX_RATIO = 200  # a member that inflates more than this is refused (zip bomb)
CONTAINER = frozenset({"mimetype", "META-INF/manifest.xml"})
# Listed in the manifest, not necessarily hashed in evidence.json: bundles made before the hub
# hashed README.txt lack its digest; when evidence.json has one, it is checked like any other.
UNINDEXED = frozenset({"evidence.json", "README.txt"})
HEX64 = frozenset("0123456789abcdef")


class BundleError(ValueError):
    """The bundle cannot be examined at all (not a zip, truncated, unsafe members, a document
    of the wrong shape...)."""


class ShapeError(BundleError):
    """A JSON value is not of the expected shape; the message says where and what."""


# ----- JSON shapes -------------------------------------------------------------------------


def loads(data: bytes, where: str) -> object:
    """Parse JSON; anything that is not JSON, or nests too deeply to parse, is a ShapeError."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ShapeError(f"{where} nests too deeply") from None
    except ValueError:
        raise ShapeError(f"{where} is not JSON") from None


def _is_one(value: object) -> bool:
    """Version 1, and not ``true`` (which Python's ``==`` takes for 1)."""
    return type(value) is int and value == 1


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), "a number")


def want_object(
    value: object, where: str, keys: set[str], optional: frozenset = frozenset()
) -> dict:
    """A JSON object with exactly ``keys`` (and perhaps some of ``optional``)."""
    if not isinstance(value, dict):
        raise ShapeError(f"{where} must be a JSON object, not {_kind(value)}")
    if missing := keys - value.keys():
        raise ShapeError(f"{where} lacks {', '.join(sorted(missing))}")
    if extra := value.keys() - keys - optional:
        raise ShapeError(f"{where} has unexpected keys: {', '.join(sorted(extra)[:5])}")
    return value


def want_mapping(value: object, where: str) -> dict:
    """A JSON object with any keys."""
    if not isinstance(value, dict):
        raise ShapeError(f"{where} must be a JSON object, not {_kind(value)}")
    return value


def want_list(value: object, where: str) -> list:
    """A JSON array."""
    if not isinstance(value, list):
        raise ShapeError(f"{where} must be a list, not {_kind(value)}")
    return value


def want_str(value: object, where: str) -> str:
    """A JSON string."""
    if not isinstance(value, str):
        raise ShapeError(f"{where} must be a string, not {_kind(value)}")
    return value


def want_int(value: object, where: str, low: int = 0) -> int:
    """A JSON integer of at least ``low`` (booleans are not integers here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ShapeError(f"{where} must be an integer of at least {low}, not {_kind(value)}")
    return value


def want_hex64(value: object, where: str) -> str:
    """A SHA-256 as 64 lowercase hex digits."""
    if not (isinstance(value, str) and len(value) == 64 and set(value) <= HEX64):
        raise ShapeError(f"{where} must be 64 lowercase hex digits (SHA-256)")
    return value


def want_uuid(value: object, where: str) -> str:
    """A package id: a UUID in its canonical text form."""
    text = want_str(value, where)
    try:
        if str(uuid.UUID(text)) == text:
            return text
    except ValueError:
        pass
    raise ShapeError(f"{where} must be a package id (UUID)")


@dataclass(frozen=True)
class HeadDoc:
    """A signed tree head's JSON: size, root and the key id it names (None for old heads)."""

    tree_size: int
    root: bytes
    key: str | None


def parse_head(data: bytes, where: str) -> HeadDoc:
    """The tree head JSON the hub signs (exchange.ledger.head_bytes), checked field by field."""
    head = want_object(
        loads(data, where),
        where,
        {"v", "log", "tree_size", "root_hash", "timestamp"},
        frozenset({"key"}),
    )
    if not _is_one(head["v"]) or head["log"] != "lienthong":
        raise ShapeError(f"{where} is not a lienthong tree head (v 1)")
    want_str(head["timestamp"], f"{where}: timestamp")
    key = want_hex64(head["key"], f"{where}: key") if "key" in head else None
    return HeadDoc(
        want_int(head["tree_size"], f"{where}: tree_size"),
        bytes.fromhex(want_hex64(head["root_hash"], f"{where}: root_hash")),
        key,
    )


@dataclass(frozen=True)
class LeafEntry:
    """One entry of ``ledger/leaves.json``."""

    index: int
    package_id: str
    event: str
    leaf: bytes
    audit_path: list[bytes]


def _leaf_entry(value: object, where: str) -> LeafEntry:
    entry = want_object(value, where, {"index", "package_id", "event", "leaf", "audit_path"})
    try:
        leaf = base64.b64decode(want_str(entry["leaf"], f"{where}: leaf"), validate=True)
    except ValueError:
        raise ShapeError(f"{where}: leaf is not base64") from None
    return LeafEntry(
        want_int(entry["index"], f"{where}: index"),
        want_str(entry["package_id"], f"{where}: package_id"),
        want_str(entry["event"], f"{where}: event"),
        leaf,
        [
            bytes.fromhex(want_hex64(h, f"{where}: audit_path"))
            for h in want_list(entry["audit_path"], f"{where}: audit_path")
        ],
    )


# ----- the archive -------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A bundle whose layout and index documents have the expected shape (nothing verified)."""

    files: dict[str, bytes]
    package_id: str
    status_ids: list[str]
    digests: dict[str, str]  # evidence.json "files": member -> SHA-256 hex
    tree_size: int  # as evidence.json states it
    leaves_tree_size: int  # as ledger/leaves.json states it
    leaves: list[LeafEntry]
    manifest_missing: list[str]  # listed in the manifest, absent from the zip


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


def _check_member(info: zipfile.ZipInfo) -> None:
    name = info.filename
    if not _safe_name(name):
        raise BundleError(f"unsafe member name {name!r} (path traversal)")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise BundleError(f"member {name!r} is a symbolic link")
    if info.is_dir() or kind not in (0, stat.S_IFREG):
        raise BundleError(f"member {name!r} is not a regular file")
    if info.flag_bits & 0x1:
        raise BundleError(f"member {name!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise BundleError(f"member {name!r} uses an unsupported compression method")


def _members(path: Path) -> dict[str, bytes]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise BundleError(f"not a readable zip (truncated or corrupt): {exc}") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise BundleError(f"{len(infos)} members: more than {MAX_MEMBERS}")
        total = 0
        for info in infos:
            _check_member(info)
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
            return {info.filename: archive.read(info) for info in infos}
        except (
            zipfile.BadZipFile,
            EOFError,
            OSError,
            zlib.error,
            ValueError,
            NotImplementedError,
        ) as exc:
            raise BundleError(f"a member cannot be read (truncated or corrupt): {exc}") from None


def _manifest(data: bytes | None) -> set[str]:
    """The member names ``META-INF/manifest.xml`` lists (the container itself left out)."""
    where = "META-INF/manifest.xml"
    if data is None:
        raise BundleError(f"the bundle has no {where}")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise BundleError(f"{where} has a DOCTYPE (not allowed)")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise BundleError(f"{where} is not well-formed XML: {exc}") from None
    if root.tag != f"{{{MANIFEST_NS}}}manifest":
        raise BundleError(f"{where} is not an ODF/ASiC manifest")
    paths = [
        entry.get(f"{{{MANIFEST_NS}}}full-path")
        for entry in root.iter(f"{{{MANIFEST_NS}}}file-entry")
    ]
    if any(p is None for p in paths):
        raise BundleError(f"{where} has an entry without full-path")
    return {p for p in paths if p != "/"}


def read_bundle(path: Path) -> Bundle:
    """Open a bundle and check its layout and index documents; raises :class:`BundleError`."""
    files = _members(path)
    listed = _manifest(files.get("META-INF/manifest.xml"))
    if "evidence.json" not in files:
        raise BundleError("the bundle has no evidence.json")
    index = want_object(
        loads(files["evidence.json"], "evidence.json"),
        "evidence.json",
        {"v", "type", "package_id", "status_packages", "tree_size", "files"},
    )
    if not _is_one(index["v"]) or index["type"] != "lienthong.evidence":
        raise ShapeError("evidence.json is not a lienthong evidence index (v 1)")
    digests = want_mapping(index["files"], "evidence.json: files")
    for name, digest in digests.items():
        want_hex64(digest, f"evidence.json: files: {name}")
    for name in files:
        if name not in CONTAINER and name not in listed:
            raise BundleError(f"member {name!r} is not listed in META-INF/manifest.xml")
        if name not in CONTAINER | UNINDEXED and name not in digests:
            raise BundleError(f"member {name!r} is not listed in evidence.json")
    if unlisted := sorted(set(digests) - listed):
        raise BundleError(f"evidence.json lists {unlisted[0]!r}, which the manifest does not")
    if "ledger/leaves.json" not in files:
        raise BundleError("the bundle has no ledger/leaves.json")
    leaves_doc = want_object(
        loads(files["ledger/leaves.json"], "ledger/leaves.json"),
        "ledger/leaves.json",
        {"tree_size", "leaves"},
    )
    leaves = want_list(leaves_doc["leaves"], "ledger/leaves.json: leaves")
    return Bundle(
        files=files,
        package_id=want_uuid(index["package_id"], "evidence.json: package_id"),
        status_ids=[
            want_uuid(s, "evidence.json: status_packages")
            for s in want_list(index["status_packages"], "evidence.json: status_packages")
        ],
        digests=digests,
        tree_size=want_int(index["tree_size"], "evidence.json: tree_size"),
        leaves_tree_size=want_int(leaves_doc["tree_size"], "ledger/leaves.json: tree_size"),
        leaves=[_leaf_entry(e, f"ledger/leaves.json: leaf #{n}") for n, e in enumerate(leaves)],
        manifest_missing=sorted(listed - files.keys()),
    )
