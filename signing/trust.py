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
    names neither and has nothing embedded for it, leaves the signature
    ``INDETERMINATE/TRY_LATER``: hard-fail means "not without revocation data", so a certificate
    that gives no way to check it is not waved through (certvalidator's own ``hard-fail`` checks
    only what a certificate declares; we use its ``require`` policy).
``embedded-only``
    no network at all; only revocation data embedded in the document (DSS, signed attributes)
    counts, and it is required for every certificate, as in ``hard-fail``: the mode for
    auditors checking archived PAdES B-LT/B-LTA files offline.

Caching (per process, safe by construction):

* the parsed anchor/intermediate files, keyed by path, size and modification time;
* OCSP responses and CRLs fetched online, keyed by the certificate's issuer and serial, kept for
  at most ``revinfo_cache_seconds`` and never past their own ``nextUpdate``. Cached responses are
  fed back through the fetcher interface, so the validator still checks their signatures and
  freshness exactly as for a fresh download; only the network round trip is saved;
* one verifying TLS context for the HTTP sessions (each context still opens its own session,
  and only when a fetch misses the revocation cache).

Contexts are built by :func:`make_validation_context` (used by :class:`TrustSettings` and by the
package verifier, :mod:`signing.xmldsig`), so both share these caches.

Validation contexts themselves are *not* shared between documents: they accumulate state (the
certificates a document brought along, the POE it proved) that must not leak from one
document into another.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import ssl
import threading
import time
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from asn1crypto import cms, crl, ocsp, pem
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.authority import Authority
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.util import LazySession
from pyhanko_certvalidator.fetchers.api import (
    CertificateFetcher,
    CRLFetcher,
    Fetchers,
    OCSPFetcher,
    OwnedFetcherBackend,
)
from pyhanko_certvalidator.policy_decl import AlgorithmUsagePolicy, DisallowWeakAlgorithmsPolicy

__all__ = [
    "LoadedTrust",
    "RevocationMode",
    "TrustError",
    "TrustSettings",
    "clear_caches",
    "lenient_algorithm_policy",
    "load_certificates",
    "make_validation_context",
]

RevocationMode = Literal["hard-fail", "soft-fail", "embedded-only"]
_MODES = ("hard-fail", "soft-fail", "embedded-only")
_CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der")


class TrustError(Exception):
    """The trust configuration cannot be used (missing file, not a certificate, ...)."""


