"""Trust configuration for signature validation: anchors, intermediates, revocation, time.

Nothing here is hard-coded: the anchors (VGCA roots, public CAs an agency uses) and any extra
intermediates are PEM or DER files named in the configuration. A :class:`TrustSettings` is a
plain, picklable value, so it can be handed to worker processes with the document bytes::

    trust = TrustSettings(anchors=[Path("vgca-root.pem")], revocation="soft-fail")
    vc = trust.validation_context()          # a pyhanko-certvalidator ValidationContext

Revocation modes:

``soft-fail``
    fetch OCSP/CRL online (and use what the document embeds); a responder that cannot be reached
    is not held against the signature.
``hard-fail``
    fetch online; every certificate of the chain below the anchor needs a revocation answer
    (OCSP or CRL, fetched or embedded). One whose responder or CRL cannot be reached, or that
    names neither and has nothing embedded for it, leaves the signature indeterminate
    (``TRY_LATER`` for a source that did not answer, ``CHAIN_CONSTRAINTS_FAILURE`` for a
    certificate naming none): hard-fail means "not without revocation data", so a certificate
    that gives no way to check it is not waved through (certvalidator's own ``hard-fail`` checks
    only what a certificate declares; we use its ``require`` policy).
``embedded-only``
    no network at all; only revocation data embedded in the document (DSS, signed attributes)
    counts, and it is required for every certificate, as in ``hard-fail``: the mode for
    auditors checking archived PAdES B-LT/B-LTA files offline.

One certificate loader and one context factory serve the whole package:

* :func:`load_certificates` / :func:`certificates` read every certificate the configuration,
  a signer's options or a caller names (PEM with one or many, DER, folders of them); the files
  are parsed once per version (the file: device, inode, size, modification time);
* :func:`make_validation_context` builds every pyhanko-certvalidator ``ValidationContext`` (PDF
  and package validation, detached CMS, the signer's own checks), its revocation fetches going
  through the process cache of :mod:`signing.fetchers` unless asked not to.

What does not depend on the document is built once: the parsed anchors and intermediates, and
certvalidator's trust manager for a set of anchors (an index of the roots by subject that
nothing changes after it is built). Validation contexts themselves are *not* shared between
documents: they accumulate state (the certificates a document brought along, the POE it
proved) that must not leak from one document into another.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from asn1crypto import crl, ocsp, pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.api import OwnedFetcherBackend
from pyhanko_certvalidator.policy_decl import AlgorithmUsagePolicy, DisallowWeakAlgorithmsPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager

from signing.errors import TrustError
from signing.fetchers import clear_revocation_cache, make_fetchers

__all__ = [
    "CertLike",
    "LoadedTrust",
    "RevocationMode",
    "TrustSettings",
    "certificates",
    "clear_caches",
    "lenient_algorithm_policy",
    "load_certificates",
    "make_validation_context",
]

RevocationMode = Literal["hard-fail", "soft-fail", "embedded-only"]
_MODES = ("hard-fail", "soft-fail", "embedded-only")
_CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der")
CertLike = Path | str | asn1_x509.Certificate | x509.Certificate
"""A certificate, or a PEM/DER file (or folder) holding some."""


def lenient_algorithm_policy() -> DisallowWeakAlgorithmsPolicy:
    """What the *cryptographic* checks refuse outright: MD2/MD5 and RSA below 1024 bits.

    Everything else (SHA-1, PKCS#1 v1.5, RSA-1024) verifies, because documents signed years ago
    under the historical rules must still be verifiable; the policy in force at signing time
    (Circular 15/2025 or the older rules) is judged separately and reported, see
    :func:`signing.validation.policy.evaluate_policy`.
    """
    return DisallowWeakAlgorithmsPolicy(
        weak_hash_algos=frozenset({"md2", "md5"}), rsa_key_size_threshold=1024
    )


# ----- certificate files ---------------------------------------------------------------------


def _parse_certificates(data: bytes, origin: str) -> list[asn1_x509.Certificate]:
    certs: list[asn1_x509.Certificate] = []
    try:
        if pem.detect(data):
            for kind, _headers, der in pem.unarmor(data, multiple=True):
                if kind in ("CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE"):
                    cert = asn1_x509.Certificate.load(der)
                    cert.native  # noqa: B018 - force a full parse now, not at validation time
                    certs.append(cert)
        else:
            cert = asn1_x509.Certificate.load(data)
            cert.native  # noqa: B018
            certs.append(cert)
    except (ValueError, TypeError) as exc:
        raise TrustError(f"{origin}: not a PEM or DER certificate ({exc})") from None
    if not certs:
        raise TrustError(f"{origin}: holds no certificate")
    return certs


def load_certificates(path: Path) -> list[asn1_x509.Certificate]:
    """Certificates from a PEM file (one or many), a DER file, or a folder of such files."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _CERT_SUFFIXES)
        if not files:
            raise TrustError(f"{path}: folder holds no .pem/.crt/.cer/.der file")
        return [c for f in files for c in load_certificates(f)]
    if not path.is_file():
        raise TrustError(f"{path}: no such certificate file")
    return _parse_certificates(path.read_bytes(), str(path))


_FILE_CACHE: dict[tuple[int, int, int, int], tuple[asn1_x509.Certificate, ...]] = {}
_FILE_CACHE_LOCK = threading.Lock()


def _cached_load(path: Path) -> tuple[asn1_x509.Certificate, ...]:
    path = Path(path)
    if path.is_dir():
        return tuple(load_certificates(path))
    try:
        st = path.stat()
    except OSError:
        raise TrustError(f"{path}: no such certificate file") from None
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)  # the file version, no realpath
    with _FILE_CACHE_LOCK:
        hit = _FILE_CACHE.get(key)
    if hit is None:
        hit = tuple(load_certificates(path))
        with _FILE_CACHE_LOCK:
            _FILE_CACHE[key] = hit
    return hit


