"""Client certificates bound to agencies: registration, revocation, and who a connection is.

TLS has already verified the certificate (chain to ``tls_client_ca``, validity dates) when a
request sees it; the hub then only asks which agency, if any, it was registered to. A connection
with such a certificate needs no bearer token, and one for another agency is refused on it.
An agency with a registered certificate is bound to it: its tokens are refused on connections
that do not present one of its certificates, so a stolen token is useless from a system without
that agency's key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from exchange.auth import Caller
from exchange.errors import HubError
from exchange.store.credentials import PostgresCredentials

__all__ = [
    "CertificateCache",
    "ClientCertificate",
    "certificate_bound",
    "certificate_caller",
    "fingerprint",
    "register",
    "revoke",
]


def fingerprint(der: bytes) -> bytes:
    """SHA-256 of a certificate's DER: how the hub names a registered client certificate."""
    return hashlib.sha256(der).digest()


@dataclass(frozen=True)
class ClientCertificate:
    fingerprint: str  # hex
    organ_id: str
    subject: str
    not_after: dt.datetime


def _load(data: bytes) -> x509.Certificate:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise HubError("certificate.invalid", f"not an X.509 certificate: {exc}") from None


async def register(store: PostgresCredentials, organ_id: str, data: bytes) -> ClientCertificate:
    """Bind a client certificate (PEM or DER) to a registered agency."""
    cert = _load(data)
    der = cert.public_bytes(serialization.Encoding.DER)
    if not await store.agency_exists(organ_id):
        raise HubError("agency.unknown", f"{organ_id} is not in the registry")
    bound = ClientCertificate(
        fingerprint(der).hex(), organ_id, cert.subject.rfc4514_string(), cert.not_valid_after_utc
    )
    owner = await store.bind_certificate(
        bytes.fromhex(bound.fingerprint), organ_id, bound.subject, bound.not_after
    )
    if owner is None:
        raise HubError("certificate.taken", "this certificate is registered to another agency")
    return bound


async def revoke(store: PostgresCredentials, fingerprint_hex: str) -> bool:
    """Stop accepting a certificate; returns whether it was registered and not yet revoked."""
    return await store.revoke_certificate(bytes.fromhex(fingerprint_hex))


class CertificateCache:
    """Look-ups of recent fingerprints for a few seconds (a revocation takes at most that)."""

    def __init__(self, ttl_seconds: float = 10.0, max_entries: int = 10_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: dict[bytes, tuple[float, Caller | None]] = {}

    def get(self, key: bytes) -> tuple[bool, Caller | None]:
        hit = self._entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: bytes, caller: Caller | None) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self._ttl, caller)


async def certificate_caller(
    store: PostgresCredentials, der: bytes | None, cache: CertificateCache
) -> Caller | None:
    """The agency a verified client certificate is registered to, or None."""
    if not der:
        return None
    key = fingerprint(der)
    found, caller = cache.get(key)
    if not found:
        row = await store.certificate(key)
        caller = None
        if row is not None:
            expires = row["not_after"].timestamp()
            caller = Caller(row["organ_id"], f"cert:{key.hex()[:16]}", expires)
        cache.put(key, caller)
    return caller


async def certificate_bound(
    store: PostgresCredentials, organ_id: str, cache: CertificateCache
) -> bool:
    """Whether ``organ_id`` has a registered client certificate (then it must present one)."""
    key = b"agency:" + organ_id.encode()
    found, bound = cache.get(key)
    if not found:
        bound = await store.agency_has_certificate(organ_id)
        cache.put(key, bound)
    return bool(bound)
