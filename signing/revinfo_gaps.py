"""Which certificates a long-term (B-LT/B-LTA) signature cannot carry revocation data for.

A B-LT signature is worth its name only if the file holds an OCSP response or a CRL for every
certificate of the signer's and the TSA's chains below the trust anchor: that is what lets an
auditor verify it offline, years later (``lienthong verify --revocation embedded-only``).

* :func:`silent_certificates` names the certificates of a certvalidator "no revocation
  information" failure that name no OCSP responder and no CRL distribution point (the verifier
  says so); :func:`unreachable_revocation` is the signer's sentence for the same failure.
* :func:`offline_gaps` verifies a freshly signed file the way that auditor will, with the
  project's own verifier in ``embedded-only`` mode, and returns what it would object to; the
  signer reports it when the clerk accepted signing without revocation data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509

__all__ = [
    "ACCEPT_HINT",
    "describe",
    "names_no_revocation_source",
    "offline_gaps",
    "silent_certificates",
    "unreachable_revocation",
]

ACCEPT_HINT = "--allow-missing-revocation"  # how a clerk accepts signing without the data


def describe(cert: asn1_x509.Certificate) -> str:
    """``common name (organisation)``, or the whole subject when there is no common name."""
    names = cert.subject.native
    text = names.get("common_name") or cert.subject.human_friendly
    organisation = names.get("organization_name")
    if organisation and organisation != text:
        text += f" ({organisation})"
    return text


def names_no_revocation_source(cert: asn1_x509.Certificate) -> bool:
    """Whether ``cert`` names neither an OCSP responder (AIA) nor a CRL distribution point."""
    return not cert.ocsp_urls and not cert.crl_distribution_points


def _below_anchor(path: Any) -> list[asn1_x509.Certificate]:
    try:
        certs = path.iter_certs(include_root=False)
        return [c for c in certs if isinstance(c, asn1_x509.Certificate)]
    except Exception:  # noqa: BLE001 - a partial path: nothing to say
        return []


def silent_certificates(exc: Exception) -> list[str]:
    """The certificates of the failed path (``exc``: a certvalidator PathValidationError) that
    name no OCSP responder and no CRL distribution point."""
    path = getattr(exc, "original_path", None)
    certs = _below_anchor(path) if path is not None else []
    return [describe(c) for c in certs if names_no_revocation_source(c)]


def unreachable_revocation(exc: Exception) -> str:
    """Why the signer could get no revocation answer (``exc``: an InsufficientRevinfoError)."""
    silent = silent_certificates(exc)
    if silent:
        return (
            f"the certificate of {', '.join(silent)} names no OCSP responder and no CRL "
            "distribution point, so no revocation data can be obtained or embedded for it"
        )
    return f"no OCSP or CRL answer could be obtained ({' '.join(str(exc).split())[:300]})"


async def offline_gaps(
    signed: bytes,
    field: str,
    trust_roots: Sequence[Path],
    intermediates: Sequence[Path] = (),
) -> list[str]:
    """What ``lienthong verify --revocation embedded-only`` would object to in the signature
    ``field`` of ``signed`` and in a document timestamp after it; empty when it passes."""
    from signing.trust import TrustSettings
    from signing.validate import TOTAL_PASSED, validate_pdf

    trust = TrustSettings(
        anchors=list(trust_roots), intermediates=list(intermediates), revocation="embedded-only"
    )
    report = await validate_pdf(signed, trust)
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
