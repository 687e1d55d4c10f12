"""Validation of signed PDFs: every signature and document timestamp, ETSI-style verdicts.

One entry point, a pure function of the document bytes and a
:class:`~signing.trust.TrustSettings`::

    report = await validate_pdf(data, trust)    # or validate_pdf_sync(data, trust)
    report.summary.indication                   # TOTAL-PASSED | TOTAL-FAILED | INDETERMINATE

The result is made of frozen dataclasses holding only strings, numbers, booleans and lists, so it
pickles (process pools) and turns into the JSON report with :func:`dataclasses.asdict`
(see :mod:`signing.report`).

How a verdict is reached (ETSI EN 319 102-1 indications, PDF-specific checks first):

1. *Format*: the signature dictionary must parse, ``/ByteRange`` must be ``[0 a b c]`` with the gap
   ``[a, b)`` holding exactly the ``/Contents`` hex string, inside the file. Otherwise
   ``TOTAL-FAILED/FORMAT_FAILURE``.
2. *Cryptography* (pyHanko): ByteRange digest against the signed ``messageDigest``
   (``HASH_FAILURE``), then the signature value (``SIG_CRYPTO_FAILURE``).
3. *Coverage and modifications* (pyHanko's DocMDP difference analysis): the signature must cover
   its whole revision; later revisions may only add what the PDF rules (and the certification
   level, DocMDP ``P``) allow. Anything else, such as page content, annotations, swapped objects
   (shadow attacks), is ``TOTAL-FAILED/FORMAT_FAILURE`` with the changes listed, as the format
   checking block of EU DSS does. Changes the PDF rules permit but the hub does not
   (a non-signature form field filled after signing) give ``INDETERMINATE/SIG_CONSTRAINTS_FAILURE``.
4. *Certificate chain* at the validation time (now, or ``TrustSettings.at``), with revocation
   per the trust settings. When that fails only because of time (expired, revoked later,
   revocation data too old) and a timestamp *proves* when the signature existed, the chain is
   validated again at that time (past signature validation): ``REVOKED`` when the proven time is
   after revocation, ``EXPIRED`` after expiry, ``NOT_YET_VALID`` before issuance,
   otherwise the past result.
5. *Algorithm policy*: Circular 15/2025/TT-BKHCN for signatures made on or after 2025-07-01
   (RSA >= 2048 with RSASSA-PSS or ECDSA >= 256 bits, SHA-2/SHA-3), the historical rules before
   (PKCS#1 v1.5 and SHA-1 accepted). Reported as ``policy``. A *new* signature with PKCS#1 v1.5
   is only a warning (the crypto is sound and the decree allows verifying older algorithms);
   a new signature with SHA-1, RSA < 2048 or EC < 256 is
   ``INDETERMINATE/CRYPTO_CONSTRAINTS_FAILURE``, and an old algorithm justified only by a
   *claimed* (not timestamped) signing time is ``INDETERMINATE/CRYPTO_CONSTRAINTS_FAILURE_NO_POE``.

The document summary is the worst indication (TOTAL-FAILED > INDETERMINATE > TOTAL-PASSED).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import cms, crl, ocsp
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESIndeterminate, AdESSubIndic
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    DiffResult,
    ModificationLevel,
    SuspiciousModification,
)
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.general import (
    MultivaluedAttributeError,
    NonexistentAttributeError,
    find_unique_cms_attribute,
)
from pyhanko.sign.validation import (
    DocumentSecurityStore,
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.errors import NoDSSFoundError, SignatureValidationError
from pyhanko.sign.validation.generic_cms import handle_certvalidator_errors
from pyhanko.sign.validation.status import (
    DocumentTimestampStatus,
    PdfSignatureStatus,
    SignatureCoverageLevel,
    TimestampSignatureStatus,
)
from pyhanko.sign.validation.utils import CMSAlgorithmUsagePolicy
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.path import ValidationPath

from signing import fastpaths
from signing.caveats import (
    REVOCATION_SOFT_FAILED,
    policy_warning,
    revoked_after_proof,
    signature_warnings,
    timestamp_warning,
    with_warnings,
)
from signing.pdfread import open_pdf
from signing.revinfo_gaps import names_no_revocation_source, silent_certificates
from signing.trust import TrustSettings, lenient_algorithm_policy

__all__ = [
    "CIRCULAR_15_EFFECTIVE",
    "INDETERMINATE",
    "SCHEMA",
    "TOTAL_FAILED",
    "TOTAL_PASSED",
    "AlgorithmInfo",
    "CertInfo",
    "ChainInfo",
    "Change",
    "CoverageInfo",
    "Digest",
    "DocumentReport",
    "ModificationInfo",
    "PdfAttributes",
    "PolicyResult",
    "RevocationInfo",
    "SignatureReport",
    "SigningTime",
    "Summary",
    "TimestampInfo",
    "evaluate_policy",
    "format_name",
    "validate_pdf",
    "validate_pdf_in_pool",
    "validate_pdf_sync",
    "worst_indication",
]

SCHEMA = "lienthong.validation-report/1"
TOTAL_PASSED = "TOTAL-PASSED"
TOTAL_FAILED = "TOTAL-FAILED"
INDETERMINATE = "INDETERMINATE"
_RANK = {TOTAL_PASSED: 0, INDETERMINATE: 1, TOTAL_FAILED: 2}

# Circular 15/2025/TT-BKHCN applies to signatures made from this moment (Vietnam time).
CIRCULAR_15_EFFECTIVE = dt.datetime(2025, 7, 1, tzinfo=dt.timezone(dt.timedelta(hours=7)))

_STRONG_DIGESTS = frozenset({"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512"})
_HISTORICAL_DIGESTS = _STRONG_DIGESTS | {"sha1", "sha224", "sha512_224", "sha512_256"}
_MAX_CHANGES = 200


# ----- report model (plain values only: picklable, JSON-ready) -------------------------------


@dataclass(frozen=True)
class CertInfo:
    """A certificate as shown to an auditor; ``der`` is the base64 DER for offline checks."""

    subject: str
    common_name: str | None
    organization: str | None
    organization_identifier: str | None  # 2.5.4.97: the agency's organ id in our PKI
    issuer: str
    serial: str  # hex
    sha256: str  # hex fingerprint of the DER
    not_before: str
    not_after: str
    der: str


@dataclass(frozen=True)
class Digest:
    algorithm: str
    value: str  # hex


@dataclass(frozen=True)
class TimestampInfo:
    """An RFC 3161 token attached to a signature (``signature``/``content``) or the document."""

    kind: str  # "signature-timestamp" | "content-timestamp" | "document-timestamp"
    time: str | None
    tsa: CertInfo | None
    intact: bool
    valid: bool
    trusted: bool
    problem: str | None  # AdES sub-indication of the TSA chain, when not trusted
    proven_by: str | None = None  # "current-time" | "past-validation" when trusted


@dataclass(frozen=True)
class SigningTime:
    best: str | None
    source: str  # signature-timestamp | document-timestamp | signing-time-claimed | validation-time
    claimed: str | None
    proven: bool


@dataclass(frozen=True)
class ChainInfo:
    trusted: bool
    validated_at: str | None  # the moment the chain was validated at
    anchor: CertInfo | None
    certificates: list[CertInfo]  # signer first, anchor last (when found)


@dataclass(frozen=True)
class RevocationInfo:
    checked: bool
    source: str  # "embedded" | "online" | "none"
    kind: str | None  # "ocsp" | "crl"
    status: str  # "good" | "revoked" | "unknown"
    revoked_at: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class CoverageInfo:
    """Which bytes the signature covers. Revisions count from 0 (the file as first written)."""

    level: str | None  # ENTIRE_FILE | ENTIRE_REVISION | CONTIGUOUS_BLOCK_FROM_START | UNCLEAR
    byte_range: list[int]
    signed_revision: int | None
    total_revisions: int


@dataclass(frozen=True)
class Change:
    revision: int
    object: str  # "12 0"
    type: str  # /Page, /Annot, /Sig, stream, ...
    action: str  # added | updated | freed


@dataclass(frozen=True)
class ModificationInfo:
    level: str | None  # pyHanko ModificationLevel name
    permitted: bool | None  # by the PDF rules (DocMDP, diff policy)
    docmdp: int | None  # certification level P, when the signature sets or is bound by one
    changed_form_fields: list[str]
    findings: list[str]
    changes: list[Change]


@dataclass(frozen=True)
class AlgorithmInfo:
    digest: str | None
    signature: str | None  # rsassa_pss | rsassa_pkcs1v15 | ecdsa | ...
    key_type: str | None  # rsa | ec | ...
    key_size: int | None
    curve: str | None = None


@dataclass(frozen=True)
class PolicyResult:
    name: str  # "circular-15-2025" | "historical"
    passed: bool
    level: str  # "ok" | "warning" | "failure"
    notes: list[str]


@dataclass(frozen=True)
class PdfAttributes:
    filter: str | None
    sub_filter: str | None
    reason: str | None
    location: str | None
    name: str | None
    contact_info: str | None


@dataclass(frozen=True)
class SignatureReport:
    """The verdict on one signature or document timestamp, with its evidence."""

    id: str
    field: str | None
    kind: str  # "signature" | "certification" | "document-timestamp"
    indication: str
    sub_indication: str | None
    messages: list[str]
    signer: CertInfo | None
    signing_time: SigningTime
    timestamps: list[TimestampInfo]
    chain: ChainInfo
    revocation: RevocationInfo
    coverage: CoverageInfo
    modifications: ModificationInfo
    algorithms: AlgorithmInfo
    policy: PolicyResult | None
    intact: bool | None
    valid: bool | None
    signature_value: str | None  # base64 of the raw signature value
    signature_value_digest: Digest | None
    dtbsr_digest: Digest | None  # digest of the signed attributes (the data to be signed)
    document_digest: Digest | None  # digest of the /ByteRange (the signer's document)
    pdf: PdfAttributes | None


@dataclass(frozen=True)
class Summary:
    indication: str
    sub_indication: str | None
    signatures: int
    document_timestamps: int
    message: str


@dataclass(frozen=True)
class DocumentReport:
    """Everything :func:`validate_pdf` found; see ``schemas/xsd/validation-report.schema.json``."""

    schema: str
    validated_at: str  # wall-clock time of this validation
    validation_time: str  # the reference time (``TrustSettings.at`` or now)
    point_in_time: bool
    revocation_mode: str
    document_sha256: str
    document_size: int
    revisions: int
    anchors: list[CertInfo]
    summary: Summary
    signatures: list[SignatureReport]
    errors: list[str] = field(default_factory=list)


# ----- helpers: names, certificates, times ---------------------------------------------------

_SHORT = {
    "2.5.4.3": "CN",
    "2.5.4.5": "SERIALNUMBER",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "T",
    "2.5.4.97": "organizationIdentifier",
    "1.2.840.113549.1.9.1": "E",
    "0.9.2342.19200300.100.1.1": "UID",
}


def _escape_rdn(value: str) -> str:
    value = re.sub(r'([,+"\\<>;=])', r"\\\1", value)
    if value.startswith((" ", "#")):
        value = "\\" + value
    if value.endswith(" "):
        value = value[:-1] + "\\ "
    return value


def format_name(name: asn1_x509.Name) -> str:
    """RFC 4514-style string, most specific attribute first (``CN=...,O=...,C=VN``)."""
    parts = []
    for rdn in reversed(list(name.chosen)):
        bits = []
        for attr in rdn:
            oid = attr["type"].dotted
            try:
                value = attr["value"].native
            except ValueError:
                value = attr["value"].dump().hex()
            bits.append(f"{_SHORT.get(oid, oid)}={_escape_rdn(str(value))}")
        parts.append("+".join(bits))
    return ",".join(parts)


def _name_attr(name: asn1_x509.Name, key: str) -> str | None:
    try:
        value = name.native.get(key)
    except ValueError:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value is not None else None


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


_CERT_INFO: dict[bytes, CertInfo] = {}
_CERT_INFO_MAX = 1024


def _cert_info(cert: asn1_x509.Certificate) -> CertInfo:
    """The certificate as reported; memoized by its DER (a frozen value of the DER alone)."""
    der = cert.dump()
    info = _CERT_INFO.get(der)
    if info is None:
        info = _make_cert_info(cert)
        if len(_CERT_INFO) >= _CERT_INFO_MAX:
            _CERT_INFO.clear()
        _CERT_INFO[der] = info
    return info


def _make_cert_info(cert: asn1_x509.Certificate) -> CertInfo:
    import base64

    validity = cert["tbs_certificate"]["validity"]
    return CertInfo(
        subject=format_name(cert.subject),
        common_name=_name_attr(cert.subject, "common_name"),
        organization=_name_attr(cert.subject, "organization_name"),
        organization_identifier=_name_attr(cert.subject, "organization_identifier"),
        issuer=format_name(cert.issuer),
        serial=format(cert.serial_number, "x"),
        sha256=cert.sha256.hex(),
        not_before=_iso(validity["not_before"].native) or "",
        not_after=_iso(validity["not_after"].native) or "",
        der=base64.b64encode(cert.dump()).decode("ascii"),
    )


def _short(text: object, limit: int = 300) -> str:
    """An exception text cut to a size a report can hold (hostile input makes long ones)."""
    value = " ".join(str(text).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _subindic_name(indic: AdESSubIndic | None) -> str | None:
    return None if indic is None else str(indic.standard_name)


def worst_indication(indications: Iterable[str]) -> str | None:
    """The worst of ``indications`` (TOTAL-FAILED > INDETERMINATE > TOTAL-PASSED)."""
    items = list(indications)
    return max(items, key=lambda i: _RANK[i]) if items else None


def _chain_from_cms(
    signer: asn1_x509.Certificate, others: Sequence[asn1_x509.Certificate]
) -> list[asn1_x509.Certificate]:
    """The issuer chain the signature carries, leaf first (best effort, for display)."""
    chain = [signer]
    pool = list(others)
    while pool:
        last = chain[-1]
        if last.self_signed != "no":
            break
        nxt = next((c for c in pool if c.subject == last.issuer), None)
        if nxt is None or nxt in chain:
            break
        chain.append(nxt)
        pool.remove(nxt)
    return chain


def _path_certs(
    path: ValidationPath,
) -> tuple[list[asn1_x509.Certificate], asn1_x509.Certificate | None]:
    certs = list(path.iter_certs(include_root=True))
    anchor_cert = getattr(path.trust_anchor, "certificate", None)
    ordered = list(reversed(certs))  # leaf first
    return ordered, anchor_cert


def _chain_info(
    path: ValidationPath | None,
    signer: asn1_x509.Certificate | None,
    others: Sequence[asn1_x509.Certificate],
    trusted: bool,
    moment: dt.datetime | None,
) -> ChainInfo:
    if path is not None:
        certs, anchor = _path_certs(path)
        if signer is not None and (not certs or certs[0].sha256 != signer.sha256):
            certs = [signer, *certs]
        return ChainInfo(
            trusted=trusted,
            validated_at=_iso(moment),
            anchor=_cert_info(anchor) if anchor is not None else None,
            certificates=[_cert_info(c) for c in certs],
        )
    certs = _chain_from_cms(signer, others) if signer is not None else []
    return ChainInfo(False, _iso(moment), None, [_cert_info(c) for c in certs])


# ----- revocation source ---------------------------------------------------------------------


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


def _revocation_info(
    vc: ValidationContext | None,
    cert: asn1_x509.Certificate | None,
    embedded: set[bytes],
    status: Any,
    trusted: bool,
    path: ValidationPath | None,
) -> RevocationInfo:
    """Which revocation data spoke for ``cert`` (only meaningful when a chain was built)."""
    details = getattr(status, "revocation_details", None)
    revoked_at = _iso(details.revocation_date) if details is not None else None
    reason = None
    if details is not None:
        try:
            reason = str(details.revocation_reason.native)
        except (ValueError, AttributeError):
            reason = None
    if vc is None or cert is None or path is None:
        return RevocationInfo(False, "none", None, "unknown", revoked_at, reason)
    issuer = None
    try:
        chain, _ = _path_certs(path)
        issuer = next((c for c in chain if c.subject == cert.issuer), None)
    except Exception:  # noqa: BLE001
        issuer = None
    found: tuple[str, str, str] | None = None
    for resp in vc.ocsps:
        match = _ocsp_matches(resp, cert)
        if match is not None:
            source = "embedded" if hashlib.sha256(resp.dump()).digest() in embedded else "online"
            found = (source, "ocsp", match[0])
            if match[1] is not None and revoked_at is None:
                revoked_at = _iso(match[1])
            if match[0] != "unknown":
                break
    if found is None or found[2] == "unknown":
        for item in vc.crls:
            state = _crl_matches(item, cert, issuer)
            if state is not None:
                source = (
                    "embedded" if hashlib.sha256(item.dump()).digest() in embedded else "online"
                )
                found = (source, "crl", state)
                break
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


# ----- algorithms and the policy -------------------------------------------------------------


def _algorithms(signer_info: cms.SignerInfo, cert: asn1_x509.Certificate | None) -> AlgorithmInfo:
    digest = sig = key_type = curve = None
    key_size = None
    try:
        digest = signer_info["digest_algorithm"]["algorithm"].native
        algo = signer_info["signature_algorithm"]
        try:
            sig = algo.signature_algo
        except ValueError:
            sig = algo["algorithm"].native
    except (ValueError, KeyError):
        pass
    if cert is not None:
        try:
            key_type = cert.public_key.algorithm
            key_size = int(cert.public_key.bit_size)
            if key_type == "ec":
                curve = str(cert.public_key.curve[1])
        except (ValueError, TypeError, KeyError):
            pass
    return AlgorithmInfo(digest, sig, key_type, key_size, curve)


def _signature_hash(signer_info: cms.SignerInfo) -> str | None:
    """The hash inside the signature mechanism (PSS parameters or the sha*_rsa name)."""
    try:
        algo = signer_info["signature_algorithm"]
        if algo["algorithm"].native == "rsassa_pss":
            return algo["parameters"]["hash_algorithm"]["algorithm"].native
        return algo.hash_algo
    except (ValueError, KeyError, TypeError):
        return None


def _meets(algs: AlgorithmInfo, mech_hash: str | None, *, circular: bool) -> list[str]:
    """Reasons ``algs`` fail the Circular 15/2025 (``circular``) or the historical rules."""
    problems: list[str] = []
    digests = _STRONG_DIGESTS if circular else _HISTORICAL_DIGESTS
    for d in {algs.digest, mech_hash} - {None}:
        if d not in digests:
            problems.append(f"digest {d} is not allowed")
    size = algs.key_size or 0
    if algs.key_type == "rsa":
        if size < (2048 if circular else 1024):
            problems.append(f"RSA key of {size} bits is too short")
    elif algs.key_type == "ec":
        if size < (256 if circular else 192):
            problems.append(f"EC key of {size} bits is too short")
    elif algs.key_type == "dsa":
        if circular:
            problems.append("DSA is not allowed")
        elif size < 1024:
            problems.append(f"DSA key of {size} bits is too short")
    return problems


def evaluate_policy(
    algs: AlgorithmInfo,
    mech_hash: str | None,
    signed_at: dt.datetime | None,
    proven: bool,
) -> tuple[PolicyResult, str | None]:
    """Judge the algorithms against the rules in force when the signature was made.

    Returns the policy result and, when the verdict must change, the sub-indication
    (``CRYPTO_CONSTRAINTS_FAILURE`` or ``CRYPTO_CONSTRAINTS_FAILURE_NO_POE``).
    """
    when = signed_at or dt.datetime.now(dt.UTC)
    circular = when >= CIRCULAR_15_EFFECTIVE
    notes: list[str] = []
    strict = _meets(algs, mech_hash, circular=True)
    historical = _meets(algs, mech_hash, circular=False)
    if circular:
        name = "circular-15-2025"
        if strict:
            notes += [f"Circular 15/2025: {p}" for p in strict]
            return PolicyResult(name, False, "failure", notes), "CRYPTO_CONSTRAINTS_FAILURE"
        if algs.signature == "rsassa_pkcs1v15":
            notes.append(
                "RSA with PKCS#1 v1.5 padding: Circular 15/2025 asks for RSASSA-PSS; accepted "
                "as a warning (the decree allows verifying older algorithms)"
            )
            return PolicyResult(name, False, "warning", notes), None
        if algs.key_type not in ("rsa", "ec"):
            notes.append(f"key type {algs.key_type} is not named by Circular 15/2025")
            return PolicyResult(name, False, "warning", notes), None
        return PolicyResult(name, True, "ok", notes), None
    name = "historical"
    notes.append("signed before 2025-07-01: judged by the rules in force before Circular 15/2025")
    if historical:
        notes += historical
        return PolicyResult(name, False, "failure", notes), "CRYPTO_CONSTRAINTS_FAILURE"
    if strict:
        notes += [f"weaker than Circular 15/2025 today: {p}" for p in strict]
        if not proven:
            notes.append(
                "the earlier signing time that would justify these algorithms is only claimed, "
                "not proven by a timestamp"
            )
            return PolicyResult(name, False, "failure", notes), "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"
        return PolicyResult(name, True, "warning", notes), None
    if algs.signature == "rsassa_pkcs1v15":
        notes.append("RSA with PKCS#1 v1.5 padding (accepted before Circular 15/2025)")
    return PolicyResult(name, True, "ok", notes), None


# ----- structure checks and modification analysis --------------------------------------------

_HEX = re.compile(rb"^[0-9A-Fa-f\s]*$")


def _byte_range_problem(
    data: bytes, sig_object: generic.DictionaryObject, contents: bytes
) -> tuple[list[int], str | None]:
    """Check ``/ByteRange`` shape and that its gap is exactly the ``/Contents`` string."""
    try:
        raw = sig_object.raw_get("/ByteRange")
        br = [int(x) for x in raw]
    except (KeyError, TypeError, ValueError):
        return [], "the signature has no readable /ByteRange"
    if len(br) != 4:
        return br, f"/ByteRange has {len(br)} numbers instead of 4"
    start1, len1, start2, len2 = br
    if min(br) < 0:
        return br, "/ByteRange holds a negative number"
    if start1 != 0:
        return br, "/ByteRange does not start at the beginning of the file"
    if len1 == 0 or len2 == 0:
        return br, "/ByteRange covers nothing"
    if start2 < len1:
        return br, "/ByteRange ranges overlap"
    if start2 + len2 > len(data):
        return br, "/ByteRange reaches past the end of the file"
    gap = data[len1:start2]
    if len(gap) < 2 or gap[:1] != b"<" or gap[-1:] != b">" or not _HEX.match(gap[1:-1]):
        return br, "the /ByteRange gap is not a hex string: the signed ranges were moved"
    hexdigits = re.sub(rb"\s", b"", gap[1:-1])
    try:
        in_gap = bytes.fromhex(hexdigits.decode("ascii"))
    except ValueError:
        return br, "the /ByteRange gap is not a hex string"
    if in_gap.rstrip(b"\x00") != contents.rstrip(b"\x00"):
        return br, "the /ByteRange gap does not hold this signature's /Contents"
    return br, None


def _object_type(obj: Any) -> str:
    if isinstance(obj, generic.StreamObject):
        kind = obj.get("/Type") or obj.get("/Subtype")
        return f"stream {kind}" if kind else "stream"
    if isinstance(obj, generic.DictionaryObject):
        kind = obj.get("/Type")
        if kind == "/Annot" or (kind is None and "/Subtype" in obj and "/Rect" in obj):
            return f"/Annot {obj.get('/Subtype', '')}".strip()
        if kind is None and "/FT" in obj:
            return f"field {obj.get('/FT')} {obj.get('/T', '')}".strip()
        return str(kind) if kind else "dictionary"
    return type(obj).__name__


def _changes_after(reader: PdfFileReader, signed_revision: int) -> list[Change]:
    """Objects added, updated or freed in the revisions after ``signed_revision``."""
    changes: list[Change] = []
    xrefs = reader.xrefs
    for rev in range(signed_revision + 1, xrefs.total_revisions):
        try:
            refs = sorted(xrefs.explicit_refs_in_revision(rev), key=lambda r: r.idnum)
            freed = sorted(xrefs.refs_freed_in_revision(rev), key=lambda r: r.idnum)
            resolver = reader.get_historical_resolver(rev)
        except Exception:  # noqa: BLE001 - a broken xref is reported, not raised
            changes.append(Change(rev, "?", "unreadable revision", "updated"))
            continue
        for ref in refs:
            try:
                obj = resolver(ref)
                kind = _object_type(obj)
            except Exception:  # noqa: BLE001
                kind = "unreadable"
            if kind == "stream /XRef":
                continue  # the revision's own cross-reference stream
            try:
                action = "added" if xrefs.get_introducing_revision(ref) == rev else "updated"
            except Exception:  # noqa: BLE001
                action = "updated"
            changes.append(Change(rev, f"{ref.idnum} {ref.generation}", kind, action))
        for ref in freed:
            changes.append(Change(rev, f"{ref.idnum} {ref.generation}", "-", "freed"))
        if len(changes) >= _MAX_CHANGES:
            break
    return changes[:_MAX_CHANGES]


def _describe_changes(changes: Sequence[Change], limit: int = 6) -> str:
    """A short human summary of what later revisions did."""
    parts = [f"{c.action} {c.type} {c.object} (revision {c.revision})" for c in changes]
    text = "; ".join(parts[:limit])
    if len(parts) > limit:
        text += f"; and {len(parts) - limit} more"
    return text


def _covered_revision(emb: EmbeddedPdfSignature) -> int | None:
    """The last revision whose bytes lie entirely inside the signed ranges, if any."""
    try:
        end = int(emb.byte_range[2]) + int(emb.byte_range[3])
        xrefs = emb.reader.xrefs
        inside = [
            rev
            for rev in range(xrefs.total_revisions)
            if xrefs.get_xref_container_info(rev).end_location <= end
        ]
    except Exception:  # noqa: BLE001
        return None
    return max(inside) if inside else None


def _modification_info(
    emb: EmbeddedPdfSignature,
    signature_fields: set[str],
    docmdp: int | None,
) -> tuple[ModificationInfo, str | None, str | None]:
    """Modification analysis; returns (info, failure message, hub-policy message)."""
    coverage = emb.coverage
    diff = emb.diff_result
    findings: list[str] = []
    changed: list[str] = []
    level: ModificationLevel | None = None
    permitted: bool | None = None
    failure = policy = None
    base_revision: int | None = emb.signed_revision
    if coverage is not None and coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        base_revision = _covered_revision(emb)
        permitted = False
        failure = (
            f"the signature does not cover its revision (coverage {coverage.name}): "
            "signed bytes were moved or the signature dictionary was redefined later"
        )
        if base_revision is not None and base_revision != emb.signed_revision:
            failure += (
                f"; the signed bytes end with revision {base_revision}, the signature "
                f"object belongs to revision {emb.signed_revision}"
            )
        findings.append(failure)
    try:
        if coverage == SignatureCoverageLevel.ENTIRE_FILE:
            changes = []
        else:
            start = emb.signed_revision if base_revision is None else base_revision
            changes = _changes_after(emb.reader, start)
    except Exception:  # noqa: BLE001
        changes = []
    if isinstance(diff, SuspiciousModification):
        level = ModificationLevel.OTHER
        permitted = False
        if failure is None:
            detail = _describe_changes(changes)
            failure = (
                "the document was changed after signing in a way the signature does not permit"
            )
            failure += f": {detail}" if detail else ""
            findings.append(failure)
            findings.append(f"difference analysis (pyHanko): {_short(diff, 600)}")
    elif isinstance(diff, DiffResult):
        level = diff.modification_level
        changed = sorted(diff.changed_form_fields)
        if permitted is None:
            permitted = not (
                level == ModificationLevel.OTHER or (docmdp is not None and level.value > docmdp)
            )
        if level == ModificationLevel.OTHER or (docmdp is not None and level.value > docmdp):
            msg = f"changes after signing exceed what the signature permits ({level.name})"
            findings.append(msg)
            failure = failure or msg
        others = [f for f in changed if f not in signature_fields]
        if others and failure is None:
            policy = (
                "form field(s) filled after signing: "
                + ", ".join(others)
                + " (allowed by the PDF rules, not by the lienthong policy)"
            )
            findings.append(policy)
        elif level > ModificationLevel.NONE and failure is None:
            findings.append(
                f"later revisions only add signatures, timestamps or validation data ({level.name})"
            )
    info = ModificationInfo(
        level=level.name if level is not None else None,
        permitted=permitted,
        docmdp=docmdp,
        changed_form_fields=changed,
        findings=findings,
        changes=changes,
    )
    return info, failure, policy


# ----- per-signature work --------------------------------------------------------------------


@dataclass
class _Facts:
    """What one signature needs while the document is being worked through."""

    emb: EmbeddedPdfSignature | None
    field: str
    index: int
    is_timestamp: bool
    byte_range: list[int]
    format_error: str | None = None
    status: PdfSignatureStatus | DocumentTimestampStatus | None = None
    error_subindic: str | None = None
    error_message: str | None = None
    report: SignatureReport | None = None
    proven_time: dt.datetime | None = None  # for document timestamps: genTime once trusted


def _embedded_revinfo(
    reader: PdfFileReader, sigs: Sequence[EmbeddedPdfSignature]
) -> tuple[list[asn1_x509.Certificate], list[crl.CertificateList], list[ocsp.OCSPResponse]]:
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


async def _past_validate(
    trust: TrustSettings,
    cert: asn1_x509.Certificate,
    others: Sequence[asn1_x509.Certificate],
    moment: dt.datetime,
    vc_now: ValidationContext,
    key_usage: set[str],
    extd_key_usage: set[str] | None = None,
) -> tuple[ValidationPath | None, AdESSubIndic | None, Any, ValidationContext]:
    """Validate ``cert`` as of ``moment`` (past signature validation, EN 319 102-1 5.6.2.4)."""
    vc = trust.validation_context(
        moment=moment,
        other_certs=[*others, *vc_now.certificate_registry],
        crls=vc_now.crls,
        ocsps=vc_now.ocsps,
        retroactive_revinfo=True,
    )
    try:
        validator = CertificateValidator(cert, intermediate_certs=others, validation_context=vc)
        result = await handle_certvalidator_errors(
            cert,
            validator.async_validate_usage(
                key_usage=key_usage, extended_key_usage=extd_key_usage, extended_optional=True
            ),
        )
    finally:
        await vc.aclose()
    if result.success_result is not None:
        return result.success_result, None, None, vc
    return result.error_path, result.error_subindic, result.revo_details, vc


async def _diagnose(
    cert: asn1_x509.Certificate,
    others: Sequence[asn1_x509.Certificate],
    vc: ValidationContext,
    key_usage: set[str],
    extd_key_usage: set[str] | None,
) -> tuple[AdESSubIndic | None, str | None]:
    """Re-run a failed chain check to learn why (pyHanko's status keeps only a category).

    Missing or stale revocation data becomes ``TRY_LATER`` (EN 319 102-1), which pyHanko
    files under the generic chain failure.
    """
    from pyhanko_certvalidator import errors as cv_errors

    try:
        validator = CertificateValidator(cert, intermediate_certs=others, validation_context=vc)
        await validator.async_validate_usage(
            key_usage=key_usage, extended_key_usage=extd_key_usage, extended_optional=True
        )
    except (cv_errors.InsufficientRevinfoError, cv_errors.StaleRevinfoError) as exc:
        silent = silent_certificates(exc)
        if silent and not isinstance(exc, cv_errors.StaleRevinfoError):
            return AdESIndeterminate.TRY_LATER, (
                f"the certificate of {', '.join(silent)} names no OCSP responder and no CRL "
                "distribution point, and the document embeds no revocation data for it"
            )
        return AdESIndeterminate.TRY_LATER, _short(exc)
    except Exception as exc:  # noqa: BLE001 - any certvalidator failure: keep its words
        return None, _short(exc)
    return None, None


_TIME_RESOLVABLE = {
    AdESIndeterminate.OUT_OF_BOUNDS_NO_POE,
    AdESIndeterminate.OUT_OF_BOUNDS_NOT_REVOKED,
    AdESIndeterminate.REVOKED_NO_POE,
    AdESIndeterminate.REVOKED_CA_NO_POE,
    AdESIndeterminate.TRY_LATER,
    AdESIndeterminate.REVOCATION_OUT_OF_BOUNDS_NO_POE,
    AdESIndeterminate.NO_POE,
}


@dataclass
class _TrustOutcome:
    indication: str
    sub_indication: str | None
    message: str | None
    path: ValidationPath | None
    vc: ValidationContext | None
    moment: dt.datetime | None
    revocation_details: Any = None


async def _resolve_trust(
    trust: TrustSettings,
    status: Any,
    cert: asn1_x509.Certificate,
    others: Sequence[asn1_x509.Certificate],
    vc: ValidationContext,
    moment: dt.datetime,
    proven: dt.datetime | None,
    key_usage: set[str],
    extd_key_usage: set[str] | None = None,
) -> _TrustOutcome:
    """Turn the current-time chain result into an indication, using a proven time if needed."""
    indic = status.trust_problem_indic
    path = status.validation_path
    rev = status.revocation_details
    if indic is None and path is not None:
        return _TrustOutcome(TOTAL_PASSED, None, None, path, vc, moment, rev)
    if indic is None:
        indic = AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND
    if indic == AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE or path is None:
        refined, detail = await _diagnose(cert, others, vc, key_usage, extd_key_usage)
        indic = refined or indic
    else:
        detail = None
    name = _subindic_name(indic)
    if indic not in _TIME_RESOLVABLE or proven is None:
        msg = {
            "NO_CERTIFICATE_CHAIN_FOUND": "no chain from the signer to a configured trust anchor",
            "REVOKED_NO_POE": "the certificate is revoked and no timestamp proves the signature "
            "was made before",
            "OUT_OF_BOUNDS_NO_POE": "the certificate is outside its validity period at the "
            "validation time and no timestamp proves when the signature was made",
            "TRY_LATER": "revocation status could not be established",
        }.get(name or "", f"certificate validation: {name}")
        if detail:
            msg = f"{msg} ({detail})"
        return _TrustOutcome(INDETERMINATE, name, msg, path, vc, moment, rev)
    # A timestamp proves the signature existed at `proven`.
    revoked = (AdESIndeterminate.REVOKED_NO_POE, AdESIndeterminate.REVOKED_CA_NO_POE)
    if indic in revoked and rev is not None and proven >= rev.revocation_date:
        return _TrustOutcome(
            TOTAL_FAILED,
            "REVOKED",
            f"the certificate was revoked at {_iso(rev.revocation_date)}, before the "
            f"proven signing time {_iso(proven)}",
            path,
            vc,
            moment,
            rev,
        )
    if indic in (
        AdESIndeterminate.OUT_OF_BOUNDS_NO_POE,
        AdESIndeterminate.OUT_OF_BOUNDS_NOT_REVOKED,
    ):
        if proven > cert.not_valid_after:
            return _TrustOutcome(
                INDETERMINATE,
                "EXPIRED",
                f"the certificate expired at {_iso(cert.not_valid_after)}, before the proven "
                f"signing time {_iso(proven)}",
                path,
                vc,
                moment,
            )
        if proven < cert.not_valid_before:
            return _TrustOutcome(
                TOTAL_FAILED,
                "NOT_YET_VALID",
                f"the signature was made at {_iso(proven)}, before the certificate was issued",
                path,
                vc,
                moment,
            )
    past_path, past_indic, past_rev, past_vc = await _past_validate(
        trust, cert, others, proven, vc, key_usage, extd_key_usage
    )
    if past_indic is None and past_path is not None:
        return _TrustOutcome(TOTAL_PASSED, None, None, past_path, past_vc, proven)
    past_detail = None
    if past_indic == AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE:
        # as at the current time: learn whether it is missing revocation data (TRY_LATER)
        again = trust.validation_context(
            moment=proven,
            other_certs=[*others, *vc.certificate_registry],
            crls=vc.crls,
            ocsps=vc.ocsps,
            retroactive_revinfo=True,
        )
        try:
            refined, past_detail = await _diagnose(cert, others, again, key_usage, extd_key_usage)
        finally:
            await again.aclose()
        past_indic = refined or past_indic
    past_name = _subindic_name(past_indic) or name
    if past_indic in (AdESIndeterminate.REVOKED_NO_POE, AdESIndeterminate.REVOKED_CA_NO_POE):
        return _TrustOutcome(
            TOTAL_FAILED,
            "REVOKED",
            f"the certificate was already revoked at the proven signing time {_iso(proven)}",
            past_path,
            past_vc,
            proven,
            past_rev,
        )
    past_message = f"certificate validation at the proven signing time {_iso(proven)} failed"
    if past_indic == AdESIndeterminate.TRY_LATER:
        past_message = (
            f"revocation status could not be established at the proven signing time {_iso(proven)}"
        )
    else:
        past_message += f": {past_name}"
    return _TrustOutcome(
        INDETERMINATE,
        past_name,
        past_message + (f" ({past_detail})" if past_detail else ""),
        past_path or path,
        past_vc,
        proven,
        rev,
    )


async def _timestamp_info(
    trust: TrustSettings,
    kind: str,
    ts: TimestampSignatureStatus | None,
    vc: ValidationContext,
    later_proof: dt.datetime | None,
) -> tuple[TimestampInfo | None, dt.datetime | None]:
    """Report a signature/content timestamp; returns (info, proven time when trusted)."""
    if ts is None:
        return None, None
    tsa = ts.signing_cert
    trusted = bool(ts.trusted)
    proven_by = "current-time" if trusted else None
    problem = _subindic_name(ts.trust_problem_indic) if not trusted else None
    if (
        not trusted
        and ts.intact
        and ts.valid
        and later_proof is not None
        and ts.trust_problem_indic in _TIME_RESOLVABLE
    ):
        path, indic, _rev, _vc = await _past_validate(
            trust, tsa, [], later_proof, vc, set(), {"time_stamping"}
        )
        if indic is None and path is not None:
            trusted, proven_by, problem = True, "past-validation", None
    if not trusted and problem is None:
        problem = "NO_CERTIFICATE_CHAIN_FOUND" if ts.validation_path is None else "GENERIC"
    info = TimestampInfo(
        kind=kind,
        time=_iso(ts.timestamp),
        tsa=_cert_info(tsa),
        intact=bool(ts.intact),
        valid=bool(ts.valid),
        trusted=trusted,
        problem=problem if not trusted else None,
        proven_by=proven_by,
    )
    return info, (ts.timestamp if trusted and ts.intact and ts.valid else None)


def _digest(algorithm: str, data: bytes) -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


def _identity_digests(
    emb: EmbeddedPdfSignature,
) -> tuple[str | None, Digest | None, Digest | None, Digest | None]:
    import base64

    try:
        value = emb.signer_info["signature"].native
    except (ValueError, KeyError):
        return None, None, None, None
    md = emb.md_algorithm or "sha256"
    try:
        dtbsr = _digest(md, emb.signer_info["signed_attrs"].untag().dump())
    except Exception:  # noqa: BLE001
        dtbsr = None
    try:
        doc = Digest(emb.external_md_algorithm, emb.compute_digest().hex())
    except Exception:  # noqa: BLE001
        doc = None
    return (
        base64.b64encode(value).decode("ascii"),
        Digest("sha256", hashlib.sha256(value).hexdigest()),
        dtbsr,
        doc,
    )


def _pdf_attrs(sig_object: generic.DictionaryObject) -> PdfAttributes:
    def get(key: str) -> str | None:
        try:
            value = sig_object.get(key)
        except Exception:  # noqa: BLE001
            return None
        if value is None:
            return None
        return str(value)[1:] if isinstance(value, generic.NameObject) else str(value)

    return PdfAttributes(
        get("/Filter"),
        get("/SubFilter"),
        get("/Reason"),
        get("/Location"),
        get("/Name"),
        get("/ContactInfo"),
    )


def _empty_modifications() -> ModificationInfo:
    return ModificationInfo(None, None, None, [], [], [])


def _format_failure_report(facts: _Facts, total_revisions: int, message: str) -> SignatureReport:
    emb = facts.emb
    signer = None
    algs = AlgorithmInfo(None, None, None, None)
    claimed = None
    value = vdig = dtbsr = None
    pdf = None
    if emb is not None:
        try:
            signer = _cert_info(emb.signer_cert)
            algs = _algorithms(emb.signer_info, emb.signer_cert)
            claimed = _iso(emb.self_reported_timestamp)
            value, vdig, dtbsr, _ = _identity_digests(emb)
        except Exception:  # noqa: BLE001
            pass
        pdf = _pdf_attrs(emb.sig_object)
    return SignatureReport(
        id=f"sig-{facts.index}",
        field=facts.field,
        kind="document-timestamp" if facts.is_timestamp else "signature",
        indication=TOTAL_FAILED,
        sub_indication="FORMAT_FAILURE",
        messages=[message],
        signer=signer,
        signing_time=SigningTime(None, "none", claimed, False),
        timestamps=[],
        chain=ChainInfo(False, None, None, [signer] if signer else []),
        revocation=RevocationInfo(False, "none", None, "unknown"),
        coverage=CoverageInfo(None, facts.byte_range, None, total_revisions),
        modifications=_empty_modifications(),
        algorithms=algs,
        policy=None,
        intact=None,
        valid=None,
        signature_value=value,
        signature_value_digest=vdig,
        dtbsr_digest=dtbsr,
        document_digest=None,
        pdf=pdf,
    )


def _docmdp_for(
    emb: EmbeddedPdfSignature, certification: EmbeddedPdfSignature | None
) -> int | None:
    level = emb.docmdp_level
    if (
        level is None
        and certification is not None
        and certification is not emb
        and certification.signed_revision <= emb.signed_revision
    ):
        level = certification.docmdp_level
    return int(level.value) if level is not None else None


# ----- the document --------------------------------------------------------------------------


async def validate_pdf(data: bytes, trust: TrustSettings) -> DocumentReport:
    """Validate every signature and document timestamp in ``data``.

    A pure function of the bytes and the settings (network access only for revocation data,
    as the settings allow). It never raises for a bad document: parse errors become a
    ``TOTAL-FAILED/FORMAT_FAILURE`` report. It raises :class:`signing.trust.TrustError` when
    the trust configuration itself is unusable.

    The network waits are awaited, but hashing, signature checks and the difference analysis
    run on the calling event loop (tens of milliseconds per signature); a server should use
    :func:`validate_pdf_in_pool` to spread documents over a process pool.
    """
    with fastpaths.fast_pdf_reading():
        return await _validate_pdf(data, trust)


async def _validate_pdf(data: bytes, trust: TrustSettings) -> DocumentReport:
    validated_at = dt.datetime.now(dt.UTC)
    moment = trust.at or validated_at
    loaded = trust.load()
    anchors = [_cert_info(c) for c in loaded.anchors]
    doc_hash = hashlib.sha256(data).hexdigest()

    def document(summary: Summary, sigs: list[SignatureReport], revisions: int, errors: list[str]):
        return DocumentReport(
            schema=SCHEMA,
            validated_at=_iso(validated_at) or "",
            validation_time=_iso(moment) or "",
            point_in_time=trust.at is not None,
            revocation_mode=trust.revocation,
            document_sha256=doc_hash,
            document_size=len(data),
            revisions=revisions,
            anchors=anchors,
            summary=summary,
            signatures=sigs,
            errors=errors,
        )

    try:
        reader = open_pdf(data)
        if reader.encrypted:
            raise ValueError("encrypted PDF documents are not supported")
        total_revisions = reader.xrefs.total_revisions
        fields = list(enumerate_sig_fields(reader, filled_status=True))
        all_sig_fields = {name for name, _, _ in enumerate_sig_fields(reader)}
    except Exception as exc:  # noqa: BLE001 - hostile input: report, never raise
        message = f"the file cannot be read as a PDF: {_short(exc)}"
        summary = Summary(TOTAL_FAILED, "FORMAT_FAILURE", 0, 0, message)
        return document(summary, [], 0, [message])

    facts_list: list[_Facts] = []
    for index, (name, _sig_ref, sig_field) in enumerate(fields, start=1):
        emb: EmbeddedPdfSignature | None = None
        br: list[int] = []
        error = None
        is_ts = False
        try:
            emb = EmbeddedPdfSignature(reader, sig_field, name)
            is_ts = emb.sig_object_type == "/DocTimeStamp"
            br, error = _byte_range_problem(data, emb.sig_object, emb.pkcs7_content)
        except Exception as exc:  # noqa: BLE001
            try:
                sig_obj = sig_field.get_object()["/V"].get_object()
                is_ts = sig_obj.get("/Type") == "/DocTimeStamp"
                br = [int(x) for x in sig_obj.get("/ByteRange", [])]
            except Exception:  # noqa: BLE001
                pass
            error = f"the signature cannot be read: {_short(exc)}"
        facts_list.append(_Facts(emb, name, index, is_ts, br, error))

    readable = [f.emb for f in facts_list if f.emb is not None and f.format_error is None]
    extra_certs, crls, ocsps = _embedded_revinfo(reader, readable)
    embedded = {hashlib.sha256(x.dump()).digest() for x in [*crls, *ocsps]}
    try:
        certification = next(
            (e for e in readable if e.sig_object_type == "/Sig" and _is_certification(reader, e)),
            None,
        )
    except Exception:  # noqa: BLE001
        certification = None

    vc = trust.validation_context(other_certs=extra_certs, crls=crls, ocsps=ocsps)
    algorithm_policy = CMSAlgorithmUsagePolicy.lift_policy(lenient_algorithm_policy())
    try:
        # 1. Cryptographic and current-time checks for everything readable.
        for facts in facts_list:
            if facts.emb is None or facts.format_error is not None:
                continue
            try:
                if facts.is_timestamp:
                    facts.status = await async_validate_pdf_timestamp(
                        facts.emb, validation_context=vc, diff_policy=DEFAULT_DIFF_POLICY
                    )
                else:
                    facts.status = await async_validate_pdf_signature(
                        facts.emb,
                        signer_validation_context=vc,
                        ts_validation_context=vc,
                        diff_policy=DEFAULT_DIFF_POLICY,
                        algorithm_policy=algorithm_policy,
                    )
            except SignatureValidationError as exc:
                indic = getattr(exc, "ades_subindication", None)
                facts.error_subindic = _subindic_name(indic) or "FORMAT_FAILURE"
                facts.error_message = _short(getattr(exc, "failure_message", None) or exc)
            except Exception as exc:  # noqa: BLE001
                facts.error_subindic = "FORMAT_FAILURE"
                facts.error_message = f"the signature cannot be processed: {_short(exc)}"

        # 2. Document timestamps, newest first: each proves the time of what it covers and
        #    can vouch for an older timestamp whose TSA certificate has since expired.
        ts_facts = sorted(
            (f for f in facts_list if f.is_timestamp and f.status is not None),
            key=lambda f: f.emb.signed_revision,  # type: ignore[union-attr]
            reverse=True,
        )
        proof_after: dt.datetime | None = None
        for facts in ts_facts:
            try:
                facts.report = await _report_timestamp(
                    trust,
                    facts,
                    vc,
                    moment,
                    total_revisions,
                    all_sig_fields,
                    certification,
                    embedded,
                    proof_after,
                )
            except Exception as exc:  # noqa: BLE001
                facts.report = _format_failure_report(
                    facts, total_revisions, f"the timestamp cannot be processed: {_short(exc)}"
                )
            if facts.report.indication == TOTAL_PASSED and facts.proven_time is not None:
                proof_after = facts.proven_time

        def doc_ts_proof(emb: EmbeddedPdfSignature) -> dt.datetime | None:
            covering = [
                f.proven_time
                for f in ts_facts
                if f.proven_time is not None
                and f.report is not None
                and f.report.indication == TOTAL_PASSED
                and f.emb is not None
                and f.emb.signed_revision > emb.signed_revision
            ]
            return min(covering) if covering else None

        # 3. Signatures.
        for facts in facts_list:
            if facts.report is not None:
                continue
            if facts.emb is None or facts.format_error is not None:
                facts.report = _format_failure_report(
                    facts, total_revisions, facts.format_error or "unreadable signature"
                )
                continue
            if facts.status is None:
                facts.report = _error_report(facts, total_revisions)
                continue
            try:
                facts.report = await _report_signature(
                    trust,
                    facts,
                    vc,
                    moment,
                    total_revisions,
                    all_sig_fields,
                    certification,
                    embedded,
                    doc_ts_proof(facts.emb),
                )
            except Exception as exc:  # noqa: BLE001 - hostile input must not crash the hub
                facts.report = _format_failure_report(
                    facts, total_revisions, f"the signature cannot be processed: {_short(exc)}"
                )
    finally:
        await vc.aclose()

    reports = [f.report for f in facts_list if f.report is not None]
    return document(_summarise(reports, trust.revocation), reports, total_revisions, [])


def _is_certification(reader: PdfFileReader, emb: EmbeddedPdfSignature) -> bool:
    try:
        perms = reader.root["/Perms"]
        ref = perms.raw_get("/DocMDP")
        target = emb.sig_field.raw_get("/V")
        return (
            isinstance(ref, generic.IndirectObject)
            and isinstance(target, generic.IndirectObject)
            and ref.reference == target.reference
        )
    except (KeyError, AttributeError, TypeError):
        return emb.docmdp_level is not None and "/Reference" in emb.sig_object


def _error_report(facts: _Facts, total_revisions: int) -> SignatureReport:
    base = _format_failure_report(
        facts, total_revisions, facts.error_message or "the signature cannot be processed"
    )
    sub = facts.error_subindic or "FORMAT_FAILURE"
    indication = TOTAL_FAILED if sub in _TOTAL_FAILED_SUBS else INDETERMINATE
    return _replace(base, indication=indication, sub_indication=sub)


_TOTAL_FAILED_SUBS = {
    "FORMAT_FAILURE",
    "HASH_FAILURE",
    "SIG_CRYPTO_FAILURE",
    "REVOKED",
    "NOT_YET_VALID",
}


def _replace(report: SignatureReport, **changes: Any) -> SignatureReport:
    import dataclasses

    return dataclasses.replace(report, **changes)


async def _report_signature(
    trust: TrustSettings,
    facts: _Facts,
    vc: ValidationContext,
    moment: dt.datetime,
    total_revisions: int,
    all_sig_fields: set[str],
    certification: EmbeddedPdfSignature | None,
    embedded: set[bytes],
    doc_ts_time: dt.datetime | None,
) -> SignatureReport:
    emb = facts.emb
    status = facts.status
    assert emb is not None and isinstance(status, PdfSignatureStatus)
    cert = status.signing_cert
    others = list(emb.other_embedded_certs)
    messages: list[str] = []
    indication, sub = TOTAL_PASSED, None

    def fail(ind: str, s: str, msg: str) -> None:
        nonlocal indication, sub
        if _RANK[ind] > _RANK[indication]:
            indication, sub = ind, s
            messages.insert(0, msg)  # the reason for the verdict comes first
        else:
            messages.append(msg)

    # timestamps
    timestamps: list[TimestampInfo] = []
    sig_ts, sig_ts_time = await _timestamp_info(
        trust, "signature-timestamp", status.timestamp_validity, vc, doc_ts_time
    )
    content_ts, _ = await _timestamp_info(
        trust, "content-timestamp", status.content_timestamp_validity, vc, doc_ts_time
    )
    for ts in (sig_ts, content_ts):
        if ts is not None:
            timestamps.append(ts)
            caveat = timestamp_warning(ts.kind, ts.intact, ts.valid, ts.trusted, ts.problem)
            if caveat:
                messages.append(caveat)
    claimed = emb.self_reported_timestamp
    if sig_ts_time is not None:
        best, source, proven = sig_ts_time, "signature-timestamp", True
    elif doc_ts_time is not None:
        best, source, proven = doc_ts_time, "document-timestamp", True
    elif claimed is not None:
        best, source, proven = claimed, "signing-time-claimed", False
    else:
        best, source, proven = moment, "validation-time", False

    if trust.at is not None and best > moment + dt.timedelta(minutes=5):
        if proven:
            fail(
                INDETERMINATE,
                "NO_POE",
                f"the signature was made at {_iso(best)}, after the validation time {_iso(moment)}",
            )
        else:
            messages.append(f"the claimed signing time {_iso(best)} is after the validation time")

    # 1-3: crypto, coverage, modifications
    if not status.intact:
        fail(TOTAL_FAILED, "HASH_FAILURE", "the signed bytes were altered (digest mismatch)")
    elif not status.valid:
        fail(TOTAL_FAILED, "SIG_CRYPTO_FAILURE", "the signature value does not verify")
    docmdp = _docmdp_for(emb, certification)
    mods, mod_failure, mod_policy = _modification_info(emb, all_sig_fields, docmdp)
    if mod_failure:
        fail(TOTAL_FAILED, "FORMAT_FAILURE", mod_failure)
    elif mod_policy:
        fail(INDETERMINATE, "SIG_CONSTRAINTS_FAILURE", mod_policy)

    # 4: chain, with a proven time when needed
    outcome = await _resolve_trust(
        trust,
        status,
        cert,
        others,
        vc,
        moment,
        best if proven else None,
        {"non_repudiation"},  # as pyHanko asks of PDF signers
        None,
    )
    if outcome.indication != TOTAL_PASSED:
        fail(outcome.indication, outcome.sub_indication or "GENERIC", outcome.message or "")
    elif outcome.moment is not None and outcome.moment != moment:
        messages.append(f"certificate chain validated at the proven signing time {_iso(best)}")

    # 5: algorithm policy
    algs = _algorithms(emb.signer_info, cert)
    policy, policy_sub = evaluate_policy(algs, _signature_hash(emb.signer_info), best, proven)
    if policy_sub:
        fail(INDETERMINATE, policy_sub, "; ".join(policy.notes))
    elif policy.level == "warning":
        messages.append(policy_warning(policy.notes))

    trusted = outcome.indication == TOTAL_PASSED
    chain = _chain_info(outcome.path, cert, others, trusted, outcome.moment)
    revocation = _revocation_info(outcome.vc, cert, embedded, outcome, trusted, outcome.path)
    if trusted and revocation.status == "unknown" and trust.revocation == "soft-fail":
        messages.append(_soft_failed(cert))
    if trusted and revocation.status == "revoked":
        messages.append(revoked_after_proof(revocation.revoked_at, _iso(best)))
    value, vdig, dtbsr, docdig = _identity_digests(emb)
    kind = "certification" if certification is emb else "signature"
    if indication == TOTAL_PASSED and not messages:
        messages.append("the signature is valid")
    return SignatureReport(
        id=f"sig-{facts.index}",
        field=facts.field,
        kind=kind,
        indication=indication,
        sub_indication=sub,
        messages=messages,
        signer=_cert_info(cert),
        signing_time=SigningTime(_iso(best), source, _iso(claimed), proven),
        timestamps=timestamps,
        chain=chain,
        revocation=revocation,
        coverage=_coverage(emb, facts, total_revisions),
        modifications=mods,
        algorithms=algs,
        policy=policy,
        intact=bool(status.intact),
        valid=bool(status.valid),
        signature_value=value,
        signature_value_digest=vdig,
        dtbsr_digest=dtbsr,
        document_digest=docdig,
        pdf=_pdf_attrs(emb.sig_object),
    )


async def _report_timestamp(
    trust: TrustSettings,
    facts: _Facts,
    vc: ValidationContext,
    moment: dt.datetime,
    total_revisions: int,
    all_sig_fields: set[str],
    certification: EmbeddedPdfSignature | None,
    embedded: set[bytes],
    proof_after: dt.datetime | None,
) -> SignatureReport:
    emb = facts.emb
    status = facts.status
    assert emb is not None and isinstance(status, DocumentTimestampStatus)
    tsa = status.signing_cert
    messages: list[str] = []
    indication, sub = TOTAL_PASSED, None

    def fail(ind: str, s: str, msg: str) -> None:
        nonlocal indication, sub
        if _RANK[ind] > _RANK[indication]:
            indication, sub = ind, s
            messages.insert(0, msg)  # the reason for the verdict comes first
        else:
            messages.append(msg)

    if not status.intact:
        fail(TOTAL_FAILED, "HASH_FAILURE", "the timestamped bytes were altered (digest mismatch)")
    elif not status.valid:
        fail(TOTAL_FAILED, "SIG_CRYPTO_FAILURE", "the timestamp signature does not verify")
    docmdp = _docmdp_for(emb, certification)
    mods, mod_failure, mod_policy = _modification_info(emb, all_sig_fields, docmdp)
    if mod_failure:
        fail(TOTAL_FAILED, "FORMAT_FAILURE", mod_failure)
    elif mod_policy:
        fail(INDETERMINATE, "SIG_CONSTRAINTS_FAILURE", mod_policy)
    outcome = await _resolve_trust(
        trust,
        status,
        tsa,
        list(emb.other_embedded_certs),
        vc,
        moment,
        proof_after,
        set(),
        {"time_stamping"},
    )
    if outcome.indication != TOTAL_PASSED:
        fail(outcome.indication, outcome.sub_indication or "GENERIC", outcome.message or "")
    algs = _algorithms(emb.signer_info, tsa)
    gen_time = status.timestamp
    policy, policy_sub = evaluate_policy(algs, _signature_hash(emb.signer_info), gen_time, True)
    if policy_sub:
        fail(INDETERMINATE, policy_sub, "; ".join(policy.notes))
    elif policy.level == "warning":
        messages.append(policy_warning(policy.notes))
    trusted = outcome.indication == TOTAL_PASSED
    revocation = _revocation_info(outcome.vc, tsa, embedded, outcome, trusted, outcome.path)
    if trusted and revocation.status == "unknown" and trust.revocation == "soft-fail":
        messages.append(_soft_failed(tsa))
    if indication == TOTAL_PASSED:
        facts.proven_time = gen_time
        if not messages:
            messages.append("the document timestamp is valid")
    value, vdig, dtbsr, docdig = _identity_digests(emb)
    return SignatureReport(
        id=f"sig-{facts.index}",
        field=facts.field,
        kind="document-timestamp",
        indication=indication,
        sub_indication=sub,
        messages=messages,
        signer=_cert_info(tsa),
        signing_time=SigningTime(_iso(gen_time), "document-timestamp", None, True),
        timestamps=[],
        chain=_chain_info(
            outcome.path, tsa, list(emb.other_embedded_certs), trusted, outcome.moment
        ),
        revocation=revocation,
        coverage=_coverage(emb, facts, total_revisions),
        modifications=mods,
        algorithms=algs,
        policy=policy,
        intact=bool(status.intact),
        valid=bool(status.valid),
        signature_value=value,
        signature_value_digest=vdig,
        dtbsr_digest=dtbsr,
        document_digest=docdig,
        pdf=_pdf_attrs(emb.sig_object),
    )


def _soft_failed(cert: asn1_x509.Certificate | None) -> str:
    """The soft-fail caveat, with the reason when the certificate gives no way to check it."""
    if cert is not None and names_no_revocation_source(cert):
        return (
            f"{REVOCATION_SOFT_FAILED}: the certificate names no OCSP responder and no CRL "
            "distribution point"
        )
    return REVOCATION_SOFT_FAILED


def _coverage(emb: EmbeddedPdfSignature, facts: _Facts, total_revisions: int) -> CoverageInfo:
    return CoverageInfo(
        emb.coverage.name if emb.coverage is not None else None,
        facts.byte_range,
        emb.signed_revision,
        total_revisions,
    )


def _summarise(reports: list[SignatureReport], revocation_mode: str) -> Summary:
    n_ts = sum(1 for r in reports if r.kind == "document-timestamp")
    n_sig = len(reports) - n_ts
    if not reports:
        return Summary(INDETERMINATE, None, 0, 0, "the document carries no signature")
    worst = worst_indication(r.indication for r in reports) or INDETERMINATE
    first = next(r for r in reports if r.indication == worst)
    warnings = [w for r in reports for w in signature_warnings(r, revocation_mode)]
    if worst == TOTAL_PASSED and warnings:
        message = with_warnings(f"{len(reports)} signature(s) and timestamp(s) valid", warnings)
    elif worst == TOTAL_PASSED:
        message = f"all {len(reports)} signature(s) and timestamp(s) are valid"
    else:
        label = first.field or first.id
        message = f"{label}: {first.messages[0] if first.messages else worst}"
    return Summary(worst, first.sub_indication, n_sig, n_ts, message)


# ----- sync and pool wrappers ----------------------------------------------------------------


def validate_pdf_sync(data: bytes, trust: TrustSettings) -> DocumentReport:
    """:func:`validate_pdf` for callers without an event loop (CLI, process-pool workers)."""
    return asyncio.run(validate_pdf(data, trust))


async def validate_pdf_in_pool(
    executor: Executor, data: bytes, trust: TrustSettings
) -> DocumentReport:
    """Run :func:`validate_pdf_sync` in ``executor`` (a ``ProcessPoolExecutor`` across cores).

    The validation is CPU-bound (hashing, RSA/EC, difference analysis); a process pool keeps
    the hub's event loop free. Arguments and result pickle.
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, validate_pdf_sync, data, trust)
