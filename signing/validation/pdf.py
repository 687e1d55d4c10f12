"""Validation of signed PDFs: every signature and document timestamp, ETSI-style verdicts.

One entry point, a pure function of the document bytes and a
:class:`~signing.trust.TrustSettings`::

    report = await async_validate_pdf(data, trust)     # or validate_pdf(data, trust)
    report.summary.indication                          # TOTAL-PASSED | TOTAL-FAILED | INDETERMINATE

The steps, each in its own function below:

1. *Read*: the file is opened the way the signer opens it (:mod:`signing.pdf.reading`); the
   ``/ByteRange`` of each signature must be ``[0 a b c]`` with the gap ``[a, b)`` holding exactly
   its ``/Contents`` (``TOTAL-FAILED/FORMAT_FAILURE`` otherwise).
2. *Cryptography and the chain now*: pyHanko validates every readable signature and document
   timestamp against one validation context holding what the document embeds (DSS, signed
   revocation attributes).
3. *Document timestamps*, newest first: each proves the time of what it covers and can vouch
   for an older one whose TSA certificate has since expired.
4. *Signatures*: each judged by :mod:`signing.validation.signature`, with the earliest trusted
   document timestamp over it as a proven time.

The document's verdict is the worst of its signatures'. The result is made of frozen
dataclasses (:mod:`signing.validation.report`): it pickles and becomes JSON.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.validation import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.utils import CMSAlgorithmUsagePolicy
from pyhanko_certvalidator import ValidationContext

from signing.pdf.fasthex import fast_pdf_reading
from signing.pdf.reading import open_pdf
from signing.trust import TrustSettings, lenient_algorithm_policy
from signing.validation.caveats import signature_warnings, with_warnings
from signing.validation.certs import cert_info
from signing.validation.facts import (
    DocumentFacts,
    SignatureFacts,
    error_report,
    format_failure_report,
)
from signing.validation.modifications import byte_range_problem, is_certification
from signing.validation.report import (
    INDETERMINATE,
    SCHEMA,
    TOTAL_FAILED,
    TOTAL_PASSED,
    CertInfo,
    DocumentReport,
    SignatureReport,
    Summary,
    clip,
    iso,
    worst_indication,
)
from signing.validation.revocation import embedded_revinfo
from signing.validation.signature import report_signature, report_timestamp
from signing.validation.timing import subindication_name

__all__ = ["async_validate_pdf", "offline_gaps", "validate_pdf", "validate_pdf_in_pool"]


async def async_validate_pdf(data: bytes, trust: TrustSettings) -> DocumentReport:
    """Validate every signature and document timestamp in ``data``.

    A pure function of the bytes and the settings (network access only for revocation data,
    as the settings allow). It never raises for a bad document: parse errors become a
    ``TOTAL-FAILED/FORMAT_FAILURE`` report. It raises :class:`signing.errors.TrustError` when
    the trust configuration itself is unusable.

    The network waits are awaited, but hashing, signature checks and the difference analysis
    run on the calling event loop (tens of milliseconds per signature); a server should use
    :func:`validate_pdf_in_pool` to spread documents over a process pool.
    """
    with fast_pdf_reading():
        return await _validate(data, trust)


def validate_pdf(data: bytes, trust: TrustSettings) -> DocumentReport:
    """:func:`async_validate_pdf` for callers without an event loop (CLI, process pools)."""
    return asyncio.run(async_validate_pdf(data, trust))


async def validate_pdf_in_pool(
    executor: Executor, data: bytes, trust: TrustSettings
) -> DocumentReport:
    """Run :func:`validate_pdf` in ``executor`` (a ``ProcessPoolExecutor`` across cores).

    The validation is CPU-bound (hashing, RSA/EC, difference analysis); a process pool keeps
    the caller's event loop free. Arguments and result pickle.
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, validate_pdf, data, trust)


@dataclass(frozen=True)
class _Document:
    """What every report on this document states besides its signatures."""

    data: bytes
    trust: TrustSettings
    validated_at: dt.datetime
    moment: dt.datetime
    anchors: list[CertInfo]

    def report(
        self, summary: Summary, sigs: list[SignatureReport], revisions: int, errors: list[str]
    ) -> DocumentReport:
        return DocumentReport(
            schema=SCHEMA,
            validated_at=iso(self.validated_at) or "",
            validation_time=iso(self.moment) or "",
            point_in_time=self.trust.at is not None,
            revocation_mode=self.trust.revocation,
            document_sha256=hashlib.sha256(self.data).hexdigest(),
            document_size=len(self.data),
            revisions=revisions,
            anchors=self.anchors,
            summary=summary,
            signatures=sigs,
            errors=errors,
        )


