"""Receiving pushes from a lienthong hub, for DMS developers.

The hub POSTs each document or status to your URL with the exact package bytes as the body and
Standard Webhooks headers (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), plus
``Repr-Digest``, ``Lienthong-Package-Id`` and ``Lienthong-Kind``. Answer 2xx only once you have
stored the package safely: that answer is your acknowledgement, and the hub signs a delivery
receipt for it. Anything else is retried (408, 429, 5xx, no answer) or fails at once (other 4xx).

    verifier = WebhookVerifier(os.environ["LIENTHONG_WEBHOOK_SECRET"])
    delivery = verifier.verify(request.headers, body)     # raises WebhookError
    if verifier.seen(delivery.id): answer 200             # a repeat: stored already
    ... store delivery.body under delivery.package_id ...
    verifier.remember(delivery.id); answer 200

or, with aiohttp, ``app.router.add_post("/hook", webhook_handler(verifier, store))``. Only the
standard library is needed for :class:`WebhookVerifier`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

__all__ = ["Delivery", "WebhookError", "WebhookVerifier", "webhook_handler"]

_PREFIX = "whsec_"
_MAX_ID = 256


class WebhookError(ValueError):
    """A push that must not be taken: ``status`` is what to answer (400 or 401)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Delivery:
    """A verified push."""

    id: str  # webhook-id: the same on every attempt of one delivery
    timestamp: int
    package_id: str
    kind: str  # "edoc" or "status"
    body: bytes  # the exact package bytes
    digest: str  # SHA-256, hex


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None


class WebhookVerifier:
    """Checks signature, timestamp tolerance and digest; remembers the ids taken.

    ``secrets``: the current secret, or several while one is being replaced (any one that
    matches will do). ``tolerance_seconds``: how far the timestamp may be from this machine's
    clock (replays of an old captured request are refused). ``remember_at_most``: ids kept
    to recognise repeats (the oldest are forgotten first; keep your own record for longer).
    """

    def __init__(
        self,
        secrets: str | list[str],
        *,
        tolerance_seconds: int = 300,
        remember_at_most: int = 100_000,
    ) -> None:
        listed = [secrets] if isinstance(secrets, str) else list(secrets)
        if not listed:
            raise ValueError("give at least one webhook secret")
        self._keys = [_key(s) for s in listed]
        self.tolerance = tolerance_seconds
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._limit = remember_at_most

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Delivery:
        """The delivery, if the headers prove the hub sent exactly ``body`` just now."""
        lower = {k.lower(): v for k, v in headers.items()}
        webhook_id = lower.get("webhook-id", "")
        stamp = lower.get("webhook-timestamp", "")
        signatures = lower.get("webhook-signature", "")
        if not webhook_id or not stamp or not signatures:
            raise WebhookError("missing webhook-id, webhook-timestamp or webhook-signature")
        if len(webhook_id) > _MAX_ID or not webhook_id.isprintable():
            raise WebhookError("webhook-id is not a printable id of at most 256 characters")
        if not stamp.isdigit() or len(stamp) > 12:
            raise WebhookError("webhook-timestamp is not Unix seconds")
        timestamp = int(stamp)
        clock = time.time() if now is None else now
        if abs(clock - timestamp) > self.tolerance:
            raise WebhookError(
                f"webhook-timestamp is {int(clock - timestamp)} s from this clock "
                f"(tolerance {self.tolerance} s)"
            )
        signed = f"{webhook_id}.{timestamp}.".encode()
        expected = [
            base64.b64encode(hmac.new(k, signed + body, hashlib.sha256).digest())
            for k in self._keys
        ]
        given = [
            s.split(",", 1)[1].encode()
            for s in signatures.split()
            if s.startswith("v1,") and s.isascii()
        ]
        if not any(hmac.compare_digest(g, e) for g in given for e in expected):
            raise WebhookError("webhook-signature does not match (wrong secret or body)", 401)
        digest = hashlib.sha256(body).hexdigest()
        repr_digest = lower.get("repr-digest")
        if repr_digest is not None:
            claimed = repr_digest.removeprefix("sha-256=:").removesuffix(":")
            try:
                if base64.b64decode(claimed, validate=True).hex() != digest:
                    raise WebhookError("Repr-Digest does not match the body")
            except (binascii.Error, ValueError):
                raise WebhookError("Repr-Digest is not sha-256=:<base64>:") from None
        return Delivery(
            webhook_id,
            timestamp,
            lower.get("lienthong-package-id", ""),
            lower.get("lienthong-kind", ""),
            body,
            digest,
        )

    def seen(self, webhook_id: str) -> bool:
        """Whether this delivery was taken already (then answer 2xx and do nothing)."""
        return webhook_id in self._seen

    def remember(self, webhook_id: str) -> None:
        """Note a delivery as taken, once it is stored safely."""
        self._seen[webhook_id] = None
        self._seen.move_to_end(webhook_id)
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)


def webhook_handler(
    verifier: WebhookVerifier, take: Callable[[Delivery], Awaitable[None]]
) -> Callable:
    """An aiohttp handler: verifies, answers a repeat 200 without calling ``take`` again,
    calls ``take`` (store the package there; an exception answers 503 and the hub retries),
    then answers 200. Two copies of one delivery at once are taken once."""
    from aiohttp import web

    busy: dict[str, asyncio.Lock] = {}

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            delivery = verifier.verify(request.headers, body)
        except WebhookError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        lock = busy.setdefault(delivery.id, asyncio.Lock())
        try:
            async with lock:
                if verifier.seen(delivery.id):
                    return web.json_response({"received": delivery.id, "duplicate": True})
                try:
                    await take(delivery)
                except Exception as exc:  # noqa: BLE001 (not stored: the hub tries again)
                    return web.json_response({"error": f"not stored: {exc}"}, status=503)
                verifier.remember(delivery.id)
        finally:
            if not lock.locked():
                busy.pop(delivery.id, None)
        return web.json_response({"received": delivery.id, "duplicate": False})

    return handle
