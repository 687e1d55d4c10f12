"""The validation reports: frozen dataclasses of plain values, and the ETSI indications.

A report holds only strings, numbers, booleans, lists and these dataclasses, so it pickles
(process pools) and becomes its JSON form with :func:`dataclasses.asdict` (see
:mod:`signing.reports.json`): ``lienthong.validation-report/1`` for a PDF
(:class:`DocumentReport`), ``lienthong.package-validation-report/1`` for a package
(:class:`PackageReport`). New optional fields may appear within a version; a field is never
removed or given another meaning without a new version.

Indications are ETSI EN 319 102-1's: :data:`TOTAL_PASSED`, :data:`TOTAL_FAILED`,
:data:`INDETERMINATE`; the worst wins (TOTAL-FAILED > INDETERMINATE > TOTAL-PASSED).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "INDETERMINATE",
    "PACKAGE_SCHEMA",
    "SCHEMA",
    "TOTAL_FAILED",
    "TOTAL_PASSED",
    "AlgorithmInfo",
    "AttachmentReport",
    "CertInfo",
    "ChainInfo",
    "Change",
    "CoverageInfo",
    "Digest",
    "DocumentReport",
    "ModificationInfo",
    "PackageReport",
    "PdfAttributes",
    "PolicyResult",
    "RevocationInfo",
    "SignatureReport",
    "SigningTime",
    "Summary",
    "TimestampInfo",
    "XmlSignatureReport",
    "attachment_documents",
    "clip",
    "document_report_from_dict",
    "iso",
    "report_to_dict",
    "severity",
    "worst_indication",
]

SCHEMA = "lienthong.validation-report/1"
PACKAGE_SCHEMA = "lienthong.package-validation-report/1"
TOTAL_PASSED = "TOTAL-PASSED"
TOTAL_FAILED = "TOTAL-FAILED"
INDETERMINATE = "INDETERMINATE"
_RANK = {TOTAL_PASSED: 0, INDETERMINATE: 1, TOTAL_FAILED: 2}


def severity(indication: str) -> int:
    """0 for TOTAL-PASSED, 1 for INDETERMINATE, 2 for TOTAL-FAILED."""
    return _RANK[indication]


def worst_indication(indications: Iterable[str]) -> str | None:
    """The worst of ``indications`` (TOTAL-FAILED > INDETERMINATE > TOTAL-PASSED)."""
    items = list(indications)
    return max(items, key=severity) if items else None


def iso(moment: dt.datetime | None) -> str | None:
    """``moment`` in UTC, ISO 8601 with a ``Z`` (a naive time is taken as UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def clip(text: object, limit: int = 300) -> str:
    """An exception text cut to a size a report can hold (hostile input makes long ones)."""
    value = " ".join(str(text).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


# ----- PDF reports -------------------------------------------------------------------------


@dataclass(frozen=True)
class CertInfo:
    """A certificate as shown to an auditor; ``der`` is the base64 DER for offline checks."""

    subject: str
    common_name: str | None
    organization: str | None
    organization_identifier: str | None  # 2.5.4.97: the agency's organ id in our PKI
    issuer: str
    serial: str  # hex
    sha256: str  # hex fingerprint of the DER
    not_before: str
    not_after: str
    der: str


@dataclass(frozen=True)
class Digest:
    """A digest: algorithm name and hex value."""

    algorithm: str
    value: str  # hex


@dataclass(frozen=True)
class TimestampInfo:
    """An RFC 3161 token attached to a signature (``signature``/``content``) or the document."""

    kind: str  # "signature-timestamp" | "content-timestamp" | "document-timestamp"
    time: str | None
    tsa: CertInfo | None
    intact: bool
    valid: bool
    trusted: bool
    problem: str | None  # AdES sub-indication of the TSA chain, when not trusted
    proven_by: str | None = None  # "current-time" | "past-validation" when trusted


@dataclass(frozen=True)
class SigningTime:
    """The best signing time, where it comes from, and the time the signer claims."""

    best: str | None
    source: str  # signature-timestamp | document-timestamp | signing-time-claimed | validation-time
    claimed: str | None
    proven: bool


@dataclass(frozen=True)
class ChainInfo:
    """The certificate chain and whether it leads to a trust anchor."""

    trusted: bool
    validated_at: str | None  # the moment the chain was validated at
    anchor: CertInfo | None
    certificates: list[CertInfo]  # signer first, anchor last (when found)


@dataclass(frozen=True)
class RevocationInfo:
    """What revocation data said about the certificate, and where it came from."""

    checked: bool
    source: str  # "embedded" | "online" | "none"
    kind: str | None  # "ocsp" | "crl"
    status: str  # "good" | "revoked" | "unknown"
    revoked_at: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class CoverageInfo:
    """Which bytes the signature covers. Revisions count from 0 (the file as first written)."""

    level: str | None  # ENTIRE_FILE | ENTIRE_REVISION | CONTIGUOUS_BLOCK_FROM_START | UNCLEAR
    byte_range: list[int]
    signed_revision: int | None
    total_revisions: int


@dataclass(frozen=True)
class Change:
    """One object added, updated or freed in a revision after the signature."""

    revision: int
    object: str  # "12 0"
    type: str  # /Page, /Annot, /Sig, stream, ...
    action: str  # added | updated | freed


@dataclass(frozen=True)
class ModificationInfo:
    """What changed after signing and whether the PDF rules permit it."""

    level: str | None  # pyHanko ModificationLevel name
    permitted: bool | None  # by the PDF rules (DocMDP, diff policy)
    docmdp: int | None  # certification level P, when the signature sets or is bound by one
    changed_form_fields: list[str]
    findings: list[str]
    changes: list[Change]


@dataclass(frozen=True)
class AlgorithmInfo:
    """The digest, signature mechanism and key of a signature."""

    digest: str | None
    signature: str | None  # rsassa_pss | rsassa_pkcs1v15 | ecdsa | ...
    key_type: str | None  # rsa | ec | ...
    key_size: int | None
    curve: str | None = None


@dataclass(frozen=True)
class PolicyResult:
    """The verdict of the algorithm policy in force at signing time."""

    name: str  # "circular-15-2025" | "historical"
    passed: bool
    level: str  # "ok" | "warning" | "failure"
    notes: list[str]


@dataclass(frozen=True)
class PdfAttributes:
    """Entries of the PDF signature dictionary."""

    filter: str | None
    sub_filter: str | None
    reason: str | None
    location: str | None
    name: str | None
    contact_info: str | None


@dataclass(frozen=True)
class SignatureReport:
    """The verdict on one signature or document timestamp, with its evidence."""

    id: str
    field: str | None
    kind: str  # "signature" | "certification" | "document-timestamp"
    indication: str
    sub_indication: str | None
    messages: list[str]
    signer: CertInfo | None
    signing_time: SigningTime
    timestamps: list[TimestampInfo]
    chain: ChainInfo
    revocation: RevocationInfo
    coverage: CoverageInfo
    modifications: ModificationInfo
    algorithms: AlgorithmInfo
    policy: PolicyResult | None
    intact: bool | None
    valid: bool | None
    signature_value: str | None  # base64 of the raw signature value
    signature_value_digest: Digest | None
    dtbsr_digest: Digest | None  # digest of the signed attributes (the data to be signed)
    document_digest: Digest | None  # digest of the /ByteRange (the signer's document)
    pdf: PdfAttributes | None


@dataclass(frozen=True)
class Summary:
    """The document's verdict: the worst of its signatures', and why."""

    indication: str
    sub_indication: str | None
    signatures: int
    document_timestamps: int
    message: str


@dataclass(frozen=True)
class DocumentReport:
    """Everything :func:`~signing.validation.pdf.validate_pdf` found; see
    ``schemas/xsd/validation-report.schema.json``."""

    schema: str
    validated_at: str  # wall-clock time of this validation
    validation_time: str  # the reference time (``TrustSettings.at`` or now)
    point_in_time: bool
    revocation_mode: str
    document_sha256: str
    document_size: int
    revisions: int
    anchors: list[CertInfo]
    summary: Summary
    signatures: list[SignatureReport]
    errors: list[str] = field(default_factory=list)


# ----- package reports ---------------------------------------------------------------------


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
    """Everything :func:`~signing.validation.package.validate_package` found: the package's
    XML signature and each PDF attachment's report; ``indication`` is the worst of them."""

    schema: str
    validated_at: str
    package_sha256: str
    indication: str
    sub_indication: str | None
    message: str
    xml_signature: XmlSignatureReport
    attachments: list[AttachmentReport] = field(default_factory=list)
    skipped_attachments: list[str] = field(default_factory=list)  # not PDF: nothing to verify


def report_to_dict(report: DocumentReport | PackageReport) -> dict[str, Any]:
    """The report as plain JSON-ready data (``schema`` first)."""
    data = dataclasses.asdict(report)
    return {"schema": data.pop("schema"), **data}


def document_report_from_dict(data: dict[str, Any]) -> DocumentReport:
    """Rebuild a :class:`DocumentReport` from its JSON form (the form package reports hold their
    attachments' reports in), for the XML and HTML renderers."""
    return _from_dict(DocumentReport, data)


def attachment_documents(report: PackageReport) -> list[tuple[str, DocumentReport | None]]:
    """(attachment name or content id, its PDF report; None if it cannot be rebuilt)."""
    out: list[tuple[str, DocumentReport | None]] = []
    for attachment in report.attachments:
        try:
            rebuilt: DocumentReport | None = document_report_from_dict(attachment.report)
        except (TypeError, KeyError, ValueError):
            rebuilt = None
        out.append((attachment.name or attachment.content_id, rebuilt))
    return out


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {
        f.name: _convert(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)
        if f.name in data
    }
    return cls(**kwargs)


def _convert(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is list:
        (item,) = typing.get_args(kind)
        return [_convert(item, v) for v in value]
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _from_dict(kind, value)
    return value
