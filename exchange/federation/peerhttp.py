"""Calls to a peer hub's API over mutual TLS: this hub presents its own certificate
(``tls_cert``/``tls_key``), and trusts exactly the certificate registered for the peer (pinned:
no other certificate, whoever issued it, is accepted for that peer).

The claim check is redeemed here: the bytes are streamed into a temporary blob while they are
hashed, and refused unless their SHA-256 is the digest the hand-over named.
"""

from __future__ import annotations

import ssl

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from exchange.blobs import BlobStore, IncomingBlob
from exchange.config import Settings
from exchange.errors import HubError

__all__ = ["PeerClient", "client_context"]


def client_context(settings: Settings, peer_cert_der: bytes) -> ssl.SSLContext:
    """TLS 1.2+, our hub certificate as client certificate, the peer's certificate pinned."""
    if not (settings.tls_cert and settings.tls_key):
        raise HubError(
            "federation.not_configured", "federation needs the hub's tls_cert and tls_key"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    pem = x509.load_der_x509_certificate(peer_cert_der).public_bytes(serialization.Encoding.PEM)
    context.load_verify_locations(cadata=pem.decode())
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the pinned leaf is the anchor
    return context


class PeerClient:
    """One peer's API: fetch a package by digest, its directory, its latest tree head."""

    def __init__(self, settings: Settings, hub_id: str, http_url: str, cert_der: bytes) -> None:
        self.hub_id = hub_id
        self.base = http_url.rstrip("/")
        self._ssl = client_context(settings, cert_der)
        self._max = settings.max_body_bytes
        self._session: aiohttp.ClientSession | None = None

    def _get(self, url: str, total: float, params: dict | None = None):
        """A GET on the kept-alive connections to this peer (TLS handshakes are reused)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=32, keepalive_timeout=30)
            )
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=10)
        return self._session.get(url, params=params, timeout=timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch_package(self, blobs: BlobStore, digest: bytes) -> IncomingBlob:
        """The bytes with this digest, in a temporary blob (the caller keeps or discards it)."""
        incoming = blobs.incoming(self._max)
        try:
            url = f"{self.base}/v1/federation/packages/{digest.hex()}"
            async with self._get(url, 300) as response:
                if response.status != 200:
                    raise HubError(
                        "federation.fetch_failed",
                        f"{self.hub_id} answered {response.status} for the package",
                    )
                async for chunk in response.content.iter_chunked(256 * 1024):
                    incoming.write(chunk)
            await incoming.finish()
        except aiohttp.ClientError as exc:
            incoming.discard()
            raise HubError(
                "federation.fetch_failed", f"cannot fetch from {self.hub_id}: {type(exc).__name__}"
            ) from None
        except BaseException:
            incoming.discard()
            raise
        if incoming.digest != digest:
            incoming.discard()
            raise HubError(
                "federation.digest_mismatch",
                f"the bytes {self.hub_id} served are not the ones its hand-over named",
            )
        return incoming

    async def get_json(self, path: str, params: dict | None = None) -> dict:
        """A JSON document from the peer's federation API."""
        try:
            async with self._get(f"{self.base}{path}", 30, params) as response:
                if response.status != 200:
                    raise HubError(
                        "federation.fetch_failed", f"{self.hub_id} answered {response.status}"
                    )
                return await response.json()
        except (aiohttp.ClientError, ValueError) as exc:
            raise HubError(
                "federation.fetch_failed", f"cannot reach {self.hub_id}: {type(exc).__name__}"
            ) from None
