"""What the VDXP and LGSP facades share: the core use cases of ``/v1`` (inbox, fetch, ack,
submit), called for one or several organs (a VDXP centre serves several). Nothing here
routes, checks or stores anything itself."""

from __future__ import annotations

import asyncio
import logging

from exchange.auth import Caller
from exchange.blobs import IncomingBlob
from exchange.errors import HubError
from exchange.hub import Hub

__all__ = ["confirm", "package_bytes", "waiting", "write_incoming"]

log = logging.getLogger("lienthong.http")
MAX_LISTED = 1000  # items in one received list; the rest come once these are confirmed
# Refusals that mean "not this organ's": the next organ of a centre is tried.
_NOT_THIS_ORGAN = ("package.not_found", "delivery.not_recipient")


async def waiting(hub: Hub, callers: list[Caller], kind: str | None) -> list[tuple[Caller, dict]]:
    """What waits in the inboxes of ``callers`` (of ``kind`` when given), oldest first per
    organ: the ``/v1/inbox`` use case, page by page."""
    found: list[tuple[Caller, dict]] = []
    settings = hub.settings
    for caller in callers:
        after = 0
        while len(found) < MAX_LISTED:
            page = await hub.deliveries.inbox(
                caller, after, settings.inbox_max_limit, settings.inbox_max_bytes
            )
            found += [(caller, i) for i in page["items"] if kind is None or i["kind"] == kind]
            if not page["items"]:
                break
            after = int(page["next"])
    return found[:MAX_LISTED]


async def _first_organ(callers: list[Caller], attempt):
    """``attempt(caller)`` for each organ until one is not refused as not its package."""
    last: HubError | None = None
    for caller in callers:
        try:
            return await attempt(caller)
        except HubError as exc:
            if exc.code not in _NOT_THIS_ORGAN:
                raise
            last = exc
    raise last or HubError("package.not_found", "no such package")


async def package_bytes(hub: Hub, callers: list[Caller], package_id: str) -> tuple[bytes, dict]:
    """The exact stored bytes of a package one of ``callers`` sent or receives (the first
    download by a recipient is noted, as ``GET /v1/packages/{id}`` does)."""

    async def fetch(caller: Caller):
        row = await hub.deliveries.locate(caller, package_id)
        path = hub.blobs.path_for(row["digest"])
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            log.error("stored bytes missing", extra={"package_id": str(row["id"])})
            raise HubError(
                "package.bytes_missing",
                "the hub cannot find this package's bytes; the operators are alerted",
            ) from None
        await hub.deliveries.fetched(caller, row)
        return data, row

    return await _first_organ(callers, fetch)


async def confirm(
    hub: Hub, callers: list[Caller], package_id: str, *, done: bool, reason: str = ""
) -> dict:
    """``done``: acknowledge the copy (it leaves the inbox; idempotent); otherwise record
    that the recipient's import failed (the sender sees it; the copy stays)."""

    async def answer(caller: Caller):
        if done:
            return await hub.deliveries.acknowledge(caller, package_id)
        return await hub.deliveries.import_failed(caller, package_id, reason)

    return await _first_organ(callers, answer)


def write_incoming(hub: Hub, data: bytes) -> IncomingBlob:
    """A body already in memory as an incoming blob for ``Submissions.submit``."""
    if not data:
        raise HubError("body.empty", "the package is empty")
    incoming = hub.blobs.incoming(hub.settings.max_body_bytes)
    try:
        incoming.write(data)
    except BaseException:
        incoming.discard()
        raise
    return incoming
