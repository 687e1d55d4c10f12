"""The report on one PDF signature or document timestamp, from pyHanko's status and our checks.

In the order a verdict is reached (ETSI EN 319 102-1 indications; the reason for the verdict is
the first message, every other finding follows):

1. *Cryptography* (pyHanko): the ``/ByteRange`` digest against the signed ``messageDigest``
   (``HASH_FAILURE``), then the signature value (``SIG_CRYPTO_FAILURE``).
2. *Coverage and modifications* (:mod:`signing.validation.modifications`).
3. *Certificate chain* at the validation time, or at a proven time (:mod:`.timing`).
4. *Algorithm policy* (:mod:`signing.validation.policy`).
"""

from __future__ import annotations

import datetime as dt

from asn1crypto import x509 as asn1_x509
from pyhanko.sign.validation import EmbeddedPdfSignature
from pyhanko.sign.validation.status import DocumentTimestampStatus, PdfSignatureStatus

from signing.validation.caveats import policy_warning, revoked_after_proof, timestamp_warning
from signing.validation.certs import cert_info, chain_info
from signing.validation.facts import (
    DocumentFacts,
    SignatureFacts,
    identity_digests,
    pdf_attributes,
)
from signing.validation.modifications import docmdp_for, modification_info
from signing.validation.policy import algorithms_of, evaluate_policy, signature_hash
from signing.validation.report import (
    INDETERMINATE,
    TOTAL_FAILED,
    TOTAL_PASSED,
    AlgorithmInfo,
    ChainInfo,
    CoverageInfo,
    ModificationInfo,
    PolicyResult,
    RevocationInfo,
    SignatureReport,
    SigningTime,
    TimestampInfo,
    iso,
    severity,
)
from signing.validation.revocation import revocation_info, soft_failed_warning
from signing.validation.timing import (
    ChainQuery,
    TrustOutcome,
    best_signing_time,
    resolve_trust,
    timestamp_info,
)

__all__ = ["report_signature", "report_timestamp"]


class _Verdict:
    """The indication so far; the reason for the worst verdict is the first message."""

    def __init__(self) -> None:
        self.indication, self.sub = TOTAL_PASSED, None
        self.messages: list[str] = []

    def fail(self, indication: str, sub: str, message: str) -> None:
        if severity(indication) > severity(self.indication):
            self.indication, self.sub = indication, sub
            self.messages.insert(0, message)
        else:
            self.messages.append(message)

    def note(self, message: str | None) -> None:
        if message:
            self.messages.append(message)

    @property
    def passed(self) -> bool:
        return self.indication == TOTAL_PASSED


def _integrity(verdict: _Verdict, status, altered: str, bad_value: str) -> None:
    if not status.intact:
        verdict.fail(TOTAL_FAILED, "HASH_FAILURE", altered)
    elif not status.valid:
        verdict.fail(TOTAL_FAILED, "SIG_CRYPTO_FAILURE", bad_value)


def _modifications(
    verdict: _Verdict, emb: EmbeddedPdfSignature, doc: DocumentFacts
) -> ModificationInfo:
    docmdp = docmdp_for(emb, doc.certification)
    mods, failure, policy = modification_info(emb, doc.signature_fields, docmdp)
    if failure:
        verdict.fail(TOTAL_FAILED, "FORMAT_FAILURE", failure)
    elif policy:
        verdict.fail(INDETERMINATE, "SIG_CONSTRAINTS_FAILURE", policy)
    return mods


def _policy(
    verdict: _Verdict,
    emb: EmbeddedPdfSignature,
    cert: asn1_x509.Certificate,
    when: dt.datetime | None,
    proven: bool,
) -> tuple[AlgorithmInfo, PolicyResult]:
    algs = algorithms_of(emb.signer_info, cert)
    policy, sub = evaluate_policy(algs, signature_hash(emb.signer_info), when, proven)
    if sub:
        verdict.fail(INDETERMINATE, sub, "; ".join(policy.notes))
    elif policy.level == "warning":
        verdict.note(policy_warning(policy.notes))
    return algs, policy


def _trust(verdict: _Verdict, outcome: TrustOutcome) -> None:
    if outcome.indication != TOTAL_PASSED:
        verdict.fail(outcome.indication, outcome.sub_indication or "GENERIC", outcome.message or "")


def _chain(
    verdict: _Verdict, outcome: TrustOutcome, doc: DocumentFacts, query: ChainQuery
) -> tuple[ChainInfo, RevocationInfo]:
    trusted = outcome.indication == TOTAL_PASSED
    chain = chain_info(outcome.path, query.cert, query.others, trusted, outcome.moment)
    revocation = revocation_info(
        outcome.vc, query.cert, doc.embedded, outcome, trusted, outcome.path
    )
    if trusted and revocation.status == "unknown" and doc.trust.revocation == "soft-fail":
        verdict.messages.append(soft_failed_warning(query.cert))
    return chain, revocation


