"""Which certificates of a chain give no way to check their revocation status.

A certificate that names neither an OCSP responder (AIA) nor a CRL distribution point cannot be
checked online, and nothing can be embedded for it in a long-term signature. ``hard-fail`` and
``embedded-only`` verification want an answer for every certificate below the anchor, so such a
certificate leaves the signature ``INDETERMINATE/TRY_LATER``; :func:`silent_certificates` names
them so that the report can say why.
"""

from __future__ import annotations

from typing import Any

from asn1crypto import x509 as asn1_x509

__all__ = ["describe", "names_no_revocation_source", "silent_certificates"]


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
