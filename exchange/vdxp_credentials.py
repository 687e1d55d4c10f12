"""VDXP credentials: the ``systemid`` and HMAC secret a DMS on VNPT's SDKVXP signs with.

The SDK signs every request with HMAC-SHA256 keyed by the secret itself, so the hub must be
able to read the secret back: it is stored sealed (:mod:`exchange.sealing`, bound to its
systemid), never hashed, and never logged. A systemid serves one agency, or several for a
centre (a provincial hub), and sends and receives only for those.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from exchange.errors import HubError
from exchange.sealing import SealError, SecretBox
from exchange.store.vdxp import PostgresVdxpSystems

__all__ = ["VdxpCredentials", "VdxpSystem", "issue_vdxp_credentials", "load_system"]

_SYSTEM_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


@dataclass(frozen=True)
class VdxpCredentials:
    """Freshly issued; the secret exists only here and is shown once."""

    systemid: str
    secret: str
    organs: tuple[str, ...]


@dataclass(frozen=True)
class VdxpSystem:
    """A live system: its secret (opened) and the organ ids it serves, its own first."""

    system_id: str
    secret: bytes
    organs: tuple[str, ...]


def _context(system_id: str) -> bytes:
    return b"vdxp:" + system_id.encode()


async def issue_vdxp_credentials(
    store: PostgresVdxpSystems, box: SecretBox, organs: list[str], system_id: str | None = None
) -> VdxpCredentials:
    """A new secret for ``system_id`` (by default the first organ id, as DMSs are configured
    in the field), serving ``organs``. Issuing again for a systemid replaces its secret (the
    old one stops working at once) and adds organs; a revoked systemid comes back."""
    system_id = system_id or organs[0]
    if not system_id or len(system_id) > 64 or not set(system_id) <= _SYSTEM_ID_CHARS:
        raise HubError(
            "request.invalid_parameter",
            "a systemid is 1-64 characters of A-Z a-z 0-9 . _ -",
            field="systemid",
        )
    missing = await store.missing_agencies(organs)
    if missing:
        raise HubError("agency.unknown", f"{', '.join(missing)} not in the registry")
    secret = secrets.token_urlsafe(32)  # [A-Za-z0-9_-]: survives java.util.Properties
    await store.put(system_id, box.seal(secret.encode(), context=_context(system_id)), organs)
    system = await load_system(store, box, system_id)
    assert system is not None
    return VdxpCredentials(system_id, secret, system.organs)


async def load_system(
    store: PostgresVdxpSystems, box: SecretBox, system_id: str
) -> VdxpSystem | None:
    """The live system named ``system_id``, or None (unknown, revoked, or its secret does
    not open with this hub's keys). A secret sealed with a former key is re-sealed."""
    found = await store.system(system_id)
    if found is None:
        return None
    sealed, organs = found
    try:
        secret = box.open(sealed, context=_context(system_id))
    except SealError:
        return None
    if box.needs_reseal(sealed):  # sealed with a former key: move it to the current one
        await store.reseal(system_id, sealed, box.seal(secret, context=_context(system_id)))
    return VdxpSystem(system_id, secret, tuple(organs))
