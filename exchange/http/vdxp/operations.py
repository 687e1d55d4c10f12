"""The VDXP operations (VDXP-WIRE.md §1, §5): each verifies the signed headers, reads the
parameters it defines from the signed JSON (stale ones riding along are ignored), calls the
core use case and shapes the SDK's answer. Refusals are raised and answered in the envelope
by the error middleware (:data:`exchange.http.errors.FACADE_REFUSALS`)."""

from __future__ import annotations

import base64
import datetime as dt
import json

from aiohttp import web

from exchange.errors import HubError
from exchange.http.bodies import read_body, stream_body
from exchange.http.facade import confirm, package_bytes, waiting
from exchange.http.inputs import check_text
from exchange.http.v1 import HUB
from exchange.http.vdxp.auth import Signed, hash_file, verify_request
from exchange.http.vdxp.envelope import ok
from exchange.hub import Hub
from exchange.registry import Agency
from exchange.store.vdxp import PostgresVdxpSystems
from schemas import OrganId

__all__ = ["OPERATIONS"]

_SENT_LIMIT = 500  # packages in one sent list, newest first
_CRLF = b"\r\n"
_MESSAGE_TYPES = ("edoc", "status")
# What a receiver's copy is called in getSentEdocList, by the core's delivery state.
_RECEIVE_STATUS = {
    "pending": ("pending", "Đang chuyển"),
    "delivered": ("initial", "Đã đến hộp thư nơi nhận"),
    "fetched": ("processing", "Nơi nhận đã tải về"),
    "acknowledged": ("done", "Nơi nhận đã nhận"),
    "failed": ("fail", "Nơi nhận báo lỗi khi nhập văn bản"),
}


async def _signed(request: web.Request) -> tuple[Hub, Signed]:
    hub = request.app[HUB]
    return hub, await verify_request(request, PostgresVdxpSystems(hub.pool), hub.secrets)


