"""Revocation in a report: which OCSP response or CRL spoke for a certificate, what a document
embeds, and why a certificate could not be checked at all."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from asn1crypto import crl, ocsp
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.general import (
    MultivaluedAttributeError,
    NonexistentAttributeError,
    find_unique_cms_attribute,
)
from pyhanko.sign.validation import DocumentSecurityStore, EmbeddedPdfSignature
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.path import ValidationPath

from signing.validation.caveats import REVOCATION_SOFT_FAILED
from signing.validation.certs import path_certs
from signing.validation.report import RevocationInfo, iso

__all__ = [
    "describe",
    "embedded_revinfo",
    "names_no_revocation_source",
    "revocation_info",
    "silent_certificates",
    "soft_failed_warning",
    "unreachable_revocation",
]


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


def _ocsp_matches(
    resp: ocsp.OCSPResponse, cert: asn1_x509.Certificate
) -> tuple[str, dt.datetime | None] | None:
    """The status an OCSP response gives ``cert`` ("good"/"revoked"/"unknown") and when."""
    try:
        tbs = resp.basic_ocsp_response["tbs_response_data"]
        for single in tbs["responses"]:
            cid = single["cert_id"]
            if cid["serial_number"].native != cert.serial_number:
                continue
            algo = cid["hash_algorithm"]["algorithm"].native
            issuer_hash = hashlib.new(algo, cert.issuer.dump()).digest()
            if issuer_hash == cid["issuer_name_hash"].native:
                state = str(single["cert_status"].name)
                when = None
                if state == "revoked":
                    when = single["cert_status"].chosen["revocation_time"].native
                return state, when
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return None


def _crl_matches(
    item: crl.CertificateList, cert: asn1_x509.Certificate, issuer: asn1_x509.Certificate | None
) -> str | None:
    """The status a CRL gives ``cert``, when it is its issuer's CRL (name and key id)."""
    try:
        if item.issuer != cert.issuer:
            return None
        aki = item.authority_key_identifier
        if (
            issuer is not None
            and aki is not None
            and issuer.key_identifier is not None
            and aki != issuer.key_identifier
        ):
            return None
        for entry in item["tbs_cert_list"]["revoked_certificates"]:
            if entry["user_certificate"].native == cert.serial_number:
                return "revoked"
        return "good"
    except (ValueError, KeyError, TypeError):
        return None


def revocation_info(
    vc: ValidationContext | None,
    cert: asn1_x509.Certificate | None,
    embedded: set[bytes],
    status: Any,
    trusted: bool,
    path: ValidationPath | None,
) -> RevocationInfo:
    """Which revocation data spoke for ``cert`` (only meaningful when a chain was built)."""
    details = getattr(status, "revocation_details", None)
    revoked_at = iso(details.revocation_date) if details is not None else None
    reason = None
    if details is not None:
        try:
            reason = str(details.revocation_reason.native)
        except (ValueError, AttributeError):
            reason = None
    if vc is None or cert is None or path is None:
        return RevocationInfo(False, "none", None, "unknown", revoked_at, reason)
    found, ocsp_revoked_at = _answer(vc, cert, _issuer(path, cert), embedded)
    revoked_at = revoked_at or ocsp_revoked_at
    if details is not None:
        source, kind = (found[0], found[1]) if found else ("online", None)
        return RevocationInfo(True, source, kind, "revoked", revoked_at, reason)
    if found is None:
        return RevocationInfo(False, "none", None, "unknown")
    state = found[2] if found[2] in ("good", "revoked") else "unknown"
    return RevocationInfo(
        trusted or state == "revoked",
        found[0],
        found[1],
        state,
        revoked_at if state == "revoked" else None,
    )


def _issuer(path: ValidationPath, cert: asn1_x509.Certificate) -> asn1_x509.Certificate | None:
    try:
        chain, _ = path_certs(path)
        return next((c for c in chain if c.subject == cert.issuer), None)
    except Exception:  # noqa: BLE001
        return None


def _answer(
    vc: ValidationContext,
    cert: asn1_x509.Certificate,
    issuer: asn1_x509.Certificate | None,
    embedded: set[bytes],
) -> tuple[tuple[str, str, str] | None, str | None]:
    """((source, kind, status) of the OCSP response or CRL that answers for ``cert``, if any;
    the revocation time an OCSP response gives), OCSP first, a CRL when OCSP says nothing."""

    def source(item) -> str:
        return "embedded" if hashlib.sha256(item.dump()).digest() in embedded else "online"

    found: tuple[str, str, str] | None = None
    revoked_at = None
    for resp in vc.ocsps:
        match = _ocsp_matches(resp, cert)
        if match is not None:
            found = (source(resp), "ocsp", match[0])
            if match[1] is not None and revoked_at is None:
                revoked_at = iso(match[1])
            if match[0] != "unknown":
                break
    if found is None or found[2] == "unknown":
        for item in vc.crls:
            state = _crl_matches(item, cert, issuer)
            if state is not None:
                return (source(item), "crl", state), revoked_at
    return found, revoked_at


def embedded_revinfo(
    reader: PdfFileReader, sigs: Sequence[EmbeddedPdfSignature]
) -> tuple[list[asn1_x509.Certificate], list[crl.CertificateList], list[ocsp.OCSPResponse]]:
    """The certificates, CRLs and OCSP responses the document carries: its DSS and each
    signature's signed revocation attribute (a broken item is left out, not fatal)."""
    certs: list[asn1_x509.Certificate] = []
    crls: list[crl.CertificateList] = []
    ocsps: list[ocsp.OCSPResponse] = []
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        dss = None
    except Exception:  # noqa: BLE001 - a broken DSS simply contributes nothing
        dss = None
    if dss is not None:
        # Parse every entry now: one broken item is dropped, it does not spoil validation.
        for loader, refs, bucket in (
            (asn1_x509.Certificate.load, dss.certs.values(), certs),
            (crl.CertificateList.load, dss.crls, crls),
            (ocsp.OCSPResponse.load, dss.ocsps, ocsps),
        ):
            for ref in refs:
                try:
                    item = loader(ref.get_object().data)
                    item.native  # noqa: B018 - full parse
                except Exception:  # noqa: BLE001
                    continue
                bucket.append(item)
    for emb in sigs:
        try:
            archival = find_unique_cms_attribute(
                emb.signer_info["signed_attrs"], "adobe_revocation_info_archival"
            )
            crls.extend(archival["crl"])
            ocsps.extend(archival["ocsp"])
        except (NonexistentAttributeError, MultivaluedAttributeError, ValueError, KeyError):
            pass
    return certs, crls, ocsps


def soft_failed_warning(cert: asn1_x509.Certificate | None) -> str:
    """The soft-fail caveat, with the reason when the certificate gives no way to check it."""
    if cert is not None and names_no_revocation_source(cert):
        return (
            f"{REVOCATION_SOFT_FAILED}: the certificate names no OCSP responder and no CRL "
            "distribution point"
        )
    return REVOCATION_SOFT_FAILED