async def report_signature(
    facts: SignatureFacts, doc: DocumentFacts, doc_ts_time: dt.datetime | None
) -> SignatureReport:
    """The report on a signature pyHanko could process (``facts.status``); ``doc_ts_time`` is
    the earliest trusted document timestamp over it, if any."""
    emb, status = facts.emb, facts.status
    assert emb is not None and isinstance(status, PdfSignatureStatus)
    cert, others, verdict = status.signing_cert, list(emb.other_embedded_certs), _Verdict()
    timestamps, sig_ts_time = await _signature_timestamps(verdict, status, doc, doc_ts_time)
    claimed = emb.self_reported_timestamp
    best, source, proven = best_signing_time(sig_ts_time, doc_ts_time, claimed, doc.moment)
    if doc.trust.at is not None and best > doc.moment + dt.timedelta(minutes=5):
        if proven:
            message = (
                f"the signature was made at {iso(best)}, after the validation time "
                f"{iso(doc.moment)}"
            )
            verdict.fail(INDETERMINATE, "NO_POE", message)
        else:
            verdict.note(f"the claimed signing time {iso(best)} is after the validation time")
    _integrity(
        verdict,
        status,
        "the signed bytes were altered (digest mismatch)",
        "the signature value does not verify",
    )
    mods = _modifications(verdict, emb, doc)
    query = ChainQuery(cert, others, {"non_repudiation"})  # as pyHanko asks of PDF signers
    outcome = await resolve_trust(
        doc.trust, status, query, doc.vc, doc.moment, best if proven else None
    )
    _trust(verdict, outcome)
    if outcome.indication == TOTAL_PASSED and outcome.moment not in (None, doc.moment):
        verdict.note(f"certificate chain validated at the proven signing time {iso(best)}")
    algs, policy = _policy(verdict, emb, cert, best, proven)
    chain, revocation = _chain(verdict, outcome, doc, query)
    if outcome.indication == TOTAL_PASSED and revocation.status == "revoked":
        verdict.note(revoked_after_proof(revocation.revoked_at, iso(best)))
    if verdict.passed and not verdict.messages:
        verdict.note("the signature is valid")
    kind = "certification" if doc.certification is emb else "signature"
    signing_time = SigningTime(iso(best), source, iso(claimed), proven)
    parts = (timestamps, chain, revocation, mods, algs, policy)
    return _report(facts, doc, kind, verdict, cert, signing_time, *parts)


async def _signature_timestamps(
    verdict: _Verdict, status: PdfSignatureStatus, doc: DocumentFacts, later: dt.datetime | None
) -> tuple[list[TimestampInfo], dt.datetime | None]:
    """The signature's own and content timestamps, and the time the first one proves."""
    found = []
    sig_ts, proven = await timestamp_info(
        doc.trust, "signature-timestamp", status.timestamp_validity, doc.vc, later
    )
    content_ts, _ = await timestamp_info(
        doc.trust, "content-timestamp", status.content_timestamp_validity, doc.vc, later
    )
    for ts in (sig_ts, content_ts):
        if ts is not None:
            found.append(ts)
            verdict.note(timestamp_warning(ts.kind, ts.intact, ts.valid, ts.trusted, ts.problem))
    return found, proven


async def report_timestamp(
    facts: SignatureFacts, doc: DocumentFacts, proof_after: dt.datetime | None
) -> SignatureReport:
    """The report on a document timestamp; ``proof_after`` is the time a newer trusted document
    timestamp proves. Sets ``facts.proven_time`` when this one passes."""
    emb, status = facts.emb, facts.status
    assert emb is not None and isinstance(status, DocumentTimestampStatus)
    tsa, verdict = status.signing_cert, _Verdict()
    _integrity(
        verdict,
        status,
        "the timestamped bytes were altered (digest mismatch)",
        "the timestamp signature does not verify",
    )
    mods = _modifications(verdict, emb, doc)
    query = ChainQuery(tsa, list(emb.other_embedded_certs), set(), {"time_stamping"})
    outcome = await resolve_trust(doc.trust, status, query, doc.vc, doc.moment, proof_after)
    _trust(verdict, outcome)
    gen_time = status.timestamp
    algs, policy = _policy(verdict, emb, tsa, gen_time, True)
    chain, revocation = _chain(verdict, outcome, doc, query)
    if verdict.passed:
        facts.proven_time = gen_time
        if not verdict.messages:
            verdict.note("the document timestamp is valid")
    signing_time = SigningTime(iso(gen_time), "document-timestamp", None, True)
    parts = ([], chain, revocation, mods, algs, policy)
    return _report(facts, doc, "document-timestamp", verdict, tsa, signing_time, *parts)


def _report(
    facts: SignatureFacts,
    doc: DocumentFacts,
    kind: str,
    verdict: _Verdict,
    signer: asn1_x509.Certificate,
    signing_time: SigningTime,
    timestamps: list[TimestampInfo],
    chain: ChainInfo,
    revocation: RevocationInfo,
    mods: ModificationInfo,
    algs: AlgorithmInfo,
    policy: PolicyResult,
) -> SignatureReport:
    emb, status = facts.emb, facts.status
    assert emb is not None and status is not None
    value, vdig, dtbsr, docdig = identity_digests(emb)
    return SignatureReport(
        id=f"sig-{facts.index}",
        field=facts.field,
        kind=kind,
        indication=verdict.indication,
        sub_indication=verdict.sub,
        messages=verdict.messages,
        signer=cert_info(signer),
        signing_time=signing_time,
        timestamps=timestamps,
        chain=chain,
        revocation=revocation,
        coverage=CoverageInfo(
            emb.coverage.name if emb.coverage is not None else None,
            facts.byte_range,
            emb.signed_revision,
            doc.total_revisions,
        ),
        modifications=mods,
        algorithms=algs,
        policy=policy,
        intact=bool(status.intact),
        valid=bool(status.valid),
        signature_value=value,
        signature_value_digest=vdig,
        dtbsr_digest=dtbsr,
        document_digest=docdig,
        pdf=pdf_attributes(emb.sig_object),
    )
