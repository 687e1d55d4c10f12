"""The webhook contract with an agency's system: its secret, its URL, the signed headers.

Standard Webhooks (standardwebhooks.com): the secret is ``whsec_`` + base64 of 32 random bytes;
each request carries ``webhook-id`` (the push's id, the same on every attempt),
``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature: v1,<base64
HMAC-SHA256(key, id + "." + timestamp + "." + body)>``, the key being the decoded secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from exchange.errors import HubError

__all__ = [
    "SECRET_PREFIX",
    "check_url",
    "new_secret",
    "push_headers",
    "secret_key",
    "seal_context",
    "signature",
]

SECRET_PREFIX = "whsec_"
_MAX_URL = 2048
_CHUNK = 1024 * 1024


def new_secret() -> str:
    """A fresh signing secret, as shown once to the operator."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_`` secret stands for."""
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None


def seal_context(organ_id: str) -> bytes:
    """What a sealed webhook secret is bound to: its agency."""
    return f"webhook:{organ_id}".encode()


def check_url(url: str) -> str:
    """The URL if the hub can push to it: http or https, a host, no user or password in it
    (it would end up in logs), at most 2048 characters. ``push.invalid_url`` otherwise."""
    if not isinstance(url, str) or not url or len(url) > _MAX_URL or not url.isprintable():
        raise HubError("push.invalid_url", "give an http(s) URL of at most 2048 characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError as exc:
        raise HubError("push.invalid_url", f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise HubError(
            "push.invalid_url", f"the URL must be http or https, not {parts.scheme or 'none'}"
        )
    if not parts.hostname:
        raise HubError("push.invalid_url", "the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise HubError(
            "push.invalid_url", "no user or password in the URL: the signature is the proof"
        )
    if any(c.isspace() for c in url):
        raise HubError("push.invalid_url", "the URL contains white space")
    return url


def signature(key: bytes, webhook_id: str, timestamp: int, body: Path | bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` over ``id.timestamp.body`` (a file is read in chunks)."""
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode(), hashlib.sha256)
    if isinstance(body, bytes):
        mac.update(body)
    else:
        with body.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                mac.update(chunk)
    return "v1," + base64.b64encode(mac.digest()).decode()


def push_headers(
    webhook_id: str,
    timestamp: int,
    signed: str,
    digest: bytes,
    package_id: str,
    kind: str,
    attempt: int,
) -> dict[str, str]:
    """Every header of one attempt."""
    return {
        "Content-Type": "application/xml",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signed,
        "Repr-Digest": f"sha-256=:{base64.b64encode(digest).decode()}:",
        "Lienthong-Package-Id": package_id,
        "Lienthong-Kind": kind,
        "Lienthong-Attempt": str(attempt),
        "User-Agent": "lienthong-push/1",
    }
