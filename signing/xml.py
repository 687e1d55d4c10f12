"""XML-DSig signatures of edXML packages (QCVN 102:2016).

Enveloped, where the format puts it: ``ds:Signature`` as the last child of ``edXML:edXMLHeader``,
one Reference ``URI=""`` (the whole package, attachments included) with the transforms
enveloped-signature + exclusive C14N, exclusive C14N of SignedInfo, SHA-256 digests, and in
KeyInfo the signer's certificate followed by its CA certificates.

    with open_key(KeySource(p12=Path("clerk.p12")), secret) as key:
        signed = sign_package(data, key)        # RSASSA-PSS for RSA unless rsa_padding says not
    verify_package(signed, trust_roots=[Path("root.pem")]).status   # "valid"

signxml does the XML work (C14N, digests, structure); the private-key operation goes through the
key's pyHanko ``Signer`` (:meth:`~signing.keys.KeyHandle.cryptography_key`), so a PKCS#11 token
signs like a PKCS#12 file.
The output is the input, byte for byte, with the Signature spliced in. Verification accepts one
whole-document Reference only (no signature wrapping), checks the mathematics with signxml and
the certificate path with pyhanko-certvalidator.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import copy
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal
from xml.parsers import expat

from cryptography import x509
from lxml import etree
from pyhanko_certvalidator import CertificateValidator
from pyhanko_certvalidator import errors as cv
from pyhanko_certvalidator.policy_decl import DisallowWeakAlgorithmsPolicy
from signxml import SignatureConfiguration, XMLSigner, XMLVerifier
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidDigest, InvalidSignature, SignXMLException

# The hub's hardened reader (no DTD or entities, no network, size and depth limits), on purpose.
from schemas import DSIG_NS, NS, FormatError, Limits, ParsedPackage, read_xml
from schemas.rules import validate
from signing.errors import SigningError
from signing.keys import KeyHandle, Run
from signing.trust import CertLike, certificates, make_validation_context
from signing.validation.revocation import silent_certificates, unreachable_revocation

__all__ = [
    "ALGORITHMS",
    "PackageSignatureResult",
    "sign_package",
    "async_sign_package",
    "verify_package",
    "async_verify_package",
]

M = SignatureMethod
#: What we sign with and accept (Circular 15/2025: RSASSA-PSS, PKCS#1 v1.5 when asked, ECDSA;
#: SHA-2). Anything else, SHA-1 included, is a CRYPTO_CONSTRAINTS_FAILURE.
ALGORITHMS = frozenset(
    {M.SHA256_RSA_MGF1, M.SHA384_RSA_MGF1, M.SHA512_RSA_MGF1, M.RSA_SHA256, M.RSA_SHA384}
    | {M.RSA_SHA512, M.ECDSA_SHA256, M.ECDSA_SHA384, M.ECDSA_SHA512}
)
_DIGESTS = frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512})
_EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_HEADER = f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader"
_SIG = f"{{{DSIG_NS}}}Signature"
_DS = {"ds": DSIG_NS}
_PLACEHOLDER = f'<ds:Signature xmlns:ds="{DSIG_NS}" Id="placeholder"/>'.encode()
_CONFIG = SignatureConfiguration(
    location=f"./{_HEADER}/", expect_references=1, signature_methods=ALGORITHMS,
    digest_algorithms=_DIGESTS,
)  # fmt: skip
_INDETERMINATE = {
    "NO_SIGNING_CERTIFICATE_FOUND", "NO_CERTIFICATE_CHAIN_FOUND", "EXPIRED", "NOT_YET_VALID",
    "TRY_LATER", "CHAIN_CONSTRAINTS_FAILURE", "CRYPTO_CONSTRAINTS_FAILURE",
}  # fmt: skip
_CHAIN_FAILURES = [  # most specific first
    (cv.PathBuildingError, "NO_CERTIFICATE_CHAIN_FOUND"), (cv.RevokedError, "REVOKED"),
    (cv.ExpiredError, "EXPIRED"), (cv.NotYetValidError, "NOT_YET_VALID"),
    (cv.InsufficientRevinfoError, "TRY_LATER"),
    (cv.DisallowedAlgorithmError, "CRYPTO_CONSTRAINTS_FAILURE"),
    ((cv.PathError, cv.ValidationError), "CHAIN_CONSTRAINTS_FAILURE"),
]  # fmt: skip


def _parser() -> etree.XMLParser:
    """For signxml's re-parses of trees we already read safely (huge_tree: big attachments)."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


