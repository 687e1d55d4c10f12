"""Agency credentials (OAuth2 client credentials) and bearer tokens.

Secrets are stored as scrypt hashes and tokens as SHA-256 digests: a copy of the database is not
a copy of anyone's keys. Neither is ever logged.

scrypt takes ~50 ms of CPU and 16 MiB by design, so it never runs on the event loop: a small
thread pool of its own (hashlib releases the GIL) does it, which also bounds the memory that a
burst of logins can take. An unknown client id costs one scrypt too, against a hash made once at
import, so response times do not tell which client ids exist.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from exchange.errors import HubError
from exchange.store.credentials import PostgresCredentials

__all__ = [
    "Caller",
    "Credentials",
    "TokenCache",
    "authenticate",
    "issue_credentials",
    "issue_token",
    "revoke_credentials",
]

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_HASH_THREADS = 2  # concurrent scrypt runs per process: 2 x 16 MiB, at most two cores
_HASHING = ThreadPoolExecutor(max_workers=_HASH_THREADS, thread_name_prefix="lienthong-scrypt")


@dataclass(frozen=True)
class Credentials:
    """Freshly issued credentials; the secret exists only in this object and is shown once."""

    client_id: str
    client_secret: str
    organ_id: str


@dataclass(frozen=True)
class Caller:
    """The authenticated agency behind a request."""

    organ_id: str
    client_id: str
    expires_at: float


def _hash_secret(secret: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def _check_secret(secret: str, stored: str) -> bool:
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = _hash_secret(secret, base64.b64decode(salt_b64)).split("$")[2]
    return hmac.compare_digest(expected, digest_b64)


# Checked against when the client id is unknown or revoked: the same work as a real check.
_DUMMY_HASH = _hash_secret(secrets.token_urlsafe(32))


async def _off_loop(function, *args):
    return await asyncio.get_running_loop().run_in_executor(_HASHING, function, *args)


async def issue_credentials(store: PostgresCredentials, organ_id: str) -> Credentials:
    """New client credentials for a registered agency (earlier ones stay valid)."""
    if not await store.agency_exists(organ_id):
        raise HubError("agency.unknown", f"{organ_id} is not in the registry")
    client_id = "lt-" + secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    await store.add_client(client_id, organ_id, await _off_loop(_hash_secret, secret))
    return Credentials(client_id=client_id, client_secret=secret, organ_id=organ_id)


async def revoke_credentials(store: PostgresCredentials, client_id: str) -> bool:
    """Revoke a client and every token it holds; returns whether it existed."""
    return await store.revoke_client(client_id)


_INVALID_CLIENT = HubError("auth.invalid_client", "unknown client_id or wrong client_secret")


async def issue_token(
    store: PostgresCredentials, client_id: str, client_secret: str, ttl_seconds: int
) -> tuple[str, int]:
    """Exchange client credentials for a bearer token; returns (token, expires_in seconds)."""
    row = await store.client(client_id)
    known = row is not None and row["revoked_at"] is None
    stored = row["secret_hash"] if known else _DUMMY_HASH
    # One scrypt either way, so client ids cannot be probed by timing.
    if not await _off_loop(_check_secret, client_secret, stored) or not known:
        raise _INVALID_CLIENT
    token = secrets.token_urlsafe(32)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl_seconds)
    await store.add_token(
        hashlib.sha256(token.encode()).digest(), client_id, row["organ_id"], expires
    )
    return token, ttl_seconds


class TokenCache:
    """Remembers recent token look-ups for a few seconds, so each request is not a query."""

    def __init__(self, ttl_seconds: float = 10.0, max_entries: int = 10_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: dict[bytes, tuple[float, Caller]] = {}

    def get(self, key: bytes) -> Caller | None:
        hit = self._entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: bytes, caller: Caller) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self._ttl, caller)


async def authenticate(store: PostgresCredentials, header: str | None, cache: TokenCache) -> Caller:
    """The caller named by an ``Authorization: Bearer`` header, or a 401 error."""
    if not header:
        raise HubError("auth.missing", "send Authorization: Bearer <token>")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HubError("auth.missing", "send Authorization: Bearer <token>")
    token = token.strip()
    if not token.isascii() or not token.isprintable():
        raise HubError("auth.invalid_token", "the bearer token is not valid")
    key = hashlib.sha256(token.encode()).digest()
    caller = cache.get(key)
    if caller is None:
        row = await store.token(key)
        if row is None or row["revoked_at"] is not None:
            raise HubError("auth.invalid_token", "the bearer token is not valid")
        caller = Caller(row["organ_id"], row["client_id"], row["expires_at"].timestamp())
        cache.put(key, caller)
    if caller.expires_at <= time.time():
        raise HubError("auth.token_expired", "the bearer token has expired")
    return caller
