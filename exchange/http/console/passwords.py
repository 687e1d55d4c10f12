"""Console passwords: Argon2id (memory-hard), kept as PHC strings, checked off the event loop.

Parameters follow OWASP's minimum for Argon2id (19 MiB, 2 passes, 1 lane). An unknown user
costs one derivation like a known one, so timing does not tell which names exist.
"""

from __future__ import annotations

import asyncio
import os

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

__all__ = ["MIN_LENGTH", "check_password", "hash_password"]

MIN_LENGTH = 10
_MEMORY_KIB, _PASSES, _LANES = 19 * 1024, 2, 1


def hash_password(password: str) -> str:
    """The Argon2id PHC string of a password (a fresh 16-byte salt)."""
    kdf = Argon2id(
        salt=os.urandom(16),
        length=32,
        iterations=_PASSES,
        lanes=_LANES,
        memory_cost=_MEMORY_KIB,
    )
    return kdf.derive_phc_encoded(password.encode())


_UNKNOWN_USER = hash_password(os.urandom(16).hex())


def _matches(password: str, encoded: str) -> bool:
    try:
        Argon2id.verify_phc_encoded(password.encode(), encoded)
    except (InvalidKey, ValueError):
        return False
    return True


async def check_password(password: str, encoded: str | None) -> bool:
    """Whether ``password`` matches ``encoded`` (None: an unknown user, always False, same
    cost), in a thread so the event loop stays free."""
    if encoded is None:
        await asyncio.to_thread(_matches, password, _UNKNOWN_USER)
        return False
    return await asyncio.to_thread(_matches, password, encoded)
