"""Operator actions in the console: redeliver a failed delivery, revoke a DMS's credentials.
Each is recorded in the ledger as a ``console_action`` event naming the operator."""

from __future__ import annotations

import logging

from aiohttp import web

from exchange.http.console.common import Viewer, console_page, render
from exchange.http.v1 import HUB

__all__ = ["operations", "redeliver", "revoke"]

log = logging.getLogger("lienthong.console")


async def _page(request: web.Request, viewer: Viewer, outcome: str | None = None, status=200):
    hub = request.app[HUB]
    console = hub.stores.console
    return render(
        request,
        "operations.html.j2",
        viewer=viewer,
        status=status,
        failed=await console.failed_deliveries(hub.settings.redeliver_after_seconds),
        clients=await console.clients(),
        outcome=outcome,
    )


@console_page("operator")
async def operations(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """GET /console/operations"""
    return await _page(request, viewer)


@console_page("operator")
async def redeliver(request: web.Request, viewer: Viewer, form) -> web.StreamResponse:
    """POST /console/operations/redeliver: delivery=ID"""
    hub = request.app[HUB]
    try:
        delivery = int(str(form.get("delivery", "")))
    except ValueError:
        return await _page(request, viewer, "not_done", 400)
    done = await hub.stores.console.redeliver(delivery, viewer.name)
    if done:
        hub.dispatcher.flush()
        log.info("console redeliver", extra={"audit": "console_redeliver", "user": viewer.name})
    return await _page(request, viewer, "done" if done else "not_done", 200 if done else 409)


@console_page("operator")
async def revoke(request: web.Request, viewer: Viewer, form) -> web.StreamResponse:
    """POST /console/operations/revoke: client_id=ID (its cached tokens stop within 10 s, as
    after ``lienthong agency revoke``)."""
    hub = request.app[HUB]
    client_id = str(form.get("client_id", ""))[:128]
    done = await hub.stores.console.revoke(client_id, viewer.name)
    if done:
        log.info("console revoke", extra={"audit": "console_revoke", "user": viewer.name})
    return await _page(request, viewer, "done" if done else "not_done", 200 if done else 409)
