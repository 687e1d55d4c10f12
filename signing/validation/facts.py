"""What a document's validation knows about each signature while it works, and the reports on
signatures that could not be processed at all."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass

from pyhanko.pdf_utils import generic
from pyhanko.sign.validation import EmbeddedPdfSignature
from pyhanko.sign.validation.status import DocumentTimestampStatus, PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext

from signing.trust import TrustSettings
from signing.validation.certs import cert_info
from signing.validation.policy import algorithms_of
from signing.validation.report import (
    INDETERMINATE,
    TOTAL_FAILED,
    AlgorithmInfo,
    ChainInfo,
    CoverageInfo,
    Digest,
    ModificationInfo,
    PdfAttributes,
    RevocationInfo,
    SignatureReport,
    SigningTime,
    iso,
)

__all__ = [
    "DocumentFacts",
    "SignatureFacts",
    "error_report",
    "format_failure_report",
    "identity_digests",
    "pdf_attributes",
]


_TOTAL_FAILED_SUBS = {
    "FORMAT_FAILURE",
    "HASH_FAILURE",
    "SIG_CRYPTO_FAILURE",
    "REVOKED",
    "NOT_YET_VALID",
}


@dataclass
class SignatureFacts:
    """What one signature needs while the document is being worked through."""

    emb: EmbeddedPdfSignature | None
    field: str
    index: int
    is_timestamp: bool
    byte_range: list[int]
    format_error: str | None = None
    status: PdfSignatureStatus | DocumentTimestampStatus | None = None
    error_subindic: str | None = None
    error_message: str | None = None
    report: SignatureReport | None = None
    proven_time: dt.datetime | None = None  # for document timestamps: genTime once trusted


@dataclass(frozen=True)
class DocumentFacts:
    """What every signature of one document is judged against."""

    trust: TrustSettings
    vc: ValidationContext  # the document's: what it embeds, what was fetched for it
    moment: dt.datetime
    total_revisions: int
    signature_fields: set[str]
    certification: EmbeddedPdfSignature | None
    embedded: set[bytes]  # SHA-256 of the OCSP responses and CRLs the document carries


def identity_digests(
    emb: EmbeddedPdfSignature,
) -> tuple[str | None, Digest | None, Digest | None, Digest | None]:
    """The signature value (base64) and the digests that identify the signature: of the value,
    of the signed attributes (the DTBSR) and of the ``/ByteRange`` (the signer's document)."""
    try:
        value = emb.signer_info["signature"].native
    except (ValueError, KeyError):
        return None, None, None, None
    md = emb.md_algorithm or "sha256"
    try:
        signed_attrs = emb.signer_info["signed_attrs"].untag().dump()
        dtbsr = Digest(md, hashlib.new(md, signed_attrs).hexdigest())
    except Exception:  # noqa: BLE001
        dtbsr = None
    try:
        doc = Digest(emb.external_md_algorithm, emb.compute_digest().hex())
    except Exception:  # noqa: BLE001
        doc = None
    return (
        base64.b64encode(value).decode("ascii"),
        Digest("sha256", hashlib.sha256(value).hexdigest()),
        dtbsr,
        doc,
    )


def pdf_attributes(sig_object: generic.DictionaryObject) -> PdfAttributes:
    """The signature dictionary's ``/Filter``, ``/SubFilter``, ``/Reason`` and the like."""

    def get(key: str) -> str | None:
        try:
            value = sig_object.get(key)
        except Exception:  # noqa: BLE001
            return None
        if value is None:
            return None
        return str(value)[1:] if isinstance(value, generic.NameObject) else str(value)

    return PdfAttributes(
        get("/Filter"),
        get("/SubFilter"),
        get("/Reason"),
        get("/Location"),
        get("/Name"),
        get("/ContactInfo"),
    )


def format_failure_report(
    facts: SignatureFacts, total_revisions: int, message: str
) -> SignatureReport:
    """``TOTAL-FAILED/FORMAT_FAILURE`` for a signature that cannot be read or processed, with
    whatever of it could be read."""
    emb = facts.emb
    signer = None
    algs = AlgorithmInfo(None, None, None, None)
    claimed = None
    value = vdig = dtbsr = None
    pdf = None
    if emb is not None:
        try:
            signer = cert_info(emb.signer_cert)
            algs = algorithms_of(emb.signer_info, emb.signer_cert)
            claimed = iso(emb.self_reported_timestamp)
            value, vdig, dtbsr, _ = identity_digests(emb)
        except Exception:  # noqa: BLE001
            pass
        pdf = pdf_attributes(emb.sig_object)
    return SignatureReport(
        id=f"sig-{facts.index}",
        field=facts.field,
        kind="document-timestamp" if facts.is_timestamp else "signature",
        indication=TOTAL_FAILED,
        sub_indication="FORMAT_FAILURE",
        messages=[message],
        signer=signer,
        signing_time=SigningTime(None, "none", claimed, False),
        timestamps=[],
        chain=ChainInfo(False, None, None, [signer] if signer else []),
        revocation=RevocationInfo(False, "none", None, "unknown"),
        coverage=CoverageInfo(None, facts.byte_range, None, total_revisions),
        modifications=ModificationInfo(None, None, None, [], [], []),
        algorithms=algs,
        policy=None,
        intact=None,
        valid=None,
        signature_value=value,
        signature_value_digest=vdig,
        dtbsr_digest=dtbsr,
        document_digest=None,
        pdf=pdf,
    )


def error_report(facts: SignatureFacts, total_revisions: int) -> SignatureReport:
    """The report on a signature pyHanko refused to process (``facts.error_*``)."""
    base = format_failure_report(
        facts, total_revisions, facts.error_message or "the signature cannot be processed"
    )
    sub = facts.error_subindic or "FORMAT_FAILURE"
    indication = TOTAL_FAILED if sub in _TOTAL_FAILED_SUBS else INDETERMINATE
    return dataclasses.replace(base, indication=indication, sub_indication=sub)
