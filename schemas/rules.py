"""What makes a tree an edXML package: the XSD, then what XSD cannot say.

The XSD (``schemas/xsd``) checks structure and value formats; these rules add how many of each
MessageHeader child there may be, that manifest and attachments agree, the length of every text
field the hub stores or lists, that attachment names are plain file names, and the attachment
and element limits. Every refusal is a :class:`~schemas.errors.FormatError` naming the field
and the line.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Literal

from lxml import etree

from schemas.errors import FormatError
from schemas.reader import DSIG_NS, NS, Limits
from schemas.tree import REFERENCES, attachment_elements, child_text, children, q
from schemas.xsd import load_schema

__all__ = [
    "DEFAULT_FIELD_LIMIT",
    "FIELD_LIMITS",
    "attachment_name_problem",
    "schema_violation",
    "validate",
]

_SCHEMA_LOCK = threading.Lock()  # an XMLSchema's error_log is shared by every caller
_DATE = "[0-9]{4}/(0[1-9]|1[0-2])/(0[1-9]|[12][0-9]|3[01])"
_PATTERN_HINTS = {  # the patterns of common.xsd, as a person would write them
    f"'{_DATE}'": "yyyy/MM/dd",
    f"'{_DATE} ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]'": "yyyy/MM/dd HH:mm:ss",
    r"'\s*\S[\s\S]*'": "(not blank)",
}
# How many of each MessageHeader child: (at least, at most or None).
_ONE, _OPTIONAL = (1, 1), (0, 1)
_AT_MOST_ONCE = ("Code", "PromulgationInfo", "DocumentType", "Subject", "Content", "SignerInfo")
_AT_MOST_ONCE += ("DueDate", "OtherInfo", "SteeringType", "ToPlaces")
_DOCUMENT_RULES = {"From": _ONE, "To": (1, None), "DocumentId": _ONE}
_DOCUMENT_RULES |= dict.fromkeys(_AT_MOST_ONCE, _OPTIONAL)
_STATUS_RULES = dict.fromkeys(("From", "ResponseFor", "StatusCode", "Timestamp"), _ONE)
_STATUS_RULES |= dict.fromkeys(("StaffInfo", "Description"), _OPTIONAL)


def _schema_error(message: str, field: str | None, line: int | None) -> FormatError:
    return FormatError("edxml.schema", message, field=field, line=line)


def validate(root: etree._Element, limits: Limits = Limits()) -> Literal["edoc", "status"]:  # noqa: B008
    """Check a tree read by :func:`~schemas.reader.read_xml` against the XSD and the rules;
    returns its kind (``"edoc"`` or ``"status"``)."""
    for path in ("AttachmentEncoded/edXML:Attachment", "*/edXML:edXMLBody/*/edXML:Reference"):
        count = len(root.xpath(f"edXML:{path}", namespaces={"edXML": NS}))
        if count > limits.max_attachments:
            raise FormatError(
                "edxml.too_many_attachments",
                f"the package has {count} attachments; the limit is {limits.max_attachments}",
            )
    header = root.find(f"{q('edXMLEnvelope')}/{q('edXMLHeader')}")
    message = None if header is None else header.find(q("MessageHeader"))
    is_status = message is not None and message.find(q("StatusCode")) is not None
    kind = "status" if is_status else "edoc"
    error = schema_violation(root.getroottree(), "status" if kind == "status" else "edxml")
    if error is not None:
        raise _xsd_error(error)
    assert header is not None and message is not None  # the schema requires both
    _check_field_lengths(root, header)
    rules = _STATUS_RULES if kind == "status" else _DOCUMENT_RULES
    _check_counts(message, rules, "MessageHeader")
    trace_list = header.find(q("TraceHeaderList"))
    if trace_list is not None:
        _check_counts(trace_list, {"Bussiness": (0, 1)}, "TraceHeaderList")
    for element in children(header):
        qname = etree.QName(element)
        if qname.namespace == DSIG_NS and qname.localname != "Signature":
            raise _schema_error(
                f"edXMLHeader: unexpected dsig:{qname.localname}; expected dsig:Signature",
                qname.localname,
                element.sourceline,
            )
    if kind == "status":
        response = message.find(q("ResponseFor"))
        if not child_text(response, "DocumentId"):
            raise _schema_error(
                "a status package's ResponseFor must name the document (DocumentId)",
                "DocumentId",
                response.sourceline,
            )
    _check_manifest(root)
    _check_attachment_names(root)
    return kind


# Longest text, in characters, of each field the hub stores, lists or forwards as metadata.
# Generous for real documents (a rejection reason runs to about 1,000 characters), small enough
# that an inbox page of 500 items stays a few megabytes.
FIELD_LIMITS: dict[str, int] = {
    "DocumentId": 200,
    "CodeNumber": 100,
    "CodeNotation": 100,
    "Subject": 2_000,
    "Content": 100_000,
    "OrganName": 500,
    "OrganizationInCharge": 500,
    "OrganAdd": 500,
    "Place": 500,
    "TypeName": 500,
    "FullName": 200,
    "Position": 200,
    "AttachmentName": 255,
    "ContentType": 255,
    "Description": 4_000,
    "BussinessDocReason": 4_000,
}
DEFAULT_FIELD_LIMIT = 1_000  # any other text field of the header
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_RESERVED_NAMES = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)$", re.I)
_INVISIBLE = {"Cf", "Zl", "Zp", "Co", "Cn"}  # format (RLO, ZWJ...), separators, unassigned


def _check_field_lengths(root: etree._Element, header: etree._Element) -> None:
    """Refuse any text field of the header, the manifest or the attachments' metadata longer
    than its limit. The length is the field's whole text, as the model reads it (comments or
    CDATA splitting it change nothing)."""
    fields = [e for e in header.iter(etree.Element) if etree.QName(e).namespace == NS]
    for reference in root.findall(REFERENCES):
        fields += list(children(reference))
    for attachment in attachment_elements(root):
        fields += [
            e for e in children(attachment) if etree.QName(e).localname != "ContentTransferEncoded"
        ]
    for element in fields:
        if next(children(element), None) is not None:
            continue  # a record: its own fields are measured
        name = etree.QName(element).localname
        limit = FIELD_LIMITS.get(name, DEFAULT_FIELD_LIMIT)
        length = len(str(element.xpath("string()")))
        if length > limit:
            raise FormatError(
                "edxml.field_too_long",
                f"edXML:{name} is {length} characters long; the limit is {limit}",
                field=name,
                line=element.sourceline,
            )


def attachment_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a file name on a recipient's system, or None when it can.

    Recipients' systems save attachments under these names: anything that could climb out of
    a folder, name a device or a stream, or hide or reorder characters is refused.
    """
    if not name:
        return "it is empty"
    if _CONTROL.search(name):
        return "it contains control characters"
    if any(unicodedata.category(c) in _INVISIBLE for c in name):
        return "it contains invisible or direction-changing characters"
    if "/" in name or "\\" in name:
        return "it contains a path separator"
    if ":" in name:
        return "it names a drive or a data stream (':')"
    if name in (".", "..") or name.endswith((".", " ")):
        return "it is not a plain file name"
    if _RESERVED_NAMES.match(name.split(".")[0].rstrip(" ")):
        return "it is a reserved device name"
    return None