async def _validate(data: bytes, trust: TrustSettings) -> DocumentReport:
    validated_at = dt.datetime.now(dt.UTC)
    anchors = [cert_info(c) for c in trust.load().anchors]
    document = _Document(data, trust, validated_at, trust.at or validated_at, anchors)
    try:
        reader = open_pdf(data)
        if reader.encrypted:
            raise ValueError("encrypted PDF documents are not supported")
        total_revisions = reader.xrefs.total_revisions
        fields = list(enumerate_sig_fields(reader))  # one walk of the form: all, then filled
        signature_fields = {name for name, _, _ in fields}
        facts = _signature_facts(data, reader, [f for f in fields if f[1]])
    except Exception as exc:  # noqa: BLE001 - hostile input: report, never raise
        message = f"the file cannot be read as a PDF: {clip(exc)}"
        summary = Summary(TOTAL_FAILED, "FORMAT_FAILURE", 0, 0, message)
        return document.report(summary, [], 0, [message])
    readable = [f.emb for f in facts if f.emb is not None and f.format_error is None]
    extra_certs, crls, ocsps = embedded_revinfo(reader, readable)
    vc = trust.validation_context(other_certs=extra_certs, crls=crls, ocsps=ocsps)
    doc = DocumentFacts(
        trust=trust,
        vc=vc,
        moment=document.moment,
        total_revisions=total_revisions,
        signature_fields=signature_fields,
        certification=_certification(reader, readable),
        embedded={hashlib.sha256(x.dump()).digest() for x in [*crls, *ocsps]},
    )
    policy = CMSAlgorithmUsagePolicy.lift_policy(lenient_algorithm_policy())
    try:
        for item in facts:
            await _check_now(item, vc, policy)
        await _report_timestamps(facts, doc)
        await _report_signatures(facts, doc)
    finally:
        await vc.aclose()
    reports = [f.report for f in facts if f.report is not None]
    return document.report(_summarise(reports, trust.revocation), reports, total_revisions, [])


def _signature_facts(
    data: bytes, reader: PdfFileReader, filled: list[tuple[str, object, generic.PdfObject]]
) -> list[SignatureFacts]:
    """Each filled signature field (``enumerate_sig_fields`` items with a ``/V``, which is what
    its ``filled_status=True`` selects), read as far as it can be, ``/ByteRange`` checked."""
    facts = []
    for index, (name, _value, sig_field) in enumerate(filled, start=1):
        emb: EmbeddedPdfSignature | None = None
        byte_range: list[int] = []
        error = None
        is_ts = False
        try:
            emb = EmbeddedPdfSignature(reader, sig_field, name)
            is_ts = emb.sig_object_type == "/DocTimeStamp"
            byte_range, error = byte_range_problem(data, emb.sig_object, emb.pkcs7_content)
        except Exception as exc:  # noqa: BLE001
            is_ts, byte_range = _what_is_left(sig_field, is_ts)
            error = f"the signature cannot be read: {clip(exc)}"
        facts.append(SignatureFacts(emb, name, index, is_ts, byte_range, error))
    return facts


def _what_is_left(sig_field: generic.PdfObject, is_ts: bool) -> tuple[bool, list[int]]:
    """Whether an unreadable signature is a document timestamp, and its ``/ByteRange``."""
    try:
        sig_obj = sig_field.get_object()["/V"].get_object()
        is_ts = sig_obj.get("/Type") == "/DocTimeStamp"
    except Exception:  # noqa: BLE001
        return is_ts, []
    try:
        return is_ts, [int(x) for x in sig_obj.get("/ByteRange", [])]
    except Exception:  # noqa: BLE001
        return is_ts, []


def _certification(
    reader: PdfFileReader, readable: Sequence[EmbeddedPdfSignature]
) -> EmbeddedPdfSignature | None:
    """The certification (DocMDP) signature, if the document has one."""
    try:
        return next(
            (e for e in readable if e.sig_object_type == "/Sig" and is_certification(reader, e)),
            None,
        )
    except Exception:  # noqa: BLE001
        return None


async def _check_now(
    facts: SignatureFacts, vc: ValidationContext, policy: CMSAlgorithmUsagePolicy
) -> None:
    """pyHanko's cryptographic and current-time checks, into ``facts.status`` or the error."""
    if facts.emb is None or facts.format_error is not None:
        return
    try:
        if facts.is_timestamp:
            facts.status = await async_validate_pdf_timestamp(
                facts.emb, validation_context=vc, diff_policy=DEFAULT_DIFF_POLICY
            )
        else:
            facts.status = await async_validate_pdf_signature(
                facts.emb,
                signer_validation_context=vc,
                ts_validation_context=vc,
                diff_policy=DEFAULT_DIFF_POLICY,
                algorithm_policy=policy,
            )
    except SignatureValidationError as exc:
        indic = getattr(exc, "ades_subindication", None)
        facts.error_subindic = subindication_name(indic) or "FORMAT_FAILURE"
        facts.error_message = clip(getattr(exc, "failure_message", None) or exc)
    except Exception as exc:  # noqa: BLE001
        facts.error_subindic = "FORMAT_FAILURE"
        facts.error_message = f"the signature cannot be processed: {clip(exc)}"


