"""Time in validation: the chain's verdict at the validation time and, when that fails only
because of time, again at a time a timestamp proves (past signature validation, ETSI EN 319
102-1 5.6.2.4); and the timestamps themselves.

When the chain fails at the validation time because the certificate expired, was revoked later
or the revocation data is too old, and a timestamp *proves* when the signature existed, the chain
is validated again at that time: ``REVOKED`` when the proven time is after the revocation,
``EXPIRED`` after expiry, ``NOT_YET_VALID`` before issuance, otherwise the past result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import x509 as asn1_x509
from pyhanko.sign.ades.report import AdESIndeterminate, AdESSubIndic
from pyhanko.sign.validation.generic_cms import handle_certvalidator_errors
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cv_errors
from pyhanko_certvalidator.path import ValidationPath

from signing.trust import TrustSettings
from signing.validation.certs import cert_info
from signing.validation.report import (
    INDETERMINATE,
    TOTAL_FAILED,
    TOTAL_PASSED,
    TimestampInfo,
    clip,
    iso,
)
from signing.validation.revocation import silent_certificates

__all__ = [
    "ChainQuery",
    "TrustOutcome",
    "best_signing_time",
    "resolve_trust",
    "subindication_name",
    "timestamp_info",
]

_TIME_RESOLVABLE = {
    AdESIndeterminate.OUT_OF_BOUNDS_NO_POE,
    AdESIndeterminate.OUT_OF_BOUNDS_NOT_REVOKED,
    AdESIndeterminate.REVOKED_NO_POE,
    AdESIndeterminate.REVOKED_CA_NO_POE,
    AdESIndeterminate.TRY_LATER,
    AdESIndeterminate.REVOCATION_OUT_OF_BOUNDS_NO_POE,
    AdESIndeterminate.NO_POE,
}
_REVOKED = (AdESIndeterminate.REVOKED_NO_POE, AdESIndeterminate.REVOKED_CA_NO_POE)
_OUT_OF_BOUNDS = (
    AdESIndeterminate.OUT_OF_BOUNDS_NO_POE,
    AdESIndeterminate.OUT_OF_BOUNDS_NOT_REVOKED,
)
_UNRESOLVED = {
    "NO_CERTIFICATE_CHAIN_FOUND": "no chain from the signer to a configured trust anchor",
    "REVOKED_NO_POE": "the certificate is revoked and no timestamp proves the signature "
    "was made before",
    "OUT_OF_BOUNDS_NO_POE": "the certificate is outside its validity period at the "
    "validation time and no timestamp proves when the signature was made",
    "TRY_LATER": "revocation status could not be established",
}


def subindication_name(indic: AdESSubIndic | None) -> str | None:
    """The ETSI name of a pyHanko sub-indication (``TRY_LATER``, ...)."""
    return None if indic is None else str(indic.standard_name)


def best_signing_time(
    signature_timestamp: dt.datetime | None,
    document_timestamp: dt.datetime | None,
    claimed: dt.datetime | None,
    moment: dt.datetime,
) -> tuple[dt.datetime, str, bool]:
    """(time, source, proven): the signature's timestamp, else a later document timestamp's,
    else the time the signer claims (not proven), else the validation time."""
    if signature_timestamp is not None:
        return signature_timestamp, "signature-timestamp", True
    if document_timestamp is not None:
        return document_timestamp, "document-timestamp", True
    if claimed is not None:
        return claimed, "signing-time-claimed", False
    return moment, "validation-time", False


@dataclass(frozen=True)
class ChainQuery:
    """Whose chain to check, with which certificates at hand, for which key usage."""

    cert: asn1_x509.Certificate
    others: Sequence[asn1_x509.Certificate]
    key_usage: set[str] = field(default_factory=set)
    extd_key_usage: set[str] | None = None


@dataclass
class TrustOutcome:
    """The chain's verdict, the path and context it came from, and the moment it holds for."""

    indication: str
    sub_indication: str | None
    message: str | None
    path: ValidationPath | None
    vc: ValidationContext | None
    moment: dt.datetime | None
    revocation_details: Any = None


