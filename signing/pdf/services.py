"""What signing a PDF asks of others: the trust roots and the certificates they name, OCSP and
CRL answers about the signer (a validation context), the time-stamp authority; and what
pyHanko, the token or the network raise, as one :class:`~signing.errors.SigningError` with a
precise code.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.policy_decl import DisallowWeakAlgorithmsPolicy

from signing.errors import SigningError, TrustError
from signing.trust import certificates, make_validation_context
from signing.validation.revocation import unreachable_revocation

__all__ = [
    "ACCEPT_HINT",
    "LONG_TERM_HINT",
    "load_certificates",
    "signer_validation_context",
    "signing_errors",
    "timestamper",
]

ACCEPT_HINT = "--allow-missing-revocation"  # how a clerk accepts signing without the data
LONG_TERM_HINT = (
    "; a B-LT/B-LTA signature must carry it, for offline verification (sign at B-T, or "
    f"accept signing without it: {ACCEPT_HINT}, SignOptions.allow_missing_revocation)"
)


def load_certificates(paths: Sequence[Path]) -> list[asn1_x509.Certificate]:
    """Certificates from PEM (one or many per file) or DER files, or folders of them
    (:func:`signing.trust.certificates`); an unusable file is ``signing.bad_option``."""
    try:
        return certificates(paths)
    except TrustError as exc:
        raise SigningError("signing.bad_option", str(exc)) from None


def signer_validation_context(
    roots: Sequence[asn1_x509.Certificate],
    others: Sequence[asn1_x509.Certificate],
    *,
    mode: str,
    timeout: float,
) -> ValidationContext:
    """certvalidator's ``require`` (an answer for every certificate below the anchor),
    ``hard-fail`` (for those naming an OCSP responder or CRL) or ``soft-fail``; fresh answers
    from the network (nothing from the verifier's cache), AIA certificates fetched, and
    certvalidator's default algorithm policy."""
    return make_validation_context(
        roots,
        others,
        revocation_mode=mode,  # type: ignore[arg-type]
        allow_fetching=True,
        fetch_timeout=timeout,
        revinfo_cache_seconds=0,
        fetch_certificates=True,
        algorithm_policy=DisallowWeakAlgorithmsPolicy(),
    )


class _TimeStamper(HTTPTimeStamper):
    """pyHanko's HTTP time-stamper; a TSA that does not answer is ``signing.tsa_unreachable``."""

    async def async_request_tsa_response(self, req):
        try:
            return await super().async_request_tsa_response(req)
        except Exception as exc:
            why = str(exc) or type(exc).__name__
            if exc.__cause__ is not None:
                why += f" ({exc.__cause__})"
            raise SigningError(
                "signing.tsa_unreachable",
                f"the time-stamp authority at {self.url} did not answer: {why}",
            ) from exc


@functools.cache
def timestamper(url: str, timeout: float) -> HTTPTimeStamper:
    """One time-stamper per TSA, kept: it remembers a token to size signatures with, so each
    signature costs one TSA request instead of two."""
    return _TimeStamper(url, timeout=timeout)


@contextlib.contextmanager
def signing_errors() -> Iterator[None]:
    """Whatever pyHanko, the token or the network raised, as one precise SigningError."""
    try:
        yield
    except SigningError:
        raise
    except Exception as exc:
        raise (_our_error(exc) or _translate(exc)) from exc


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, at most 20 deep."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 20:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _our_error(exc: BaseException) -> SigningError | None:
    return next((e for e in _causes(exc) if isinstance(e, SigningError)), None)


def _translate(exc: BaseException) -> SigningError:
    """A precise code for what pyHanko, the token or the network reported."""
    from pyhanko.sign.timestamps.common_utils import TimestampRequestError
    from pyhanko_certvalidator import errors as cv

    for item in _causes(exc):
        if isinstance(item, TimestampRequestError):
            return SigningError("signing.tsa_error", f"the time-stamp authority failed: {item}")
        if isinstance(item, cv.RevokedError):
            return SigningError("signing.certificate_revoked", str(item))
        if isinstance(item, cv.InsufficientRevinfoError):
            return SigningError(
                "signing.revocation_unavailable",
                f"cannot collect revocation data: {unreachable_revocation(item)}{LONG_TERM_HINT}",
            )
        if isinstance(item, cv.PathBuildingError | cv.PathValidationError):
            return SigningError("signing.certificate_untrusted", str(item))
        if type(item).__module__.startswith("pkcs11"):
            return SigningError("signing.token_error", f"the token failed: {item!r}")
    return SigningError("signing.failed", f"signing failed: {exc}")
