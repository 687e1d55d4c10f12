"""TLS for the listener: TLS 1.2 or newer, and optional client certificates (the X-Road way:
the agency's information system authenticates its connection with a certificate the hub has
registered for it, see :mod:`exchange.clientcerts`)."""

from __future__ import annotations

import ssl

from aiohttp import web

from exchange.config import Settings

__all__ = ["peer_certificate", "server_context"]


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The listener's TLS context, or None when ``tls_cert`` is not set (plain HTTP)."""
    if not settings.tls_cert and not settings.tls_key:
        if settings.tls_client_ca:
            raise ValueError("tls_client_ca needs tls_cert and tls_key")
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise ValueError("tls_cert and tls_key go together")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    if settings.tls_client_ca:
        context.load_verify_locations(cafile=settings.tls_client_ca)
        # Optional: DMSs with only a bearer token still connect; a certificate that is sent
        # must chain to tls_client_ca and be valid now, or the handshake fails.
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def peer_certificate(request: web.BaseRequest) -> bytes | None:
    """The DER of the verified client certificate on this request's connection, if any."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True)
