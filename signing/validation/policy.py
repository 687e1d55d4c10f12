"""The algorithm policy in force when a signature was made.

* Circular 15/2025/TT-BKHCN, for signatures made from :data:`CIRCULAR_15_EFFECTIVE` (Vietnam
  time): RSA of 2048 bits or more with RSASSA-PSS, or ECDSA of 256 bits or more, with SHA-2 or
  SHA-3. PKCS#1 v1.5 is accepted with a warning (the crypto is sound and the decree allows
  verifying older algorithms); SHA-1, RSA < 2048 or EC < 256 is
  ``INDETERMINATE/CRYPTO_CONSTRAINTS_FAILURE``.
* The rules before it (PKCS#1 v1.5 and SHA-1 accepted) for older signatures, reported as such.
  An old algorithm justified only by a *claimed* (not timestamped) signing time is
  ``INDETERMINATE/CRYPTO_CONSTRAINTS_FAILURE_NO_POE``.
"""

from __future__ import annotations

import datetime as dt

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509

from signing.validation.report import AlgorithmInfo, PolicyResult

__all__ = ["CIRCULAR_15_EFFECTIVE", "algorithms_of", "evaluate_policy", "signature_hash"]

# Circular 15/2025/TT-BKHCN applies to signatures made from this moment (Vietnam time).
CIRCULAR_15_EFFECTIVE = dt.datetime(2025, 7, 1, tzinfo=dt.timezone(dt.timedelta(hours=7)))


_STRONG_DIGESTS = frozenset({"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512"})
_HISTORICAL_DIGESTS = _STRONG_DIGESTS | {"sha1", "sha224", "sha512_224", "sha512_256"}


def algorithms_of(signer_info: cms.SignerInfo, cert: asn1_x509.Certificate | None) -> AlgorithmInfo:
    """The digest, signature mechanism and key of a signature, as far as they can be read."""
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


def signature_hash(signer_info: cms.SignerInfo) -> str | None:
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
