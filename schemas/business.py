"""The ``Bussiness`` block of ``TraceHeaderList``: what a package does to earlier documents.

A package is a new document (``BussinessDocType`` 0), or it revokes (1), updates (2) or
replaces (3) documents sent before. The document concerned is named by ``Bussiness/DocumentId``
(an update, a revocation), by ``ReplacementInfoList/ReplacementInfo/DocumentId`` (a replacement,
possibly several, each with the organs whose copy it replaces) or, on the revocations seen in
the field, by ``ResponseFor/DocumentId``. Organ ids here are normalised like every other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from lxml import etree

from schemas.organ import OrganId, OrganIdError
from schemas.tree import child_text, q

__all__ = [
    "Business",
    "BusinessDocType",
    "BusinessDocumentInfo",
    "Receiver",
    "Replacement",
    "StaffInfo",
    "read_business",
]


class BusinessDocType(IntEnum):
    """``BussinessDocType``: what a document package does."""

    NEW = 0
    REVOKE = 1
    UPDATE = 2
    REPLACE = 3


@dataclass(frozen=True)
class StaffInfo:
    """``StaffInfo``: the clerk who handled the package."""

    department: str | None = None
    staff: str | None = None
    email: str | None = None
    mobile: str | None = None


@dataclass(frozen=True)
class Receiver:
    """``ReceiverList/Receiver``: an organ removed from (0) or added to (1) the recipients."""

    organ_id: str
    receiver_type: int


@dataclass(frozen=True)
class BusinessDocumentInfo:
    """``BussinessDocumentInfo``: what an update changes (flags 0/1, and the receivers)."""

    document_info: int | None = None
    document_receiver: int | None = None
    receivers: tuple[Receiver, ...] = ()


@dataclass(frozen=True)
class Replacement:
    """``ReplacementInfo``: a document replaced, at these organs (all recipients if none)."""

    document_id: str
    organ_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Business:
    """The whole ``Bussiness`` block."""

    doc_type: BusinessDocType = BusinessDocType.NEW
    reason: str | None = None
    document_id: str | None = None
    paper: int | None = None
    staff: StaffInfo | None = None
    document_info: BusinessDocumentInfo | None = None
    replacements: tuple[Replacement, ...] = ()


def _flag(parent: etree._Element | None, name: str) -> int | None:
    text = child_text(parent, name)
    return None if text is None else int(text)


def _organ(element: etree._Element, field: str) -> str:
    try:
        return str(OrganId.parse(str(element.xpath("string()")).strip(), field=field))
    except OrganIdError as exc:
        exc.line = element.sourceline
        raise


def read_business(element: etree._Element | None) -> Business:
    """The model of a ``Bussiness`` element validated by the XSD (absent: a new document)."""
    if element is None:
        return Business()
    staff = element.find(q("StaffInfo"))
    info = element.find(q("BussinessDocumentInfo"))
    receivers = [] if info is None else info.findall(f"{q('ReceiverList')}/{q('Receiver')}")
    replaced = element.findall(f"{q('ReplacementInfoList')}/{q('ReplacementInfo')}")
    return Business(
        doc_type=BusinessDocType(int(child_text(element, "BussinessDocType") or 0)),
        reason=child_text(element, "BussinessDocReason"),
        document_id=child_text(element, "DocumentId"),
        paper=_flag(element, "Paper"),
        staff=None
        if staff is None
        else StaffInfo(
            child_text(staff, "Department"),
            child_text(staff, "Staff"),
            child_text(staff, "Email"),
            child_text(staff, "Mobile"),
        ),
        document_info=None
        if info is None
        else BusinessDocumentInfo(
            _flag(info, "DocumentInfo"),
            _flag(info, "DocumentReceiver"),
            tuple(
                Receiver(
                    _organ(r.find(q("OrganId")), "Receiver/OrganId"),
                    int(child_text(r, "ReceiverType") or 0),
                )
                for r in receivers
            ),
        ),
        replacements=tuple(
            Replacement(
                child_text(r, "DocumentId") or "",
                tuple(
                    _organ(o, "ReplacementInfo/OrganIdList/OrganId")
                    for o in r.findall(f"{q('OrganIdList')}/{q('OrganId')}")
                ),
            )
            for r in replaced
        ),
    )
