"""edXML packages (QCVN 102:2016): hardened parsing into a read-only model.

    >>> pkg = parse_package(Path("edoc_new.edxml"))            # doctest: +SKIP
    >>> pkg.kind, pkg.sender.organ_id, [p.organ_id for p in pkg.recipients]  # doctest: +SKIP
    ('edoc', '000.00.00.A80', ['000.28.22.H17'])

Every refusal is a :class:`HubError`: ``xml.*`` (status 400) when the bytes are not acceptable XML
(``body.too_large``, 413, over ``Limits.max_bytes``), ``edxml.*`` (422; ``too_many_attachments``
413) when the XML is not a valid package, ``organ_id.invalid`` (422) for an organ id that cannot be
understood. The model is a view: the hub keeps the original bytes, nothing here re-serialises them.
The builders (``build_document``, ``build_status``) live in :mod:`exchange.edxml_build`, and are
reachable from here too.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import io
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Literal

from lxml import etree

from exchange.errors import HubError
from exchange.organ import OrganId, OrganIdError
from schemas import load_schema

__all__ = [
    "DSIG_NS",
    "NS",
    "Attachment",
    "Limits",
    "Package",
    "Party",
    "ResponseFor",
    "Trace",
    "iter_attachments",
    "parse_package",
]

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

_CHUNK = 1 << 20  # bytes fed to the parser at a time; also the window scanned for a DOCTYPE
_B64_CHUNK = 1 << 20  # characters of base64 decoded at a time
_ASCII_WS = b" \t\r\n\x0b\x0c"


@dataclass(frozen=True)
class Limits:
    """Resource limits for one package."""

    max_bytes: int = 50 * 1024 * 1024
    max_depth: int = 64
    max_attachments: int = 100
    max_elements: int = 200_000


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


Source = bytes | bytearray | memoryview | str | os.PathLike


def parse_package(source: Source, limits: Limits = Limits()) -> Package:  # noqa: B008
    """Parse and validate a package: ``bytes`` are the document, ``str``/``PathLike`` a file path.

    Raises :class:`HubError` for anything wrong with the input; ``OSError`` only if the file
    cannot be opened.
    """
    _check_source(source)
    with _as_hub_error():
        root = _read(source, limits)
        kind = _validate(root, limits)
        digests = [(a, _digest(_decode(a))) for a in _attachment_elements(root)]
        return _model(root, kind, digests)


def iter_attachments(
    source: Source,
    limits: Limits = Limits(),  # noqa: B008
) -> Iterator[tuple[Attachment, bytes]]:
    """Validate ``source`` as :func:`parse_package` does, then yield each attachment's bytes.

    A generator: base64 errors surface when the bad attachment is reached.
    """
    _check_source(source)
    with _as_hub_error():
        root = _read(source, limits)
        _validate(root, limits)
        references = _references(root)
    for element in _attachment_elements(root):
        with _as_hub_error():
            data = b"".join(_decode(element))
            attachment = _attachment(
                element, references, (len(data), hashlib.sha256(data).hexdigest())
            )
        yield attachment, data


def __getattr__(name: str):  # the builders live in a module of their own
    if name in ("build_document", "build_status"):
        from exchange import edxml_build

        return getattr(edxml_build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextlib.contextmanager
def _as_hub_error() -> Iterator[None]:
    """Bad input must never surface as anything but a HubError."""
    try:
        yield
    except (HubError, OSError, MemoryError):
        raise
    except Exception as exc:  # a bug of ours, but the caller still gets a HubError
        raise HubError(
            "internal", f"unexpected failure reading the package ({type(exc).__name__})", status=500
        ) from exc


# ----- reading: bytes -> element tree, safely --------------------------------------------------


class _NoExternal(etree.Resolver):
    """Defence in depth: any external resource libxml2 might want resolves to nothing."""

    def resolve(self, system_url, public_id, context):  # noqa: D102 (lxml API)
        return self.resolve_string("", context)


def _read(source: Source, limits: Limits) -> etree._Element:
    if isinstance(source, bytes | bytearray | memoryview):
        _check_size(memoryview(source).nbytes, limits)
        return _parse_stream(io.BytesIO(source), source, limits)
    with open(source, "rb") as stream:  # OSError here is the hub's problem, not the client's
        _check_size(os.fstat(stream.fileno()).st_size, limits)
        return _parse_stream(stream, source, limits)


def _check_source(source: Source) -> None:
    if isinstance(source, str) and source.lstrip().startswith("<"):
        raise TypeError("pass the XML as bytes; a str is a file path")


def _check_size(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise HubError(
            "body.too_large",
            f"the package is {size} bytes; the limit is {limits.max_bytes}",
            status=413,
        )


def _parse_stream(stream: IO[bytes], source: Source, limits: Limits) -> etree._Element:
    parser = etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=True,
        remove_comments=False,
    )
    parser.resolvers.add(_NoExternal())
    depth = elements = total = 0
    first = True
    try:
        while chunk := stream.read(_CHUNK):
            total += len(chunk)
            _check_size(total, limits)
            if first and _prolog_has_doctype(chunk):
                raise _dtd_forbidden()
            first = False
            parser.feed(chunk)
            for event, element in parser.read_events():
                if event == "end":
                    depth -= 1
                    continue
                depth, elements = depth + 1, elements + 1
                if depth > limits.max_depth:
                    raise _too_deep(limits, element.sourceline)
                if elements > limits.max_elements:
                    raise HubError(
                        "xml.too_many_elements",
                        f"the package has more than {limits.max_elements} elements",
                        line=element.sourceline,
                    )
        root = parser.close()
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, source, limits) from None
    except etree.LxmlError as exc:
        raise HubError("xml.malformed", f"XML is not well-formed: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise _dtd_forbidden()
    if root.tag != f"{{{NS}}}edXML":
        qname = etree.QName(root)
        raise HubError(
            "edxml.namespace",
            f"the root element is <{qname.localname}> in namespace "
            f"{qname.namespace or '(none)'}; expected <edXML> in namespace {NS}",
            status=422,
            field=qname.localname,
            line=root.sourceline,
        )
    return root


_PROLOG_SKIP = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.S)


def _prolog_has_doctype(head: bytes) -> bool:
    """True if a DOCTYPE comes before the root element in ``head`` (the first bytes)."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or head[:2] in (b"<\x00", b"\x00<"):
        codec = "utf-16-le" if head[:1] in (b"\xff", b"<") else "utf-16-be"
        head = head[: len(head) // 2 * 2].decode(codec, "ignore").lstrip("\ufeff").encode()
    pos = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    while match := _PROLOG_SKIP.match(head, pos):
        pos = match.end()
    # Undecided prologs (a comment longer than the window) fall through to the docinfo check.
    return head[pos : pos + 9].upper() == b"<!DOCTYPE"


def _dtd_forbidden() -> HubError:
    return HubError("xml.dtd_forbidden", "a DOCTYPE (DTD, entities) is not allowed in edXML")


def _too_deep(limits: Limits, line: int | None) -> HubError:
    return HubError(
        "xml.too_deep", f"elements are nested deeper than {limits.max_depth} levels", line=line
    )


_MISMATCH = re.compile(r"Opening and ending tag mismatch: (\S+) line (\d+) and (\S+)")


def _syntax_error(exc: etree.XMLSyntaxError, source: Source, limits: Limits) -> HubError:
    line, column = exc.position if exc.position else (exc.lineno, 0)
    cause = re.sub(r", line \d+, column \d+$", "", exc.msg or str(exc)).strip()
    if "Excessive depth" in cause:
        return _too_deep(limits, line)
    if "amplification" in cause:
        return _dtd_forbidden()
    if not line:  # nothing parsed at all
        return HubError("xml.malformed", f"XML is not well-formed: {cause}")
    message = f"XML is not well-formed at line {line}, column {column}: {cause}"
    if match := _MISMATCH.search(cause):
        opened = _qualified_name(source, int(match[2]), match[1])
        closing = _qualified_name(source, line, match[3], closing=True)
        message += f" (<{opened}> opened at line {match[2]} is not closed before </{closing}>)"
    return HubError("xml.malformed", message, line=line)


def _qualified_name(source: Source, line: int, local: str, closing: bool = False) -> str:
    """The tag as written (``edXML:From``) at ``line`` of the source, or ``local``."""
    limit = 1 << 16
    try:
        if isinstance(source, bytes | bytearray | memoryview):
            stream: IO[bytes] = io.BytesIO(source)
        else:
            stream = open(source, "rb")  # noqa: SIM115 (closed below)
        with stream:
            text, current = b"", 1
            for part in iter(lambda: stream.readline(limit), b""):
                if current == line and len(text) < limit:
                    text += part
                if part.endswith(b"\n"):
                    current += 1
                    if current > line:
                        break
        start = rb"</" if closing else rb"<"
        name = rb"((?:[\w.-]+:)?" + re.escape(local.encode()) + rb")[\s>/]"
        found = re.search(start + name, text)
        return found[1].decode() if found else local
    except (OSError, UnicodeError):
        return local


# ----- validation: XSD, then what XSD cannot say ----------------------------------------------

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


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


_REFERENCES = "/".join(_q(n) for n in ("edXMLEnvelope", "edXMLBody", "edXMLManifest", "Reference"))


def _schema_error(message: str, field: str | None, line: int | None) -> HubError:
    return HubError("edxml.schema", message, status=422, field=field, line=line)


def _validate(root: etree._Element, limits: Limits) -> Literal["edoc", "status"]:
    for path in ("AttachmentEncoded/edXML:Attachment", "*/edXML:edXMLBody/*/edXML:Reference"):
        count = len(root.xpath(f"edXML:{path}", namespaces={"edXML": NS}))
        if count > limits.max_attachments:
            raise HubError(
                "edxml.too_many_attachments",
                f"the package has {count} attachments; the limit is {limits.max_attachments}",
                status=413,
            )
    header = root.find(f"{_q('edXMLEnvelope')}/{_q('edXMLHeader')}")
    message = None if header is None else header.find(_q("MessageHeader"))
    is_status = message is not None and message.find(_q("StatusCode")) is not None
    kind = "status" if is_status else "edoc"
    error = _schema_violation(root.getroottree(), "status" if kind == "status" else "edxml")
    if error is not None:
        raise _xsd_error(error)
    assert header is not None and message is not None  # the schema requires both
    _check_field_lengths(header, _attachment_elements(root))
    rules = _STATUS_RULES if kind == "status" else _DOCUMENT_RULES
    _check_counts(message, rules, "MessageHeader")
    trace_list = header.find(_q("TraceHeaderList"))
    if trace_list is not None:
        _check_counts(trace_list, {"Bussiness": (0, 1)}, "TraceHeaderList")
    for element in _elements(header):
        qname = etree.QName(element)
        if qname.namespace == DSIG_NS and qname.localname != "Signature":
            raise _schema_error(
                f"edXMLHeader: unexpected dsig:{qname.localname}; expected dsig:Signature",
                qname.localname,
                element.sourceline,
            )
    if kind == "status":
        response = message.find(_q("ResponseFor"))
        if not _text(response, "DocumentId"):
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
_RESERVED_NAMES = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.I)