# ----- signing ---------------------------------------------------------------------------------


def sign_package(
    data: bytes,
    key: KeyHandle,
    *,
    algorithm: str | None = None,
    intermediates: Iterable[x509.Certificate] = (),
    replace_existing: bool = False,
) -> bytes:
    """:func:`async_sign_package` for synchronous callers (not inside a running event loop)."""
    return asyncio.run(
        async_sign_package(
            data,
            key,
            algorithm=algorithm,
            intermediates=intermediates,
            replace_existing=replace_existing,
        )
    )


async def async_sign_package(
    data: bytes,
    key: KeyHandle,
    *,
    algorithm: str | None = None,
    intermediates: Iterable[x509.Certificate] = (),
    replace_existing: bool = False,
) -> bytes:
    """Sign an edXML package; return it with the Signature inserted, other bytes unchanged.

    ``algorithm``: a URI of :data:`ALGORITHMS`; by default RSASSA-PSS (``sha256-rsa-MGF1``) for
    RSA, RSA-SHA256 if ``key.source.rsa_padding == "pkcs1v15"``, ECDSA with the curve's hash.
    ``intermediates`` add CA certificates to KeyInfo (tokens rarely hold them). A signed package
    raises ``signing.already_signed`` unless ``replace_existing``. The XML work runs in a
    thread, the key operation on this event loop.
    """
    loop = asyncio.get_running_loop()

    def run(coro: Coroutine[Any, Any, bytes]) -> bytes:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    args = (data, key, algorithm, list(intermediates), replace_existing, run)
    return await asyncio.to_thread(_sign, *args)


class _Signer(XMLSigner):
    """signxml's signer, re-parsing its internal copies with :func:`_parser`."""

    @property
    def parser(self) -> etree.XMLParser:
        return _parser()


def _sign(data, key, algorithm, intermediates, replace_existing, run: Run) -> bytes:
    data, method = bytes(data), _method(key, algorithm)
    try:
        root = read_xml(data, Limits())
        validate(root, Limits())
    except FormatError as exc:
        raise SigningError("signing.invalid_package", f"{exc.message} ({exc.code})") from None
    if (root.getroottree().docinfo.encoding or "").upper() not in ("UTF-8", "US-ASCII"):
        data = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
    start, end = _header_tail(data)
    if start != end and not replace_existing:
        raise SigningError("signing.already_signed", "the package already carries a Signature")
    templated = data[:start] + _PLACEHOLDER + data[end:]  # an old Signature goes
    signed = _Signer(signature_algorithm=method, c14n_algorithm=_EXC_C14N).sign(
        read_xml(templated, Limits()),
        key=key.cryptography_key(run),
        cert=key.issuer_chain(intermediates),
    )
    signature = etree.fromstring(etree.tostring(signed.find(f"{_HEADER}/{_SIG}"), with_tail=False))
    etree.cleanup_namespaces(signature)  # drop the edXML declarations it inherited
    # signxml digested ``templated`` minus the placeholder: putting the Signature in its place,
    # bytes around it untouched, keeps that digest true.
    return templated[:start] + etree.tostring(signature) + templated[start + len(_PLACEHOLDER) :]


def _method(key: KeyHandle, algorithm: str | None) -> SignatureMethod:
    kind, bits = key.cert.public_key.algorithm, key.cert.public_key.bit_size
    if algorithm is None and kind == "ec":
        return {384: M.ECDSA_SHA384, 521: M.ECDSA_SHA512}.get(bits, M.ECDSA_SHA256)
    if algorithm is None:
        return M.RSA_SHA256 if key.source.rsa_padding == "pkcs1v15" else M.SHA256_RSA_MGF1
    method = next((m for m in ALGORITHMS if m.value == algorithm), None)
    if method is None or method.name.startswith("ECDSA") != (kind == "ec"):
        raise SigningError("signing.bad_option", f"cannot sign with {algorithm} and a {kind} key")
    return method