def lenient_algorithm_policy() -> DisallowWeakAlgorithmsPolicy:
    """What the *cryptographic* checks refuse outright: MD2/MD5 and RSA below 1024 bits.

    Everything else (SHA-1, PKCS#1 v1.5, RSA-1024) verifies, because documents signed years ago
    under the historical rules must still be verifiable; the policy in force at signing time
    (Circular 15/2025 or the older rules) is judged separately and reported, see
    :func:`signing.validate.evaluate_policy`.
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


_FILE_CACHE: dict[tuple[str, int, int], tuple[asn1_x509.Certificate, ...]] = {}
_FILE_CACHE_LOCK = threading.Lock()


def _cached_load(path: Path) -> tuple[asn1_x509.Certificate, ...]:
    path = Path(path)
    if path.is_dir():
        return tuple(load_certificates(path))
    try:
        st = path.stat()
    except OSError:
        raise TrustError(f"{path}: no such certificate file") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _FILE_CACHE_LOCK:
        hit = _FILE_CACHE.get(key)
    if hit is None:
        hit = tuple(load_certificates(path))
        with _FILE_CACHE_LOCK:
            _FILE_CACHE[key] = hit
    return hit


@dataclass(frozen=True)
class LoadedTrust:
    """The parsed certificates of a :class:`TrustSettings`."""

    anchors: tuple[asn1_x509.Certificate, ...]
    intermediates: tuple[asn1_x509.Certificate, ...]

    def anchor_fingerprints(self) -> frozenset[str]:
        return frozenset(c.sha256.hex() for c in self.anchors)


# ----- revocation data cache -----------------------------------------------------------------


class _RevinfoCache:
    """Process-wide store of fetched OCSP responses and CRLs (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ocsp: dict[bytes, tuple[float, ocsp.OCSPResponse]] = {}
        self._crl: dict[bytes, tuple[float, list[crl.CertificateList]]] = {}

    @staticmethod
    def _key(cert: asn1_x509.Certificate | cms.AttributeCertificateV2) -> bytes:
        value = cert.issuer_serial
        return hashlib.sha256(value.encode() if isinstance(value, str) else value).digest()

    @staticmethod
    def _deadline(next_update: dt.datetime | None, max_age: float) -> float:
        deadline = time.time() + max_age
        if next_update is not None:
            deadline = min(deadline, next_update.timestamp())
        return deadline

    def get_ocsp(self, cert) -> ocsp.OCSPResponse | None:
        with self._lock:
            hit = self._ocsp.get(self._key(cert))
        if hit and hit[0] > time.time():
            return hit[1]
        return None

    def put_ocsp(self, cert, response: ocsp.OCSPResponse, max_age: float) -> None:
        if max_age <= 0 or response["response_status"].native != "successful":
            return
        try:
            tbs = response.basic_ocsp_response["tbs_response_data"]
            next_updates = [r["next_update"].native for r in tbs["responses"]]
        except (ValueError, KeyError, TypeError):
            return
        if any(n is None for n in next_updates):
            return  # no stated validity: do not keep it
        deadline = self._deadline(min(next_updates), max_age)
        with self._lock:
            self._ocsp[self._key(cert)] = (deadline, response)

    def get_crls(self, cert) -> list[crl.CertificateList] | None:
        with self._lock:
            hit = self._crl.get(self._key(cert))
        if hit and hit[0] > time.time():
            return hit[1]
        return None

    def put_crls(self, cert, crls: list[crl.CertificateList], max_age: float) -> None:
        if max_age <= 0 or not crls:
            return
        nexts = [c["tbs_cert_list"]["next_update"].native for c in crls]
        if any(n is None for n in nexts):
            return
        deadline = self._deadline(min(nexts), max_age)
        with self._lock:
            self._crl[self._key(cert)] = (deadline, list(crls))

    def clear(self) -> None:
        with self._lock:
            self._ocsp.clear()
            self._crl.clear()


_REVINFO = _RevinfoCache()


def clear_caches() -> None:
    """Forget cached trust files and revocation data (tests, a CA incident)."""
    with _FILE_CACHE_LOCK:
        _FILE_CACHE.clear()
    _REVINFO.clear()


class _CachingOCSPFetcher(OCSPFetcher):
    """pyhanko-certvalidator's OCSP fetcher behind the process revocation cache."""

    def __init__(self, inner: OCSPFetcher, max_age: float) -> None:
        self._inner = inner
        self._max_age = max_age
        self._mine: dict[bytes, ocsp.OCSPResponse] = {}

    async def fetch(self, cert, authority: Authority) -> ocsp.OCSPResponse:
        key = _RevinfoCache._key(cert)
        cached = self._mine.get(key) or _REVINFO.get_ocsp(cert)
        if cached is None:
            cached = await self._inner.fetch(cert, authority)
            _REVINFO.put_ocsp(cert, cached, self._max_age)
        self._mine[key] = cached
        return cached

    def fetched_responses(self) -> Iterable[ocsp.OCSPResponse]:
        return list(self._mine.values())

    def fetched_responses_for_cert(self, cert) -> Iterable[ocsp.OCSPResponse]:
        hit = self._mine.get(_RevinfoCache._key(cert))
        return [hit] if hit is not None else []


class _CachingCRLFetcher(CRLFetcher):
    """pyhanko-certvalidator's CRL fetcher behind the process revocation cache."""

    def __init__(self, inner: CRLFetcher, max_age: float) -> None:
        self._inner = inner
        self._max_age = max_age
        self._mine: dict[bytes, list[crl.CertificateList]] = {}

    async def fetch(self, cert, *, use_deltas=None) -> Iterable[crl.CertificateList]:
        key = _RevinfoCache._key(cert)
        cached = self._mine.get(key) or _REVINFO.get_crls(cert)
        if cached is None:
            cached = list(await self._inner.fetch(cert, use_deltas=use_deltas))
            _REVINFO.put_crls(cert, cached, self._max_age)
        self._mine[key] = cached
        return cached

    def fetched_crls(self) -> Iterable[crl.CertificateList]:
        seen: dict[bytes, crl.CertificateList] = {}
        for crls in self._mine.values():
            for item in crls:
                seen.setdefault(item.sha256, item)
        return list(seen.values())

    def fetched_crls_for_cert(self, cert) -> Iterable[crl.CertificateList]:
        return self._mine[_RevinfoCache._key(cert)]  # KeyError when never fetched: by contract


class _NoCertificateFetcher(CertificateFetcher):
    """Refuses AIA chasing: URLs in an untrusted document must not steer our requests."""

    async def fetch_cert_issuers(self, cert) -> AsyncGenerator[asn1_x509.Certificate, None]:
        return
        yield  # pragma: no cover - makes this an async generator

    async def fetch_crl_issuers(
        self, certificate_list
    ) -> AsyncGenerator[asn1_x509.Certificate, None]:
        return
        yield  # pragma: no cover

    def fetched_certs(self) -> Iterable[asn1_x509.Certificate]:
        return []


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

_SSL_CONTEXT: ssl.SSLContext | None = None
_SSL_LOCK = threading.Lock()


def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process (loading the CA bundle costs ~20 ms each time)."""
    global _SSL_CONTEXT
    with _SSL_LOCK:
        if _SSL_CONTEXT is None:
            import certifi

            _SSL_CONTEXT = ssl.create_default_context(cafile=certifi.where())
        return _SSL_CONTEXT


class _LazySession(LazySession):
    """pyhanko-certvalidator's lazy HTTP session, with the process-wide TLS context.

    The session itself stays per context (an aiohttp session belongs to one event loop) and is
    only opened when a fetch misses the revocation cache.
    """

    def get_session(self):
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(ssl=_ssl_context())
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session


def make_validation_context(
    anchors: Sequence[asn1_x509.Certificate],
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
    """A ``ValidationContext`` on the process caches (what :class:`TrustSettings` and the
    package verifier use).

    OCSP/CRL fetches go through the revocation cache; the HTTP session is opened only on a
    cache miss.
    ``revocation_mode`` is certvalidator's: ``require`` wants an answer for every certificate
    below the anchor, ``hard-fail`` only for those that name an OCSP responder or CRL.
    ``algorithm_policy`` defaults to :func:`lenient_algorithm_policy`.
    """
    policy = algorithm_policy or lenient_algorithm_policy()
    kwargs: dict = {}
    ocsp_fetcher = crl_fetcher = None
    if allow_fetching:
        from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

        backend = AIOHttpFetcherBackend(session=_LazySession(), per_request_timeout=fetch_timeout)
        inner = backend.get_fetchers()
        ocsp_fetcher = _CachingOCSPFetcher(inner.ocsp_fetcher, revinfo_cache_seconds)
        crl_fetcher = _CachingCRLFetcher(inner.crl_fetcher, revinfo_cache_seconds)
        fetchers = Fetchers(
            ocsp_fetcher=ocsp_fetcher,
            crl_fetcher=crl_fetcher,
            cert_fetcher=inner.cert_fetcher if fetch_certificates else _NoCertificateFetcher(),
        )
        kwargs.update(fetchers=fetchers, fetcher_backend=OwnedFetcherBackend(backend))
    anchors = list(anchors)
    vc = ValidationContext(
        trust_roots=anchors,
        other_certs=list(other_certs),
        moment=moment,
        allow_fetching=allow_fetching,
        crls=list(crls),
        ocsps=list(ocsps),
        revocation_mode=revocation_mode,
        retroactive_revinfo=retroactive_revinfo,
        algorithm_usage_policy=policy,
        time_tolerance=time_tolerance,
        **kwargs,
    )
    return vc