def _past_context(
    trust: TrustSettings, query: ChainQuery, moment: dt.datetime, vc_now: ValidationContext
) -> ValidationContext:
    """A context as of ``moment`` with everything the current one gathered."""
    return trust.validation_context(
        moment=moment,
        other_certs=[*query.others, *vc_now.certificate_registry],
        crls=vc_now.crls,
        ocsps=vc_now.ocsps,
        retroactive_revinfo=True,
    )


def _validator(query: ChainQuery, vc: ValidationContext) -> Any:
    validator = CertificateValidator(
        query.cert, intermediate_certs=query.others, validation_context=vc
    )
    return validator.async_validate_usage(
        key_usage=query.key_usage, extended_key_usage=query.extd_key_usage, extended_optional=True
    )


async def _past_validate(
    trust: TrustSettings, query: ChainQuery, moment: dt.datetime, vc_now: ValidationContext
) -> tuple[ValidationPath | None, AdESSubIndic | None, Any, ValidationContext]:
    """Validate the chain as of ``moment``: (path, sub-indication, revocation details, context)."""
    vc = _past_context(trust, query, moment, vc_now)
    try:
        result = await handle_certvalidator_errors(query.cert, _validator(query, vc))
    finally:
        await vc.aclose()
    if result.success_result is not None:
        return result.success_result, None, None, vc
    return result.error_path, result.error_subindic, result.revo_details, vc


async def _diagnose(
    query: ChainQuery, vc: ValidationContext
) -> tuple[AdESSubIndic | None, str | None]:
    """Re-run a failed chain check to learn why (pyHanko's status keeps only a category).

    Missing or stale revocation data becomes ``TRY_LATER`` (EN 319 102-1), which pyHanko
    files under the generic chain failure. A certificate that names no revocation source at
    all will never have data to wait for: the policy's demand for it is a constraint the chain
    cannot meet (``CHAIN_CONSTRAINTS_FAILURE``), not a reason to try later.
    """
    try:
        await _validator(query, vc)
    except (cv_errors.InsufficientRevinfoError, cv_errors.StaleRevinfoError) as exc:
        silent = silent_certificates(exc)
        if silent and not isinstance(exc, cv_errors.StaleRevinfoError):
            return AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE, (
                f"the certificate of {', '.join(silent)} names no OCSP responder and no CRL "
                "distribution point, and the document embeds no revocation data for it"
            )
        return AdESIndeterminate.TRY_LATER, clip(exc)
    except Exception as exc:  # noqa: BLE001 - any certvalidator failure: keep its words
        return None, clip(exc)
    return None, None


async def resolve_trust(
    trust: TrustSettings,
    status: Any,
    query: ChainQuery,
    vc: ValidationContext,
    moment: dt.datetime,
    proven: dt.datetime | None,
) -> TrustOutcome:
    """Turn pyHanko's current-time chain result (``status``) into an indication, validating
    again at the ``proven`` signing time when time is all that failed."""
    indic = status.trust_problem_indic
    path = status.validation_path
    rev = status.revocation_details
    if indic is None and path is not None:
        return TrustOutcome(TOTAL_PASSED, None, None, path, vc, moment, rev)
    indic = indic or AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND
    detail = None
    if indic == AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE or path is None:
        refined, detail = await _diagnose(query, vc)
        indic = refined or indic
    name = subindication_name(indic)
    if indic not in _TIME_RESOLVABLE or proven is None:
        message = _UNRESOLVED.get(name or "", f"certificate validation: {name}")
        message = f"{message} ({detail})" if detail else message
        return TrustOutcome(INDETERMINATE, name, message, path, vc, moment, rev)
    settled = _settled_by_proof(indic, rev, query.cert, proven)
    if settled is not None:
        indication, sub, message = settled
        kept = rev if sub == "REVOKED" else None
        return TrustOutcome(indication, sub, message, path, vc, moment, kept)
    return await _at_proven_time(trust, query, vc, proven, name, path, rev)


