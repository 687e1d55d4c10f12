"""The LGSP facade under ``/lgsp/``: the REST style of the provincial platforms (LGSP).

``POST /lgsp/token`` takes the agency's ``/v1`` client credentials (HTTP Basic, form or JSON)
and gives a bearer token; every other call carries it. Every answer is HTTP 200 with
``{status, errorCode, errorDesc, data}`` (those clients read only the body), ``errorCode`` from
the same table as VDXP. Each route is the ``/v1`` use case under another name.
"""

from __future__ import annotations

import base64
import binascii
import json

from aiohttp import web

from exchange.errors import HubError
from exchange.http.bodies import read_body
from exchange.http.facade import confirm, package_bytes, waiting, write_incoming
from exchange.http.login import token_response

# The /v1 authentication itself (bearer token, client-certificate binding), not a copy.
from exchange.http.v1 import HUB, LOGINS
from exchange.http.v1 import _caller as caller_of
from exchange.http.vdxp.envelope import lgsp_answer, lgsp_refusal

__all__ = ["BASE", "ROUTES", "lgsp_refusal"]

BASE = "/lgsp"
_KINDS = ("edoc", "status")
_STATES = ("INITIAL", "PROCESSING", "DONE", "FAIL")


async def token(request: web.Request) -> web.Response:
    """POST /lgsp/token: client credentials (HTTP Basic) → ``data: {access_token, ...}``."""
    hub = request.app[HUB]
    answer = await token_response(request, hub.credentials, hub.settings, request.app[LOGINS])
    return lgsp_answer(json.loads(answer.body))


async def _json_body(request: web.Request, limit: int) -> dict:
    settings = request.app[HUB].settings
    body = await read_body(
        request,
        limit=limit,
        idle_timeout=settings.body_idle_timeout_seconds,
        deadline=settings.body_timeout_seconds,
    )
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise HubError("request.invalid_json", "the body is not JSON") from None
    if not isinstance(data, dict):
        raise HubError("request.invalid_json", "the body must be a JSON object")
    return data


async def list_waiting(request: web.Request) -> web.Response:
    """GET /lgsp/vanbans: documents and statuses waiting for the caller, oldest first."""
    hub = request.app[HUB]
    caller = await caller_of(request)
    return lgsp_answer(
        [
            {
                "serviceType": "eDoc",
                "messageType": item["kind"],
                "docId": item["id"],
                "from": item["sender"],
                "to": caller.organ_id,
                "status": "INITIAL",
                "statusDesc": "Chờ nhận",
                "createdTime": item["delivered_at"],
            }
            for _, item in await waiting(hub, [caller], None)
        ]
    )


async def get_one(request: web.Request) -> web.Response:
    """GET /lgsp/vanbans/{docId}: ``data`` is the base64 of exactly the stored package."""
    hub = request.app[HUB]
    caller = await caller_of(request)
    data, _ = await package_bytes(hub, [caller], request.match_info["docId"])
    return lgsp_answer(base64.b64encode(data).decode("ascii"))


async def send(request: web.Request) -> web.Response:
    """POST /lgsp/vanbans: ``{"data": base64 edXML, "loaiVanBan": "edoc" | "status"}``; the
    package is routed by its own header, as on ``/v1``."""
    hub = request.app[HUB]
    caller = await caller_of(request)
    limit = hub.settings.max_body_bytes * 4 // 3 + 64 * 1024  # base64 and the JSON around it
    body = await _json_body(request, limit)
    kind, encoded = body.get("loaiVanBan", "edoc"), body.get("data")
    if kind not in _KINDS:
        raise HubError(
            "request.invalid_parameter", "loaiVanBan is edoc or status", field="loaiVanBan"
        )
    if not isinstance(encoded, str):
        raise HubError("request.invalid_json", "data must be the base64 package", field="data")
    try:
        package = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise HubError("request.invalid_parameter", "data is not base64", field="data") from None
    result = await hub.submissions.submit(caller, write_incoming(hub, package))
    return lgsp_answer({"docId": str(result.id), "messageType": result.kind})


async def set_status(request: web.Request) -> web.Response:
    """PUT /lgsp/vanbans/{docId}: ``{"status": "DONE"}`` acknowledges, ``FAIL`` records a
    failed import; ``INITIAL`` and ``PROCESSING`` change nothing."""
    hub = request.app[HUB]
    caller = await caller_of(request)
    doc_id = request.match_info["docId"]
    status = (await _json_body(request, 16 * 1024)).get("status")
    status = status.strip().upper() if isinstance(status, str) else status
    if status not in _STATES:
        raise HubError(
            "request.invalid_parameter", f"status is one of {', '.join(_STATES)}", field="status"
        )
    if status in ("DONE", "FAIL"):
        await confirm(hub, [caller], doc_id, done=status == "DONE", reason="LGSP FAIL")
    else:
        await hub.deliveries.locate(caller, doc_id)  # it must still be the caller's
    return lgsp_answer({"docId": doc_id, "status": status})


async def agencies(request: web.Request) -> web.Response:
    """GET /lgsp/donvilienthongs: the registry."""
    hub = request.app[HUB]
    await caller_of(request)
    return lgsp_answer(
        [
            {"id": a.code, "code": a.code, "name": a.name, "pid": a.parent or ""}
            for a in await hub.registry.list(limit=100_000)
        ]
    )


ROUTES = [
    ("POST", f"{BASE}/token", token),
    ("GET", f"{BASE}/vanbans", list_waiting),
    ("POST", f"{BASE}/vanbans", send),
    ("GET", f"{BASE}/vanbans/{{docId}}", get_one),
    ("PUT", f"{BASE}/vanbans/{{docId}}", set_status),
    ("GET", f"{BASE}/donvilienthongs", agencies),
]