_PARSED: dict[bytes, asn1_x509.Certificate] = {}
_PARSED_LOCK = threading.Lock()
_PARSED_MAX = 512


def _from_der(der: bytes) -> asn1_x509.Certificate:
    """asn1crypto's view of a certificate given as DER, shared per DER (parsed once)."""
    with _PARSED_LOCK:
        parsed = _PARSED.get(der)
    if parsed is None:
        parsed = asn1_x509.Certificate.load(der)
        with _PARSED_LOCK:
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[der] = parsed
    return parsed


def certificates(items: Iterable[CertLike]) -> list[asn1_x509.Certificate]:
    """The certificates ``items`` name, in order: certificate objects as they are (cryptography
    ones converted), files and folders read by :func:`load_certificates` (parsed once per file
    version). Raises :class:`TrustError` for a file that is missing or holds no certificate."""
    out: list[asn1_x509.Certificate] = []
    for item in items:
        if isinstance(item, asn1_x509.Certificate):
            out.append(item)
        elif isinstance(item, x509.Certificate):
            out.append(_from_der(item.public_bytes(Encoding.DER)))
        else:
            out += _cached_load(Path(item))
    return out


@dataclass(frozen=True)
class LoadedTrust:
    """The parsed certificates of a :class:`TrustSettings`."""

    anchors: tuple[asn1_x509.Certificate, ...]
    intermediates: tuple[asn1_x509.Certificate, ...]

    def anchor_fingerprints(self) -> frozenset[str]:
        """The SHA-256 fingerprints (hex) of the anchors."""
        return frozenset(c.sha256.hex() for c in self.anchors)


_TRUST_MANAGERS: dict[tuple[bytes, ...], tuple[SimpleTrustManager, int]] = {}
_TRUST_MANAGERS_LOCK = threading.Lock()
_TRUST_MANAGERS_MAX = 64
# A lookup of a name that is no root leaves an empty entry in the manager's index (a
# defaultdict), so a shared manager is rebuilt after this many contexts: bounded memory.
_TRUST_MANAGER_USES = 1000


