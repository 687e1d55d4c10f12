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

from schemas.business import Business, BusinessDocType, Replacement
from schemas.model import Party, ResponseFor, Trace
from schemas.organ import OrganId
from schemas.reader import NS
from schemas.rules import schema_violation

__all__ = [
    "VN_TZ",
    "build_document",
    "build_replacement",
    "build_revocation",
    "build_status",
    "build_update",
]

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
    business: Business | None = None,
    response_for: Sequence[ResponseFor] = (),
    trace: Sequence[Trace] | None = None,
) -> bytes:
    """A document package. ``attachments`` are ``(name, content_type, data)``.

    ``document_id`` defaults to ``"<sender>,<yyyy/MM/dd>,<number>/<notation>"``; the promulgation
    date and the trace timestamp default to now (UTC+7); ``trace_organ`` defaults to the sender.
    ``business`` is the whole ``Bussiness`` block (else one made of ``business_doc_type`` and
    ``business_doc_reason``); ``trace`` the hops of ``TraceHeaderList`` (else one hop,
    ``trace_organ`` at ``timestamp``); ``response_for`` the documents this one answers.
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
    for answered in response_for:
        _response_for(message, answered)
    _leaf(message, "SteeringType", str(steering_type))
    trace_list = _sub(header, "TraceHeaderList")
    if trace is None:
        hop = str(OrganId.parse(trace_organ)) if trace_organ else sender_party.organ_id
        trace = [Trace(hop, _timestamp(timestamp))]
    for step in trace:
        _record(
            trace_list,
            "TraceHeader",
            OrganId=str(OrganId.parse(step.organ_id)),
            Timestamp=step.timestamp,
        )
    if business is None:
        business = Business(BusinessDocType(business_doc_type), business_doc_reason, paper=0)
    _business(trace_list, business)
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


def build_revocation(*, revoked_document_id: str, reason: str | None = None, **document) -> bytes:
    """A revocation (BussinessDocType 1) of the sender's document ``revoked_document_id``;
    ``document`` are the arguments of :func:`build_document` (its own number, subject, ...)."""
    business = Business(BusinessDocType.REVOKE, reason, revoked_document_id, paper=0)
    return build_document(business=business, **document)


def build_update(*, updated_document_id: str, reason: str | None = None, **document) -> bytes:
    """An update (BussinessDocType 2) of the sender's document ``updated_document_id``."""
    business = Business(BusinessDocType.UPDATE, reason, updated_document_id, paper=0)
    return build_document(business=business, **document)


def build_replacement(
    *,
    replaced: Sequence[str | Replacement],
    reason: str | None = None,
    **document,
) -> bytes:
    """A replacement (BussinessDocType 3) of one or more of the sender's documents: each a
    DocumentId (replaced at every recipient) or a :class:`Replacement` naming the organs."""
    replacements = tuple(r if isinstance(r, Replacement) else Replacement(r) for r in replaced)
    if not replacements:
        raise ValueError("a replacement names at least one document")
    business = Business(BusinessDocType.REPLACE, reason, paper=0, replacements=replacements)
    return build_document(business=business, **document)


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


def _response_for(parent: etree._Element, answered: ResponseFor) -> None:
    _record(
        parent,
        "ResponseFor",
        OrganId=str(OrganId.parse(answered.organ_id)),
        Code=answered.code,
        DocumentId=answered.document_id,
        PromulgationDate=answered.promulgation_date,
    )


def _business(parent: etree._Element, business: Business) -> None:
    """The ``Bussiness`` block, children in the order of the field samples."""
    element = _sub(parent, "Bussiness")
    if business.document_id is not None:
        _leaf(element, "DocumentId", business.document_id)
    _leaf(element, "BussinessDocType", str(int(business.doc_type)))
    if business.reason is not None:
        _leaf(element, "BussinessDocReason", business.reason)
    if business.paper is not None:
        _leaf(element, "Paper", str(business.paper))
    info = business.document_info
    if info is not None:
        written = _record(
            element,
            "BussinessDocumentInfo",
            DocumentInfo=_str(info.document_info),
            DocumentReceiver=_str(info.document_receiver),
        )
        written = written if written is not None else _sub(element, "BussinessDocumentInfo")
        if info.receivers:
            receivers = _sub(written, "ReceiverList")
            for receiver in info.receivers:
                _record(
                    receivers,
                    "Receiver",
                    OrganId=str(OrganId.parse(receiver.organ_id)),
                    ReceiverType=str(receiver.receiver_type),
                )
    if business.replacements:
        replacements = _sub(element, "ReplacementInfoList")
        for replacement in business.replacements:
            item = _sub(replacements, "ReplacementInfo")
            _leaf(item, "DocumentId", replacement.document_id)
            if replacement.organ_ids:
                organs = _sub(item, "OrganIdList")
                for organ in replacement.organ_ids:
                    _leaf(organs, "OrganId", str(OrganId.parse(organ)))
    staff = business.staff
    if staff is not None:
        _record(
            element,
            "StaffInfo",
            Department=staff.department,
            Staff=staff.staff,
            Email=staff.email,
            Mobile=staff.mobile,
        )


def _finish(root: etree._Element, schema: str) -> bytes:
    """Check against the XSD (a bad argument must not make a bad package), then serialise."""
    tree = root.getroottree()
    error = schema_violation(tree, schema)
    if error is not None:
        raise ValueError(f"invalid argument: {error.message.replace(f'{{{NS}}}', 'edXML:')}")
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True)