def _header_tail(data: bytes) -> tuple[int, int]:
    """Byte offsets of the header's Signature (else of the header's end tag), and of that tag."""
    parser = expat.ParserCreate(namespace_separator=" ")
    header, path, found = [f"{NS} edXML", f"{NS} edXMLEnvelope", f"{NS} edXMLHeader"], [], {}

    def start(name: str, _attributes: dict) -> None:
        if path == header and name.endswith(" Signature"):
            found.setdefault("signature", parser.CurrentByteIndex)
        path.append(name)

    def end(name: str) -> None:
        path.pop()
        if path == header[:2] and name == header[2]:
            found.setdefault("end", parser.CurrentByteIndex)

    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.Parse(data, True)
    return found.get("signature", found["end"]), found["end"]


# ----- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageSignatureResult:
    """The verdict on a package's signature.

    ``reason`` (None when valid) follows ETSI EN 319 102-1's sub-indications. Invalid:
    NO_SIGNATURE, FORMAT_FAILURE, HASH_FAILURE (changed after signing), SIG_CRYPTO_FAILURE,
    REVOKED. Indeterminate: NO_SIGNING_CERTIFICATE_FOUND, NO_CERTIFICATE_CHAIN_FOUND, EXPIRED,
    NOT_YET_VALID, TRY_LATER (no revocation answer yet), CHAIN_CONSTRAINTS_FAILURE (also: a
    certificate naming no OCSP responder or CRL when revocation data is required),
    CRYPTO_CONSTRAINTS_FAILURE (an algorithm outside :data:`ALGORITHMS`).
    """

    status: Literal["valid", "invalid", "indeterminate"]
    reason: str | None
    message: str
    algorithm: str | None = None  # the SignatureMethod URI
    signer_cert: x509.Certificate | None = None
    covers_whole_document: bool = False  # the signed bytes are the package minus the Signature

    @property
    def signer_subject(self) -> str | None:
        return None if self.signer_cert is None else self.signer_cert.subject.rfc4514_string()

    @property
    def valid(self) -> bool:
        return self.status == "valid"


