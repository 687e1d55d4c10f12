"""Build edXML packages (QCVN 102:2016) that the hub and the field's DMS both accept.

    >>> from schemas import parse_package
    >>> data = build_document(
    ...     sender=Party.of("000.00.00.G22", "Văn phòng Chính phủ"),
    ...     recipients=["000.00.00.H49"],
    ...     code_number="7816", code_notation="VPCP-TTĐT", subject="V/v kết nối",
    ...     attachments=[("cv.pdf", "application/pdf", b"%PDF-1.7 ...")],
    ... )
    >>> parse_package(data).recipients[0].organ_id
    '000.00.00.H49'

The output is UTF-8, laid out like the field samples (default namespace on the root, ``edXML:``
prefix below), checked against the XSD before it is returned: a bad argument is a ``ValueError``
(or ``organ_id.invalid`` for an organ id), never an invalid package.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone

from lxml import etree

from schemas.model import Party
from schemas.organ import OrganId
from schemas.reader import NS
from schemas.rules import schema_violation

__all__ = ["VN_TZ", "build_document", "build_status"]

VN_TZ = timezone(timedelta(hours=7), "ICT")

PartyLike = Party | str


def build_document(
    *,
    sender: PartyLike,
    recipients: Sequence[PartyLike],
    code_number: str,
    code_notation: str,
    subject: str,
    document_id: str | None = None,
    content: str | None = None,
    promulgation_date: date | str | None = None,
    place: str | None = None,
    document_type: int | None = None,
    type_name: str | None = None,
    signer: str | None = None,
    signer_position: str | None = None,
    priority: int = 0,
    steering_type: int = 1,
    business_doc_type: int = 0,
    business_doc_reason: str | None = None,
    attachments: Iterable[tuple[str, str, bytes]] = (),
    trace_organ: str | None = None,
    timestamp: datetime | str | None = None,
) -> bytes:
    """A document package. ``attachments`` are ``(name, content_type, data)``.

    ``document_id`` defaults to ``"<sender>,<yyyy/MM/dd>,<number>/<notation>"``; the promulgation
    date and the trace timestamp default to now (UTC+7); ``trace_organ`` defaults to the sender.
    """
    if not recipients:
        raise ValueError("a document needs at least one recipient")
    sender_party = _party(sender)
    day = _date(promulgation_date)
    root, header = _skeleton()
    message = _sub(header, "MessageHeader")
    _organization(message, "From", sender_party)
    for recipient in recipients:
        _organization(message, "To", _party(recipient))
    _leaf(
        message,
        "DocumentId",
        document_id or f"{sender_party.organ_id},{day},{code_number}/{code_notation}",
    )
    _record(message, "Code", CodeNumber=code_number, CodeNotation=code_notation)
    _record(message, "PromulgationInfo", Place=place, PromulgationDate=day)
    _record(message, "DocumentType", Type=_str(document_type), TypeName=type_name)
    _leaf(message, "Subject", subject)
    _leaf(message, "Content", content if content is not None else subject)
    _record(message, "SignerInfo", Position=signer_position, FullName=signer)
    _record(message, "OtherInfo", Priority=str(priority))
    _leaf(message, "SteeringType", str(steering_type))
    trace = _sub(header, "TraceHeaderList")
    _record(
        trace,
        "TraceHeader",
        OrganId=str(OrganId.parse(trace_organ)) if trace_organ else sender_party.organ_id,
        Timestamp=_timestamp(timestamp),
    )
    _record(
        trace,
        "Bussiness",
        BussinessDocType=str(business_doc_type),
        BussinessDocReason=business_doc_reason,
        Paper="0",
    )
    attachments = list(attachments)
    if attachments:
        manifest = _sub(_sub(root[0], "edXMLBody"), "edXMLManifest", version="1.0")
        encoded = _sub(root, "AttachmentEncoded")
        for name, content_type, data in attachments:
            content_id = f"cid:{uuid.uuid4()}"
            _record(
                manifest,
                "Reference",
                ContentId=content_id,
                ContentType=content_type,
                Description=name,
                AttachmentName=name,
            )
            item = _sub(encoded, "Attachment")
            _leaf(item, "ContentId", content_id)
            _leaf(item, "AttachmentName", name)
            _leaf(item, "ContentType", content_type)
            _leaf(item, "ContentTransferEncoded", base64.b64encode(data).decode("ascii"))
    return _finish(root, "edxml")


def build_status(
    *,
    sender: PartyLike,
    response_for_organ_id: str,
    response_for_document_id: str,
    status_code: str,
    response_for_code: str | None = None,
    response_for_date: date | str | None = None,
    description: str | None = None,
    staff: str | None = None,
    department: str | None = None,
    timestamp: datetime | str | None = None,
) -> bytes:
    """A status package (``status_code`` one of 01..06, 13, 15, 16) about a document."""
    root, header = _skeleton()
    message = _sub(header, "MessageHeader")
    _organization(message, "From", _party(sender))
    _record(
        message,
        "ResponseFor",
        OrganId=str(OrganId.parse(response_for_organ_id)),
        Code=response_for_code,
        PromulgationDate=_date(response_for_date) if response_for_date else None,
        DocumentId=response_for_document_id,
    )
    if staff or department:
        _record(message, "StaffInfo", Department=department, Staff=staff)
    _leaf(message, "StatusCode", status_code)
    if description:
        _leaf(message, "Description", description)
    _leaf(message, "Timestamp", _timestamp(timestamp))
    return _finish(root, "status")


# ----- helpers ---------------------------------------------------------------------------------


def _party(value: PartyLike) -> Party:
    return Party.of(value) if isinstance(value, str) else value


def _date(value: date | str | None) -> str:
    if value is None:
        value = datetime.now(VN_TZ).date()
    return value.strftime("%Y/%m/%d") if isinstance(value, date) else value


def _timestamp(value: datetime | str | None) -> str:
    if value is None:
        value = datetime.now(VN_TZ)
    elif isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(VN_TZ)
    return value.strftime("%Y/%m/%d %H:%M:%S") if isinstance(value, datetime) else value


def _skeleton() -> tuple[etree._Element, etree._Element]:
    """``edXML/edXMLEnvelope/edXMLHeader``, namespaces written as in the field."""
    root = etree.Element(f"{{{NS}}}edXML", nsmap={None: NS})
    envelope = etree.SubElement(root, f"{{{NS}}}edXMLEnvelope", nsmap={"edXML": NS})
    return root, _sub(envelope, "edXMLHeader")


def _sub(parent: etree._Element, name: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{NS}}}{name}", attributes)


def _leaf(parent: etree._Element, name: str, text: str) -> etree._Element:
    element = _sub(parent, name)
    element.text = text
    return element


def _record(parent: etree._Element, name: str, **children: str | None) -> etree._Element | None:
    """An element whose children are the given leaves; None values (or all None) are left out."""
    if all(text is None for text in children.values()):
        return None
    element = _sub(parent, name)
    for child, text in children.items():
        if text is not None:
            _leaf(element, child, text)
    return element


def _str(value: int | None) -> str | None:
    return None if value is None else str(value)


def _organization(parent: etree._Element, name: str, party: Party) -> None:
    _record(
        parent,
        name,
        OrganId=party.organ_id,
        OrganizationInCharge=party.organization_in_charge,
        OrganName=party.name,
        OrganAdd=party.address,
        Email=party.email,
        Telephone=party.telephone,
        Fax=party.fax,
        Website=party.website,
    )


def _finish(root: etree._Element, schema: str) -> bytes:
    """Check against the XSD (a bad argument must not make a bad package), then serialise."""
    tree = root.getroottree()
    error = schema_violation(tree, schema)
    if error is not None:
        raise ValueError(f"invalid argument: {error.message.replace(f'{{{NS}}}', 'edXML:')}")
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True)
