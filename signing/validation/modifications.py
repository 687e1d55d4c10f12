"""What a signature covers and what changed after it: the ``/ByteRange`` check and pyHanko's
DocMDP difference analysis, turned into report findings.

A signature must cover its whole revision; later revisions may only add what the PDF rules (and
the certification level, DocMDP ``P``) allow. Anything else, such as page content, annotations,
swapped objects (shadow attacks), fails the format check with the changes listed, as the format
checking block of EU DSS does. Changes the PDF rules permit but the hub does not (a
non-signature form field filled after signing) are reported as a policy finding.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import DiffResult, ModificationLevel, SuspiciousModification
from pyhanko.sign.validation import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from signing.validation.report import Change, ModificationInfo, clip

__all__ = [
    "byte_range_problem",
    "docmdp_for",
    "is_certification",
    "modification_info",
]

_MAX_CHANGES = 200
_HEX = re.compile(rb"^[0-9A-Fa-f\s]*$")


def byte_range_problem(
    data: bytes, sig_object: generic.DictionaryObject, contents: bytes
) -> tuple[list[int], str | None]:
    """Check ``/ByteRange`` shape and that its gap is exactly the ``/Contents`` string."""
    try:
        raw = sig_object.raw_get("/ByteRange")
        br = [int(x) for x in raw]
    except (KeyError, TypeError, ValueError):
        return [], "the signature has no readable /ByteRange"
    if len(br) != 4:
        return br, f"/ByteRange has {len(br)} numbers instead of 4"
    start1, len1, start2, len2 = br
    if min(br) < 0:
        return br, "/ByteRange holds a negative number"
    if start1 != 0:
        return br, "/ByteRange does not start at the beginning of the file"
    if len1 == 0 or len2 == 0:
        return br, "/ByteRange covers nothing"
    if start2 < len1:
        return br, "/ByteRange ranges overlap"
    if start2 + len2 > len(data):
        return br, "/ByteRange reaches past the end of the file"
    gap = data[len1:start2]
    if len(gap) < 2 or gap[:1] != b"<" or gap[-1:] != b">" or not _HEX.match(gap[1:-1]):
        return br, "the /ByteRange gap is not a hex string: the signed ranges were moved"
    hexdigits = re.sub(rb"\s", b"", gap[1:-1])
    try:
        in_gap = bytes.fromhex(hexdigits.decode("ascii"))
    except ValueError:
        return br, "the /ByteRange gap is not a hex string"
    if in_gap.rstrip(b"\x00") != contents.rstrip(b"\x00"):
        return br, "the /ByteRange gap does not hold this signature's /Contents"
    return br, None


def _object_type(obj: Any) -> str:
    if isinstance(obj, generic.StreamObject):
        kind = obj.get("/Type") or obj.get("/Subtype")
        return f"stream {kind}" if kind else "stream"
    if isinstance(obj, generic.DictionaryObject):
        kind = obj.get("/Type")
        if kind == "/Annot" or (kind is None and "/Subtype" in obj and "/Rect" in obj):
            return f"/Annot {obj.get('/Subtype', '')}".strip()
        if kind is None and "/FT" in obj:
            return f"field {obj.get('/FT')} {obj.get('/T', '')}".strip()
        return str(kind) if kind else "dictionary"
    return type(obj).__name__


def _changes_after(reader: PdfFileReader, signed_revision: int) -> list[Change]:
    """Objects added, updated or freed in the revisions after ``signed_revision``."""
    changes: list[Change] = []
    xrefs = reader.xrefs
    for rev in range(signed_revision + 1, xrefs.total_revisions):
        try:
            refs = sorted(xrefs.explicit_refs_in_revision(rev), key=lambda r: r.idnum)
            freed = sorted(xrefs.refs_freed_in_revision(rev), key=lambda r: r.idnum)
            resolver = reader.get_historical_resolver(rev)
        except Exception:  # noqa: BLE001 - a broken xref is reported, not raised
            changes.append(Change(rev, "?", "unreadable revision", "updated"))
            continue
        for ref in refs:
            try:
                obj = resolver(ref)
                kind = _object_type(obj)
            except Exception:  # noqa: BLE001
                kind = "unreadable"
            if kind == "stream /XRef":
                continue  # the revision's own cross-reference stream
            try:
                action = "added" if xrefs.get_introducing_revision(ref) == rev else "updated"
            except Exception:  # noqa: BLE001
                action = "updated"
            changes.append(Change(rev, f"{ref.idnum} {ref.generation}", kind, action))
        for ref in freed:
            changes.append(Change(rev, f"{ref.idnum} {ref.generation}", "-", "freed"))
        if len(changes) >= _MAX_CHANGES:
            break
    return changes[:_MAX_CHANGES]


def _describe_changes(changes: Sequence[Change], limit: int = 6) -> str:
    """A short human summary of what later revisions did."""
    parts = [f"{c.action} {c.type} {c.object} (revision {c.revision})" for c in changes]
    text = "; ".join(parts[:limit])
    if len(parts) > limit:
        text += f"; and {len(parts) - limit} more"
    return text


def _covered_revision(emb: EmbeddedPdfSignature) -> int | None:
    """The last revision whose bytes lie entirely inside the signed ranges, if any."""
    try:
        end = int(emb.byte_range[2]) + int(emb.byte_range[3])
        xrefs = emb.reader.xrefs
        inside = [
            rev
            for rev in range(xrefs.total_revisions)
            if xrefs.get_xref_container_info(rev).end_location <= end
        ]
    except Exception:  # noqa: BLE001
        return None
    return max(inside) if inside else None


def modification_info(
    emb: EmbeddedPdfSignature,
    signature_fields: set[str],
    docmdp: int | None,
) -> tuple[ModificationInfo, str | None, str | None]:
    """Modification analysis; returns (info, failure message, hub-policy message)."""
    coverage = emb.coverage
    diff = emb.diff_result
    findings: list[str] = []
    changed: list[str] = []
    level: ModificationLevel | None = None
    permitted: bool | None = None
    failure = policy = None
    base_revision: int | None = emb.signed_revision
    if coverage is not None and coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        base_revision = _covered_revision(emb)
        permitted = False
        failure = (
            f"the signature does not cover its revision (coverage {coverage.name}): "
            "signed bytes were moved or the signature dictionary was redefined later"
        )
        if base_revision is not None and base_revision != emb.signed_revision:
            failure += (
                f"; the signed bytes end with revision {base_revision}, the signature "
                f"object belongs to revision {emb.signed_revision}"
            )
        findings.append(failure)
    try:
        if coverage == SignatureCoverageLevel.ENTIRE_FILE:
            changes = []
        else:
            start = emb.signed_revision if base_revision is None else base_revision
            changes = _changes_after(emb.reader, start)
    except Exception:  # noqa: BLE001
        changes = []
    if isinstance(diff, SuspiciousModification):
        level = ModificationLevel.OTHER
        permitted = False
        if failure is None:
            detail = _describe_changes(changes)
            failure = (
                "the document was changed after signing in a way the signature does not permit"
            )
            failure += f": {detail}" if detail else ""
            findings.append(failure)
            findings.append(f"difference analysis (pyHanko): {clip(diff, 600)}")
    elif isinstance(diff, DiffResult):
        level = diff.modification_level
        changed = sorted(diff.changed_form_fields)
        if permitted is None:
            permitted = not (
                level == ModificationLevel.OTHER or (docmdp is not None and level.value > docmdp)
            )
        if level == ModificationLevel.OTHER or (docmdp is not None and level.value > docmdp):
            msg = f"changes after signing exceed what the signature permits ({level.name})"
            findings.append(msg)
            failure = failure or msg
        others = [f for f in changed if f not in signature_fields]
        if others and failure is None:
            policy = (
                "form field(s) filled after signing: "
                + ", ".join(others)
                + " (allowed by the PDF rules, not by the lienthong policy)"
            )
            findings.append(policy)
        elif level > ModificationLevel.NONE and failure is None:
            findings.append(
                f"later revisions only add signatures, timestamps or validation data ({level.name})"
            )
    info = ModificationInfo(
        level=level.name if level is not None else None,
        permitted=permitted,
        docmdp=docmdp,
        changed_form_fields=changed,
        findings=findings,
        changes=changes,
    )
    return info, failure, policy


def docmdp_for(emb: EmbeddedPdfSignature, certification: EmbeddedPdfSignature | None) -> int | None:
    """The DocMDP level ``P`` that binds ``emb``: its own, or an earlier certification's."""
    level = emb.docmdp_level
    if (
        level is None
        and certification is not None
        and certification is not emb
        and certification.signed_revision <= emb.signed_revision
    ):
        level = certification.docmdp_level
    return int(level.value) if level is not None else None


def is_certification(reader: PdfFileReader, emb: EmbeddedPdfSignature) -> bool:
    """Whether ``emb`` is the document's certification signature (``/Perms /DocMDP``)."""
    try:
        perms = reader.root["/Perms"]
        ref = perms.raw_get("/DocMDP")
        target = emb.sig_field.raw_get("/V")
        return (
            isinstance(ref, generic.IndirectObject)
            and isinstance(target, generic.IndirectObject)
            and ref.reference == target.reference
        )
    except (KeyError, AttributeError, TypeError):
        return emb.docmdp_level is not None and "/Reference" in emb.sig_object
