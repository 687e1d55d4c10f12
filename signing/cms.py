"""Detached CMS signatures over small documents (ledger heads, hub receipts), via pyHanko.

Anyone can check one with ``openssl cms -verify -binary -inform DER -content DATA -in SIG
-CAfile ROOT``; :func:`verify_detached` does the same with pyhanko-certvalidator.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko_certvalidator.policy_decl import DisallowWeakAlgorithmsPolicy

from signing.keys import KeyHandle
from signing.trust import make_validation_context

__all__ = ["CmsCheck", "sign_detached", "verify_detached"]


async def sign_detached(data: bytes, key: KeyHandle, tsa_url: str | None = None) -> bytes:
    """A detached CMS SignedData (DER) over ``data``; with ``tsa_url`` it carries an RFC 3161
    signature timestamp from that TSA.

    Without a TSA and with the key in memory, ``cryptography`` builds it directly (well under a
    millisecond); otherwise pyHanko does, through the token when there is one.
    """
    if tsa_url is None and key.private_key is not None:
        return _sign_in_memory(data, key)
    timestamper = HTTPTimeStamper(tsa_url) if tsa_url else None
    content = await key.signer.async_sign_general_data(
        data, "sha256", detached=True, timestamper=timestamper
    )
    return content.dump()


def _sign_in_memory(data: bytes, key: KeyHandle) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.serialization import pkcs7

    cert = x509.load_der_x509_certificate(key.cert.dump())
    private_key = key.private_key
    rsa_padding = None
    if isinstance(private_key, rsa.RSAPrivateKey):
        rsa_padding = (
            padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
            if key.source.rsa_padding == "pss"
            else padding.PKCS1v15()
        )
    builder = pkcs7.PKCS7SignatureBuilder().set_data(data)
    builder = builder.add_signer(cert, private_key, hashes.SHA256(), rsa_padding=rsa_padding)
    for extra in key.chain:
        if extra.dump() != key.cert.dump():
            builder = builder.add_certificate(x509.load_der_x509_certificate(extra.dump()))
    return builder.sign(
        serialization.Encoding.DER,
        [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
    )


@dataclass(frozen=True)
class CmsCheck:
    """What a detached signature says: intact, valid, trusted, who, and when (if timestamped)."""

    intact: bool
    valid: bool
    trusted: bool
    signer: str
    signer_cert: asn1_x509.Certificate
    timestamp: dt.datetime | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.intact and self.valid and self.trusted


async def verify_detached(
    data: bytes,
    signature: bytes,
    trust_roots: list[asn1_x509.Certificate],
    *,
    at: dt.datetime | None = None,
    allow_fetching: bool = False,
) -> CmsCheck:
    """Check a detached CMS signature over ``data`` against ``trust_roots``; a signature that
    cannot be checked at all (not CMS, malformed, unsupported) raises ValueError."""
    try:
        content = cms.ContentInfo.load(signature)
        signed_data = content["content"]
        if content["content_type"].native != "signed_data":
            raise ValueError("not a CMS SignedData")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the signature is not CMS: {exc}") from None
    context = make_validation_context(
        trust_roots,
        revocation_mode="soft-fail",
        moment=at,
        allow_fetching=allow_fetching,
        revinfo_cache_seconds=0,
        fetch_certificates=True,
        algorithm_policy=DisallowWeakAlgorithmsPolicy(),
    )
    try:
        status = await async_validate_detached_cms(
            data, signed_data, signer_validation_context=context, ts_validation_context=context
        )
    except Exception as exc:
        # Hostile DER reaches parts of asn1crypto and pyHanko that fail in undocumented ways
        # (AttributeError for an unknown digest OID, UnicodeDecodeError, ...): all of them mean
        # that this signature cannot be checked, which the caller reports as such.
        raise ValueError(f"the signature cannot be checked: {exc or type(exc).__name__}") from None
    finally:
        await context.aclose()
    timestamp = status.timestamp_validity.timestamp if status.timestamp_validity else None
    problem = None
    if not status.intact:
        problem = "the signed data does not match (digest mismatch)"
    elif not status.valid:
        problem = "the signature value is not valid for the certificate"
    elif not status.trusted:
        problem = "the signer's certificate does not chain to a trusted root"
    return CmsCheck(
        intact=status.intact,
        valid=status.valid,
        trusted=status.trusted,
        signer=status.signing_cert.subject.human_friendly,
        signer_cert=status.signing_cert,
        timestamp=timestamp,
        problem=problem,
    )