def _check_attachment_names(root: etree._Element) -> None:
    for element in (*root.findall(REFERENCES), *attachment_elements(root)):
        name_element = element.find(q("AttachmentName"))
        if name_element is None:
            continue
        name = str(name_element.xpath("string()")).strip()
        problem = attachment_name_problem(name)
        if problem:
            cid = child_text(element, "ContentId")
            raise FormatError(
                "edxml.attachment_name",
                f"attachment {cid!r}: the name {name[:80]!r} is refused: {problem}",
                field="AttachmentName",
                line=name_element.sourceline,
            )


def schema_violation(tree: etree._ElementTree, name: str) -> etree._LogEntry | None:
    """The first XSD error, or None if ``tree`` is valid against schema ``name``."""
    schema = load_schema(name)
    with _SCHEMA_LOCK:
        try:
            valid = schema.validate(tree)
        except etree.XMLSchemaValidateError:  # libxml2 gave up (an internal limit): invalid
            valid = False
        if valid:
            return None
        if not len(schema.error_log):
            raise _schema_error("the package could not be validated", None, None)
        return schema.error_log[0]


def _xsd_error(error: etree._LogEntry) -> FormatError:
    message = error.message.replace(f"{{{NS}}}", "edXML:")
    message = _shorten_value(message)
    for pattern, hint in _PATTERN_HINTS.items():
        message = message.replace(f"the pattern {pattern}", f"the format {hint}")
    found = re.match(r"Element 'edXML:([\w.-]+)'", message)
    found = found or re.search(r"(\w+)$", error.path or "")
    message = f"not a valid edXML package: {message}"
    if len(message) > 300:
        message = message[:297] + "..."
    return _schema_error(message, found and found[1], error.line)


def _shorten_value(message: str) -> str:
    """Quote at most 40 characters of the offending value (libxml2 cuts messages at 64 kB)."""
    start = message.find("The value '") + len("The value '")
    if start < len("The value '"):
        return message
    found = re.compile(r"' (?:is|has) ").search(message, start)
    end = found.start() if found else len(message)
    value = message[start:end]
    if len(value) <= 40:
        return message
    return message[:start] + value[:40] + "..." + (message[end:] if found else "' (cut)")


def _check_counts(parent: etree._Element, rules: dict, where: str) -> None:
    seen: dict[str, list[etree._Element]] = {}
    for element in children(parent):
        seen.setdefault(etree.QName(element).localname, []).append(element)
    for name, (low, high) in rules.items():
        found = seen.get(name, [])
        if len(found) < low:
            need = "exactly one" if high == 1 else "at least one"
            message = f"{where} must contain {need} edXML:{name}"
            raise _schema_error(message, name, parent.sourceline)
        if high is not None and len(found) > high:
            raise _schema_error(
                f"{where} may contain only one edXML:{name}; found {len(found)}",
                name,
                found[high].sourceline,
            )


def _check_manifest(root: etree._Element) -> None:
    attachments: dict[str | None, etree._Element] = {}
    references: dict[str | None, etree._Element] = {}
    for label, elements, into in (
        ("manifest reference", root.findall(REFERENCES), references),
        ("attachment", attachment_elements(root), attachments),
    ):
        for element in elements:
            cid = child_text(element, "ContentId")
            if cid in into:
                message = f"two {label}s have the ContentId {cid!r}"
                raise _content_id_error("edxml.duplicate_content_id", message, element)
            into[cid] = element
    for cid, element in references.items():
        if cid not in attachments:
            message = f"the manifest references {cid!r} but no attachment has that ContentId"
            raise _content_id_error("edxml.manifest_missing_attachment", message, element)
    for cid, element in attachments.items():
        if cid not in references:
            message = f"attachment {cid!r} is not listed in edXMLManifest"
            raise _content_id_error("edxml.attachment_not_in_manifest", message, element)


def _content_id_error(code: str, message: str, element: etree._Element) -> FormatError:
    return FormatError(code, message, field="ContentId", line=element.sourceline)
