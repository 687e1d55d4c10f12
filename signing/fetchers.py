"""Where validation contexts get revocation data from the network: pyhanko-certvalidator's
aiohttp fetchers, behind one process-wide cache of OCSP responses and CRLs.

    fetchers, backend = make_fetchers(timeout=10.0, cache_seconds=300.0,
                                      fetch_certificates=False)

Built on certvalidator's public fetcher interface (``OCSPFetcher``, ``CRLFetcher``,
``CertificateFetcher``) only:

* OCSP responses and CRLs fetched online are kept per certificate (issuer and serial) for at most
  ``cache_seconds`` and never past their own ``nextUpdate``; a response without one is not kept.
  A cached answer is handed to certvalidator through the fetcher interface, so it checks its
  signature, its responder and its freshness exactly as for a fresh download: only the network
  round trip is saved. ``cache_seconds=0`` bypasses the cache (each context asks the network).
* Certificates named by a document's AIA are not fetched unless ``fetch_certificates``: URLs in
  an untrusted file must not steer our requests.
* One verifying TLS context per process (loading the CA bundle costs ~20 ms); each backend still
  opens its own HTTP session (an aiohttp session belongs to one event loop), and only when a fetch
  misses the cache.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
import threading
import time
from collections.abc import AsyncGenerator, Iterable

from asn1crypto import cms, crl, ocsp
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator.authority import Authority
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.util import LazySession
from pyhanko_certvalidator.fetchers.api import (
    CertificateFetcher,
    CRLFetcher,
    Fetchers,
    OCSPFetcher,
)

__all__ = ["clear_revocation_cache", "make_fetchers"]


class _RevinfoCache:
    """Process-wide store of fetched OCSP responses and CRLs (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ocsp: dict[bytes, tuple[float, ocsp.OCSPResponse]] = {}
        self._crl: dict[bytes, tuple[float, list[crl.CertificateList]]] = {}

    @staticmethod
    def key(cert: asn1_x509.Certificate | cms.AttributeCertificateV2) -> bytes:
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
            hit = self._ocsp.get(self.key(cert))
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
            self._ocsp[self.key(cert)] = (deadline, response)

    def get_crls(self, cert) -> list[crl.CertificateList] | None:
        with self._lock:
            hit = self._crl.get(self.key(cert))
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
            self._crl[self.key(cert)] = (deadline, list(crls))

    def clear(self) -> None:
        with self._lock:
            self._ocsp.clear()
            self._crl.clear()


_REVINFO = _RevinfoCache()


def clear_revocation_cache() -> None:
    """Forget every cached OCSP response and CRL."""
    _REVINFO.clear()


class _CachingOCSPFetcher(OCSPFetcher):
    """certvalidator's OCSP fetcher behind the process revocation cache."""

    def __init__(self, inner: OCSPFetcher, max_age: float) -> None:
        self._inner = inner
        self._max_age = max_age
        self._mine: dict[bytes, ocsp.OCSPResponse] = {}

    async def fetch(self, cert, authority: Authority) -> ocsp.OCSPResponse:
        key = _RevinfoCache.key(cert)
        cached = self._mine.get(key) or _REVINFO.get_ocsp(cert)
        if cached is None:
            cached = await self._inner.fetch(cert, authority)
            _REVINFO.put_ocsp(cert, cached, self._max_age)
        self._mine[key] = cached
        return cached

    def fetched_responses(self) -> Iterable[ocsp.OCSPResponse]:
        return list(self._mine.values())

    def fetched_responses_for_cert(self, cert) -> Iterable[ocsp.OCSPResponse]:
        hit = self._mine.get(_RevinfoCache.key(cert))
        return [hit] if hit is not None else []


class _CachingCRLFetcher(CRLFetcher):
    """certvalidator's CRL fetcher behind the process revocation cache."""

    def __init__(self, inner: CRLFetcher, max_age: float) -> None:
        self._inner = inner
        self._max_age = max_age
        self._mine: dict[bytes, list[crl.CertificateList]] = {}

    async def fetch(self, cert, *, use_deltas=None) -> Iterable[crl.CertificateList]:
        key = _RevinfoCache.key(cert)
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
        return self._mine[_RevinfoCache.key(cert)]  # KeyError when never fetched: by contract


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
    """A lazy HTTP session (what certvalidator's aiohttp fetchers accept), opened on the first
    fetch with the process-wide TLS context and closed with its backend."""

    def __init__(self) -> None:
        super().__init__()
        self._ours = None

    def get_session(self):
        if self._ours is None:
            import aiohttp

            self._ours = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_ssl_context()))
        return self._ours

    async def close(self) -> None:
        session, self._ours = self._ours, None
        if session is not None:
            await session.close()


def make_fetchers(
    *, timeout: float, cache_seconds: float, fetch_certificates: bool
) -> tuple[Fetchers, AIOHttpFetcherBackend]:
    """Fetchers for one validation context, and the backend that owns their HTTP session (the
    context's to close)."""
    backend = AIOHttpFetcherBackend(session=_LazySession(), per_request_timeout=timeout)
    inner = backend.get_fetchers()
    ocsp_fetcher, crl_fetcher = inner.ocsp_fetcher, inner.crl_fetcher
    if cache_seconds > 0:
        ocsp_fetcher = _CachingOCSPFetcher(ocsp_fetcher, cache_seconds)
        crl_fetcher = _CachingCRLFetcher(crl_fetcher, cache_seconds)
    fetchers = Fetchers(
        ocsp_fetcher=ocsp_fetcher,
        crl_fetcher=crl_fetcher,
        cert_fetcher=inner.cert_fetcher if fetch_certificates else _NoCertificateFetcher(),
    )
    return fetchers, backend