async def _report_timestamps(facts: list[SignatureFacts], doc: DocumentFacts) -> None:
    """Document timestamps, newest first, each vouched for by the newer ones that passed."""
    timestamps = sorted(
        (f for f in facts if f.is_timestamp and f.status is not None),
        key=lambda f: f.emb.signed_revision,  # type: ignore[union-attr]
        reverse=True,
    )
    proof_after: dt.datetime | None = None
    for item in timestamps:
        try:
            item.report = await report_timestamp(item, doc, proof_after)
        except Exception as exc:  # noqa: BLE001
            message = f"the timestamp cannot be processed: {clip(exc)}"
            item.report = format_failure_report(item, doc.total_revisions, message)
        if item.report.indication == TOTAL_PASSED and item.proven_time is not None:
            proof_after = item.proven_time


def _document_timestamp_proof(
    facts: list[SignatureFacts], emb: EmbeddedPdfSignature
) -> dt.datetime | None:
    """The earliest time a trusted document timestamp after ``emb``'s revision proves."""
    covering = [
        f.proven_time
        for f in facts
        if f.is_timestamp
        and f.proven_time is not None
        and f.report is not None
        and f.report.indication == TOTAL_PASSED
        and f.emb is not None
        and f.emb.signed_revision > emb.signed_revision
    ]
    return min(covering) if covering else None


async def _report_signatures(facts: list[SignatureFacts], doc: DocumentFacts) -> None:
    """Every signature (and anything not reported yet): its own report, never an exception."""
    for item in facts:
        if item.report is not None:
            continue
        if item.emb is None or item.format_error is not None:
            message = item.format_error or "unreadable signature"
            item.report = format_failure_report(item, doc.total_revisions, message)
        elif item.status is None:
            item.report = error_report(item, doc.total_revisions)
        else:
            try:
                proof = _document_timestamp_proof(facts, item.emb)
                item.report = await report_signature(item, doc, proof)
            except Exception as exc:  # noqa: BLE001 - hostile input must not crash the hub
                message = f"the signature cannot be processed: {clip(exc)}"
                item.report = format_failure_report(item, doc.total_revisions, message)


def _summarise(reports: list[SignatureReport], revocation_mode: str) -> Summary:
    n_ts = sum(1 for r in reports if r.kind == "document-timestamp")
    n_sig = len(reports) - n_ts
    if not reports:
        return Summary(INDETERMINATE, None, 0, 0, "the document carries no signature")
    worst = worst_indication(r.indication for r in reports) or INDETERMINATE
    first = next(r for r in reports if r.indication == worst)
    warnings = [w for r in reports for w in signature_warnings(r, revocation_mode)]
    if worst == TOTAL_PASSED and warnings:
        message = with_warnings(f"{len(reports)} signature(s) and timestamp(s) valid", warnings)
    elif worst == TOTAL_PASSED:
        message = f"all {len(reports)} signature(s) and timestamp(s) are valid"
    else:
        label = first.field or first.id
        message = f"{label}: {first.messages[0] if first.messages else worst}"
    return Summary(worst, first.sub_indication, n_sig, n_ts, message)


async def offline_gaps(
    signed: bytes,
    field: str,
    trust_roots: Sequence[Path],
    intermediates: Sequence[Path] = (),
) -> list[str]:
    """What ``lienthong verify --revocation embedded-only`` would object to in the signature
    ``field`` of ``signed`` and in a document timestamp after it; empty when it passes.

    The signer reports it when the clerk accepted a long-term signature without revocation
    data for every certificate: an auditor checking the file offline, years later, will find
    exactly this.
    """
    trust = TrustSettings(
        anchors=list(trust_roots), intermediates=list(intermediates), revocation="embedded-only"
    )
    report = await async_validate_pdf(signed, trust)
    ours = [s for s in report.signatures if s.field == field]
    if ours and ours[0].coverage.signed_revision is not None:
        after = ours[0].coverage.signed_revision
        ours += [
            s
            for s in report.signatures
            if s.kind == "document-timestamp" and (s.coverage.signed_revision or 0) > after
        ]
    gaps = []
    for sig in ours:
        if sig.indication != TOTAL_PASSED:
            reason = sig.messages[0] if sig.messages else sig.indication
            what = "the document timestamp" if sig.kind == "document-timestamp" else field
            gaps.append(
                f"verified offline (embedded-only), {what} would be {sig.indication}/"
                f"{sig.sub_indication}: {reason}"
            )
    return gaps
