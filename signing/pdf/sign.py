"""PAdES signatures on official documents (PDF): baseline B-B, B-T, B-LT and B-LTA.

    with open_key(KeySource(p12=Path("leader.p12")), secret) as key:
        signed = await async_sign_pdf(
            Path("qd-123.pdf"),
            key,
            SignOptions(role="leader", level="B-LT", image=Path("chu-ky.png"),
                        placement=AnchorPlacement("BỘ TRƯỞNG"),
                        tsa_url="http://tsa.example/", trust_roots=[Path("root.pem")]),
        )

Every signature is an incremental update (earlier signatures stay valid), made with pyHanko's
``PdfSigner`` and the ``ETSI.CAdES.detached`` sub-filter. Algorithms follow Circular 15/2025:
RSASSA-PSS with SHA-256 for RSA keys (PKCS#1 v1.5 only when the key source asks for it),
ECDSA with SHA-256 on P-256 and SHA-384 on P-384. The levels are described in
:mod:`signing.pdf.options`.

Before anything is signed the signer's certificate is checked: expired or not yet valid
(always), revoked (with OCSP/CRL, when trust roots are given). Every refusal is a
:class:`~signing.errors.SigningError` with a stable code; the output is returned only when
complete and the input is never modified.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko_certvalidator import ValidationContext

from signing.errors import SigningError
from signing.keys import KeyHandle, KeySource, open_key
from signing.pdf.appearance import VN_TZ, OfficialStampStyle
from signing.pdf.layout import resolve_target
from signing.pdf.options import SignOptions
from signing.pdf.reading import check_not_locked, open_for_signing, read_document, readable_output
from signing.pdf.services import (
    LONG_TERM_HINT,
    load_certificates,
    signer_validation_context,
    signing_errors,
    timestamper,
)
from signing.validation.pdf import offline_gaps
from signing.validation.revocation import describe, unreachable_revocation

__all__ = [
    "SignedPdf",
    "async_sign_pdf",
    "async_sign_pdf_detailed",
    "sign_pdf",
    "sign_pdf_detailed",
]


@dataclass(frozen=True)
class SignedPdf:
    """The signed bytes, and what an auditor will object to though signing went through
    (only with ``SignOptions.allow_missing_revocation``: the missing revocation data)."""

    data: bytes
    warnings: tuple[str, ...] = ()


async def async_sign_pdf(
    pdf: bytes | Path,
    key: KeyHandle | KeySource,
    options: SignOptions,
    *,
    secret: str | None = None,
) -> bytes:
    """Sign ``pdf`` (bytes or a file, never modified) and return the signed bytes.

    ``key`` is an opened :class:`~signing.keys.KeyHandle`, or a :class:`~signing.keys.KeySource`
    opened (with ``secret``: passphrase or PIN) and closed within this call. Raises
    :class:`~signing.errors.SigningError`; nothing is returned unless signing completed.
    """
    return (await async_sign_pdf_detailed(pdf, key, options, secret=secret)).data


def sign_pdf(
    pdf: bytes | Path,
    key: KeyHandle | KeySource,
    options: SignOptions,
    *,
    secret: str | None = None,
) -> bytes:
    """:func:`async_sign_pdf` for synchronous callers (not from inside a running event loop)."""
    return asyncio.run(async_sign_pdf(pdf, key, options, secret=secret))


async def async_sign_pdf_detailed(
    pdf: bytes | Path,
    key: KeyHandle | KeySource,
    options: SignOptions,
    *,
    secret: str | None = None,
) -> SignedPdf:
    """:func:`async_sign_pdf`, with the warnings a caller must show (see :class:`SignedPdf`)."""
    options.check()
    data = read_document(pdf)
    reader = open_for_signing(data)
    check_not_locked(reader)
    if isinstance(key, KeySource):
        with open_key(key, secret) as handle:
            return await _sign(data, reader, handle, options)
    return await _sign(data, reader, key, options)


def sign_pdf_detailed(
    pdf: bytes | Path,
    key: KeyHandle | KeySource,
    options: SignOptions,
    *,
    secret: str | None = None,
) -> SignedPdf:
    """:func:`async_sign_pdf_detailed` for synchronous callers."""
    return asyncio.run(async_sign_pdf_detailed(pdf, key, options, secret=secret))


async def _sign(
    data: bytes, reader: PdfFileReader, key: KeyHandle, options: SignOptions
) -> SignedPdf:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter

    when = options.now or datetime.now(VN_TZ)
    target, appearance = await resolve_target(options, reader, data, key, when)
    roots = load_certificates(options.trust_roots)
    extra = load_certificates(options.extra_certs)
    if extra:
        key.signer.cert_registry.register_multiple(extra)
    others = [*key.chain, *extra]
    long_term = options.level in ("B-LT", "B-LTA")
    # B-LT/B-LTA: an answer for every certificate below the anchor, unless the clerk accepts
    # going without (then whatever can be had is embedded, and offline_gaps says what is not)
    mode = "require" if long_term and not options.allow_missing_revocation else "soft-fail"
    vc = None
    if roots:
        vc = signer_validation_context(roots, others, mode=mode, timeout=options.network_timeout)
    try:
        with signing_errors():
            await _check_certificate(key, when.astimezone(UTC), vc, others, long_term=long_term)
            meta = signers.PdfSignatureMetadata(
                field_name=target.field_name,
                reason=options.reason,
                location=options.location,
                subfilter=SigSeedSubFilter.PADES,
                md_algorithm=_digest_for(key.cert),
                embed_validation_info=long_term,
                use_pades_lta=options.level == "B-LTA",
                validation_context=vc if long_term else None,
                signer_key_usage=set(),
                dss_settings=_dss_settings(),
            )
            field_spec = None
            if not target.existing:
                assert target.rect is not None
                field_spec = SigFieldSpec(target.field_name, on_page=target.page, box=target.rect)
            pdf_signer = signers.PdfSigner(
                meta,
                key.signer,
                timestamper=(
                    timestamper(options.tsa_url, options.network_timeout)
                    if options.level != "B-B" and options.tsa_url
                    else None
                ),
                stamp_style=OfficialStampStyle(appearance=appearance),
                new_field_spec=field_spec,
            )
            writer = IncrementalPdfFileWriter.from_reader(reader)
            out = io.BytesIO()
            await pdf_signer.async_sign_pdf(
                writer, existing_fields_only=target.existing, output=out
            )
    finally:
        if vc is not None:
            await vc.aclose()
    signed = readable_output(out.getvalue())
    warnings: list[str] = []
    if long_term and options.allow_missing_revocation:
        warnings = await offline_gaps(
            signed, target.field_name, options.trust_roots, options.extra_certs
        )
    return SignedPdf(signed, tuple(warnings))


async def _check_certificate(
    key: KeyHandle,
    moment: datetime,
    vc: ValidationContext | None,
    others: list[asn1_x509.Certificate],
    *,
    long_term: bool = False,
) -> None:
    """Refuse an expired, not yet valid, revoked or untrusted signer certificate, and for a
    long-term level (``vc`` in ``require`` mode) one without revocation data."""
    cert = key.cert
    subject = describe(cert)
    if moment < cert.not_valid_before:
        raise SigningError(
            "signing.certificate_not_yet_valid",
            f"the certificate of {subject} is valid only from {cert.not_valid_before:%Y-%m-%d}",
        )
    if moment > cert.not_valid_after:
        raise SigningError(
            "signing.certificate_expired",
            f"the certificate of {subject} expired on {cert.not_valid_after:%Y-%m-%d}",
        )
    usage = set(cert.key_usage_value.native) if cert.key_usage_value else set()
    if usage and not usage & {"digital_signature", "non_repudiation"}:
        raise SigningError(
            "signing.certificate_key_usage",
            f"the certificate of {subject} is not for signatures (key usage {sorted(usage)})",
        )
    if vc is not None:
        await _check_chain(cert, subject, vc, others, long_term)


async def _check_chain(
    cert: asn1_x509.Certificate,
    subject: str,
    vc: ValidationContext,
    others: list[asn1_x509.Certificate],
    long_term: bool,
) -> None:
    """The signer's chain to the trust roots, with revocation as ``vc`` asks."""
    from pyhanko_certvalidator import CertificateValidator
    from pyhanko_certvalidator import errors as cv

    validator = CertificateValidator(cert, intermediate_certs=others, validation_context=vc)
    try:
        await validator.async_validate_path()
    except cv.RevokedError as exc:
        raise SigningError(
            "signing.certificate_revoked",
            f"the certificate of {subject} is revoked (checked with OCSP/CRL): {exc}",
        ) from None
    except cv.ExpiredError as exc:
        raise SigningError("signing.certificate_expired", f"{subject}: {exc}") from None
    except cv.NotYetValidError as exc:
        raise SigningError("signing.certificate_not_yet_valid", f"{subject}: {exc}") from None
    except cv.InsufficientRevinfoError as exc:
        raise SigningError(
            "signing.revocation_unavailable",
            f"cannot establish whether the certificate of {subject} is revoked: "
            f"{unreachable_revocation(exc)}" + (LONG_TERM_HINT if long_term else ""),
        ) from None
    except cv.PathBuildingError as exc:
        raise SigningError(
            "signing.certificate_untrusted",
            f"the certificate of {subject} does not chain to the trust roots: {exc}",
        ) from None
    except cv.PathValidationError as exc:
        raise SigningError(
            "signing.certificate_invalid", f"the certificate of {subject} is not valid: {exc}"
        ) from None


def _digest_for(cert: asn1_x509.Certificate) -> str:
    key = cert.public_key
    if key.algorithm == "ec":
        curve = key.curve[1]
        return {"secp384r1": "sha384", "secp521r1": "sha512"}.get(curve, "sha256")
    return "sha256"


def _dss_settings():
    from pyhanko.sign.signers.pdf_signer import (
        DSSContentSettings,
        SigDSSPlacementPreference,
        TimestampDSSContentSettings,
    )

    # No VRI (deprecated by ETSI): validation data goes into the signature's own revision, and
    # a B-LTA document timestamp's data goes in before it, so the last signature covers the file.
    return DSSContentSettings(
        include_vri=False,
        placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE,
        next_ts_settings=TimestampDSSContentSettings(include_vri=False, update_before_ts=True),
    )