def _check_field_lengths(header: etree._Element, attachments: list[etree._Element]) -> None:
    """Refuse any header field (and attachment metadata) longer than its limit."""
    leaves = [e for e in header.iter(etree.Element) if etree.QName(e).namespace == NS]
    for attachment in attachments:
        leaves += [
            e for e in _elements(attachment) if etree.QName(e).localname != "ContentTransferEncoded"
        ]
    for element in leaves:
        if len(element):
            continue
        name = etree.QName(element).localname
        limit = FIELD_LIMITS.get(name, DEFAULT_FIELD_LIMIT)
        length = len(element.text or "")
        if length > limit:
            raise HubError(
                "edxml.field_too_long",
                f"edXML:{name} is {length} characters long; the limit is {limit}",
                status=422,
                field=name,
                line=element.sourceline,
            )


def attachment_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a file name on a recipient's system, or None when it can.

    Recipients' systems save attachments under these names: anything that could climb out of
    a folder, name a device or hide characters is refused.
    """
    if _CONTROL.search(name):
        return "it contains control characters"
    if "/" in name or "\\" in name:
        return "it contains a path separator"
    if name in (".", "..") or name.endswith("."):
        return "it is not a plain file name"
    if len(name) > 1 and name[1] == ":":
        return "it starts with a drive letter"
    if _RESERVED_NAMES.match(name):
        return "it is a reserved device name"
    return None


def _check_attachment_names(root: etree._Element) -> None:
    for element in (*root.findall(_REFERENCES), *_attachment_elements(root)):
        name_element = element.find(_q("AttachmentName"))
        if name_element is None:
            continue
        name = str(name_element.xpath("string()")).strip()
        problem = attachment_name_problem(name)
        if problem:
            cid = _text(element, "ContentId")
            raise HubError(
                "edxml.attachment_name",
                f"attachment {cid!r}: the name {name[:80]!r} is refused: {problem}",
                status=422,
                field="AttachmentName",
                line=name_element.sourceline,
            )


def _schema_violation(tree: etree._ElementTree, name: str) -> etree._LogEntry | None:
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


def _xsd_error(error: etree._LogEntry) -> HubError:
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
    for element in _elements(parent):
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
        ("manifest reference", root.findall(_REFERENCES), references),
        ("attachment", _attachment_elements(root), attachments),
    ):
        for element in elements:
            cid = _text(element, "ContentId")
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


def _content_id_error(code: str, message: str, element: etree._Element) -> HubError:
    return HubError(code, message, status=422, field="ContentId", line=element.sourceline)


# ----- the model -------------------------------------------------------------------------------


def _elements(parent: etree._Element) -> Iterator[etree._Element]:
    return parent.iterchildren(etree.Element)


def _text(parent: etree._Element | None, name: str) -> str | None:
    """Stripped text of child ``name`` (comments excluded), or None if absent or empty."""
    child = None if parent is None else parent.find(_q(name))
    if child is None:
        return None
    return str(child.xpath("string()")).strip() or None


def _attachment_elements(root: etree._Element) -> list[etree._Element]:
    return root.findall(f"{_q('AttachmentEncoded')}/{_q('Attachment')}")


def _references(root: etree._Element) -> dict[str | None, etree._Element]:
    return {_text(element, "ContentId"): element for element in root.findall(_REFERENCES)}


def _organ_id(parent: etree._Element, field: str) -> str:
    """The normalised OrganId child of ``parent``; ``organ_id.invalid`` names field and line."""
    try:
        return str(OrganId.parse(_text(parent, "OrganId") or "", field=f"{field}/OrganId"))
    except OrganIdError as exc:
        exc.line = parent.find(_q("OrganId")).sourceline
        raise


def _party(element: etree._Element, field: str) -> Party:
    raw = _text(element, "OrganId") or ""
    return Party(
        organ_id=_organ_id(element, field),
        raw_organ_id=raw,
        name=_text(element, "OrganName"),
        organization_in_charge=_text(element, "OrganizationInCharge"),
        address=_text(element, "OrganAdd"),
        email=_text(element, "Email"),
        telephone=_text(element, "Telephone"),
        fax=_text(element, "Fax"),
        website=_text(element, "Website"),
    )


def _response_for(element: etree._Element) -> ResponseFor:
    return ResponseFor(
        organ_id=_organ_id(element, "ResponseFor"),
        code=_text(element, "Code"),
        document_id=_text(element, "DocumentId"),
        promulgation_date=_text(element, "PromulgationDate"),
    )


def _decode(element: etree._Element) -> Iterator[bytes]:
    """Decode ContentTransferEncoded as strict base64 (ASCII whitespace ignored), in chunks."""
    cid = _text(element, "ContentId")
    encoded = element.find(_q("ContentTransferEncoded"))
    # .text is one copy of the (possibly 50 MB) node; string() only if comments split the text.
    text = (encoded.text or "") if len(encoded) == 0 else str(encoded.xpath("string()"))

    def fail(reason: str) -> HubError:
        return HubError(
            "edxml.base64",
            f"attachment {cid!r}: ContentTransferEncoded is not valid base64 ({reason})",
            status=422,
            field="ContentTransferEncoded",
            line=encoded.sourceline,
        )

    def bad_character(piece: str, start: int) -> HubError | None:
        # Only looked for once decoding failed: the happy path does not scan twice.
        bad = re.search(r"[^A-Za-z0-9+/=\s]", piece)
        return fail(f"character {bad[0]!r} at offset {start + bad.start()}") if bad else None

    carry, padded = b"", False
    for start in range(0, len(text), _B64_CHUNK):
        piece = text[start : start + _B64_CHUNK]
        try:
            data = carry + piece.encode("ascii").translate(None, _ASCII_WS)
        except UnicodeEncodeError:
            raise bad_character(piece, start) from None
        if padded and data:
            raise fail("data after the '=' padding")
        cut = len(data) - len(data) % 4
        carry, block = data[cut:], data[:cut]
        if block:
            try:
                yield binascii.a2b_base64(block, strict_mode=True)
            except binascii.Error as exc:
                raise (bad_character(piece, start) or fail(str(exc).lower())) from None
            padded = block.endswith(b"=")
    if carry:
        raise fail("data after the '=' padding" if padded else "length not a multiple of 4")


def _digest(chunks: Iterator[bytes]) -> tuple[int, str]:
    size, sha = 0, hashlib.sha256()
    for chunk in chunks:
        size += len(chunk)
        sha.update(chunk)
    return size, sha.hexdigest()


def _attachment(element: etree._Element, references: dict, digest: tuple[int, str]) -> Attachment:
    cid = _text(element, "ContentId") or ""
    reference = references.get(cid)

    def pick(name: str) -> str | None:
        return _text(element, name) or _text(reference, name)

    return Attachment(
        cid, pick("AttachmentName"), pick("ContentType"), pick("Description"), *digest
    )


def _model(root: etree._Element, kind: str, attachments: list) -> Package:
    header = root.find(f"{_q('edXMLEnvelope')}/{_q('edXMLHeader')}")
    message = header.find(_q("MessageHeader"))
    signature = header.find(_q("Signature"))
    if signature is None:
        signature = header.find(f"{{{DSIG_NS}}}Signature")
    trace_list = header.find(_q("TraceHeaderList"))
    hops = [] if trace_list is None else trace_list.findall(_q("TraceHeader"))
    business = None if trace_list is None else trace_list.find(_q("Bussiness"))
    responses = tuple(_response_for(e) for e in message.findall(_q("ResponseFor")))
    code = message.find(_q("Code"))
    other = message.find(_q("OtherInfo"))
    priority = _text(other, "Priority")
    references = _references(root)
    common = {
        "sender": _party(message.find(_q("From")), "From"),
        "response_for": responses,
        "attachments": tuple(_attachment(e, references, d) for e, d in attachments),
        "trace": tuple(
            Trace(_organ_id(hop, "TraceHeader"), _text(hop, "Timestamp") or "") for hop in hops
        ),
        "has_signature": signature is not None,
        "signature_namespace": None if signature is None else etree.QName(signature).namespace,
        "business_doc_type": int(_text(business, "BussinessDocType") or 0),
        "business_doc_reason": _text(business, "BussinessDocReason"),
        "business_document_id": _text(business, "DocumentId"),
    }
    if kind == "status":
        target = responses[0]
        return Package(
            kind="status",
            recipients=(Party(target.organ_id, _text(message.find(_q("ResponseFor")), "OrganId")),),
            document_id=target.document_id,
            status_code=_text(message, "StatusCode"),
            status_description=_text(message, "Description"),
            status_timestamp=_text(message, "Timestamp"),
            **common,
        )
    recipients = tuple(
        _party(element, f"To[{index}]")
        for index, element in enumerate(message.findall(_q("To")), start=1)
    )
    return Package(
        kind="edoc",
        recipients=recipients,
        document_id=_text(message, "DocumentId"),
        code_number=_text(code, "CodeNumber"),
        code_notation=_text(code, "CodeNotation"),
        subject=_text(message, "Subject"),
        promulgation_date=_text(message.find(_q("PromulgationInfo")), "PromulgationDate"),
        priority=None if priority is None else int(priority),
        **common,
    )
