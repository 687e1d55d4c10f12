"""Signing keys: a PKCS#12 file or a key on a PKCS#11 token, behind pyHanko's ``Signer``.

Secrets (passphrase, PIN) are arguments here; the CLI reads them from a prompt or an environment
variable, never from the command line. Every failure is a :class:`SigningError` with a stable
code and a message a clerk can act on.

    with open_key(KeySource(p12=Path("clerk.p12")), secret="...") as key:
        key.signer      # a pyhanko.sign.signers.Signer (RSASSA-PSS for RSA keys unless asked)
        key.cert        # asn1crypto certificate of the signer
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.padding import PSS, PKCS1v15
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign import signers

from signing.errors import SigningError

__all__ = ["KeyHandle", "KeySource", "open_key"]

Run = Callable[[Coroutine[Any, Any, bytes]], bytes]


@dataclass(frozen=True)
class KeySource:
    """Where the key is: ``p12`` or (``pkcs11_lib``, ``token``, ``key_label``/``key_id``)."""

    p12: Path | None = None
    pkcs11_lib: str | None = None
    token: str | None = None
    key_label: str | None = None
    key_id: bytes | None = None
    cert_label: str | None = None
    # "pss" (default for RSA, Circular 15/2025) or "pkcs1v15" (only when asked for).
    rsa_padding: str = "pss"


@dataclass
class KeyHandle:
    """An opened key: the pyHanko signer, its certificate and the chain that came with it."""

    signer: signers.Signer
    cert: asn1_x509.Certificate
    chain: list[asn1_x509.Certificate]
    source: KeySource
    # The key itself when it lives in memory (PKCS#12), for fast detached CMS; None on a token.
    private_key: object | None = None
    # Makes a signer for the same key with another signature mechanism (pyHanko's signers take
    # their mechanism at construction only).
    remake: Callable[[algos.SignedDigestAlgorithm], signers.Signer] | None = field(
        default=None, repr=False, compare=False
    )

    def signer_with(
        self, mechanism: algos.SignedDigestAlgorithm, digest_algorithm: str
    ) -> signers.Signer:
        """A signer for this key that signs with ``mechanism`` (:attr:`signer` when it does)."""
        current = self.signer.get_signature_mechanism_for_digest(digest_algorithm)
        if current.dump() == mechanism.dump():
            return self.signer
        if self.remake is None:
            name = mechanism["algorithm"].native
            raise SigningError("signing.bad_option", f"this key cannot sign with {name}")
        return self.remake(mechanism)

    def cryptography_key(self, run: Run) -> _CryptographyKey:
        """This key as a cryptography RSA/EC private key offering ``sign()`` (for signxml).

        ``run`` runs the signer's coroutine to its result from synchronous code (the caller's
        event loop, or ``asyncio.run``). A signature that does not verify with :attr:`cert`
        is refused (``signing.key_mismatch``).
        """
        return _CryptographyKey(self, run)

    def issuer_chain(self, extra: Iterable[x509.Certificate] = ()) -> list[x509.Certificate]:
        """:attr:`cert`, then each CA above it among :attr:`chain` and ``extra`` (self-signed
        roots left out), as cryptography certificates."""
        ours = [x509.load_der_x509_certificate(c.dump()) for c in self.chain]
        pool = [c for c in [*ours, *extra] if c.subject != c.issuer]
        chain = [x509.load_der_x509_certificate(self.cert.dump())]
        while issuer := next((c for c in pool if c not in chain and _issued(chain[-1], c)), None):
            chain.append(issuer)
        return chain


def _issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _pss_sha256() -> algos.SignedDigestAlgorithm:
    """RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (the hash length, as RFC 4055
    and ETSI TS 119 312 recommend and most verifiers expect)."""
    return algos.SignedDigestAlgorithm(
        {
            "algorithm": "rsassa_pss",
            "parameters": algos.RSASSAPSSParams(
                {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "mask_gen_algorithm": {
                        "algorithm": "mgf1",
                        "parameters": {"algorithm": "sha256"},
                    },
                    "salt_length": 32,
                }
            ),
        }
    )


def _mechanism(
    source: KeySource, cert: asn1_x509.Certificate
) -> algos.SignedDigestAlgorithm | None:
    if cert.public_key.algorithm == "rsa" and _prefer_pss(source):
        return _pss_sha256()
    return None


def _prefer_pss(source: KeySource) -> bool:
    if source.rsa_padding not in ("pss", "pkcs1v15"):
        raise SigningError("signing.bad_option", "rsa padding must be 'pss' or 'pkcs1v15'")
    return source.rsa_padding == "pss"


class _InMemorySigner(signers.SimpleSigner):
    """pyHanko's SimpleSigner, with the private key parsed once.

    SimpleSigner parses its key for every signature, and cryptography checks an RSA key on every
    load (tens of milliseconds, against a fraction of a millisecond for the signature itself).
    RSA (PKCS#1 v1.5, PSS) and ECDSA sign with the parsed key; anything else is left to pyHanko.
    """

    def __init__(
        self,
        key,
        signer: signers.SimpleSigner,
        mechanism: algos.SignedDigestAlgorithm | None = None,
    ) -> None:
        super().__init__(
            signing_cert=signer.signing_cert,
            signing_key=signer.signing_key,
            cert_registry=signer.cert_registry,
            signature_mechanism=mechanism or signer.signature_mechanism,
            prefer_pss=signer.prefer_pss,
        )
        self._key = key

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
        from pyhanko.sign.general import get_pyca_cryptography_hash
        from pyhanko_certvalidator.util import process_pss_params

        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
        name = mechanism["algorithm"].native
        if isinstance(self._key, rsa.RSAPrivateKey) and name == "rsassa_pss":
            pss, hash_algo = process_pss_params(mechanism["parameters"])
            return self._key.sign(data, pss, hash_algo)
        if isinstance(self._key, rsa.RSAPrivateKey) and (
            name == "rsassa_pkcs1v15" or name.endswith("_rsa")
        ):
            return self._key.sign(
                data, padding.PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm)
            )
        if isinstance(self._key, ec.EllipticCurvePrivateKey) and (
            name == "ecdsa" or name.endswith("_ecdsa")
        ):
            return self._key.sign(data, ec.ECDSA(get_pyca_cryptography_hash(digest_algorithm)))
        return super().sign_raw(data, digest_algorithm)


def _open_p12(source: KeySource, secret: str | None) -> KeyHandle:
    path = source.p12
    assert path is not None
    if not path.is_file():
        raise SigningError("signing.key_not_found", f"no PKCS#12 file at {path}")
    data = path.read_bytes()
    # Check the passphrase with cryptography first: pyHanko only logs a failure.
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        key, cert, _ = pkcs12.load_key_and_certificates(data, secret.encode() if secret else None)
    except ValueError:
        raise SigningError(
            "signing.wrong_passphrase", f"cannot open {path.name}: wrong passphrase or not PKCS#12"
        ) from None
    if key is None:
        raise SigningError("signing.key_not_found", f"{path.name} holds no private key")
    if cert is None:
        raise SigningError("signing.certificate_missing", f"{path.name} holds no certificate")
    loaded = signers.SimpleSigner.load_pkcs12(
        path,
        passphrase=secret.encode() if secret else None,
        prefer_pss=_prefer_pss(source),
        signature_mechanism=_mechanism(
            source, asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))
        ),
    )
    if loaded is None:
        raise SigningError("signing.wrong_passphrase", f"cannot open {path.name}")
    signer = _InMemorySigner(key, loaded)
    chain = list(signer.cert_registry)

    def remake(mechanism: algos.SignedDigestAlgorithm) -> signers.Signer:
        return _InMemorySigner(key, loaded, mechanism)

    return KeyHandle(signer, signer.signing_cert, chain, source, key, remake)


@contextlib.contextmanager
def _open_pkcs11(source: KeySource, secret: str | None) -> Iterator[KeyHandle]:
    import pkcs11
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.sign import pkcs11 as sign_pkcs11

    if not source.pkcs11_lib or not Path(source.pkcs11_lib).exists():
        raise SigningError(
            "signing.pkcs11_library", f"PKCS#11 library {source.pkcs11_lib!r} does not exist"
        )
    if not source.token:
        raise SigningError("signing.bad_option", "name the token (its label)")
    try:
        session = sign_pkcs11.open_pkcs11_session(
            source.pkcs11_lib, token_criteria=TokenCriteria(label=source.token), user_pin=secret
        )
    except pkcs11.exceptions.PinIncorrect:
        raise SigningError("signing.wrong_pin", f"wrong PIN for token {source.token!r}") from None
    except pkcs11.exceptions.PinLocked:
        raise SigningError("signing.pin_locked", f"the PIN of {source.token!r} is locked") from None
    except (pkcs11.exceptions.NoSuchToken, sign_pkcs11.PKCS11Error):
        raise SigningError(
            "signing.token_not_found", f"no token labelled {source.token!r} is connected"
        ) from None
    try:
        key_label = source.key_label
        cert_label = source.cert_label or key_label

        def make_signer(raw: bool, mechanism=None) -> sign_pkcs11.PKCS11Signer:
            return sign_pkcs11.PKCS11Signer(
                session,
                cert_label=cert_label,
                key_label=key_label,
                key_id=source.key_id,
                cert_id=source.key_id if not cert_label else None,
                prefer_pss=_prefer_pss(source),
                use_raw_mechanism=raw,
                signature_mechanism=mechanism,
            )

        raw = False
        try:
            signer = make_signer(raw=False)
            cert = signer.signing_cert
            if cert is not None and cert.public_key.algorithm == "ec":
                # Many tokens (SoftHSM2 among them) offer only raw ECDSA: hash on the host.
                raw = True
                signer = make_signer(raw=True)
                cert = signer.signing_cert
            elif cert is not None and _mechanism(source, cert) is not None:
                signer = make_signer(raw=False, mechanism=_mechanism(source, cert))
        except (pkcs11.exceptions.NoSuchKey, sign_pkcs11.PKCS11Error) as exc:
            text = str(exc).lower()
            if "cert" in text:
                raise SigningError(
                    "signing.certificate_missing",
                    f"token {source.token!r} has no certificate for key {cert_label!r}",
                ) from None
            raise SigningError(
                "signing.key_not_found", f"token {source.token!r} has no key {key_label!r}"
            ) from None
        if cert is None:
            raise SigningError(
                "signing.certificate_missing",
                f"token {source.token!r} has no certificate for key {cert_label!r}",
            )
        yield KeyHandle(
            signer,
            cert,
            list(signer.cert_registry),
            source,
            remake=lambda mechanism: make_signer(raw, mechanism),
        )
    finally:
        session.close()


@contextlib.contextmanager
def open_key(source: KeySource, secret: str | None = None) -> Iterator[KeyHandle]:
    """Open the key described by ``source``; ``secret`` is the passphrase or the PIN."""
    if source.p12 and source.pkcs11_lib:
        raise SigningError("signing.bad_option", "use a PKCS#12 file or a token, not both")
    if source.p12:
        yield _open_p12(source, secret)
    elif source.pkcs11_lib:
        with _open_pkcs11(source, secret) as handle:
            yield handle
    else:
        raise SigningError("signing.bad_option", "give a PKCS#12 file or a PKCS#11 token")


# ----- the key as cryptography sees it ----------------------------------------------------


class _CryptographyKey:
    """Quacks like a cryptography RSA/EC private key (what signxml signs with); signs with the
    :class:`KeyHandle`'s pyHanko signer.

    Only ``sign()`` and ``key_size`` are offered (all signxml uses). The padding and hash it asks
    for become a pyHanko signature mechanism, and pyHanko's ``async_sign_raw`` does the rest on a
    PKCS#12 key or a PKCS#11 token alike. PSS gets a salt as long as the hash, as RFC 6931's
    ``…-rsa-MGF1`` URIs require (pyHanko's own default, the longest salt, would not verify).
    """

    def __init__(self, key: KeyHandle, run: Run) -> None:
        self._key, self._run = key, run
        self._public = x509.load_der_x509_certificate(key.cert.dump()).public_key()
        self.key_size: int = self._public.key_size

    def sign(self, data: bytes, padding: Any = None, algorithm: Any = None, **kw: Any) -> bytes:
        scheme = kw.get("signature_algorithm") or padding
        if isinstance(scheme, ec.ECDSA):
            algorithm, mechanism = scheme.algorithm, {"algorithm": f"{scheme.algorithm.name}_ecdsa"}
        elif isinstance(scheme, PSS):
            mechanism = {"algorithm": "rsassa_pss", "parameters": _pss(algorithm)}
        elif isinstance(scheme, PKCS1v15):
            mechanism = {"algorithm": f"{algorithm.name}_rsa"}
        else:
            raise SigningError("signing.bad_option", f"cannot sign with {scheme!r}")
        signer = self._key.signer_with(algos.SignedDigestAlgorithm(mechanism), algorithm.name)
        try:
            signature = self._run(signer.async_sign_raw(data, algorithm.name))
        except Exception as exc:  # a token error, a mechanism the key does not support...
            raise SigningError("signing.failed", f"the key could not sign: {exc}") from exc
        try:  # a certificate that does not match the key must not make a package
            args = (scheme,) if isinstance(scheme, ec.ECDSA) else (scheme, algorithm)
            self._public.verify(signature, data, *args)
        except InvalidSignature:
            message = "the key does not match its certificate"
            raise SigningError("signing.key_mismatch", message) from None
        return signature


def _pss(digest: hashes.HashAlgorithm) -> algos.RSASSAPSSParams:
    hash_algorithm = algos.DigestAlgorithm({"algorithm": digest.name})
    mgf = algos.MaskGenAlgorithm({"algorithm": "mgf1", "parameters": hash_algorithm})
    return algos.RSASSAPSSParams(
        {"hash_algorithm": hash_algorithm, "mask_gen_algorithm": mgf,
         "salt_length": digest.digest_size, "trailer_field": "trailer_field_bc"}
    )  # fmt: skip