def _trust_manager(anchors: Sequence[asn1_x509.Certificate]) -> SimpleTrustManager:
    """certvalidator's trust manager for ``anchors``, shared by the contexts with the same
    anchors (by SHA-256): it indexes the roots by subject, and what it answers never changes
    after it is built."""
    key = tuple(sorted({c.sha256 for c in anchors}))
    with _TRUST_MANAGERS_LOCK:
        manager, uses = _TRUST_MANAGERS.get(key, (None, 0))
        if manager is not None and uses < _TRUST_MANAGER_USES:
            _TRUST_MANAGERS[key] = (manager, uses + 1)
            return manager
    manager = SimpleTrustManager.build(trust_roots=list(anchors))
    with _TRUST_MANAGERS_LOCK:
        if len(_TRUST_MANAGERS) >= _TRUST_MANAGERS_MAX:
            _TRUST_MANAGERS.clear()
        _TRUST_MANAGERS[key] = (manager, 1)
    return manager


def clear_caches() -> None:
    """Forget cached trust files, trust managers and revocation data (tests, a CA incident)."""
    with _FILE_CACHE_LOCK:
        _FILE_CACHE.clear()
    with _PARSED_LOCK:
        _PARSED.clear()
    with _TRUST_MANAGERS_LOCK:
        _TRUST_MANAGERS.clear()
    clear_revocation_cache()