def _settled_by_proof(
    indic: AdESSubIndic, rev: Any, cert: asn1_x509.Certificate, proven: dt.datetime
) -> tuple[str, str, str] | None:
    """The verdict a proven signing time gives without validating again, if it gives one."""
    if indic in _REVOKED and rev is not None and proven >= rev.revocation_date:
        message = (
            f"the certificate was revoked at {iso(rev.revocation_date)}, before the "
            f"proven signing time {iso(proven)}"
        )
        return TOTAL_FAILED, "REVOKED", message
    if indic in _OUT_OF_BOUNDS and proven > cert.not_valid_after:
        message = (
            f"the certificate expired at {iso(cert.not_valid_after)}, before the proven "
            f"signing time {iso(proven)}"
        )
        return INDETERMINATE, "EXPIRED", message
    if indic in _OUT_OF_BOUNDS and proven < cert.not_valid_before:
        message = f"the signature was made at {iso(proven)}, before the certificate was issued"
        return TOTAL_FAILED, "NOT_YET_VALID", message
    return None


async def _at_proven_time(
    trust: TrustSettings,
    query: ChainQuery,
    vc: ValidationContext,
    proven: dt.datetime,
    name: str | None,
    path: ValidationPath | None,
    rev: Any,
) -> TrustOutcome:
    """Past signature validation: the chain as of the ``proven`` time."""
    past_path, past_indic, past_rev, past_vc = await _past_validate(trust, query, proven, vc)
    if past_indic is None and past_path is not None:
        return TrustOutcome(TOTAL_PASSED, None, None, past_path, past_vc, proven)
    past_detail = None
    if past_indic == AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE:
        # as at the current time: learn whether it is missing revocation data (TRY_LATER)
        again = _past_context(trust, query, proven, vc)
        try:
            refined, past_detail = await _diagnose(query, again)
        finally:
            await again.aclose()
        past_indic = refined or past_indic
    if past_indic in _REVOKED:
        message = f"the certificate was already revoked at the proven signing time {iso(proven)}"
        return TrustOutcome(TOTAL_FAILED, "REVOKED", message, past_path, past_vc, proven, past_rev)
    past_name = subindication_name(past_indic) or name
    if past_indic == AdESIndeterminate.TRY_LATER:
        message = (
            f"revocation status could not be established at the proven signing time {iso(proven)}"
        )
    else:
        message = (
            f"certificate validation at the proven signing time {iso(proven)} failed: {past_name}"
        )
    message += f" ({past_detail})" if past_detail else ""
    return TrustOutcome(INDETERMINATE, past_name, message, past_path or path, past_vc, proven, rev)


async def timestamp_info(
    trust: TrustSettings,
    kind: str,
    ts: TimestampSignatureStatus | None,
    vc: ValidationContext,
    later_proof: dt.datetime | None,
) -> tuple[TimestampInfo | None, dt.datetime | None]:
    """Report a signature/content timestamp; returns (info, proven time when trusted).

    A timestamp whose TSA certificate no longer validates is still trusted when a later
    document timestamp (``later_proof``) proves it existed while that certificate was valid.
    """
    if ts is None:
        return None, None
    tsa = ts.signing_cert
    trusted = bool(ts.trusted)
    proven_by = "current-time" if trusted else None
    problem = subindication_name(ts.trust_problem_indic) if not trusted else None
    if (
        not trusted
        and ts.intact
        and ts.valid
        and later_proof is not None
        and ts.trust_problem_indic in _TIME_RESOLVABLE
    ):
        query = ChainQuery(tsa, [], set(), {"time_stamping"})
        path, indic, _rev, _vc = await _past_validate(trust, query, later_proof, vc)
        if indic is None and path is not None:
            trusted, proven_by, problem = True, "past-validation", None
    if not trusted and problem is None:
        problem = "NO_CERTIFICATE_CHAIN_FOUND" if ts.validation_path is None else "GENERIC"
    info = TimestampInfo(
        kind=kind,
        time=iso(ts.timestamp),
        tsa=cert_info(tsa),
        intact=bool(ts.intact),
        valid=bool(ts.valid),
        trusted=trusted,
        problem=problem if not trusted else None,
        proven_by=proven_by,
    )
    return info, (ts.timestamp if trusted and ts.intact and ts.valid else None)