def _time(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def _doc_id(signed: Signed, *names: str) -> str:
    value = signed.first(*names)
    if not value:
        raise HubError("vdxp.missing_parameter", f"give {names[0]}", field=names[0])
    return value.strip()


def _message_type(signed: Signed) -> str | None:
    value = signed.first("messagetype")
    if value is None or value == "":
        return None
    if value not in _MESSAGE_TYPES:
        raise HubError(
            "request.invalid_parameter", "messagetype is edoc or status", field="messagetype"
        )
    return value


async def _stream_package(request: web.Request, hub: Hub):
    """The body as an incoming blob, without the CRLF the SDK appends (exactly one: a
    package may end with its own CRLF)."""
    settings = hub.settings
    incoming = hub.blobs.incoming(settings.max_body_bytes)
    tail = b""
    try:
        async for chunk in stream_body(
            request,
            idle_timeout=settings.body_idle_timeout_seconds,
            deadline=settings.body_timeout_seconds,
            min_rate=settings.body_min_rate_bytes_per_second,
        ):
            data = tail + chunk
            incoming.write(data[:-2])
            tail = data[-2:]
        incoming.write(tail if tail != _CRLF else b"")
    except BaseException:
        incoming.discard()
        raise
    if incoming.size == 0:
        incoming.discard()
        raise HubError("body.empty", "the body is empty")
    return incoming


async def send_edoc(request: web.Request) -> web.Response:
    """sendEdoc: the raw package (+ CRLF) as the body; routed by the package itself."""
    hub, signed = await _signed(request)
    caller = signed.sender(signed.first("from"))
    _message_type(signed)  # checked only: the package itself says what it is and where it goes
    incoming = await _stream_package(request, hub)
    declared = signed.first("hash-file")
    # The SDK's unpadded hex, or the usual padded one from other clients.
    if declared and declared.strip().lower() not in (
        hash_file(incoming.digest),
        incoming.digest.hex(),
    ):
        incoming.discard()
        raise HubError(
            "vdxp.hash_mismatch",
            "hash-file is not the SHA-256 of the body received: the upload was cut; send again",
        )
    result = await hub.submissions.submit(caller, incoming)
    return ok(DocId=str(result.id))


def _received_item(organ: str, item: dict) -> dict:
    return {
        "docId": item["id"],
        "serviceType": "eDoc",
        "messageType": item["kind"],
        "created_time": item["delivered_at"],
        "updated_time": item["delivered_at"],
        "from": item["sender"],
        "to": organ,
        "status": "initial",
        "status_desc": "Chờ nhận",
    }


async def received_list(request: web.Request) -> web.Response:
    """getReceivedEdocList: what waits for the system's organs (edoc or status)."""
    hub, signed = await _signed(request)
    found = await waiting(hub, signed.callers(), _message_type(signed))
    return ok(data=[_received_item(c.organ_id, i) for c, i in found])


async def _count(request: web.Request, kind: str) -> web.Response:
    hub, signed = await _signed(request)
    return ok(count=len(await waiting(hub, signed.callers(), kind)))


async def count_edoc(request: web.Request) -> web.Response:
    """countReceiveEdoc: how many documents wait."""
    return await _count(request, "edoc")


async def count_status(request: web.Request) -> web.Response:
    """countReceiveStatus: how many statuses wait."""
    return await _count(request, "status")


def _sent_item(row) -> dict:
    if row["import_failed"]:
        state = "failed"
    elif row["state"] == "delivered" and row["fetched_at"]:
        state = "fetched"
    else:
        state = row["state"]
    receive, receive_desc = _RECEIVE_STATUS.get(state, (state, state))  # a state added later
    return {
        "serviceType": "eDoc",
        "senderDocId": str(row["id"]),
        "receiverDocId": str(row["id"]),
        "fromCode": row["sender"],
        "toCode": row["recipient"],
        "sendStatus": "done",
        "sendStatusDesc": "Trục đã nhận",
        "receiveStatus": receive,
        "receiveStatusDesc": receive_desc,
        "title": row["subject"] or "",
        "notation": row["document_id"] or "",
        "sentTime": _time(row["received_at"]),
        "receivedTime": _time(row["acked_at"] or row["fetched_at"] or row["delivered_at"]),
        "messageType": row["kind"],
    }


async def sent_list(request: web.Request) -> web.Response:
    """getSentEdocList: what the system's organs sent, one item per receiver with its state."""
    hub, signed = await _signed(request)
    rows = await PostgresVdxpSystems(hub.pool).sent(signed.system.organs, _SENT_LIMIT)
    return ok(data=[_sent_item(r) for r in rows])


async def get_edoc(request: web.Request) -> web.Response:
    """getEdoc: base64 of exactly the stored bytes (``filePath`` is the DMS's own folder)."""
    hub, signed = await _signed(request)
    data, _ = await package_bytes(hub, signed.callers(), _doc_id(signed, "docId", "docid"))
    return ok(data=base64.b64encode(data).decode("ascii"))


async def download_edoc(request: web.Request) -> web.StreamResponse:
    """downloadEdoc: the raw package as the body."""
    hub, signed = await _signed(request)
    data, _ = await package_bytes(hub, signed.callers(), _doc_id(signed, "docId", "docid"))
    return web.Response(body=data, content_type="application/xml")


async def update_status(request: web.Request) -> web.Response:
    """updateStatus: ``done`` acknowledges (the item leaves the received list), ``fail``
    records that the recipient's import failed. Both idempotent under the SDK's retries."""
    hub, signed = await _signed(request)
    doc_id = _doc_id(signed, "docid", "docId")
    status = (signed.first("status") or "").strip().lower()
    if status not in ("done", "fail"):
        raise HubError("request.invalid_parameter", "status is done or fail", field="status")
    await confirm(hub, signed.callers(), doc_id, done=status == "done", reason="updateStatus fail")
    return ok()


async def _agencies(hub: Hub) -> list:
    return await hub.registry.list(limit=100_000)


async def agencies_list(request: web.Request) -> web.Response:
    """getAgenciesList: the registry, keyed by code."""
    hub, _ = await _signed(request)
    return ok(
        data=[
            {"id": a.code, "code": a.code, "name": a.name, "mail": "", "pid": a.parent or ""}
            for a in await _agencies(hub)
        ]
    )


async def agencies_list_qd20(request: web.Request) -> web.Response:
    """getAgenciesListQD20: the registry with the QCVN 102 code (Decision 20 lists)."""
    hub, _ = await _signed(request)
    return ok(
        data=[
            {"id": a.code, "code": a.code, "name": a.name, "mail": "", "code102": a.code}
            for a in await _agencies(hub)
        ]
    )


async def synchronize_unit(request: web.Request) -> web.Response:
    """getSynchronizeUnit: the registry, with whether each code is retired."""
    hub, _ = await _signed(request)
    today = dt.datetime.now(dt.UTC).date()
    items = []
    for a in await _agencies(hub):
        changed = a.valid_to or a.valid_from
        items.append(
            {
                "id": a.code,
                "code": a.code,
                "name": a.name,
                "mail": "",
                "pid": a.parent or "",
                "version": 1,
                "centerCode": "",
                "deleted": not a.active_on(today),
                "modifyDate": changed.isoformat() if changed else "",
                "isAgency": True,
            }
        )
    return ok(data=items)


def _registry_managed(what: str) -> HubError:
    return HubError(
        "vdxp.registry_managed",
        f"{what}: the hub's registry is kept by its operators (lienthong registry import)",
    )


async def register_agency(request: web.Request) -> web.Response:
    """registerAgency: OK for an agency the system serves; a new code below one of its organs
    (a centre registering a unit under it) enters the registry, served by the system. Codes
    already registered, and anything else, are the operators' (``lienthong registry import``)."""
    hub, signed = await _signed(request)
    body = await read_body(
        request,
        limit=64 * 1024,
        idle_timeout=hub.settings.body_idle_timeout_seconds,
        deadline=hub.settings.body_idle_timeout_seconds,
    )
    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        raise HubError("request.invalid_json", "the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("code"), str):
        raise HubError("request.invalid_json", "the body has no agency code", field="code")
    organ = OrganId.parse(data["code"].strip(), field="code")
    system = signed.system
    if str(organ) in system.organs:
        return ok()
    if not any(str(a) in system.organs for a in organ.ancestors()):
        raise _registry_managed(f"{organ} is not under an agency of {system.system_id}")
    if await hub.registry.exists(str(organ)):
        raise _registry_managed(f"{organ} is registered already; the operators say who serves it")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise HubError("request.invalid_json", "the body has no agency name", field="name")
    parent = organ.parent
    agency = Agency(
        str(organ),
        check_text(name.strip(), "name", 500),
        str(parent) if parent else None,
        organ.gov_level.value,
    )
    await hub.registry.upsert([agency])
    await PostgresVdxpSystems(hub.pool).add_organs(system.system_id, [agency.code])
    return ok()


async def delete_agency(request: web.Request) -> web.Response:
    """deleteAgency: codes are retired by the operators (``valid_to``, ``successor``)."""
    _, signed = await _signed(request)
    raise _registry_managed(signed.first("AgencyCode") or "deleteAgency")


# (method, operation, handler, what it does): the router and the OpenAPI document read this.
OPERATIONS = [
    ("POST", "getAgenciesList", agencies_list, "The registry: id, code, name, mail, pid"),
    ("POST", "getAgenciesListQD20", agencies_list_qd20, "The registry with code102"),
    ("POST", "getSynchronizeUnit", synchronize_unit, "The registry with deleted, modifyDate"),
    ("POST", "registerAgency", register_agency, "A new unit below an agency the system serves"),
    ("POST", "deleteAgency", delete_agency, "Refused: the operators retire codes"),
    ("POST", "sendEdoc", send_edoc, "Send a package (raw body + CRLF); answers DocId"),
    ("POST", "getReceivedEdocList", received_list, "Documents or statuses waiting"),
    ("POST", "getSentEdocList", sent_list, "What the system sent, each receiver's state"),
    ("POST", "getEdoc", get_edoc, "base64 of exactly the stored package in data"),
    ("POST", "updateStatus", update_status, "done: acknowledged; fail: import failed"),
    ("POST", "countReceiveEdoc", count_edoc, "How many documents wait"),
    ("POST", "countReceiveStatus", count_status, "How many statuses wait"),
    ("GET", "downloadEdoc", download_edoc, "The raw package as the body"),
]
