"""The typed, read-only model of a package, and the parsed package (tree + model) handed on.

The model is a view: the bytes stay what they were, nothing here re-serialises them. A
:class:`ParsedPackage` keeps the tree it was made from, so that whoever comes next (signature
verification, attachment checks) works on the same parse instead of reading the bytes again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from schemas.business import Business, BusinessDocType, read_business
from schemas.encoded import decode_content
from schemas.organ import OrganId, OrganIdError
from schemas.reader import DSIG_NS
from schemas.tree import attachment_elements, child_text, manifest_references, q

__all__ = [
    "Attachment",
    "Package",
    "ParsedPackage",
    "Party",
    "ResponseFor",
    "Trace",
    "package_model",
]


@dataclass(frozen=True)
class Party:
    """A sender or recipient (``From``/``To``); ``organ_id`` is normalised."""

    organ_id: str
    raw_organ_id: str
    name: str | None = None
    organization_in_charge: str | None = None
    address: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None

    @classmethod
    def of(cls, organ_id: str, name: str | None = None, **details: str | None) -> Party:
        """A party from a raw organ id (normalised here; raises ``organ_id.invalid``)."""
        return cls(str(OrganId.parse(organ_id)), organ_id, name, **details)


@dataclass(frozen=True)
class ResponseFor:
    """The document a package answers (``ResponseFor``)."""

    organ_id: str
    code: str | None = None
    document_id: str | None = None
    promulgation_date: str | None = None


@dataclass(frozen=True)
class Attachment:
    """An attachment; ``size`` and ``sha256`` (hex) are of the decoded bytes."""

    content_id: str
    name: str | None
    content_type: str | None
    description: str | None
    size: int
    sha256: str


@dataclass(frozen=True)
class Trace:
    """One hop of ``TraceHeaderList``."""

    organ_id: str
    timestamp: str


@dataclass(frozen=True)
class Package:
    """A read-only view of a parsed package.

    For a status package, ``recipients`` is the ``ResponseFor`` organ (organ id only) and
    ``document_id`` is the id of the document the status is about (``ResponseFor/DocumentId``).
    """

    kind: Literal["edoc", "status"]
    sender: Party
    recipients: tuple[Party, ...]
    document_id: str | None = None
    code_number: str | None = None
    code_notation: str | None = None
    subject: str | None = None
    promulgation_date: str | None = None
    business_doc_type: int = 0
    business_doc_reason: str | None = None
    business_document_id: str | None = None
    status_code: str | None = None
    status_description: str | None = None
    status_timestamp: str | None = None
    response_for: tuple[ResponseFor, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    priority: int | None = None
    trace: tuple[Trace, ...] = ()
    has_signature: bool = False
    signature_namespace: str | None = None
    business: Business = Business()

    @property
    def concerns(self) -> tuple[str, ...]:
        """The DocumentIds of the earlier documents this package revokes, updates or replaces
        (none for a new document or a status), each once, in the order written."""
        kind = self.business.doc_type
        if self.kind != "edoc" or kind is BusinessDocType.NEW:
            return ()
        named = [r.document_id for r in self.business.replacements]
        if not named and self.business.document_id:
            named = [self.business.document_id]
        if not named and kind is BusinessDocType.REVOKE:
            named = [r.document_id for r in self.response_for if r.document_id]
        return tuple(dict.fromkeys(named))


def _organ_id(parent: etree._Element, field: str) -> str:
    """The normalised OrganId child of ``parent``; ``organ_id.invalid`` names field and line."""
    try:
        return str(OrganId.parse(child_text(parent, "OrganId") or "", field=f"{field}/OrganId"))
    except OrganIdError as exc:
        exc.line = parent.find(q("OrganId")).sourceline
        raise


def _party(element: etree._Element, field: str) -> Party:
    raw = child_text(element, "OrganId") or ""
    return Party(
        organ_id=_organ_id(element, field),
        raw_organ_id=raw,
        name=child_text(element, "OrganName"),
        organization_in_charge=child_text(element, "OrganizationInCharge"),
        address=child_text(element, "OrganAdd"),
        email=child_text(element, "Email"),
        telephone=child_text(element, "Telephone"),
        fax=child_text(element, "Fax"),
        website=child_text(element, "Website"),
    )


def _response_for(element: etree._Element) -> ResponseFor:
    return ResponseFor(
        organ_id=_organ_id(element, "ResponseFor"),
        code=child_text(element, "Code"),
        document_id=child_text(element, "DocumentId"),
        promulgation_date=child_text(element, "PromulgationDate"),
    )


def _digest(chunks: Iterator[bytes]) -> tuple[int, str]:
    size, sha = 0, hashlib.sha256()
    for chunk in chunks:
        size += len(chunk)
        sha.update(chunk)
    return size, sha.hexdigest()


def _attachment(element: etree._Element, references: dict, digest: tuple[int, str]) -> Attachment:
    cid = child_text(element, "ContentId") or ""
    reference = references.get(cid)

    def pick(name: str) -> str | None:
        return child_text(element, name) or child_text(reference, name)

    return Attachment(
        cid, pick("AttachmentName"), pick("ContentType"), pick("Description"), *digest
    )


def package_model(root: etree._Element, kind: str) -> Package:
    """The read-only model of a validated tree (:func:`schemas.rules.validate` said ``kind``);
    attachments are decoded once here, for their sizes and digests."""
    attachments = [(a, _digest(decode_content(a))) for a in attachment_elements(root)]
    header = root.find(f"{q('edXMLEnvelope')}/{q('edXMLHeader')}")
    message = header.find(q("MessageHeader"))
    signature = header.find(q("Signature"))
    if signature is None:
        signature = header.find(f"{{{DSIG_NS}}}Signature")
    trace_list = header.find(q("TraceHeaderList"))
    hops = [] if trace_list is None else trace_list.findall(q("TraceHeader"))
    business = None if trace_list is None else trace_list.find(q("Bussiness"))
    responses = tuple(_response_for(e) for e in message.findall(q("ResponseFor")))
    code = message.find(q("Code"))
    other = message.find(q("OtherInfo"))
    priority = child_text(other, "Priority")
    references = manifest_references(root)
    common = {
        "sender": _party(message.find(q("From")), "From"),
        "response_for": responses,
        "attachments": tuple(_attachment(e, references, d) for e, d in attachments),
        "trace": tuple(
            Trace(_organ_id(hop, "TraceHeader"), child_text(hop, "Timestamp") or "") for hop in hops
        ),
        "has_signature": signature is not None,
        "signature_namespace": None if signature is None else etree.QName(signature).namespace,
        "business_doc_type": int(child_text(business, "BussinessDocType") or 0),
        "business_doc_reason": child_text(business, "BussinessDocReason"),
        "business_document_id": child_text(business, "DocumentId"),
        "business": read_business(business),
    }
    if kind == "status":
        target = responses[0]
        return Package(
            kind="status",
            recipients=(
                Party(target.organ_id, child_text(message.find(q("ResponseFor")), "OrganId")),
            ),
            document_id=target.document_id,
            status_code=child_text(message, "StatusCode"),
            status_description=child_text(message, "Description"),
            status_timestamp=child_text(message, "Timestamp"),
            **common,
        )
    recipients = tuple(
        _party(element, f"To[{index}]")
        for index, element in enumerate(message.findall(q("To")), start=1)
    )
    return Package(
        kind="edoc",
        recipients=recipients,
        document_id=child_text(message, "DocumentId"),
        code_number=child_text(code, "CodeNumber"),
        code_notation=child_text(code, "CodeNotation"),
        subject=child_text(message, "Subject"),
        promulgation_date=child_text(message.find(q("PromulgationInfo")), "PromulgationDate"),
        priority=None if priority is None else int(priority),
        **common,
    )


@dataclass(frozen=True)
class ParsedPackage:
    """A package read once: its tree (lxml, stays in the process that parsed it) and its model
    (picklable). ``root`` must not be modified."""

    root: etree._Element
    package: Package

    def attachments(self) -> Iterator[tuple[Attachment, bytes]]:
        """Each attachment's model and decoded bytes, from the tree (no second parse)."""
        for model, element in zip(
            self.package.attachments, attachment_elements(self.root), strict=True
        ):
            yield model, b"".join(decode_content(element))
