"""Validation of an edXML package: its XML signature plus every signed PDF attachment.

    report = validate_package_sync(data, trust)       # picklable: fine for a process pool
    report.indication                                  # the worst of everything inside

The package signature's verdict is mapped onto ETSI EN 319 102-1 indications; PDF attachments get
the full :func:`signing.validate.validate_pdf` report. An unsigned package is INDETERMINATE
(SIGNED_DATA_NOT_FOUND): the hub's policy decides what that means.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from schemas import FormatError, Limits, ParsedPackage, read_package
from signing.caveats import document_warnings, with_warnings
from signing.report import report_to_dict
from signing.trust import TrustSettings
from signing.validate import (
    INDETERMINATE,
    TOTAL_FAILED,
    TOTAL_PASSED,
    validate_pdf,
    worst_indication,
)
from signing.xmldsig import verify_package_async

__all__ = [
    "PACKAGE_SCHEMA",
    "AttachmentReport",
    "PackageReport",
    "XmlSignatureReport",
    "package_report_json",
    "validate_package",
    "validate_package_sync",
]

PACKAGE_SCHEMA = "lienthong.package-validation-report/1"
_STATUS = {"valid": TOTAL_PASSED, "invalid": TOTAL_FAILED, "indeterminate": INDETERMINATE}


@dataclass(frozen=True)
class XmlSignatureReport:
    """The verdict on the package's own XML signature."""

    indication: str
    sub_indication: str | None
    message: str
    algorithm: str | None
    signer_subject: str | None
    signer_organization_identifier: str | None
    signer_certificate: str | None  # DER, base64
    covers_whole_document: bool


@dataclass(frozen=True)
class AttachmentReport:
    """One PDF attachment and its full validation report."""

    content_id: str
    name: str | None
    sha256: str
    indication: str
    report: dict[str, Any]


@dataclass(frozen=True)
class PackageReport:
    schema: str
    validated_at: str
    package_sha256: str
    indication: str
    sub_indication: str | None
    message: str
    xml_signature: XmlSignatureReport
    attachments: list[AttachmentReport] = field(default_factory=list)
    skipped_attachments: list[str] = field(default_factory=list)  # not PDF: nothing to verify


def _is_pdf(name: str | None, content_type: str | None, data: bytes) -> bool:
    return data[:1024].lstrip().startswith(b"%PDF") or (content_type or "").lower() in (
        "application/pdf",
    )


def _org_id(cert) -> str | None:
    from cryptography.x509.oid import ObjectIdentifier

    for attribute in cert.subject.get_attributes_for_oid(ObjectIdentifier("2.5.4.97")):
        return str(attribute.value)
    return None


async def _xml_report(
    data: bytes | ParsedPackage, trust: TrustSettings, limits: Limits
) -> XmlSignatureReport:
    result = await verify_package_async(
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


async def validate_package(
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
        attachments, skipped = [], []
        warnings: list[str] = []
        for attachment, content in parsed.attachments():
            if not _is_pdf(attachment.name, attachment.content_type, content):
                skipped.append(attachment.content_id)
                continue
            report = await validate_pdf(content, trust)
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
    except FormatError as exc:
        failure = XmlSignatureReport(
            TOTAL_FAILED, "FORMAT_FAILURE", exc.message, None, None, None, None, False
        )
        return PackageReport(
            PACKAGE_SCHEMA, now, digest, TOTAL_FAILED, "FORMAT_FAILURE", exc.message, failure
        )
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
        message = with_warnings("every signature passed", warnings)
    else:
        message = f"{first[0]}: {first[3]}"
    return PackageReport(
        PACKAGE_SCHEMA,
        now,
        digest,
        worst,
        first[2] if worst != TOTAL_PASSED else None,
        message,
        xml,
        attachments,
        skipped,
    )


def validate_package_sync(
    data: bytes | ParsedPackage,
    trust: TrustSettings,
    limits: Limits = Limits(),  # noqa: B008
    *,
    digest: str | None = None,
) -> PackageReport:
    """:func:`validate_package` for synchronous callers and process pools."""
    return asyncio.run(validate_package(data, trust, limits, digest=digest))


def package_report_json(report: PackageReport, *, indent: int | None = 2) -> str:
    """The JSON form (``schema`` first)."""
    data = dataclasses.asdict(report)
    return json.dumps({"schema": data.pop("schema"), **data}, ensure_ascii=False, indent=indent)