# ----- settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustSettings:
    """What to trust and how to check revocation; a plain, picklable value.

    ``anchors`` and ``intermediates`` are PEM/DER files (or folders of them). ``at`` is the
    validation time: ``None`` for now, or a past, timezone-aware time to validate an archive as
    of that moment. The remaining fields tune network behaviour and have safe defaults.
    """

    anchors: Sequence[Path]
    intermediates: Sequence[Path] = ()
    revocation: RevocationMode = "soft-fail"
    at: dt.datetime | None = None
    fetch_timeout: float = 10.0
    revinfo_cache_seconds: float = 300.0
    fetch_certificates: bool = False  # AIA chasing; off: a hostile file must not steer fetches
    time_tolerance: dt.timedelta = field(default=dt.timedelta(seconds=1))

    def __post_init__(self) -> None:
        if self.revocation not in _MODES:
            raise TrustError(f"revocation must be one of {', '.join(_MODES)}")
        if not self.anchors:
            raise TrustError("at least one trust anchor is needed")
        if self.at is not None and self.at.utcoffset() is None:
            raise TrustError("the validation time 'at' must carry a timezone")
        object.__setattr__(self, "anchors", tuple(Path(p) for p in self.anchors))
        object.__setattr__(self, "intermediates", tuple(Path(p) for p in self.intermediates))

    @classmethod
    def from_mapping(cls, data: dict) -> TrustSettings:
        """Build from configuration (``anchors``, ``intermediates``, ``revocation``, ``at``)."""
        at = data.get("at")
        if isinstance(at, str):
            at = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
        return cls(
            anchors=[Path(p) for p in data.get("anchors", ())],
            intermediates=[Path(p) for p in data.get("intermediates", ())],
            revocation=data.get("revocation", "soft-fail"),
            at=at,
            fetch_timeout=float(data.get("fetch_timeout", 10.0)),
            revinfo_cache_seconds=float(data.get("revinfo_cache_seconds", 300.0)),
            fetch_certificates=bool(data.get("fetch_certificates", False)),
        )

    def replace(self, **changes: object) -> TrustSettings:
        """These settings with ``changes`` (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def online(self) -> bool:
        """Whether revocation data may be fetched over the network."""
        return self.revocation != "embedded-only"

    def load(self) -> LoadedTrust:
        """Parse the anchor and intermediate files (cached per file version)."""
        anchors = tuple(c for p in self.anchors for c in _cached_load(p))
        inter = tuple(c for p in self.intermediates for c in _cached_load(p))
        return LoadedTrust(anchors, inter)

    def validation_context(
        self,
        *,
        moment: dt.datetime | None = None,
        other_certs: Iterable[asn1_x509.Certificate] = (),
        crls: Iterable[crl.CertificateList] = (),
        ocsps: Iterable[ocsp.OCSPResponse] = (),
        retroactive_revinfo: bool | None = None,
        allow_fetching: bool | None = None,
    ) -> ValidationContext:
        """A fresh pyhanko-certvalidator ``ValidationContext`` for one document.

        ``moment`` overrides :attr:`at` (past validation at a proven time); ``other_certs``,
        ``crls`` and ``ocsps`` are what the document carries. Revocation data is treated as
        retroactively valid for point-in-time validation (data issued after the moment still
        tells whether the certificate had been revoked by then). Close it with ``await
        vc.aclose()`` when the document is done (it owns its HTTP session, opened only if a
        fetch misses the revocation cache).
        """
        loaded = self.load()
        moment = moment or self.at
        return make_validation_context(
            loaded.anchors,
            [*loaded.intermediates, *other_certs],
            revocation_mode="soft-fail" if self.revocation == "soft-fail" else "require",
            moment=moment,
            allow_fetching=self.online if allow_fetching is None else allow_fetching,
            crls=crls,
            ocsps=ocsps,
            retroactive_revinfo=(moment is not None)
            if retroactive_revinfo is None
            else retroactive_revinfo,
            fetch_timeout=self.fetch_timeout,
            revinfo_cache_seconds=self.revinfo_cache_seconds,
            fetch_certificates=self.fetch_certificates,
            time_tolerance=self.time_tolerance,
        )


# ----- validation contexts -------------------------------------------------------------------


def make_validation_context(
    anchors: Iterable[asn1_x509.Certificate],
    other_certs: Iterable[asn1_x509.Certificate] = (),
    *,
    revocation_mode: Literal["soft-fail", "hard-fail", "require"],
    moment: dt.datetime | None = None,
    allow_fetching: bool = False,
    crls: Iterable[crl.CertificateList] = (),
    ocsps: Iterable[ocsp.OCSPResponse] = (),
    retroactive_revinfo: bool = False,
    fetch_timeout: float = 10.0,
    revinfo_cache_seconds: float = 300.0,
    fetch_certificates: bool = False,
    time_tolerance: dt.timedelta = dt.timedelta(seconds=1),
    algorithm_policy: AlgorithmUsagePolicy | None = None,
) -> ValidationContext:
    """The one way :mod:`signing` makes a pyhanko-certvalidator ``ValidationContext``.

    ``revocation_mode`` is certvalidator's: ``require`` wants an answer for every certificate
    below the anchor, ``hard-fail`` only for those that name an OCSP responder or CRL. With
    ``allow_fetching``, OCSP/CRL answers come from the process cache of :mod:`signing.fetchers`
    for up to ``revinfo_cache_seconds`` (0: always from the network) and the HTTP session opens
    only on a miss; AIA certificates are fetched only with ``fetch_certificates``.
    ``algorithm_policy`` defaults to :func:`lenient_algorithm_policy`. Close the context with
    ``await vc.aclose()`` (it owns its HTTP session).
    """
    kwargs: dict = {}
    if allow_fetching:
        fetchers, backend = make_fetchers(
            timeout=fetch_timeout,
            cache_seconds=revinfo_cache_seconds,
            fetch_certificates=fetch_certificates,
        )
        kwargs.update(fetchers=fetchers, fetcher_backend=OwnedFetcherBackend(backend))
    return ValidationContext(
        trust_manager=_trust_manager(list(anchors)),
        other_certs=list(other_certs),
        moment=moment,
        allow_fetching=allow_fetching,
        crls=list(crls),
        ocsps=list(ocsps),
        revocation_mode=revocation_mode,
        retroactive_revinfo=retroactive_revinfo,
        algorithm_usage_policy=algorithm_policy or lenient_algorithm_policy(),
        time_tolerance=time_tolerance,
        **kwargs,
    )
