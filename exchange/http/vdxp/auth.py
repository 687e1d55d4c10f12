"""VDXP authentication, exactly as SDKVXP signs (VDXP-WIRE.md §2-3).

The SDK sends its parameters as ``XroadVnpt-<name>`` headers and, in ``XroadVnpt-sign-header``,
a compact JSON object of the same entries; ``XroadVnpt-hash-header`` is the lower-case hex
HMAC-SHA256 of that JSON's octets keyed by the system's secret. The hub verifies the octets as
received (never a re-serialisation: the key order is a Java HashMap's), finds the secret by the
JSON's ``XroadVnpt-systemid``, and then takes every parameter from the verified JSON,
case-sensitive. No freshness check: the SDK's timestamp is fixed when the DMS starts, and
identical calls carry identical signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass

from aiohttp import web

from exchange.auth import Caller
from exchange.errors import HubError
from exchange.store.vdxp import PostgresVdxpSystems
from exchange.vdxp_credentials import VdxpSystem, load_system
from schemas import normalise

__all__ = ["Signed", "hash_file", "verify_request"]

PREFIX = "XroadVnpt-"
_SIGN_HEADER = PREFIX + "sign-header"
_HASH_HEADER = PREFIX + "hash-header"
_MAX_SIGN_HEADER = 4096  # the SDK's are well under 1 KiB; a header line stops at 8190
_DUMMY_SECRET = hashlib.sha256(b"lienthong-vdxp-unknown-system").digest()


@dataclass(frozen=True)
class Signed:
    """A verified request: the system, and the parameters of its signed JSON (no prefix)."""

    system: VdxpSystem
    params: dict[str, str]

    def first(self, *names: str) -> str | None:
        """The first of ``names`` present in the signed parameters (exact case)."""
        for name in names:
            value = self.params.get(name)
            if value is not None:
                return value
        return None

    def caller(self, organ_id: str) -> Caller:
        """The core's caller for one of the system's organs."""
        return Caller(organ_id, f"vdxp:{self.system.system_id}", math.inf)

    def callers(self) -> list[Caller]:
        """A caller per organ the system serves, its own first."""
        return [self.caller(organ) for organ in self.system.organs]

    def sender(self, declared: str | None) -> Caller:
        """The caller sending for ``declared`` (the ``from`` parameter), which the system must
        serve; without it, the system's own agency when it serves only one."""
        if not declared:
            if len(self.system.organs) == 1:
                return self.caller(self.system.organs[0])
            raise HubError(
                "vdxp.missing_parameter",
                f"{self.system.system_id} serves several organs: give from",
                field="from",
            )
        organ = normalise(declared.strip(), field="from")
        if organ not in self.system.organs:
            raise HubError(
                "vdxp.organ_not_served",
                f"systemid {self.system.system_id} does not send for {organ}",
                field="from",
            )
        return self.caller(organ)


def _unsigned(why: str) -> HubError:
    return HubError("vdxp.unsigned", f"{why}: sign the request as SDKVXP does")


def _signed_json(raw: bytes) -> dict[str, str]:
    def pairs(items: list[tuple[str, object]]) -> dict:
        seen = dict(items)
        if len(seen) != len(items):
            raise ValueError("duplicate key")
        return seen

    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
    except (ValueError, RecursionError):  # also UnicodeDecodeError
        raise _unsigned("XroadVnpt-sign-header is not a JSON object") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise _unsigned("XroadVnpt-sign-header is not a JSON object of strings")
    return data


def _one(request: web.Request, name: str) -> str:
    values = request.headers.getall(name, [])
    if len(values) != 1:
        raise _unsigned(f"{'no' if not values else 'more than one'} {name} header")
    return values[0]


async def verify_request(request: web.Request, store: PostgresVdxpSystems, box) -> Signed:
    """The verified system and parameters of a VDXP request, or ``vdxp.unsigned`` /
    ``vdxp.bad_signature`` (unknown, revoked and wrong are one answer: nothing to probe)."""
    # aiohttp decodes header octets as UTF-8 with surrogateescape: this gives them back.
    raw = _one(request, _SIGN_HEADER).encode("utf-8", "surrogateescape")
    given = _one(request, _HASH_HEADER).strip().lower().encode("ascii", "replace")
    if len(raw) > _MAX_SIGN_HEADER:
        raise _unsigned("XroadVnpt-sign-header is too long")
    signed = _signed_json(raw)
    system_id = signed.get(PREFIX + "systemid", "")
    system = await load_system(store, box, system_id) if system_id else None
    key = system.secret if system is not None else _DUMMY_SECRET
    expected = hmac.new(key, raw, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(expected, given) or system is None:
        raise HubError(
            "vdxp.bad_signature",
            "the HMAC of XroadVnpt-sign-header does not verify for this systemid",
        )
    params = {k[len(PREFIX) :]: v for k, v in signed.items() if k.startswith(PREFIX)}
    return Signed(system, params)


def hash_file(digest: bytes) -> str:
    """SHA-256 as SDKVXP writes it in ``hash-file``: each byte in hex without zero padding."""
    return "".join(format(b, "x") for b in digest)