class _Failure(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def verify_package(
    data: bytes | ParsedPackage,
    *,
    trust_roots: Iterable[CertLike],
    intermediates: Iterable[CertLike] = (),
    at: datetime | None = None,
    check_revocation: bool = False,
    fetch_certificates: bool = False,
    revocation: str | None = None,
    limits: Limits | None = None,
) -> PackageSignatureResult:
    """:func:`async_verify_package` for synchronous callers (not inside a running event loop)."""
    options = dict(
        intermediates=intermediates, at=at, check_revocation=check_revocation,
        fetch_certificates=fetch_certificates, revocation=revocation, limits=limits,
    )  # fmt: skip
    return asyncio.run(async_verify_package(data, trust_roots=trust_roots, **options))


async def async_verify_package(
    data: bytes | ParsedPackage,
    *,
    trust_roots: Iterable[CertLike],
    intermediates: Iterable[CertLike] = (),
    at: datetime | None = None,
    check_revocation: bool = False,
    fetch_certificates: bool = False,
    revocation: str | None = None,
    limits: Limits | None = None,
) -> PackageSignatureResult:
    """Verify a package's Signature; ``data`` may come from anyone (read with the hardened parser).

    ``trust_roots``/``intermediates``: certificates, or PEM/DER files or folders (read by
    :func:`signing.trust.certificates`, :class:`~signing.errors.TrustError` if unusable). ``at``
    (timezone-aware, default now): when the certificates must be valid. ``check_revocation``: ask
    the OCSP/CRL services the certificates name (hard fail), through the process revocation cache.
    ``fetch_certificates``: follow the certificates' AIA URLs for missing CA certificates (off: a
    package must not steer our requests). ``revocation`` (overrides ``check_revocation``): the
    trust setting's mode, ``soft-fail``, ``hard-fail`` or ``embedded-only`` (no network: an XML
    signature embeds no revocation data, so its chain cannot be confirmed). ``limits``: the parser
    limits of the caller (default: :class:`schemas.Limits`); a :class:`schemas.ParsedPackage` is
    verified on its tree, without reading it again.
    """
    if at is not None and at.utcoffset() is None:
        raise ValueError("'at' must be timezone-aware")
    found: dict[str, Any] = {}
    try:
        if isinstance(data, ParsedPackage):  # read (and checked) already: not read again
            root = data.root
        else:
            root = read_xml(bytes(data), limits or Limits())
        signature = _the_signature(root)
        found["algorithm"] = _check_structure(root, signature)
        certs = _key_info_certificates(signature)
        found["signer_cert"] = certs[0]
        _check_crypto(root, certs[0])
        found["covers_whole_document"] = True
        others = certificates([*certs[1:], *intermediates])
        roots = certificates(trust_roots)
        mode = revocation or ("hard-fail" if check_revocation else "off")
        await _check_chain(certs[0], others, roots, at, mode, fetch_certificates)
    except FormatError as exc:
        found["reason"], found["message"] = "FORMAT_FAILURE", f"{exc.message} ({exc.code})"
    except _Failure as failure:
        found["reason"], found["message"] = failure.reason, failure.message
    reason = found.pop("reason", None)
    status = (
        "valid" if reason is None else "indeterminate" if reason in _INDETERMINATE else "invalid"
    )
    message = found.pop("message", "the signature is valid and covers the whole package")
    return PackageSignatureResult(status, reason, message, **found)


def _the_signature(root: etree._Element) -> etree._Element:
    """The one ds:Signature, which must be the last child of the header."""
    header = root.find(_HEADER)
    signatures = list(root.iter(_SIG))
    if not signatures and header is not None and header.find(f"{{{NS}}}Signature") is not None:
        message = "the header's Signature is not in the XML-DSig namespace: it cannot verify"
        raise _Failure("FORMAT_FAILURE", message)
    if not signatures:
        raise _Failure("NO_SIGNATURE", "the package carries no XML-DSig Signature")
    if len(signatures) > 1:
        message = f"the package holds {len(signatures)} Signature elements; one is allowed"
        raise _Failure("FORMAT_FAILURE", message)
    children = [] if header is None else list(header.iterchildren(etree.Element))
    if not children or children[-1] is not signatures[0]:
        raise _Failure("FORMAT_FAILURE", "the Signature must be the last child of edXMLHeader")
    return signatures[0]


def _check_structure(root: etree._Element, signature: etree._Element) -> str | None:
    """One Reference to the whole document, enveloped + exc-C14N, unique Ids, a known algorithm."""
    references = signature.findall("ds:SignedInfo/ds:Reference", _DS)
    if len(references) != 1:
        message = f"SignedInfo must hold exactly one Reference, not {len(references)}"
        raise _Failure("FORMAT_FAILURE", message)
    if (uri := references[0].get("URI")) != "":
        message = f'the Reference must cover the whole package (URI=""), not URI={uri!r}'
        raise _Failure("FORMAT_FAILURE", message)
    transforms = [t.get("Algorithm") for t in references[0].iterfind("ds:Transforms/*", _DS)]
    if transforms != [_ENVELOPED, _EXC_C14N.value]:
        message = f"the Reference's transforms must be enveloped + exc-C14N, not {transforms}"
        raise _Failure("FORMAT_FAILURE", message)
    ids = collections.Counter(root.xpath("//@*[translate(local-name(), 'DI', 'di') = 'id']"))
    if duplicated := sorted(str(value) for value, count in ids.items() if count > 1):
        raise _Failure("FORMAT_FAILURE", f"Id values used more than once: {duplicated}")
    method = signature.find("ds:SignedInfo/ds:SignatureMethod", _DS)
    algorithm = None if method is None else method.get("Algorithm")
    if algorithm not in {m.value for m in ALGORITHMS}:
        raise _Failure("CRYPTO_CONSTRAINTS_FAILURE", f"algorithm {algorithm} is not accepted")
    return algorithm


def _key_info_certificates(signature: etree._Element) -> list[x509.Certificate]:
    """KeyInfo's certificates, the signer's first."""
    path = "ds:KeyInfo/ds:X509Data/ds:X509Certificate"
    texts = [e.text or "" for e in signature.iterfind(path, _DS)]
    if not texts:
        raise _Failure("NO_SIGNING_CERTIFICATE_FOUND", "KeyInfo carries no X509Certificate")
    try:
        return [x509.load_der_x509_certificate(base64.b64decode(text)) for text in texts]
    except ValueError:
        raise _Failure("FORMAT_FAILURE", "a KeyInfo certificate cannot be read") from None


def _check_crypto(root: etree._Element, signer: x509.Certificate) -> None:
    """The digest and the signature value (signxml), then what exactly was signed."""
    # signxml checks the mathematics only: time and trust are certvalidator's (_check_chain).
    config = replace(_CONFIG, verification_time=signer.not_valid_before_utc)
    try:
        verified = XMLVerifier().verify(
            root, x509_cert=signer, parser=_parser(), expect_config=config
        )
    except InvalidDigest:
        raise _Failure("HASH_FAILURE", "the package was changed after it was signed") from None
    except InvalidSignature:
        raise _Failure("SIG_CRYPTO_FAILURE", "the signature value does not verify") from None
    except (SignXMLException, ValueError, etree.DocumentInvalid) as exc:
        raise _Failure("FORMAT_FAILURE", f"the Signature is malformed: {exc}") from None
    document = copy.deepcopy(root)  # see what is signed: all of the package but the Signature
    _detach(next(document.iter(_SIG)))
    expected = etree.tostring(document, method="c14n", exclusive=True, with_comments=False)
    if verified.signed_data != expected:
        raise _Failure("FORMAT_FAILURE", "the signed data is not the whole package")


def _detach(element: etree._Element) -> None:
    """Remove ``element`` but keep its tail text, as the enveloped-signature transform does."""
    parent, previous = element.getparent(), element.getprevious()
    if element.tail and previous is not None:
        previous.tail = (previous.tail or "") + element.tail
    elif element.tail:
        parent.text = (parent.text or "") + element.tail
    parent.remove(element)


async def _check_chain(
    signer, others, roots, at, revocation: str, fetch_certificates: bool = False
) -> None:
    """Build and validate the signer's path to a trust root with pyhanko-certvalidator.

    The context comes from :func:`signing.trust.make_validation_context`, like a PDF's: OCSP
    and CRL answers come from the process revocation cache (the HTTP session opens only on a
    miss), and certificates named in the package's AIA are not fetched unless
    ``fetch_certificates``. ``revocation``: ``off`` (nothing fetched or required),
    ``soft-fail`` (fetched when named, not required), ``hard-fail`` (fetched and required for
    every certificate below the anchor, even one that names no OCSP/CRL), ``embedded-only``
    (required, nothing fetched).
    certvalidator's default algorithm
    policy (no MD5/SHA-1, RSA >= 2048) applies to the chain.
    """
    context = make_validation_context(
        roots, others, moment=at,
        allow_fetching=revocation in ("soft-fail", "hard-fail"),
        fetch_certificates=fetch_certificates,
        revocation_mode="soft-fail" if revocation in ("off", "soft-fail") else "require",
        retroactive_revinfo=False, algorithm_policy=DisallowWeakAlgorithmsPolicy(),
    )  # fmt: skip
    async with contextlib.aclosing(context):
        (leaf,) = certificates([signer])
        validator = CertificateValidator(leaf, validation_context=context)
        try:
            await validator.async_validate_usage({"digital_signature"})
        except (cv.PathError, cv.ValidationError) as exc:
            if isinstance(exc, cv.InsufficientRevinfoError) and silent_certificates(exc):
                # no source to wait for: the revocation demand is a constraint never met
                message = f"the signer's certificate: {unreachable_revocation(exc)}"
                raise _Failure("CHAIN_CONSTRAINTS_FAILURE", message) from None
            reason = next(code for kind, code in _CHAIN_FAILURES if isinstance(exc, kind))
            raise _Failure(reason, f"the signer's certificate: {exc}") from None
