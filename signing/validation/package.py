"""Validation of an edXML package: its XML signature plus every signed PDF attachment.

    report = validate_package(data, trust)             # picklable: fine for a process pool
    report.indication                                  # the worst of everything inside

The package signature's verdict (:mod:`signing.xml`) is mapped onto ETSI EN 319 102-1
indications; PDF attachments get the full :func:`~signing.validation.pdf.async_validate_pdf`
report. An unsigned package is INDETERMINATE (SIGNED_DATA_NOT_FOUND): the caller's policy decides
what that means. A package read already (:class:`schemas.ParsedPackage`) is validated on its tree
and its decoded attachments, without reading its bytes again.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ObjectIdentifier

from schemas import FormatError, Limits, ParsedPackage, read_package
from schemas.encoded import decode_base64, decode_content
from schemas.tree import attachment_elements, q
from signing.trust import TrustSettings
from signing.validation.caveats import document_warnings, with_warnings
from signing.validation.pdf import async_validate_pdf
from signing.validation.report import (
    INDETERMINATE,
    PACKAGE_SCHEMA,
    TOTAL_FAILED,
    TOTAL_PASSED,
    AttachmentReport,
    PackageReport,
    XmlSignatureReport,
    report_to_dict,
    worst_indication,
)
from signing.xml import async_verify_package

__all__ = ["async_validate_package", "validate_package"]

_STATUS = {"valid": TOTAL_PASSED, "invalid": TOTAL_FAILED, "indeterminate": INDETERMINATE}
_ORGANIZATION_IDENTIFIER = ObjectIdentifier("2.5.4.97")


_SNIFF = 1024  # a PDF's header is looked for in its first bytes
_SNIFF_TEXT = 4096  # base64 characters decoded for them (line breaks included)


def _is_pdf(data: bytes, content_type: str | None) -> bool:
    return data[:_SNIFF].lstrip().startswith(b"%PDF") or (content_type or "").lower() in (
        "application/pdf",
    )


def _head(element) -> bytes | None:
    """The first :data:`_SNIFF` decoded bytes of an ``Attachment`` element, decoding only the
    start of its text; None when they cannot be had that way (comments in the text, or so much
    white space that the first characters hold fewer bytes), then the caller decodes it all.
    The package was read already, so its base64 is known to be valid."""
    encoded = element.find(q("ContentTransferEncoded"))
    if encoded is None or len(encoded) != 0:
        return None
    text = encoded.text or ""
    prefix = text[:_SNIFF_TEXT]
    try:
        head = next(decode_base64(prefix, chunk=len(prefix)), b"") if prefix else b""
    except ValueError:  # not base64 after all: decoding it whole says where
        return None
    return head if len(head) >= _SNIFF or len(prefix) == len(text) else None


def _org_id(cert: x509.Certificate) -> str | None:
    for attribute in cert.subject.get_attributes_for_oid(_ORGANIZATION_IDENTIFIER):
        return str(attribute.value)
    return None


async def _xml_report(
    data: bytes | ParsedPackage, trust: TrustSettings, limits: Limits
) -> XmlSignatureReport:
    result = await async_verify_package(
        data,
        trust_roots=list(trust.anchors),
        intermediates=list(trust.intermediates),
        at=trust.at,
        revocation=trust.revocation,
        limits=limits,
    )
    indication = _STATUS[result.status]
    sub = result.reason
    if sub == "NO_SIGNATURE":
        indication, sub = INDETERMINATE, "SIGNED_DATA_NOT_FOUND"
    cert = result.signer_cert
    return XmlSignatureReport(
        indication=indication,
        sub_indication=sub,
        message=result.message,
        algorithm=result.algorithm,
        signer_subject=result.signer_subject,
        signer_organization_identifier=_org_id(cert) if cert is not None else None,
        signer_certificate=(
            base64.b64encode(cert.public_bytes(Encoding.DER)).decode() if cert is not None else None
        ),
        covers_whole_document=result.covers_whole_document,
    )


async def async_validate_package(
    data: bytes | ParsedPackage,
    trust: TrustSettings,
    limits: Limits = Limits(),  # noqa: B008
    *,
    digest: str | None = None,
) -> PackageReport:
    """Validate the package signature and every PDF attachment; never raises for bad input.

    ``data``: the package's bytes, or the package already read (its tree is used, nothing is
    read twice); then ``digest`` is the SHA-256 (hex) of its bytes.
    """
    if isinstance(data, ParsedPackage):
        if digest is None:
            raise TypeError("a package read already needs the digest of its bytes")
    else:
        digest = hashlib.sha256(data).hexdigest()
    now = dt.datetime.now(dt.UTC).isoformat()
    try:
        parsed = data if isinstance(data, ParsedPackage) else read_package(bytes(data), limits)
        xml = await _xml_report(parsed, trust, limits)
        attachments, skipped, warnings = await _attachments(parsed, trust)
    except FormatError as exc:
        failure = XmlSignatureReport(
            TOTAL_FAILED, "FORMAT_FAILURE", exc.message, None, None, None, None, False
        )
        return PackageReport(
            PACKAGE_SCHEMA, now, digest, TOTAL_FAILED, "FORMAT_FAILURE", exc.message, failure
        )
    worst, sub, message = _verdict(xml, attachments, warnings)
    return PackageReport(
        PACKAGE_SCHEMA, now, digest, worst, sub, message, xml, attachments, skipped
    )


async def _attachments(
    parsed: ParsedPackage, trust: TrustSettings
) -> tuple[list[AttachmentReport], list[str], list[str]]:
    """Each PDF attachment's report, the content ids of the others, and the PDFs' warnings."""
    attachments, skipped, warnings = [], [], []
    elements = attachment_elements(parsed.root)
    for attachment, element in zip(parsed.package.attachments, elements, strict=True):
        head = _head(element)  # a non-PDF attachment is not decoded whole
        if head is not None and not _is_pdf(head, attachment.content_type):
            skipped.append(attachment.content_id)
            continue
        content = b"".join(decode_content(element))
        if not _is_pdf(content, attachment.content_type):
            skipped.append(attachment.content_id)
            continue
        report = await async_validate_pdf(content, trust)
        warnings += document_warnings(report)
        attachments.append(
            AttachmentReport(
                attachment.content_id,
                attachment.name,
                attachment.sha256,
                report.summary.indication,
                report_to_dict(report),
            )
        )
    return attachments, skipped, warnings


def _verdict(
    xml: XmlSignatureReport, attachments: list[AttachmentReport], warnings: list[str]
) -> tuple[str, str | None, str]:
    """The worst indication of the package signature and the attachments, and why."""
    parts = [("package signature", xml.indication, xml.sub_indication, xml.message)] + [
        (
            f"attachment {a.name or a.content_id}",
            a.indication,
            a.report["summary"]["sub_indication"],
            a.report["summary"]["message"],
        )
        for a in attachments
    ]
    worst = worst_indication(p[1] for p in parts) or INDETERMINATE
    first = next(p for p in parts if p[1] == worst)
    if worst == TOTAL_PASSED:
        return worst, None, with_warnings("every signature passed", warnings)
    return worst, first[2], f"{first[0]}: {first[3]}"


def validate_package(
    data: bytes | ParsedPackage,
    trust: TrustSettings,
    limits: Limits = Limits(),  # noqa: B008
    *,
    digest: str | None = None,
) -> PackageReport:
    """:func:`async_validate_package` for synchronous callers and process pools."""
    return asyncio.run(async_validate_package(data, trust, limits, digest=digest))
